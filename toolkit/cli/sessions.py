"""``routerkit sessions``: list and show recorded session journals."""

from __future__ import annotations

import time

import click

from toolkit.cli._app import App, emit, get_app, output_options
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


@sessions.command("replay")
@click.argument("session_id")
@click.option("--file", "name", help="Which recording (default: the newest; see --list).")
@click.option("--speed", default=1.0, show_default=True, help="Playback speed; 0: no pauses.")
@click.option(
    "--idle-limit",
    type=float,
    help="Cut pauses longer than this many seconds (default: the recording's own limit).",
)
@click.option("--list", "list_", is_flag=True, help="List the session's recordings, play none.")
@click.option(
    "--raw", is_flag=True, help="Play the unredacted recording (this machine only; never shared)."
)
@output_options
def replay(
    session_id: str,
    name: str | None,
    speed: float,
    idle_limit: float | None,
    list_: bool,
    raw: bool,
) -> None:
    """Play a recorded console session in the terminal, with its timing.

    What plays is the redacted copy (secrets blanked, identifiers hashed), the same one a bug
    report or a build log carries. With --json, prints the recording's details and the text
    its last screen shows instead of playing it.
    """
    from toolkit.community import recordings
    from toolkit.errors import NotFoundError
    from toolkit.protocol import asciicast

    journal = Journal.open(session_id)
    found = recordings.raw_recordings(journal) if raw else recordings.redacted(journal)
    if not found:
        raise NotFoundError(
            f"session {journal.id} has no console recording",
            hint="only sessions that opened a console (serial flash, verify --via serial, "
            "HIL tests, bisect) are recorded",
        )
    if list_:
        rows = [recordings.summary(p) for p in found]

        def human_list(app: App) -> None:
            for r in rows:
                click.echo(f"{r['file']:<40} {r['duration']:>9.1f} s {r['events']:>7} events")

        emit({"ok": True, "id": journal.id, "recordings": rows}, human_list)
        return
    if name is not None:
        chosen = [p for p in found if p.name == name or p.name.startswith(name + ".")]
        if not chosen:
            raise NotFoundError(
                f"session {journal.id} has no recording {name!r}",
                hint="--list shows them",
            )
        path = chosen[0]
    else:
        path = found[-1]
    cast = asciicast.read(path)
    if get_app().json:
        screen = asciicast.final_screen([cast.output()], cast.width, cast.height)
        emit({"ok": True, "id": journal.id, **recordings.summary(path), "screen": screen})
        return

    def write(text: str) -> None:
        click.echo(text, nl=False)

    def pause(seconds: float) -> None:
        if speed > 0:
            time.sleep(seconds)

    asciicast.play(
        cast, write, speed=speed if speed > 0 else 1.0, idle_limit=idle_limit, sleep=pause
    )
    click.echo()
