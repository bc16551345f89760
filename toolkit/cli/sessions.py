"""``routerkit sessions``: list and show recorded session journals."""

from __future__ import annotations

import click

from toolkit.cli._app import App, emit, output_options
from toolkit.record import Journal


@click.group(invoke_without_command=True)
@output_options
@click.pass_context
def sessions(ctx: click.Context) -> None:
    """List recorded sessions (newest last).

    \b
    Examples:
      routerkit sessions
      routerkit sessions show 20261122-101500-ab12 --json
    """
    if ctx.invoked_subcommand is not None:
        return
    rows = []
    for journal in Journal.all():
        head = journal.header
        rows.append(
            {
                "id": journal.id,
                "kind": head.get("kind"),
                "board": head.get("board"),
                "started": head.get("ts"),
                "records": len(journal.events()),
            }
        )

    def human(app: App) -> None:
        if not rows:
            click.echo("no sessions recorded yet")
        for r in rows:
            click.echo(
                f"{r['id']}  {r['kind'] or '-':<10} {r['board'] or '-':<10} {r['records']} records"
            )

    emit({"ok": True, "sessions": rows}, human)


@sessions.command("show")
@click.argument("session_id")
@output_options
def show(session_id: str) -> None:
    """Show every record of one session."""
    journal = Journal.open(session_id)
    result = journal.read()

    def human(app: App) -> None:
        for rec in result.records:
            rest = {k: v for k, v in rec.items() if k not in ("seq", "ts", "type")}
            click.echo(f"{rec.get('seq'):>4} {rec.get('ts')} {rec.get('type'):<16} {rest}")
        if result.torn:
            click.echo(
                "(the last line was torn by a crash and is ignored; it is kept in journal.torn)"
            )

    emit(
        {"ok": True, "id": journal.id, "records": result.records, "torn": result.torn},
        human,
    )
