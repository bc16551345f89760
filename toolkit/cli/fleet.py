"""``routerkit fleet``: flash every target of a lab in parallel."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import click

from toolkit.cli._app import App, emit, get_app, output_options


@click.group()
def fleet() -> None:
    """Operate on all targets of a lab.toml at once."""


class _Lines:
    """One live status line per target (rich Live on a terminal, plain lines otherwise)."""

    def __init__(self, app: App, names: list[str]) -> None:
        import sys

        self.app = app
        self.state: dict[str, str] = {n: "waiting" for n in names}
        self.lock = threading.Lock()
        self.live: Any = None
        if sys.stderr.isatty() and not app.json:
            from rich.live import Live

            self.live = Live(
                self._render(), console=app.console, refresh_per_second=8, transient=True
            )

    def _render(self) -> Any:
        from rich.table import Table

        table = Table.grid(padding=(0, 2))
        for name, text in self.state.items():
            table.add_row(f"[bold]{name}[/]", text)
        return table

    def set(self, name: str, text: str, *, log: bool = True) -> None:
        with self.lock:
            self.state[name] = text
            if self.live is not None:
                self.live.update(self._render())
            elif log and not self.app.json:
                click.echo(f"[{name}] {text}", err=True)

    def reporter(self, name: str) -> Any:
        lines = self

        class R:
            def step_started(self, step: str, detail: str = "") -> None:
                lines.set(name, f"… {step}")

            def step_finished(self, step: str, ok: bool, seconds: float, detail: str = "") -> None:
                lines.set(name, f"{'✓' if ok else '✗'} {step} ({seconds:.1f} s)")

            def progress(self, step: str, done: int, total: int | None) -> None:
                if total:
                    lines.set(name, f"… {step} {done * 100 // total}%", log=False)

            def message(self, text: str, level: str = "info") -> None:
                if level != "debug":
                    lines.set(name, text)

        return R()


@fleet.command("flash")
@click.argument(
    "images",
    nargs=-1,
    required=True,
    metavar="IMAGE...",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@click.option(
    "--lab", type=click.Path(dir_okay=False, path_type=Path), required=True, help="The lab file."
)
@click.option(
    "--parallel", type=click.IntRange(1, 64), default=4, show_default=True, help="Targets at once."
)
@click.option(
    "--force", is_flag=True, help="Flash targets an interrupted run already finished, too."
)
@click.option(
    "--target", "only", multiple=True, metavar="NAME", help="Only these targets (repeatable)."
)
@click.option("--allow-downgrade", is_flag=True, help="Allow an older version. Loud; recorded.")
@click.option(
    "--accept-new-hostkey", is_flag=True, help="Accept changed/unknown host keys (shown)."
)
@click.option("--timeout", type=float, help="Reboot/reconnect timeout per target, seconds.")
@output_options
def flash_cmd(
    images: tuple[Path, ...],
    lab: Path,
    parallel: int,
    force: bool,
    only: tuple[str, ...],
    allow_downgrade: bool,
    accept_new_hostkey: bool,
    timeout: float | None,
) -> None:
    """Flash IMAGE onto every target of --lab over SSH, --parallel at a time.

    A lab with several boards takes one IMAGE per board: each target gets the image built
    for its board (its `board` in the lab file). Every image is verified once, before any
    target is touched; two images for one board are refused. A target whose board has no
    image fails, untouched.

    A failure on one target does not stop the others; the exit status is non-zero if any
    failed. Rerunning after an interruption skips targets already flashed (unless --force).

    \b
    Examples:
      routerkit fleet flash out/es-virt-1.1.0.img --lab lab.toml --parallel 8
      routerkit fleet flash out/es-virt-1.1.0.img out/es-arm32-1.1.0.img --lab lab.toml
    """
    from toolkit.journeys.flash import FlashOptions
    from toolkit.journeys.fleet import flash_fleet
    from toolkit.lab import load_lab

    app = get_app()
    names = [n for n in load_lab(lab).targets if not only or n in only]
    lines = _Lines(app, names)
    options = FlashOptions(
        via="ssh",
        allow_downgrade=allow_downgrade,
        accept_new_hostkey=accept_new_hostkey,
        timeout=timeout,
    )
    if lines.live is not None:
        lines.live.start()
    try:
        result = flash_fleet(
            list(images),
            lab,
            options=options,
            parallel=parallel,
            force=force,
            only=list(only) or None,
            reporter_for=lines.reporter,
        )
    finally:
        if lines.live is not None:
            lines.live.stop()

    def human(app: App) -> None:
        # With several images, a column says which one each target got (its version is in
        # before/after); with one, the table is as it always was.
        shown = {t.name: Path(t.image).name if t.image else "-" for t in result.targets}
        width = max([5, *map(len, shown.values())]) if len(result.images) > 1 else 0
        image_head = f"{'image':{width}} " if width else ""
        click.echo(
            f"{'target':16} {image_head}{'status':8} {'before':10} {'after':10} {'slot':4} "
            f"{'time':>7}  error"
        )
        for t in result.targets:
            image_cell = f"{shown[t.name]:{width}} " if width else ""
            click.echo(
                f"{t.name:16} {image_cell}{t.status:8} {t.version_before or '-':10} "
                f"{t.version_after or '-':10} {t.slot or '-':4} {t.seconds:6.1f}s  {t.error or ''}"
            )
        failed = sum(1 for t in result.targets if not t.ok)
        click.echo(
            f"{len(result.targets) - failed}/{len(result.targets)} ok in {result.seconds:.1f} s "
            f"(session {result.session})"
        )

    emit(result.to_dict(), human)
    if result.exit_code:
        click.get_current_context().exit(result.exit_code)
