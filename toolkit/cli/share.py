"""``routerkit share``: publish a session's build log — after showing exactly what leaves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from toolkit.cli._app import App, emit, get_app, output_options
from toolkit.cli.loop import lang_option


def show_payload(preview: dict[str, Any]) -> None:
    """Print the exact payload: text plus every attachment with its size (on stderr)."""
    out = lambda s="": click.echo(s, err=True)  # noqa: E731
    out(f"── payload for {preview['publisher']} ─ {preview['kind']} ─ key {preview['key']}")
    out(f"title: {preview['title']}")
    if "destination" in preview:  # the server this payload is for; the outbox sends it nowhere else
        from toolkit.community.config import describe_destination

        out(f"to: {describe_destination(preview['destination'])}")
    for k, v in (preview.get("fields") or {}).items():
        out(f"{k}: {v}")
    if preview.get("target"):
        out(f"adds to: #{preview['target']}")
    out("── text ──")
    out(preview["body"].rstrip())
    out(f"── attachments ({len(preview['attachments'])}) ──")
    for a in preview["attachments"]:
        out(f"  {a['bytes']:>10,} B  {a['mime']:<12} {a['name']}")
    out(f"total: {preview['total_bytes']:,} bytes")
    if preview.get("original_photo_bytes"):
        share = preview["total_bytes"] / preview["original_photo_bytes"]
        out(
            f"(photo originals: {preview['original_photo_bytes']:,} bytes; uploading {share:.0%} of that)"
        )
    if preview.get("redactions"):
        out("redacted: " + ", ".join(f"{k} ×{v}" for k, v in sorted(preview["redactions"].items())))
    for w in preview.get("warnings", []):
        out(f"! {w}")


def require_consent(app: App, question: str) -> None:
    """Sharing is opt-in: ask, or under --yes require ``[community] consent = true``."""
    from toolkit import paths
    from toolkit.cli._app import confirm
    from toolkit.community.config import consent_given
    from toolkit.errors import ConsentRequired

    if app.yes:
        if not consent_given():
            raise ConsentRequired(
                "--yes means consent was given in the config file, and it was not",
                hint=f"add `[community]` `consent = true` to {paths.config_dir() / 'config.toml'}, or run without --yes",
            )
        return
    if not confirm(question, default=False):
        raise ConsentRequired("not shared: you declined; nothing left this machine")


def deliver_and_report(keys: list[str], wait: float) -> dict[str, Any]:
    """Drain the outbox for ``keys``; raise the refusal of an item that failed permanently."""
    from toolkit.community.outbox import Outbox
    from toolkit.community.publishers import PublisherCache
    from toolkit.errors import PublishError
    from toolkit.journeys.share import deliver

    app = get_app()
    pubs = PublisherCache()
    try:
        result = deliver(pubs, Outbox(), app.reporter(), keys=keys, wait=wait)
    except PublishError as err:  # e.g. no token: the item stays queued
        return {"state": "queued", "error": str(err), "url": None}
    finally:
        pubs.close()
    if result.failed:
        item = result.failed[0]
        raise PublishError(
            f"{item.title}: {item.last_error}",
            hint=f"fix it, then `routerkit outbox retry {item.key[:10]}`",
        )
    if result.sent:
        return {"state": "sent", "url": (result.sent[0].remote or {}).get("url")}
    pending = result.pending[0] if result.pending else None
    return {"state": "queued", "error": pending.last_error if pending else None, "url": None}


@click.command()
@click.option(
    "--session", "session_id", metavar="ID", help="Session to share (default: the newest assembly)."
)
@click.option(
    "--to",
    "publisher",
    type=click.Choice(["roundup", "discourse"]),
    help="Where to post (default: config, else roundup).",
)
@click.option(
    "--preview", is_flag=True, help="Show the exact payload and stop; nothing is queued or sent."
)
@click.option(
    "--max-photo-px", type=int, help="Shrink photos to this many pixels on the long side."
)
@click.option(
    "--wait",
    type=float,
    default=20.0,
    show_default=True,
    help="Seconds to keep retrying before leaving it queued.",
)
@click.option(
    "--name",
    "display_name",
    metavar="TEXT",
    help="Your display name on the build log (default: [community] display_name, else anonymous).",
)
@click.option("--sample", metavar="TEXT", help="Your sample's number, e.g. ES-042.")
@click.option(
    "--card",
    "card_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a share card (PNG, 1200x630) with a QR code to the posted build log.",
)
@lang_option
@output_options
def share(
    session_id: str | None,
    publisher: str | None,
    preview: bool,
    max_photo_px: int | None,
    wait: float,
    display_name: str | None,
    sample: str | None,
    card_path: Path | None,
) -> None:
    """Share a session's build log (Markdown + a self-contained HTML page with photos).

    The payload is redacted (Wi-Fi keys, passwords, tokens, MACs, serials, IPs, hostnames,
    home paths) and shown in full before you are asked. Uploads go through the outbox: an
    offline bench keeps them queued, and nothing is ever posted twice.

    \b
    Examples:
      routerkit share --preview
      routerkit share --to roundup
      routerkit share --session 20261122-101500-ab12 --yes --json
      routerkit share --name "Ming" --sample ES-042 --card card.png
    """
    from toolkit import i18n
    from toolkit.community.config import community_config
    from toolkit.journeys.share import prepare_share, submit

    app = get_app()
    publisher = publisher or community_config().get("publisher") or "roundup"
    plan = prepare_share(
        session_id,
        publisher,
        max_photo_px=max_photo_px,
        display_name=display_name,
        sample=sample,
    )
    if card_path is not None:
        plan.warnings.append(
            "with --card: once posted, a share card (these photos, board, sample, firmware, "
            "assembly time and rank, your display name, a QR code to the post) is added to it"
        )
    info = plan.preview()
    if not app.json or preview:
        show_payload(info)
    if preview:
        emit({"ok": True, "preview": True, **info}, lambda a: None)
        return
    require_consent(app, f"Upload this build log to {publisher}?")
    item = submit(plan)
    outcome = deliver_and_report([item.key], wait)
    result = {
        "ok": True,
        "key": item.key,
        "publisher": publisher,
        "attachments": len(plan.blobs),
        "bytes": plan.total_bytes,
        **outcome,
    }
    card = None
    if card_path is not None:
        card = _write_card(plan, item, outcome, card_path, wait)
        result["card"] = card

    def human(a: App) -> None:
        if outcome["state"] == "sent":
            click.echo(f"shared: {outcome['url']}")
        else:
            click.echo(
                f"queued (not sent yet: {outcome.get('error')}); `routerkit outbox retry` uploads it later"
            )
        if card:
            click.echo(
                i18n.t(
                    "card written: {path} ({width}×{height}); its QR code opens {url}",
                    path=card["path"],
                    width=card["width"],
                    height=card["height"],
                    url=card["url"],
                )
            )

    emit(result, human)


def _write_card(
    plan: Any, item: Any, outcome: dict[str, Any], path: Path, wait: float
) -> dict[str, Any]:
    """Render the share card for the posted build log, write it, and add it to the post."""
    from toolkit.community.card import HEIGHT, WIDTH
    from toolkit.errors import PublishError
    from toolkit.journeys.loop import card_comment, share_card
    from toolkit.journeys.share import submit
    from toolkit.record import atomic_write

    if outcome["state"] != "sent" or not outcome.get("url"):
        raise PublishError(
            "no share card yet: its QR code needs the build log's address, and the build log "
            "is still queued",
            hint="`routerkit outbox retry`, then run the same `routerkit share --card` again "
            "(nothing is posted twice)",
        )
    from toolkit.community.outbox import Outbox

    sent = Outbox().get(item.key)
    remote = (sent.remote if sent else None) or {}
    rank = _rank(item.publisher, str(remote.get("id") or ""))
    png = share_card(plan, str(outcome["url"]), rank)
    atomic_write(path, png)
    follow = card_comment(plan, str(remote.get("id")), png)
    added = deliver_and_report([submit(follow).key], wait) if remote.get("id") else {}
    return {
        "path": str(path),
        "url": outcome["url"],
        "width": WIDTH,
        "height": HEIGHT,
        "bytes": len(png),
        "rank": list(rank) if rank else None,
        "posted": added.get("state") == "sent",
    }


def _rank(publisher: str, report: str) -> tuple[int, int] | None:
    """The build log's rank on its board's leaderboard (Roundup only; None when unknown)."""
    from toolkit.community.publishers import get_publisher
    from toolkit.community.weekly import rank_of
    from toolkit.errors import PublishError

    if publisher != "roundup" or not report:
        return None
    pub = get_publisher(publisher)
    try:
        return rank_of(pub.reports("buildlog"), report)  # type: ignore[attr-defined]
    except PublishError:
        return None
    finally:
        pub.close()
