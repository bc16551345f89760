"""``routerkit assemble``: the guided assembly, step by step, on a terminal or from a file."""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import click

from toolkit.boards import DEFAULT_BOARD
from toolkit.cli._app import App, emit, get_app, output_options
from toolkit.errors import CheckFailed, ConsentRequired, Interrupted, PhotoError

_KIND_STYLE = {
    "plain": ("•", ""),
    "note": ("ℹ", "cyan"),
    "caution": ("⚠", "bold yellow"),
    "reminder": ("↻", "magenta"),
}


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return (
        f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
        if seconds >= 3600
        else f"{seconds // 60:02d}:{seconds % 60:02d}"
    )


class TerminalPrompter:
    """Asks the tester on the terminal (rich on stderr); photos by path, glob or watched folder."""

    def __init__(self, app: App, watch: Any = None, open_images: bool = True) -> None:
        self.console = app.console
        self.watch = watch  # a toolkit.guide.photos.FolderWatch, or None
        self.open_images = open_images and bool(
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
        )
        self._opened: set[str] = set()

    # -- input --

    def _ask(self, prompt: str) -> str:
        self.console.print(prompt, end="", markup=True, highlight=False, soft_wrap=True)
        line = sys.stdin.readline()
        if not line:  # EOF (Ctrl-D): treat like Ctrl-C, the journal is intact
            raise KeyboardInterrupt
        return line.strip()

    def _choice(self, prompt: str, choices: str, default: str) -> str:
        while True:
            answer = self._ask(prompt).lower()[:1] or default
            if answer in choices:
                return answer
            self.console.print(f"[yellow]please answer one of: {', '.join(choices)}[/]")

    # -- Prompter --

    def show_step(self, view: Any) -> None:
        from rich.panel import Panel
        from rich.text import Text

        step = view.step
        body = Text()
        for line in step.lines:
            mark, style = _KIND_STYLE.get(line.kind, ("•", ""))
            label = "" if line.kind == "plain" else f"{line.kind.upper()}: "
            body.append("  " * line.level + f"{mark} {label}", style=style or None)
            body.append(line.text + "\n", style=style if line.kind == "caution" else None)
        if step.parts:
            names = ", ".join(
                f"{view.guide.part(p).name} ×{view.guide.part(p).quantity}" for p in step.parts
            )
            body.append(f"\nParts: {names}\n", style="dim")
        if step.tools:
            body.append(
                "Tools: " + ", ".join(view.guide.tool(t).name for t in step.tools) + "\n",
                style="dim",
            )
        for image in step.images:
            body.append(f"Illustration: {image}\n", style="blue")
        for spec in step.photos:
            done = " (taken)" if spec.id in view.photos_done else ""
            body.append(f"📷 {spec.id}: {spec.shows}{done}\n")
        for check in step.checks:
            how = "confirm" if check.manual else f"automatic: {check.kind}"
            done = " ✓" if check.id in view.checks_done else ""
            body.append(f"☐ {check.prompt} [{how}]{done}\n")
        title = f"Step {view.index} of {view.total} · {step.title}"
        sub = f"time so far {_clock(view.elapsed)} · this step {_clock(view.step_elapsed)} · session {view.session_id}"
        if view.resumed:
            sub = "resumed · " + sub
        self.console.print(
            Panel(body, title=f"[bold]{title}[/]", subtitle=sub, border_style="green")
        )
        self._open(step.images)

    def _open(self, images: Any) -> None:
        viewer = shutil.which("xdg-open")
        for image in images:
            if not self.open_images or viewer is None or str(image) in self._opened:
                continue
            self._opened.add(str(image))
            subprocess.Popen(
                [viewer, str(image)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )

    def skip_reason(self, view: Any) -> str | None:
        what = "continue" if view.resumed else "start"
        if (
            self._choice(
                f"[bold]Enter[/] {what} this step · [bold]s[/] skip it · Ctrl-C stop (resume later) > ",
                "ds",
                "d",
            )
            != "s"
        ):
            return None
        while True:
            reason = self._ask("Why skip it? (recorded in the build log) > ")
            if reason:
                return reason

    def photo(self, view: Any, spec: Any, problem: PhotoError | None) -> Any:
        from toolkit.guide.photos import expand
        from toolkit.guide.prompts import PhotoInput

        if problem is not None:
            self.console.print(f"[red]✗ {problem}[/] — please give another photo")
        where = f", or save it into {self.watch.directory}" if self.watch else ""
        prompt = f"📷 [bold]{spec.id}[/] — {spec.shows}\n   path or glob{where} > "
        if self.watch is not None:
            self.watch.snapshot()
        while True:
            typed = self._ask_or_watch(prompt)
            if isinstance(typed, Path):
                self.console.print(f"   new photo in the watched folder: {typed.name}")
                return PhotoInput(path=typed, source="watch")
            if not typed:
                continue
            matches = expand(typed)
            if len(matches) == 1:
                return PhotoInput(
                    path=matches[0],
                    source="glob" if matches[0].name != Path(typed).name else "path",
                )
            if not matches:
                self.console.print(f"[yellow]nothing matches {typed!r}[/]")
                continue
            for i, m in enumerate(matches[:20], 1):
                self.console.print(f"   {i}. {m}")
            pick = self._ask(f"   which one (1-{min(len(matches), 20)})? > ")
            if pick.isdigit() and 1 <= int(pick) <= min(len(matches), 20):
                return PhotoInput(path=matches[int(pick) - 1], source="glob")

    def _ask_or_watch(self, prompt: str) -> str | Path:
        """A typed line, or a photo that appeared in the watched folder, whichever comes first."""
        if self.watch is None:
            return self._ask(prompt)
        self.console.print(prompt, end="", markup=True, highlight=False, soft_wrap=True)
        while True:
            ready, _, _ = select.select([sys.stdin], [], [], 0.25)
            if ready:
                line = sys.stdin.readline()
                if not line:
                    raise KeyboardInterrupt
                return line.strip()
            found = self.watch.poll()
            if found:
                self.console.print()
                return found[0]

    def confirm(self, view: Any, check: Any) -> bool:
        return self._choice(f"☐ {check.prompt} [bold]\\[y/n][/] > ", "yn", "") == "y"

    def check_failed(self, view: Any, check: Any, result: Any, bug_command: str) -> Any:
        from toolkit.guide.prompts import FailAction

        self.console.print(f"[red]✗ check failed:[/] {check.prompt}\n  {result.detail}")
        self.console.print(f"  To report it, run:\n    [bold]{bug_command}[/]")
        answer = self._choice(
            "  [bold]r[/]etry · [bold]w[/]aive and go on · [bold]s[/]kip the step · [bold]q[/]uit and resume later > ",
            "rwsq",
            "r",
        )
        action = {
            "r": FailAction.RETRY,
            "w": FailAction.WAIVE,
            "s": FailAction.SKIP,
            "q": FailAction.STOP,
        }[answer]
        reason = ""
        if action in (FailAction.WAIVE, FailAction.SKIP):
            reason = self._ask("  Reason (recorded) > ") or f"{check.id} failed: {result.detail}"
        return action, reason


@click.command()
@click.option(
    "--board",
    default=DEFAULT_BOARD,
    show_default=True,
    help="Board to assemble (its guide is used).",
)
@click.option("--resume", is_flag=True, help="Continue the last unfinished assembly of this board.")
@click.option("--session", "session_id", help="Continue this session id (implies --resume).")
@click.option(
    "--non-interactive", is_flag=True, help="Take every answer from --answers; never ask."
)
@click.option(
    "--answers", type=click.Path(dir_okay=False, path_type=Path), help="Answers file (YAML/JSON)."
)
@click.option(
    "--watch", type=click.Path(path_type=Path), help="Folder to watch for new photos (phone sync)."
)
@click.option(
    "--target",
    "--sample",
    "sample_name",
    default="default",
    show_default=True,
    metavar="NAME",
    help="Virtual sample the automatic checks use (`routerkit sample up --name NAME`).",
)
@click.option(
    "--photo-size",
    type=click.IntRange(320, 8192),
    default=1600,
    show_default=True,
    help="Longest side of uploaded photos (px).",
)
@click.option(
    "--no-open", is_flag=True, help="Do not open illustrations in a viewer; only print their paths."
)
@output_options
def assemble(
    board: str,
    resume: bool,
    session_id: str | None,
    non_interactive: bool,
    answers: Path | None,
    watch: Path | None,
    sample_name: str,
    photo_size: int,
    no_open: bool,
) -> None:
    """Walk through assembling a sample: photos, checks, time per step, resumable.

    \b
    Examples:
      routerkit assemble                      # interactive, from step 1
      routerkit assemble --watch ~/Phone/DCIM # photos arrive from the phone's sync folder
      routerkit assemble --resume             # after Ctrl-C or a crash
      routerkit assemble --non-interactive --answers answers.yaml --json
    """
    from toolkit.guide.device import sample_device
    from toolkit.guide.loader import load_board_guide
    from toolkit.guide.photos import FolderWatch
    from toolkit.journeys.assemble import PhotoOptions, run_assembly

    app = get_app()
    guide = load_board_guide(board)
    prompter: Any
    if non_interactive or app.yes or answers is not None:
        if answers is None:
            raise ConsentRequired(
                "non-interactive assembly needs --answers FILE", hint="see assembly_guide/README.md"
            )
        from toolkit.guide.answers import AnswersPrompter

        prompter = AnswersPrompter(answers, board=board)
    else:
        if not sys.stdin.isatty():
            raise ConsentRequired(
                "no terminal to ask on", hint="use --non-interactive --answers FILE"
            )
        prompter = TerminalPrompter(
            app, FolderWatch(watch) if watch else None, open_images=not no_open
        )
    if watch is not None and not isinstance(prompter, TerminalPrompter):
        FolderWatch(watch)  # still report a missing folder clearly

    def on_session(journal: Any, resumed: bool) -> None:
        verb = "resuming" if resumed else "new"
        if not app.json:
            app.console.print(
                f"[bold]{guide.title}[/] — {verb} session [bold]{journal.id}[/]"
                f" · {len(guide.steps)} steps · {guide.difficulty} · {guide.time_minutes[0]}–{guide.time_minutes[1]} min"
            )
        state["journal"] = journal

    state: dict[str, Any] = {}

    def _console_log(state: dict[str, Any]) -> Any:
        journal = state.get("journal")
        return journal.files_dir / "console.log" if journal is not None else None

    try:
        result = run_assembly(
            board,
            guide,
            prompter,
            resume=resume or bool(session_id),
            session_id=session_id,
            reporter=app.reporter(),
            device=lambda: sample_device(sample_name, transcript=_console_log(state)),
            photos=PhotoOptions(longest_side=photo_size),
            on_session=on_session,
        )
    except KeyboardInterrupt:
        journal = state.get("journal")
        where = f"session {journal.id} is saved" if journal else "nothing was recorded"
        raise Interrupted(
            f"stopped; {where}", hint=f"continue with `routerkit assemble --board {board} --resume`"
        ) from None
    payload = {
        "ok": result.finished,
        "session": result.session_id,
        "board": board,
        "finished": result.finished,
        "steps_done": result.steps_done,
        "steps_skipped": result.steps_skipped,
        "photos": result.photos,
        "seconds": result.seconds,
        "failed_checks": result.failed_checks,
        "waived_checks": result.waived_checks,
    }
    if result.stopped:
        if app.json:
            click.echo(json.dumps(payload))
        raise CheckFailed(
            f"stopped after a failed check ({', '.join(result.failed_checks)}); session {result.session_id} is saved",
            hint=f"continue with `routerkit assemble --board {board} --resume`",
        )

    def human(app: App) -> None:
        skipped = f", {len(result.steps_skipped)} skipped" if result.steps_skipped else ""
        click.echo(
            f"assembly complete: {len(result.steps_done)} steps done{skipped}, {result.photos} photos, "
            f"{_clock(result.seconds)} — session {result.session_id}"
        )
        if result.waived_checks:
            click.echo(f"waived checks: {', '.join(result.waived_checks)}")
        click.echo(f"next: routerkit share --session {result.session_id}")

    emit(payload, human)
