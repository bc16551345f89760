"""Events that journeys emit, and the Reporter interface that receives them.

Journeys never print. They call a :class:`Reporter`; the CLI passes one that draws progress
bars with rich, tests pass :class:`RecordingReporter`, and library users pass
:class:`NullReporter`. A :func:`step` context manager publishes started/finished events with
duration, in the spirit of labgrid's ``@step``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Reporter(Protocol):
    def step_started(self, name: str, detail: str = "") -> None: ...

    def step_finished(self, name: str, ok: bool, seconds: float, detail: str = "") -> None: ...

    def progress(self, name: str, done: int, total: int | None) -> None:
        """``done`` of ``total`` units (bytes unless the step says otherwise)."""

    def message(self, text: str, level: str = "info") -> None: ...


class NullReporter:
    """Swallows everything (library use, quiet mode)."""

    def step_started(self, name: str, detail: str = "") -> None:
        pass

    def step_finished(self, name: str, ok: bool, seconds: float, detail: str = "") -> None:
        pass

    def progress(self, name: str, done: int, total: int | None) -> None:
        pass

    def message(self, text: str, level: str = "info") -> None:
        pass


@dataclass
class RecordingReporter:
    """Keeps every event as a tuple; for tests."""

    events: list[tuple[Any, ...]] = field(default_factory=list)

    def step_started(self, name: str, detail: str = "") -> None:
        self.events.append(("started", name, detail))

    def step_finished(self, name: str, ok: bool, seconds: float, detail: str = "") -> None:
        self.events.append(("finished", name, ok, detail))

    def progress(self, name: str, done: int, total: int | None) -> None:
        self.events.append(("progress", name, done, total))

    def message(self, text: str, level: str = "info") -> None:
        self.events.append(("message", level, text))

    def steps(self) -> list[str]:
        return [e[1] for e in self.events if e[0] == "started"]


@contextlib.contextmanager
def step(reporter: Reporter, name: str, detail: str = "") -> Iterator[None]:
    """Report a step's start and finish (with its duration), even when it raises."""
    log.debug("step %s started%s", name, f": {detail}" if detail else "")
    reporter.step_started(name, detail)
    start = time.monotonic()
    ok = False
    try:
        yield
        ok = True
    finally:
        seconds = time.monotonic() - start
        log.debug("step %s %s after %.3f s", name, "finished" if ok else "FAILED", seconds)
        reporter.step_finished(name, ok, seconds)
