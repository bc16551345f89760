"""The weekly loop from the bench: votes, requests, confirmations, what a build fixes for you.

Every upload goes through the outbox like a build log or a bug report (redacted, previewed,
queued with one idempotency key, never posted twice, never lost offline):

* ``vote``: kind ``vote``, key per tester and report: voting again is the same item, and on
  the tracker ``voters`` is a set of users, so a vote counts once;
* ``request``: a feature request, an issue of kind ``request``;
* ``confirm``: kind ``confirm``, key per tester, report and build; the redacted bench context
  (board, firmware, slot, last verify, selftest) rides along as the confirmation's message.

"Your" reports are the ones this installation filed, added "me too" to, voted on or
confirmed: read from the outbox (what was queued from here), so it works offline too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.community.outbox import Item, Outbox
from toolkit.community.redact import Redactor
from toolkit.community.weekly import top
from toolkit.errors import ConfigError, NotFoundError
from toolkit.journeys.share import Plan, item_key
from toolkit.record import Journal

__all__ = ["top"]

VERDICTS = ("fixed", "still-broken")


def report_id(text: str | int) -> str:
    """'#12', '12' or 'issue12' -> '12' (a clear error otherwise)."""
    raw = str(text).strip()
    value = raw.lstrip("#")
    if value.startswith("issue"):
        value = value[5:]
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"{raw!r} is not a report number", hint="e.g. 12 or #12")
    return str(int(value))


# --- what is "mine" --------------------------------------------------------------------------


def my_reports(outbox: Outbox | None = None) -> dict[str, list[str]]:
    """report id -> how this installation took part: filed, me-too, voted, confirmed."""
    outbox = outbox or Outbox()
    mine: dict[str, list[str]] = {}

    def add(rid: object, how: str) -> None:
        if rid is None or not str(rid).isdigit():
            return
        hows = mine.setdefault(str(rid), [])
        if how not in hows:
            hows.append(how)

    for item in outbox.list():
        if item.kind in ("bug", "request") and item.remote:
            add(item.remote.get("id"), "filed")
        elif item.kind == "comment" and not item.payload.get("share_card"):
            add(item.payload.get("target"), "me-too")
        elif item.kind == "vote":
            add(item.payload.get("target"), "voted")
        elif item.kind == "confirm":
            add(item.payload.get("target"), "confirmed")
    return mine


# --- votes and requests ----------------------------------------------------------------------


def prepare_vote(report: str, publisher: str = "roundup") -> Plan:
    """A vote for ``report``: nothing personal leaves but the vote itself."""
    rid = report_id(report)
    item = Item(
        key=item_key("vote", rid, publisher),
        publisher=publisher,
        kind="vote",
        title=f"Vote for #{rid}",
        payload={"body": "", "target": rid, "fields": {}},
    )
    return Plan(item, [])


def prepare_request(
    title: str,
    detail: str = "",
    *,
    board: str | None = None,
    publisher: str = "roundup",
    redactor: Redactor | None = None,
) -> Plan:
    """A feature request (redacted like every upload)."""
    title = title.strip()
    if not title:
        raise ConfigError("a request needs a title", hint='routerkit request "Fan curve setting"')
    r = redactor or Redactor.for_installation()
    safe_title, body = r.text(title), r.text(detail.strip())
    md = [body, ""] if body else []
    md.append("_Requested with routerkit._")
    fields = {"kind": "request", "board": board}
    item = Item(
        key=item_key("request", title, board or "-", publisher),
        publisher=publisher,
        kind="request",
        title=safe_title,
        payload={
            "body": "\n".join(md) + "\n",
            "fields": fields,
            "tags": ["request", *([board] if board else [])],
        },
    )
    return Plan(item, [], dict(r.counts))


# --- confirmations ---------------------------------------------------------------------------


def prepare_confirm(
    report: str,
    verdict: str,
    *,
    build: str | None = None,
    session_id: str | None = None,
    publisher: str = "roundup",
    redactor: Redactor | None = None,
) -> Plan:
    """A tester's verdict on ``report`` after flashing ``build`` (default: the version the
    newest flash/verify session recorded), with the bench context attached, redacted."""
    from toolkit.community.bugreport import collect

    if verdict not in VERDICTS:
        raise ConfigError(f"verdict must be one of {', '.join(VERDICTS)}")
    rid = report_id(report)
    journal = Journal.open(session_id) if session_id else _latest_device_session()
    ctx = collect(journal)
    build = build or ctx.firmware
    if not build:
        raise ConfigError(
            "which build? no flash or verify recorded on this machine",
            hint="pass --build VERSION, or run `routerkit verify` first",
        )
    r = redactor or Redactor.for_installation()
    r.learn(json.dumps([ctx.verify, ctx.selftest], default=str))
    word = "fixed" if verdict == "fixed" else "still broken"
    md = [
        f"**Confirmed {word}** on build **{r.text(build)}** with routerkit.",
        "",
        f"**Board** {ctx.board} (hardware rev {ctx.hardware_rev or '?'}) · **running** "
        f"{ctx.firmware or '?'} · **slot** {ctx.slot or '?'}",
        "",
    ]
    if ctx.verify:
        keep = {
            k: ctx.verify.get(k) for k in ("ok", "version", "slot", "seconds") if k in ctx.verify
        }
        md += ["### Last verify", "", "```json", r.text(json.dumps(keep, default=str)), "```", ""]
    if ctx.selftest is not None:
        st = ctx.selftest if isinstance(ctx.selftest, str) else json.dumps(ctx.selftest, indent=1)
        md += ["### Selftest", "", "```json", r.text(st).replace("```", "ʼʼʼ"), "```", ""]
    warnings = [] if journal else ["no session recorded: the confirmation has no bench context"]
    if ctx.firmware and ctx.firmware != build:
        warnings.append(f"the bench last reported {ctx.firmware}, not build {build}")
    item = Item(
        key=item_key("confirm", rid, build, publisher),
        publisher=publisher,
        kind="confirm",
        title=f"#{rid} {word} on {build}",
        payload={
            "body": "\n".join(md),
            "target": rid,
            "fields": {"build": build, "verdict": verdict, "board": ctx.board},
            "session": ctx.session,
        },
    )
    return Plan(item, [], dict(r.counts), warnings)


def _latest_device_session() -> Journal | None:
    found = [j for j in (Journal.latest("verify"), Journal.latest("flash")) if j is not None]
    if not found:
        return Journal.latest()
    return max(found, key=lambda j: (str(j.header.get("ts", "")), j.id))


# --- what a build does for you ---------------------------------------------------------------


@dataclass
class Change:
    """One build's release notes, with the reports that are yours marked."""

    version: str
    board: str
    channel: str
    build_date: str | None
    notes: dict[str, Any]
    yours: dict[str, list[str]]  # report id -> how you took part

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def changes(
    images: list[Any], mine: dict[str, list[str]], since: str | None = None
) -> list[Change]:
    """Release notes of ``images`` (channels.ChannelImage, newest first), newer than
    ``since`` if given, each with the reports of ``mine`` it names."""
    from toolkit.firmware.notes import reports_named
    from toolkit.firmware.versions import InvalidVersion, parse_version

    floor = parse_version(since) if since else None
    out = []
    for img in images:
        if floor is not None:
            try:
                if parse_version(img.version) <= floor:
                    continue
            except InvalidVersion:
                continue
        notes = img.notes or {}
        named = reports_named(notes)
        yours = {rid: mine[rid] for rid in named if rid in mine}
        out.append(Change(img.version, img.board, img.channel, img.build_date, notes, yours))
    return out


def cached_notes(
    version: str,
    board: str | None = None,
    *,
    cache: Path | None = None,
    sha256: str | None = None,
) -> list[dict[str, Any]]:
    """Release notes of ``version`` from the channel metadata this machine already holds.

    The metadata in the channel cache is what python-tuf verified at the last pull or list
    (signatures, versions, expiry at that time); reading it needs no network, so a flash of a
    file that came from a channel still learns what that build claims to fix."""
    from toolkit import paths

    by_version: list[dict[str, Any]] = []
    by_hash: list[dict[str, Any]] = []
    base = cache or paths.cache_dir() / "channels"
    for meta in sorted(base.glob("*/metadata/*.json")) if base.is_dir() else []:
        if meta.stem not in ("nightly", "release"):
            continue
        try:
            targets = json.loads(meta.read_bytes())["signed"]["targets"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        for info in targets.values():
            custom = ((info or {}).get("custom") or {}).get("routerkit") or {}
            if str(custom.get("version")) != version:
                continue
            if (
                board
                and custom.get("board") != board
                and board not in (custom.get("supported_devices") or [])
            ):
                continue
            notes = custom.get("notes")
            if not isinstance(notes, dict):
                continue
            if notes not in by_version:
                by_version.append(notes)
            hashes = (info or {}).get("hashes") or {}
            same_bytes = str(hashes.get("sha256", "")).lower() == (sha256 or "").lower() != ""
            if same_bytes and notes not in by_hash:
                by_hash.append(notes)
    # the very bytes that were flashed, when a channel listed them; else the same version
    return by_hash or by_version


def after_flash(
    version: str,
    board: str | None = None,
    mine: dict[str, list[str]] | None = None,
    *,
    cache: Path | None = None,
    sha256: str | None = None,
) -> list[dict[str, Any]]:
    """The reports you care about that the flashed build claims to fix: ``[{id, how}]``."""
    from toolkit.firmware.notes import reports_named

    mine = my_reports() if mine is None else mine
    claims: dict[str, str] = {}
    for notes in cached_notes(version, board, cache=cache, sha256=sha256):
        for rid, what in reports_named(notes).items():
            if what == "fixes" or rid not in claims:
                claims[rid] = what
    return [
        {"id": rid, "how": mine[rid]}
        for rid, what in sorted(claims.items(), key=lambda kv: int(kv[0]))
        if what == "fixes" and rid in mine
    ]


def read_notes_file(path: Path) -> dict[str, Any]:
    from toolkit.firmware.notes import load

    if not path.is_file():
        raise NotFoundError(f"no release notes file {path}")
    return load(path)


# --- the share card and the weekly page --------------------------------------------------------


def share_card(plan: Plan, url: str, rank: tuple[int, int] | None = None) -> bytes:
    """The share card (PNG) of a composed build log whose post is at ``url``."""
    from toolkit.community.card import CardInfo, render

    log = plan.log
    if log is None:
        raise ConfigError("only a build log has a share card")
    photos = [b.data for b in plan.blobs if b.mime.startswith("image/")]
    fields = plan.item.payload.get("fields", {})
    info = CardInfo(
        url=url,
        board=log.board,
        firmware=fields.get("firmware"),
        assembly_seconds=log.assembly_seconds or None,
        rank=rank,
        sample=log.sample,
        display_name=log.display_name,
        photos=photos,
    )
    return render(info)


def card_comment(plan: Plan, target: str, card: bytes) -> Plan:
    """A message adding the share card to the posted build log ``target`` (so the log links
    to its card); its key follows the card's bytes, so a re-run posts nothing new."""
    import hashlib

    from toolkit.community.buildlog import Blob

    digest = hashlib.sha256(card).hexdigest()
    item = Item(
        key=item_key("card", plan.item.key, digest),
        publisher=plan.item.publisher,
        kind="comment",
        title=f"Share card: {plan.item.title}",
        payload={
            "body": "Share card of this build log:\n\n![share card](share-card.png)\n",
            "target": target,
            "fields": {},
            "share_card": True,
        },
    )
    return Plan(item, [Blob("share-card.png", card, "image/png")])


def weekly_page(publisher: Any, images: list[Any], *, days: int = 7, now: Any = None) -> Any:
    """Build the weekly page from a tracker that can read reports back (Roundup) and the
    channel's images (``channels.list_images``)."""
    from toolkit.community.weekly import PHOTO_SUFFIXES, build

    def photo(file_id: str) -> tuple[str, bytes]:
        name = str(publisher.get("file", file_id).get("attributes", {}).get("name") or "")
        if name == "share-card.png" or not name.lower().endswith(PHOTO_SUFFIXES):
            return name, b""  # not a photo of the build: not downloaded
        return name, publisher.download(file_id)

    return build(
        publisher.reports(), publisher.confirmations(), images, photos=photo, days=days, now=now
    )
