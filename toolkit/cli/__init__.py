"""The ``routerkit`` command line: the only layer that prints, prompts or exits.

Command groups live one per module and are imported only when invoked, so ``routerkit --help``
does not pay for paramiko, tuf or Pillow. Every :class:`toolkit.errors.RouterkitError` is
turned into one line on stderr (and a JSON object on stdout with ``--json``) with the error's
own exit code, here and nowhere else.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

import click

from toolkit import __version__
from toolkit.cli._app import App, log_to_stderr
from toolkit.errors import DeviceError, Interrupted, RouterkitError

# name -> (module, attribute, one-line help). The help is here so that `--help` can list the
# commands without importing them.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "assemble": (
        "toolkit.cli.assemble",
        "assemble",
        "Walk through assembling a sample, step by step.",
    ),
    "guide": ("toolkit.cli.guide", "guide", "Check and show assembly guides."),
    "board": (
        "toolkit.cli.board",
        "board",
        "List, start and check board profiles (your own boards too).",
    ),
    "sample": ("toolkit.cli.sample", "sample", "Start, stop and talk to the virtual sample."),
    "firmware": (
        "toolkit.cli.firmware",
        "firmware",
        "Build, inspect, verify, publish and pull images.",
    ),
    "keys": ("toolkit.cli.keys", "keys", "Manage image signing keys and trusted keys."),
    "flash": ("toolkit.cli.flash", "flash", "Flash an image over serial (U-Boot) or SSH."),
    "verify": ("toolkit.cli.verify", "verify", "Health-check a sample: version, slots, selftest."),
    "hosts": ("toolkit.cli.hosts", "hosts", "List, trust and forget SSH host keys."),
    "fleet": ("toolkit.cli.fleet", "fleet", "Flash every target of a lab in parallel."),
    "share": ("toolkit.cli.share", "share", "Publish a session's build log to the community."),
    "bug": ("toolkit.cli.bug", "bug", "File a bug report with the context collected for you."),
    "vote": ("toolkit.cli.loop", "vote", "Vote for a bug or a request (once per tester)."),
    "request": ("toolkit.cli.loop", "request", "File a feature request others can vote on."),
    "confirm": (
        "toolkit.cli.loop",
        "confirm",
        "Confirm a report fixed or still broken on the build you flashed.",
    ),
    "top": ("toolkit.cli.loop", "top", "The most-voted open requests and bugs."),
    "outbox": ("toolkit.cli.outbox", "outbox", "Inspect and retry queued uploads."),
    "community": ("toolkit.cli.community", "community", "Run the local community tracker."),
    "sessions": ("toolkit.cli.sessions", "sessions", "List, show and replay recorded sessions."),
    "bisect": ("toolkit.cli.bisect", "bisect", "Find the first bad build of a channel on a bench."),
    "demo": ("toolkit.cli.demo", "demo", "Run the whole journey on a virtual sample."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use.

    ``lazy`` maps a command name to (module, attribute, one-line help); the root uses
    :data:`COMMANDS`, and a subgroup can pass its own map (see ``toolkit.cli.firmware``).
    """

    def __init__(
        self, *args: Any, lazy: dict[str, tuple[str, str, str]] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = COMMANDS if lazy is None else lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.lazy) | set(self.commands))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.commands:
            return self.commands[name]
        if name not in self.lazy:
            return None
        module, attr, _ = self.lazy[name]
        try:
            command = getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            return None  # a command group not built yet
        return command  # type: ignore[no-any-return]

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, self.lazy[name][2]) for name in sorted(self.lazy)]
        rows += [
            (n, c.get_short_help_str())
            for n, c in sorted(self.commands.items())
            if n not in self.lazy
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        if ctx.parent is not None:  # only the root maps errors, once
            return super().invoke(ctx)
        try:
            return super().invoke(ctx)
        except RouterkitError as err:
            raise ReportedError(err, ctx.find_object(App)) from err
        except KeyboardInterrupt:
            stop = Interrupted("interrupted; the journey stopped at a safe point")
            raise ReportedError(stop, ctx.find_object(App)) from None


class ReportedError(click.ClickException):
    """A RouterkitError on its way out: one line, the error's exit code, no traceback."""

    def __init__(self, err: RouterkitError, app: App | None) -> None:
        super().__init__(str(err))
        self.err = err
        self.exit_code = err.exit_code  # type: ignore[misc]  # click reads it per instance
        self.json = bool(app and app.json)

    def show(self, file: Any = None) -> None:
        err = self.err
        if self.json:
            payload = {
                "ok": False,
                "error": err.message,
                "error_class": type(err).__name__,
                "exit_code": err.exit_code,
            }
            if err.hint:
                payload["hint"] = err.hint
            if isinstance(err, DeviceError) and err.last_output:
                payload["last_output"] = err.last_output
            click.echo(json.dumps(payload))
        click.echo(f"routerkit: error: {err}", err=True)
        if isinstance(err, DeviceError) and err.last_output:
            tail = err.last_output.rstrip().splitlines()[-8:]
            click.echo("last console lines:", err=True)
            for line in tail:
                click.echo(f"  | {line}", err=True)


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="""\b
Examples:
  routerkit sample up                 boot the virtual sample
  routerkit assemble                  assemble your sample, step by step
  routerkit flash fw.img --via serial flash over the U-Boot console
  routerkit share --preview           see exactly what would be uploaded
Run `routerkit COMMAND --help` for more.""",
)
@click.version_option(__version__, prog_name="routerkit")
@click.option(
    "-v", "--verbose", count=True, help="More detail: -v logs INFO, -vv DEBUG (on stderr)."
)
@click.option(
    "--trace",
    "trace_file",
    metavar="FILE",
    envvar="ROUTERKIT_TRACE",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write the raw serial bytes, both ways (X/YMODEM too), to FILE for a bug report.",
)
@click.option("--json", "json_", is_flag=True, help="Machine-readable JSON on stdout.")
@click.option("-y", "--yes", is_flag=True, help="Non-interactive: never prompt; fail instead.")
@click.pass_context
def root(ctx: click.Context, verbose: int, trace_file: Path | None, json_: bool, yes: bool) -> None:
    """routerkit: assemble, flash, verify and report on engineering-sample routers."""
    ctx.obj = App(verbose=verbose, json=json_, yes=yes)
    ctx.call_on_close(log_to_stderr(verbose))
    if trace_file is not None:
        from toolkit.transport import trace

        try:
            trace.start(trace_file)
        except OSError as exc:
            raise click.BadParameter(
                f"cannot write {trace_file}: {exc.strerror or exc}", param_hint="--trace"
            ) from None
        ctx.call_on_close(trace.stop)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    root.main(args=argv if argv is not None else sys.argv[1:], prog_name="routerkit")
