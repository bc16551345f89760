"""``routerkit share``: publish a session's build log — after showing exactly what leaves."""

from __future__ import annotations

from typing import Any

import click

from toolkit.cli._app import App, emit, get_app, output_options


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
@output_options
def share(
    session_id: str | None,
    publisher: str | None,
    preview: bool,
    max_photo_px: int | None,
    wait: float,
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
    """
    from toolkit.community.config import community_config
    from toolkit.journeys.share import prepare_share, submit

    app = get_app()
    publisher = publisher or community_config().get("publisher") or "roundup"
    plan = prepare_share(session_id, publisher, max_photo_px=max_photo_px)
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

    def human(a: App) -> None:
        if outcome["state"] == "sent":
            click.echo(f"shared: {outcome['url']}")
        else:
            click.echo(
                f"queued (not sent yet: {outcome.get('error')}); `routerkit outbox retry` uploads it later"
            )

    emit(result, human)
