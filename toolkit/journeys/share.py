"""The share journey: session journal → redacted build log → outbox → publisher.

Three stages, so the CLI can show the exact payload and ask before anything leaves:

1. :func:`prepare_share` composes and redacts the build log in memory (and saves the
   Markdown and the self-contained HTML page into the session's ``files/share/`` for offline
   use). Nothing is queued yet.
2. :func:`submit` freezes the payload into the outbox (attachments staged, one idempotency key).
3. :func:`deliver` drains the outbox through the publishers; an offline bench keeps the item
   queued for ``routerkit outbox retry``.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass, field
from typing import Any

from toolkit.community.buildlog import Blob, BuildLog, compose
from toolkit.community.outbox import Attachment, DrainResult, Item, Outbox, PublisherFactory
from toolkit.community.redact import Redactor
from toolkit.errors import SessionNotFound
from toolkit.events import NullReporter, Reporter
from toolkit.record import Journal, atomic_write


@dataclass
class Plan:
    """A composed post, not yet queued: what the tester is asked to agree to."""

    item: Item
    blobs: list[Blob]
    redactions: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    original_bytes: int = 0
    log: BuildLog | None = None

    def __post_init__(self) -> None:
        # The preview is for one server: the one today's configuration names. The item keeps
        # it, and the outbox never hands the item to a publisher that posts somewhere else.
        if self.item.destination is None:
            from toolkit.community.config import destination

            self.item.destination = destination(self.item.publisher)

    @property
    def total_bytes(self) -> int:
        return len(self.item.body.encode()) + sum(len(b.data) for b in self.blobs)

    def preview(self) -> dict[str, Any]:
        """The exact payload: text plus every attachment with its size."""
        return {
            "key": self.item.key,
            "publisher": self.item.publisher,
            "destination": self.item.destination,
            "kind": self.item.kind,
            "title": self.item.title,
            "fields": self.item.payload.get("fields", {}),
            "target": self.item.payload.get("target"),
            "body": self.item.body,
            "attachments": [
                {"name": b.name, "bytes": len(b.data), "mime": b.mime} for b in self.blobs
            ],
            "total_bytes": self.total_bytes,
            "original_photo_bytes": self.original_bytes,
            "redactions": self.redactions,
            "warnings": self.warnings,
        }


def item_key(*parts: str, salt: bytes | None = None) -> str:
    """An idempotency key: stable for the same content, 34 chars (fits Discourse's external_id)."""
    from toolkit.community.redact import installation_salt

    digest = hmac.new(
        salt or installation_salt(), "\x1f".join(parts).encode(), hashlib.sha256
    ).hexdigest()
    return "rk" + digest[:32]


def pick_session(session_id: str | None) -> Journal:
    """The named session, else the newest assembly session, else the newest session."""
    if session_id:
        return Journal.open(session_id)
    journal = Journal.latest(kind="assemble") or Journal.latest()
    if journal is None:
        raise SessionNotFound("no session recorded yet", hint="`routerkit assemble` starts one")
    return journal


def prepare_share(
    session_id: str | None = None,
    publisher: str = "roundup",
    *,
    redactor: Redactor | None = None,
    include_html: bool = True,
    max_photo_px: int | None = None,
    display_name: str | None = None,
    sample: str | None = None,
) -> Plan:
    """Compose the build log of a session, redacted, ready to preview. ``display_name``
    signs it (default: ``[community] display_name``, else anonymous)."""
    from toolkit.community.config import community_config

    journal = pick_session(session_id)
    redactor = redactor or Redactor.for_installation()
    cfg = community_config()
    log = compose(
        journal,
        redactor,
        max_photo_px=max_photo_px,
        display_name=display_name or cfg.get("display_name"),
        sample=sample or cfg.get("sample"),
    )
    share_dir = journal.files_dir / "share"
    atomic_write(share_dir / "buildlog.md", log.markdown.encode())
    atomic_write(share_dir / "buildlog.html", log.html.encode())
    blobs = list(log.attachments)
    if include_html:
        blobs.append(Blob("buildlog.html", log.html.encode(), "text/html"))
    warnings = list(log.warnings)
    if not any(st.photos for st in log.steps):
        warnings.append("this session has no photos; the build log is text only")
    fields = {
        "kind": "buildlog",
        "board": log.board,
        "firmware": _firmware(log),
        "display_name": log.display_name,
        "sample": log.sample,
        "assembly_seconds": f"{log.assembly_seconds:.1f}" if log.assembly_seconds else None,
    }
    item = Item(
        key=item_key("buildlog", journal.id, publisher),
        publisher=publisher,
        kind="buildlog",
        title=log.title,
        payload={
            "body": log.markdown,
            "fields": fields,
            "tags": ["build-log", log.board],
            "session": journal.id,
        },
    )
    return Plan(item, blobs, log.redactions, warnings, log.original_bytes, log)


def _firmware(log: BuildLog) -> str | None:
    for rec in reversed(log.verifies + log.flashes):
        version = rec.get("version_after") or rec.get("version")
        if version:
            return str(version)
    return None


def submit(plan: Plan, outbox: Outbox | None = None) -> Item:
    """Freeze the plan into the outbox (idempotent: the same key is queued once).

    An unsent item with the same key but a different payload (the tester shrank the photos
    after a 413) or previewed for another server (the configuration changed since) is
    replaced; the server-side key check still guarantees a single post per server."""
    outbox = outbox or Outbox()
    existing = outbox.get(plan.item.key, missing_ok=True)
    if existing is not None:
        same = (
            existing.body == plan.item.body
            and [a.sha256 for a in existing.attachments] == [b.sha256 for b in plan.blobs]
            and existing.destination == plan.item.destination
        )
        if existing.state == "sent" or same:
            return existing
        outbox.drop(existing.key)
    stage = outbox.stage_dir(plan.item.key, create=True)
    attachments = []
    for blob in plan.blobs:
        path = stage / blob.name
        atomic_write(path, blob.data)
        attachments.append(Attachment(blob.name, path, len(blob.data), blob.sha256, blob.mime))
    plan.item.attachments = attachments
    return outbox.enqueue(plan.item)


def deliver(
    publishers: PublisherFactory,
    outbox: Outbox | None = None,
    reporter: Reporter | None = None,
    *,
    keys: list[str] | None = None,
    wait: float = 0.0,
) -> DrainResult:
    """Upload what is due (only ``keys`` if given), waiting up to ``wait`` seconds for
    back-offs. Whatever is not sent stays queued."""
    outbox = outbox or Outbox()
    deadline = time.monotonic() + wait if wait > 0 else None
    return outbox.drain(publishers, reporter or NullReporter(), keys=keys, deadline=deadline)


def share_session(
    session_id: str | None = None,
    publisher: str = "roundup",
    *,
    wait: float = 60.0,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """Compose, queue and deliver a build log in one call (for the demo and scripts that have
    the tester's consent already). Returns ``{"key", "state", "url", "bytes"}``."""
    from toolkit.community.publishers import PublisherCache

    plan = prepare_share(session_id, publisher)
    item = submit(plan)
    pubs = PublisherCache()
    try:
        result = deliver(pubs, keys=[item.key], wait=wait, reporter=reporter)
    finally:
        pubs.close()
    done = next((i for i in result.sent if i.key == item.key), None)
    return {
        "key": item.key,
        "state": "sent" if done else "queued",
        "url": (done.remote or {}).get("url") if done else None,
        "bytes": plan.total_bytes,
    }
