"""The guide model, after iFixit/Dozuki: a guide has tools, parts and steps; a step has
lines (with a bullet kind), illustrations, required photos and checks.

Built only by :mod:`toolkit.guide.loader`, which validates everything first, so the rest of the
code can trust these objects (ids unique, images exist, check kinds known).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LINE_KINDS = ("plain", "note", "caution", "reminder")
DIFFICULTIES = ("very-easy", "easy", "moderate", "difficult", "very-difficult")


@dataclass(frozen=True)
class Tool:
    id: str
    name: str
    note: str = ""


@dataclass(frozen=True)
class Part:
    id: str
    name: str
    quantity: int
    note: str = ""


@dataclass(frozen=True)
class Line:
    text: str
    kind: str = "plain"  # one of LINE_KINDS
    level: int = 0  # bullet indentation, 0..2 as on iFixit


@dataclass(frozen=True)
class PhotoSpec:
    """A photo the tester must take; ``shows`` says what must be visible in it."""

    id: str
    shows: str


@dataclass(frozen=True)
class CheckSpec:
    """A check: ``kind == "confirm"`` is a manual yes/no; any other kind is automatic and
    looked up by name in :class:`toolkit.guide.checks.CheckRegistry`."""

    id: str
    kind: str
    prompt: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def manual(self) -> bool:
        return self.kind == "confirm"


@dataclass(frozen=True)
class Step:
    id: str
    title: str
    lines: tuple[Line, ...]
    images: tuple[Path, ...]  # absolute paths, checked to exist
    photos: tuple[PhotoSpec, ...] = ()
    checks: tuple[CheckSpec, ...] = ()
    tools: tuple[str, ...] = ()  # tool ids used in this step
    parts: tuple[str, ...] = ()  # part ids fitted in this step
    minutes: float | None = None  # rough time estimate shown to the tester


@dataclass(frozen=True)
class Guide:
    path: Path
    board: str
    title: str
    summary: str
    difficulty: str
    time_minutes: tuple[int, int]  # (min, max)
    tools: tuple[Tool, ...]
    parts: tuple[Part, ...]
    prerequisites: tuple[str, ...]
    steps: tuple[Step, ...]
    sha256: str = ""  # of the YAML file, recorded in the journal to notice edits on resume

    @property
    def directory(self) -> Path:
        return self.path.parent

    def step(self, step_id: str) -> Step:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    def index(self, step_id: str) -> int:
        """1-based position of a step."""
        for i, s in enumerate(self.steps, 1):
            if s.id == step_id:
                return i
        raise KeyError(step_id)

    def tool(self, tool_id: str) -> Tool:
        return next(t for t in self.tools if t.id == tool_id)

    def part(self, part_id: str) -> Part:
        return next(p for p in self.parts if p.id == part_id)
