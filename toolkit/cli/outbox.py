"""``routerkit outbox``: what is waiting to be uploaded, and what to do about it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from toolkit.cli._app import App, emit, get_app, output_options


@click.group(invoke_without_command=True)
@output_options
@click.pass_context
def outbox(ctx: click.Context) -> None:
    """List queued uploads (build logs, bug reports). Subcommands: list, retry, export, drop.

    \b
    Examples:
      routerkit outbox
      routerkit outbox retry
      routerkit outbox export rk3f2a /media/usb
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_items)


@outbox.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include items already sent.")
@output_options
def list_items(show_all: bool = False) -> None:
    """List items (queued, sending, failed; --all adds sent)."""
    from toolkit.community.outbox import Outbox

    items = [
        i.summary() for i in Outbox().list(None if show_all else ("queued", "sending", "failed"))
    ]

    def human(app: App) -> None:
        if not items:
            click.echo("the outbox is empty" if not show_all else "nothing was ever queued")
        for i in items:
            extra = i["url"] or i["last_error"] or ""
            click.echo(
                f"{i['key'][:12]}  {i['state']:<8} {i['publisher']:<9} {i['kind']:<8} {i['bytes']:>10,} B  "
                f"{i['title']}  → {i['destination'] or '?'}  {extra}"
            )

    emit({"ok": True, "items": items}, human)


@outbox.command()
@click.argument("key", required=False)
@click.option(
    "--wait", type=float, default=60.0, show_default=True, help="Seconds to keep retrying."
)
@output_options
def retry(key: str | None, wait: float) -> None:
    """Upload queued and failed items now (all, or the one whose key starts with KEY)."""
    from toolkit.community.outbox import Outbox
    from toolkit.community.publishers import PublisherCache
    from toolkit.journeys.share import deliver

    box = Outbox()
    keys = [box.find(key).key] if key else None
    for k in keys or [None]:  # type: ignore[list-item]
        box.retry(k)
    pubs = PublisherCache()
    try:
        result = deliver(pubs, box, get_app().reporter(), keys=keys, wait=wait)
    finally:
        pubs.close()
    out: dict[str, Any] = {
        "ok": not result.failed,
        "sent": [i.summary() for i in result.sent if keys is None or i.key in keys],
        "failed": [i.summary() for i in result.failed],
        "pending": [i.summary() for i in result.pending],
    }

    def human(app: App) -> None:
        click.echo(
            f"sent {len(out['sent'])}, failed {len(out['failed'])}, still queued {len(out['pending'])}"
        )
        for i in out["failed"] + out["pending"]:
            click.echo(f"  {i['key'][:12]} {i['state']}: {i['last_error']}")

    emit(out, human)


@outbox.command()
@click.argument("key")
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@output_options
def export(key: str, dest: Path) -> None:
    """Write an item (text, attachments, payload.json) to DEST for a manual upload."""
    from toolkit.community.outbox import Outbox

    box = Outbox()
    path = box.export(box.find(key).key, dest)
    emit({"ok": True, "path": str(path)}, f"exported to {path}")


@outbox.command()
@click.argument("key")
@output_options
def drop(key: str) -> None:
    """Forget an item; it will not be uploaded."""
    from toolkit.cli._app import confirm
    from toolkit.community.outbox import Outbox

    box = Outbox()
    item = box.find(key)
    if item.state != "sent" and not confirm(f"Drop {item.title!r} without uploading it?"):
        emit({"ok": False, "dropped": None}, "kept")
        return
    box.drop(item.key)
    emit({"ok": True, "dropped": item.key}, f"dropped {item.key}")
