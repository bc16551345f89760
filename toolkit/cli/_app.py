"""The application object every command receives, and all terminal styling.

Commands call :func:`emit` to report a result (JSON on stdout with ``--json``, a human
rendering otherwise), :func:`confirm` to ask (``--yes`` answers yes; without a terminal it
refuses clearly instead of blocking), and :meth:`App.reporter` to get progress bars for a
journey. rich is imported only when something is actually drawn.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

from toolkit.errors import ConsentRequired

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class App:
    verbose: int = 0
    json: bool = False
    yes: bool = False
    _console: Any = field(default=None, repr=False)

    @property
    def console(self) -> Any:
        """A rich Console on stderr (stdout is kept for results and JSON)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=True, no_color=bool(os.environ.get("NO_COLOR")))
        return self._console

    @property
    def interactive(self) -> bool:
        return not self.yes and sys.stdin.isatty()

    def reporter(self) -> Any:
        """A Reporter for journeys: rich progress on a terminal, plain lines otherwise."""
        if self.json and not self.verbose:
            from toolkit.events import NullReporter

            return NullReporter()
        if sys.stderr.isatty():
            from toolkit.cli._progress import RichReporter

            return RichReporter(self.console, verbose=self.verbose)
        return LineReporter(verbose=self.verbose)


def get_app() -> App:
    ctx = click.get_current_context()
    app = ctx.find_object(App)
    if app is None:  # a command invoked on its own (tests, embedding)
        app = App()
        ctx.obj = app
    return app


def output_options(func: F) -> F:
    """Add ``--json`` and ``--yes`` to a subcommand; they OR into the global flags."""

    @click.option("--json", "json_", is_flag=True, help="Machine-readable JSON on stdout.")
    @click.option("-y", "--yes", is_flag=True, help="Non-interactive: never prompt; fail instead.")
    @functools.wraps(func)
    def wrapper(*args: Any, json_: bool, yes: bool, **kwargs: Any) -> Any:
        app = get_app()
        app.json = app.json or json_
        app.yes = app.yes or yes
        return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


class _StderrHandler(logging.Handler):
    """Log records as lines on stderr (looked up per record: CliRunner swaps the streams)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            click.echo(self.format(record), err=True)
        except Exception:  # a log line must never break the command
            self.handleError(record)


def log_to_stderr(verbose: int) -> Callable[[], None]:
    """Show the package's logs on stderr: ``-v`` INFO, ``-vv`` DEBUG (stdout stays for results,
    so ``--json`` remains one document). Returns the undo, for the end of the command."""
    if verbose <= 0:
        return lambda: None
    logger = logging.getLogger("toolkit")
    handler = _StderrHandler(logging.INFO if verbose == 1 else logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(handler.level)

    def undo() -> None:
        logger.removeHandler(handler)
        logger.setLevel(old_level)

    return undo


def emit(result: dict[str, Any], human: Callable[[App], None] | str | None = None) -> None:
    """Report a command's result: JSON on stdout, or the human rendering."""
    app = get_app()
    if app.json:
        click.echo(json.dumps(result, indent=None, default=str))
        return
    if human is None:
        for key, value in result.items():
            click.echo(f"{key}: {value}")
    elif isinstance(human, str):
        click.echo(human)
    else:
        human(app)


def confirm(question: str, *, default: bool = False, consent_flag: str = "--yes") -> bool:
    """Ask a yes/no question. Without a terminal or under ``--yes``, never block:
    ``--yes`` answers yes; no terminal without ``--yes`` raises ConsentRequired."""
    app = get_app()
    if app.yes:
        return True
    if not sys.stdin.isatty():
        raise ConsentRequired(f"{question} — no terminal to ask; pass {consent_flag} to agree")
    return click.confirm(question, default=default, err=True)


class LineReporter:
    """Plain, log-friendly progress: one line per step, progress every 10 % (CI logs)."""

    def __init__(self, verbose: int = 0) -> None:
        self.verbose = verbose
        self._last: dict[str, int] = {}
        self._start: dict[str, float] = {}

    def step_started(self, name: str, detail: str = "") -> None:
        self._start[name] = time.monotonic()
        click.echo(f"… {name}" + (f": {detail}" if detail else ""), err=True)

    def step_finished(self, name: str, ok: bool, seconds: float, detail: str = "") -> None:
        mark = "✓" if ok else "✗"
        click.echo(f"{mark} {name} ({seconds:.1f} s)" + (f": {detail}" if detail else ""), err=True)

    def progress(self, name: str, done: int, total: int | None) -> None:
        if not total:
            return
        decile = done * 10 // total
        if decile > self._last.get(name, -1):
            self._last[name] = decile
            elapsed = time.monotonic() - self._start.get(name, time.monotonic())
            rate = done / elapsed if elapsed > 0 else 0.0
            click.echo(
                f"  {name}: {done * 100 // total}% ({done}/{total}, {rate / 1024:.0f} KiB/s)",
                err=True,
            )

    def message(self, text: str, level: str = "info") -> None:
        if level == "debug" and not self.verbose:
            return
        prefix = {"warning": "! ", "error": "✗ "}.get(level, "  ")
        click.echo(prefix + text, err=True)
