"""The questions the assembly journey asks, as an interface (:class:`Prompter`), and the views
and answers that cross it. The CLI implements it with rich, :mod:`toolkit.guide.answers` from a
file, tests with a script. Kept in the domain layer so both sides import it downward.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from toolkit.errors import PhotoError
from toolkit.guide.checks import CheckResult
from toolkit.guide.model import CheckSpec, Guide, PhotoSpec, Step


class FailAction(enum.Enum):
    RETRY = "retry"  # run the check again (after fixing the wiring...)
    WAIVE = "waive"  # accept the failure and go on; recorded as check_waived
    SKIP = "skip"  # skip the rest of this step; recorded as step_skipped
    STOP = "stop"  # stop here; resume later with --resume


@dataclass(frozen=True)
class StepView:
    """What a prompter needs to show a step: where we are and what is already done."""

    session_id: str
    guide: Guide
    step: Step
    index: int  # 1-based
    total: int
    elapsed: float  # active seconds of the whole assembly so far
    step_elapsed: float  # active seconds in this step so far
    resumed: bool  # this step had started before the current run
    photos_done: tuple[str, ...] = ()
    checks_done: tuple[str, ...] = ()


@dataclass(frozen=True)
class PhotoInput:
    """A photo handed over by the tester: a file, or raw bytes (stdin)."""

    path: Path | None = None
    data: bytes | None = None
    source: str = "path"  # path | glob | watch | stdin | answers
    suffix: str = ".jpg"  # for bytes without a name


class Prompter(Protocol):
    def show_step(self, view: StepView) -> None:
        """Present the step (title, lines, illustrations, n of N, time so far)."""

    def skip_reason(self, view: StepView) -> str | None:
        """None to do the step; a reason (non-empty) to skip it."""

    def photo(self, view: StepView, spec: PhotoSpec, problem: PhotoError | None) -> PhotoInput:
        """The photo for ``spec``; ``problem`` says why the previous one was rejected."""

    def confirm(self, view: StepView, check: CheckSpec) -> bool:
        """A manual check: True when the tester confirms."""

    def check_failed(
        self, view: StepView, check: CheckSpec, result: CheckResult, bug_command: str
    ) -> tuple[FailAction, str]:
        """What to do after a failed check, and why (the reason is recorded)."""
