"""Where an assembly stands, rebuilt from its journal — the heart of ``--resume``.

The journal is the only state: nothing is kept in memory that is not also a record, so a
SIGKILL at any instant loses at most the answer being typed. Replaying the records says, per
step, whether it started, finished or was skipped, which photos and checks are already done,
and how much active time it has used (time while routerkit was not running is not counted).

Record types of an assembly session (``Journal.create("assemble", board=...)``)::

    session          kind, board, guide (path), guide_title, guide_sha256, steps_total
    resumed          step (id or null), index, guide_sha256
    step_started     step, index, total, title
    photo            step, photo, sha256, original, processed, bytes, original_bytes, width, height, source
    check            step, check, kind, automatic, ok, detail, attempt [, data]
    check_waived     step, check, reason
    step_finished    step, index, seconds
    step_skipped     step, index, reason [, seconds]
    paused           step, reason
    assembly_finished steps_done, steps_skipped, seconds
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from toolkit.guide.model import Guide


def parse_ts(ts: str) -> float:
    """Seconds since the epoch of a journal timestamp."""
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


@dataclass
class StepState:
    started: bool = False
    finished: bool = False
    skipped: bool = False
    photos: dict[str, dict[str, Any]] = field(default_factory=dict)  # photo id -> record
    checks_ok: set[str] = field(default_factory=set)  # passed or waived
    attempts: dict[str, int] = field(default_factory=dict)  # check id -> attempts recorded
    seconds: float = 0.0  # active time so far (for a finished step: its recorded seconds)

    @property
    def done(self) -> bool:
        return self.finished or self.skipped


@dataclass
class AssemblyState:
    steps: dict[str, StepState]
    finished: bool
    current: str | None  # the step in progress when the journal ends, if any

    def step(self, step_id: str) -> StepState:
        return self.steps.setdefault(step_id, StepState())

    def active_seconds(self) -> float:
        return sum(s.seconds for s in self.steps.values())


def replay(records: list[dict[str, Any]], guide: Guide) -> AssemblyState:
    """Fold the records of an assembly session into an :class:`AssemblyState`."""
    steps: dict[str, StepState] = {s.id: StepState() for s in guide.steps}
    current: str | None = None
    seg_start: float | None = None  # start of the current active segment of `current`
    last_ts: float | None = None
    finished = False

    def close_segment(at: float | None) -> None:
        nonlocal seg_start
        if current is not None and seg_start is not None and at is not None:
            steps[current].seconds += max(0.0, at - seg_start)
        seg_start = None

    for rec in records:
        kind = rec.get("type")
        ts = parse_ts(rec["ts"]) if isinstance(rec.get("ts"), str) else last_ts
        sid = rec.get("step")
        st = steps.setdefault(sid, StepState()) if isinstance(sid, str) else None
        if kind == "resumed":
            # The previous run ended at its last record: the gap is not assembly time.
            close_segment(last_ts)
            if current is not None:
                seg_start = ts
        elif kind == "paused":
            close_segment(ts)
        elif kind == "step_started" and st is not None:
            st.started = True
            current, seg_start = sid, ts
        elif kind == "photo" and st is not None:
            st.photos[str(rec.get("photo"))] = rec
        elif kind == "check" and st is not None:
            name = str(rec.get("check"))
            st.attempts[name] = max(st.attempts.get(name, 0), int(rec.get("attempt") or 1))
            if rec.get("ok"):
                st.checks_ok.add(name)
        elif kind == "check_waived" and st is not None:
            st.checks_ok.add(str(rec.get("check")))
        elif kind in ("step_finished", "step_skipped") and st is not None:
            if sid == current:
                close_segment(ts)
                current = None
            st.finished = kind == "step_finished"
            st.skipped = kind == "step_skipped"
            if isinstance(rec.get("seconds"), int | float):
                st.seconds = float(rec["seconds"])
        elif kind == "assembly_finished":
            finished = True
        if ts is not None:
            last_ts = ts
    # A run that ended without a pause (SIGKILL, power cut): count up to its last record.
    if current is not None and seg_start is not None and last_ts is not None:
        steps[current].seconds += max(0.0, last_ts - seg_start)
    return AssemblyState(steps, finished, current)
