"""Rich progress bars for journeys on a terminal (bytes, bytes/s, ETA)."""

from __future__ import annotations

from typing import Any


class RichReporter:
    """A Reporter that draws one progress bar per step that reports progress."""

    def __init__(self, console: Any, verbose: int = 0) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.console = console
        self.verbose = verbose
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self._tasks: dict[str, Any] = {}

    def step_started(self, name: str, detail: str = "") -> None:
        self.console.print(f"[cyan]…[/] {name}" + (f" [dim]{detail}[/]" if detail else ""))

    def step_finished(self, name: str, ok: bool, seconds: float, detail: str = "") -> None:
        task = self._tasks.pop(name, None)
        if task is not None:
            self._progress.remove_task(task)
            if not self._tasks:
                self._progress.stop()
        mark = "[green]✓[/]" if ok else "[red]✗[/]"
        self.console.print(
            f"{mark} {name} [dim]({seconds:.1f} s)[/]" + (f" {detail}" if detail else "")
        )

    def progress(self, name: str, done: int, total: int | None) -> None:
        if name not in self._tasks:
            if not self._tasks:
                self._progress.start()
            self._tasks[name] = self._progress.add_task(name, total=total)
        self._progress.update(self._tasks[name], completed=done, total=total)

    def message(self, text: str, level: str = "info") -> None:
        if level == "debug" and not self.verbose:
            return
        style = {"warning": "yellow", "error": "red"}.get(level, "")
        self.console.print(f"[{style}]{text}[/]" if style else text)
