"""The one step recorder of the journeys: reporter events, durations, and ``step`` journal records.

Both flash paths (serial and SSH) run their plan as named steps through :class:`Steps`, so
the tester sees each step start and finish, :attr:`Steps.seconds` becomes
``FlashResult.steps``, and the journal holds one ``step`` record per step run
(``name``, ``ok``, ``seconds``, ``detail``) for the build log and bug reports.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from toolkit.events import Reporter, step

if TYPE_CHECKING:
    from toolkit.record import Journal


class Steps:
    """Run ``with steps("name", "detail"):`` blocks as reported, timed, journaled steps.

    A step that runs more than once (an upload retried after a dropped link) adds up in
    :attr:`seconds` and gets a ``step`` record per run.
    """

    def __init__(self, reporter: Reporter, journal: Journal) -> None:
        self.reporter = reporter
        self.journal = journal
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str, detail: str = "") -> Iterator[None]:
        start = time.monotonic()
        ok = False
        try:
            with step(self.reporter, name, detail):
                yield
            ok = True
        finally:
            seconds = round(time.monotonic() - start, 3)
            self.seconds[name] = round(self.seconds.get(name, 0.0) + seconds, 3)
            self.journal.append("step", name=name, ok=ok, seconds=seconds, detail=detail)
