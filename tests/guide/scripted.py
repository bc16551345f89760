"""A scripted Prompter and helpers to inspect assembly journals (shared by the tests)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.guide.checks import CheckResult
from toolkit.guide.model import CheckSpec, Guide, PhotoSpec
from toolkit.guide.prompts import FailAction, PhotoInput, StepView


@dataclass
class Scripted:
    photo_dir: Path
    skip: dict[str, str] = field(default_factory=dict)
    on_fail: list[FailAction] = field(default_factory=list)  # consumed in order; default WAIVE
    interrupt_at: Callable[[str, str], bool] | None = (
        None  # (step, what) -> raise KeyboardInterrupt
    )
    bad_photo_once: set[str] = field(default_factory=set)  # photo ids first answered with junk
    asked: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    bug_commands: list[str] = field(default_factory=list)
    shown: list[StepView] = field(default_factory=list)

    def _maybe_stop(self, step: str, what: str) -> None:
        self.asked.append((step, what))
        if self.interrupt_at and self.interrupt_at(step, what):
            raise KeyboardInterrupt

    def show_step(self, view: StepView) -> None:
        self.shown.append(view)

    def skip_reason(self, view: StepView) -> str | None:
        self._maybe_stop(view.step.id, "start")
        return self.skip.get(view.step.id)

    def photo(self, view: StepView, spec: PhotoSpec, problem: Any) -> PhotoInput:
        self._maybe_stop(view.step.id, f"photo:{spec.id}")
        if problem is not None:
            self.problems.append(str(problem))
        if spec.id in self.bad_photo_once:
            self.bad_photo_once.discard(spec.id)
            junk = self.photo_dir / f"{spec.id}.txt"
            junk.write_text("not a photo")
            return PhotoInput(path=junk)
        return PhotoInput(path=self.photo_dir / f"{spec.id}.jpg")

    def confirm(self, view: StepView, check: CheckSpec) -> bool:
        self._maybe_stop(view.step.id, f"confirm:{check.id}")
        return True

    def check_failed(
        self, view: StepView, check: CheckSpec, result: CheckResult, bug_command: str
    ) -> tuple[FailAction, str]:
        self._maybe_stop(view.step.id, f"failed:{check.id}")
        self.bug_commands.append(bug_command)
        action = self.on_fail.pop(0) if self.on_fail else FailAction.WAIVE
        return action, f"test: {action.value}"


def make_photos(guide: Guide, directory: Path) -> None:
    from tests.guide.photofactory import make_canary

    directory.mkdir(parents=True, exist_ok=True)
    for i, spec in enumerate(p for s in guide.steps for p in s.photos):
        make_canary(directory / f"{spec.id}.jpg", [1, 3, 6, 8][i % 4], size=(320, 240))


def assert_complete_and_unique(records: list[dict[str, Any]], guide: Guide) -> None:
    """No gap and no duplicate: seq 1..n; each step started at most once and ended exactly once;
    one photo record per required photo of a done step; one passing record per passed check."""
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    started = Counter(r["step"] for r in records if r["type"] == "step_started")
    ended = Counter(r["step"] for r in records if r["type"] in ("step_finished", "step_skipped"))
    photos = Counter((r["step"], r["photo"]) for r in records if r["type"] == "photo")
    passed = Counter((r["step"], r["check"]) for r in records if r["type"] == "check" and r["ok"])
    assert all(n == 1 for n in started.values()), started
    assert all(n == 1 for n in photos.values()), photos
    assert all(n == 1 for n in passed.values()), passed
    for step in guide.steps:
        assert ended[step.id] == 1, f"step {step.id} ended {ended[step.id]} times"
        if any(r["type"] == "step_finished" and r["step"] == step.id for r in records):
            assert started[step.id] == 1
            for spec in step.photos:
                assert photos[(step.id, spec.id)] == 1, (step.id, spec.id)
    assert sum(r["type"] == "assembly_finished" for r in records) == 1
    attempts: dict[tuple[str, str], list[int]] = {}
    for r in records:
        if r["type"] == "check":
            attempts.setdefault((r["step"], r["check"]), []).append(r["attempt"])
    for key, seen in attempts.items():
        assert seen == list(range(1, len(seen) + 1)), (key, seen)
