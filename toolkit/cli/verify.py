"""``routerkit verify``: a health check of a sample at any time (version, slots, selftest)."""

from __future__ import annotations

import click

from toolkit.cli._app import App, emit, get_app, output_options
from toolkit.cli._target import TargetArgs, target_options


@click.command()
@click.option(
    "--via",
    type=click.Choice(["ssh", "serial"]),
    default="ssh",
    show_default=True,
    help="Ask the device over SSH or over its serial console.",
)
@target_options
@click.option(
    "--accept-new-hostkey", is_flag=True, help="Trust an unknown host key on first contact (shown)."
)
@output_options
def verify(
    via: str,
    target_args: TargetArgs,
    accept_new_hostkey: bool,
) -> None:
    """Check a sample: running version and slot, integrity of BOTH slots (hashed on the
    device against their metadata), boot counter, and selftest. Recorded in the journal.

    Exit status 24 when the check finds problems.

    \b
    Examples:
      routerkit verify                       # the running virtual sample, over SSH
      routerkit verify --via serial --json
      routerkit verify --target lab.toml:desk
    """
    from toolkit.journeys.verify import require_ok
    from toolkit.journeys.verify import verify as run_verify

    app = get_app()
    target = target_args.resolve()
    report = run_verify(
        target, via=via, reporter=app.reporter(), accept_new_hostkey=accept_new_hostkey
    )

    def human(app: App) -> None:
        mark = "ok" if report["ok"] else "PROBLEMS"
        click.echo(
            f"{report['target']}: {mark} — version {report['version']} on slot {report['running_slot']} "
            f"(active {report['active_slot']}, boot counter {report['boot_counter']['rk_tries']})"
        )
        for name, info in sorted(report["slots"].items()):
            state = "empty" if info.get("empty") else ("ok" if info.get("ok") else "CORRUPT")
            click.echo(
                f"  slot {name}: {state}"
                + (f" {info.get('version')}" if info.get("version") else "")
            )
        click.echo(f"  selftest: {report['selftest'].get('status', '?')}")
        for problem in report["problems"]:
            click.echo(f"  ✗ {problem}")

    emit(report, human)
    require_ok(report)
