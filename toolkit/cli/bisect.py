"""``routerkit bisect``: find the first bad build of a channel on a bench."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from toolkit.cli._app import App, emit, get_app, output_options
from toolkit.cli._target import TargetArgs, target_options


@click.command(context_settings={"ignore_unknown_options": True})
@click.option(
    "--channel",
    type=click.Choice(["nightly", "release"]),
    default="nightly",
    show_default=True,
    help="The channel whose builds are walked.",
)
@click.option("--good", required=True, metavar="VERSION", help="A build known to work.")
@click.option("--bad", required=True, metavar="VERSION", help="A later build known to fail.")
@target_options
@click.option(
    "--via",
    type=click.Choice(["ssh", "serial"]),
    default="ssh",
    show_default=True,
    help="How each build is flashed (full flashes; serial also recovers a hung device).",
)
@click.option("--url", "channel_url", metavar="URL", help="Channel base URL.")
@click.option(
    "--root",
    "channel_root",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Trusted TUF root.json of the channel.",
)
@click.option("--timeout", type=float, help="Boot/reconnect timeout of each flash, seconds.")
@click.option("--test-timeout", type=float, help="Seconds the command may run (then: bad).")
@click.option(
    "--session",
    "session_id",
    metavar="ID",
    help="Continue this bisect session (default: the unfinished one with the same arguments).",
)
@click.option("--fresh", is_flag=True, help="Start over instead of resuming.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@output_options
def bisect(
    channel: str,
    good: str,
    bad: str,
    target_args: TargetArgs,
    via: str,
    channel_url: str | None,
    channel_root: Path | None,
    timeout: float | None,
    test_timeout: float | None,
    session_id: str | None,
    fresh: bool,
    command: tuple[str, ...],
) -> None:
    """Find the first bad build between --good and --bad by running COMMAND on each.

    The channel's builds between the two (TUF-verified, in version order) are flashed onto
    the target middle first, booted, and COMMAND is run on this machine: exit 0 means good,
    125 skip (as with `git bisect run`), anything else bad. A build that cannot be flashed or
    booted is skipped, never called bad. About log2(n) flashes name the first bad build.

    Ctrl-C or a power cut loses nothing: run the same command again and it continues where it
    stopped (the state is in the session journal). COMMAND sees ROUTERKIT_BISECT_VERSION,
    ROUTERKIT_TARGET, ROUTERKIT_BOARD, ROUTERKIT_SSH_HOST and ROUTERKIT_SSH_PORT in its
    environment. ROUTERKIT_TARGET names the target as --target does (routerkit's pytest plugin
    tests it when no --routerkit-target is given), and a labgrid place the bisect holds is
    COMMAND's to use.

    \b
    Examples:
      routerkit bisect --good 1.2.0-nightly.3 --bad 1.2.0-nightly.17 -- pytest examples/
      routerkit bisect --good 1.2.0-nightly.3 --bad 1.2.0-nightly.17 --target bench1 \\
          --lab lab.toml --json -- ./check-fan.sh
      routerkit bisect --good 1.2.0-nightly.3 --bad 1.2.0-nightly.17 \\
          --target labgrid:es1 --host 192.0.2.10 -- pytest examples/
      routerkit bug --from-bisect              # report the answer, with everything attached
    """
    from toolkit import identity as ids
    from toolkit.journeys.bisect import ChannelBench
    from toolkit.journeys.bisect import bisect as run_bisect
    from toolkit.record import Journal

    app = get_app()
    target = target_args.resolve()
    bench = ChannelBench(
        channel=channel,
        target=target,
        command=list(command),
        via=via,
        url=channel_url,
        root=channel_root,
        timeout=timeout,
        test_timeout=test_timeout,
        authorized_key=ids.public_line(target.identity) if target.identity else None,
    )
    journal = Journal.open(session_id) if session_id else None
    summary = run_bisect(bench, good, bad, reporter=app.reporter(), journal=journal, fresh=fresh)
    emit({"ok": True, **summary.to_dict()}, lambda a: _human(a, summary.to_dict()))


def _human(app: App, s: dict[str, Any]) -> None:
    for row in s["steps"]:
        took = (row.get("flash_seconds") or 0) + (row.get("test_seconds") or 0)
        click.echo(f"  {row['version']:<28} {row['result']:<5} {took:7.1f} s  {row['reason']}")
    if s["undecided"]:
        click.echo(
            f"the first bad build is one of {', '.join([*s['undecided'], s['first_bad']])} "
            "(the others could not be tested)"
        )
    else:
        click.echo(f"first bad build: {s['first_bad']}")
    click.echo(f"last good build: {s['last_good']}")
    notes = s.get("first_bad_notes") or {}
    if notes.get("summary"):
        click.echo(f"its release notes: {notes['summary']}")
    click.echo(
        f"{s['flashes']} flashes in {s['seconds']:.0f} s ({len(s['builds'])} builds; one by one "
        f"would take {s['linear_flashes']}); session {s['session']}"
        + (f", {s['runs']} runs" if s["runs"] > 1 else "")
    )
    click.echo("report it: routerkit bug --from-bisect " + s["session"])
