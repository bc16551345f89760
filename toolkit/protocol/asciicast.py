"""Console recordings with timing, in asciinema's asciicast v2 format.

An asciicast v2 file is newline-delimited JSON: one header object (``version`` 2, terminal
``width`` and ``height``, the start as a Unix ``timestamp``, optional ``title`` and
``idle_time_limit``), then one event per line, ``[seconds since start, code, data]``, where code
``"o"`` is output to the terminal and data is text. asciinema, its web player and
``routerkit sessions replay`` all read it.

:class:`CastWriter` is what a :class:`~toolkit.protocol.console.Console` records through: every
chunk the device sends becomes one ``"o"`` event, flushed at once (a crash keeps the recording
of the failure), in a 0600 file (a console can show passwords). Bytes are decoded as UTF-8
incrementally, so a character split across two reads stays one character; invalid bytes
become U+FFFD. A second console of the same session continues the same file: its events are
timed from the header's start, so the gap between the two is visible (and squeezed by
``idle_time_limit`` when played).

:class:`Screen` is a small terminal model (printable text with wrapping, CR, LF, backspace,
tab, cursor moves, erase in line/display; other escapes ignored): what a terminal shows after
the output, used to compare a replay with what the console showed.
"""

from __future__ import annotations

import codecs
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

WIDTH = 120
HEIGHT = 40
IDLE_TIME_LIMIT = 2.0
MIME = "application/x-asciicast"


@dataclass(frozen=True)
class Event:
    """One event: ``time`` seconds from the start, ``code`` ("o" output, "m" marker), ``data``."""

    time: float
    code: str
    data: str

    def to_json(self) -> str:
        return json.dumps([round(self.time, 6), self.code, self.data], ensure_ascii=False)


@dataclass
class Cast:
    """A whole recording: its header and its events, in order."""

    header: dict[str, Any]
    events: list[Event] = field(default_factory=list)

    @property
    def width(self) -> int:
        return int(self.header.get("width") or WIDTH)

    @property
    def height(self) -> int:
        return int(self.header.get("height") or HEIGHT)

    @property
    def duration(self) -> float:
        return self.events[-1].time if self.events else 0.0

    def output(self) -> str:
        """Everything written to the terminal, concatenated."""
        return "".join(e.data for e in self.events if e.code == "o")

    def to_bytes(self) -> bytes:
        lines = [json.dumps(self.header, ensure_ascii=False)]
        lines += [e.to_json() for e in self.events]
        return ("\n".join(lines) + "\n").encode("utf-8")

    def between(self, start: float, end: float | None = None) -> Cast:
        """The events from ``start`` (absolute Unix time) to ``end``, re-timed from ``start``:
        one test's part of a session-long recording."""
        origin = float(self.header.get("timestamp") or 0)
        begin = start - origin
        stop = None if end is None else end - origin
        picked = [
            Event(max(0.0, e.time - begin), e.code, e.data)
            for e in self.events
            if e.time >= begin and (stop is None or e.time <= stop)
        ]
        header = dict(self.header, timestamp=int(start))
        return Cast(header, picked)


def new_header(
    *, title: str | None = None, width: int = WIDTH, height: int = HEIGHT, start: float
) -> dict[str, Any]:
    header: dict[str, Any] = {
        "version": 2,
        "width": width,
        "height": height,
        "timestamp": int(start),
        "idle_time_limit": IDLE_TIME_LIMIT,
        "env": {"TERM": "xterm-256color"},
    }
    if title:
        header["title"] = title
    return header


class CastWriter:
    """Append-only asciicast v2 recorder; each event is written and flushed at once."""

    def __init__(
        self, path: Path, *, title: str | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = path
        self._clock = clock
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        path.parent.mkdir(parents=True, exist_ok=True)
        header, last = _existing(path)
        # 0600 whatever the umask: a console can show a password typed at a prompt
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._fh: BinaryIO | None = open(fd, "ab")  # noqa: SIM115 - closed by close()
        if header is None:
            now = clock()
            header = new_header(title=title, start=now)
            if path.stat().st_size:  # not a recording we can continue: start a fresh line
                self._fh.write(b"\n")
            self._fh.write(json.dumps(header).encode() + b"\n")
            self._fh.flush()
            last = 0.0
        self.start = float(header["timestamp"])
        self._last = last

    def output(self, data: bytes) -> None:
        """Record bytes the terminal received."""
        text = self._decoder.decode(data)
        if text:
            self._event("o", text)

    def marker(self, label: str) -> None:
        """A named point in the recording (players can jump to it)."""
        self._event("m", label)

    def _event(self, code: str, text: str) -> None:
        if self._fh is None:
            return
        # never backwards, even if the wall clock steps back
        self._last = max(self._last, self._clock() - self.start)
        self._fh.write(Event(self._last, code, text).to_json().encode("utf-8") + b"\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is None:
            return
        rest = self._decoder.decode(b"", final=True)
        if rest:
            self._event("o", rest)
        self._fh.close()
        self._fh = None


def _existing(path: Path) -> tuple[dict[str, Any] | None, float]:
    """The header and the last event time of a recording at ``path``, if it is one."""
    try:
        with path.open("rb") as fh:
            first = fh.readline(65536)
            header = json.loads(first)
            size = os.fstat(fh.fileno()).st_size
            fh.seek(max(0, size - 65536))
            tail = fh.read()
    except (OSError, ValueError):
        return None, 0.0
    if not isinstance(header, dict) or header.get("version") != 2:
        return None, 0.0
    if not isinstance(header.get("timestamp"), int | float):
        return None, 0.0
    last = 0.0
    for line in reversed(tail.split(b"\n")):
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, list) and event and isinstance(event[0], int | float):
            last = float(event[0])
            break
    return header, last


def parse(data: bytes) -> Cast:
    """Read an asciicast v2 recording; lines that are not events (a torn last line) are skipped.

    Raises ``ValueError`` when the header is not an asciicast v2 header."""
    lines = data.decode("utf-8", errors="replace").split("\n")
    header: dict[str, Any] | None = None
    events: list[Event] = []
    for line in lines:
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if header is None:
            if not isinstance(value, dict) or value.get("version") != 2:
                raise ValueError("not an asciicast v2 recording (no version 2 header)")
            header = value
            continue
        if (
            isinstance(value, list)
            and len(value) == 3
            and isinstance(value[0], int | float)
            and isinstance(value[1], str)
            and isinstance(value[2], str)
        ):
            events.append(Event(float(value[0]), value[1], value[2]))
    if header is None:
        raise ValueError("not an asciicast v2 recording (empty)")
    return Cast(header, events)


def read(path: Path) -> Cast:
    return parse(path.read_bytes())


def schedule(
    cast: Cast, *, speed: float = 1.0, idle_limit: float | None = None
) -> Iterator[tuple[float, Event]]:
    """(delay before it, event) for each event: pauses longer than ``idle_limit`` (default:
    the header's ``idle_time_limit``) are cut to it, then everything divided by ``speed``."""
    limit = idle_limit if idle_limit is not None else cast.header.get("idle_time_limit")
    previous = 0.0
    for event in cast.events:
        gap = max(0.0, event.time - previous)
        previous = event.time
        if isinstance(limit, int | float) and limit > 0:
            gap = min(gap, float(limit))
        yield gap / max(speed, 1e-6), event


def play(
    cast: Cast,
    write: Callable[[str], None],
    *,
    speed: float = 1.0,
    idle_limit: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Write the recording's output to ``write`` with its timing."""
    for delay, event in schedule(cast, speed=speed, idle_limit=idle_limit):
        if delay > 0:
            sleep(delay)
        if event.code == "o":
            write(event.data)


# --- a small terminal model --------------------------------------------------------------

_SEQ = re.compile(
    r"\x1b\[(?P<params>[0-?]*)[ -/]*(?P<final>[@-~])"  # CSI
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC
    r"|\x1b[ -/]*[0-~]"  # two-byte escapes, charset selects
    r"|(?P<ctl>[\x00-\x1f\x7f])"
    r"|(?P<text>[^\x00-\x1f\x7f\x1b]+)"
)

_PARTIAL = re.compile(r"\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]*\x1b?|[ -/]*)\Z")


class Screen:
    """What a ``width`` x ``height`` terminal shows after some output."""

    def __init__(self, width: int = WIDTH, height: int = HEIGHT) -> None:
        self.width = width
        self.height = height
        self.rows: list[list[str]] = [[" "] * width for _ in range(height)]
        self.x = 0
        self.y = 0
        self._wrap_pending = False
        self._pending = ""

    def feed(self, text: str) -> None:
        text = self._pending + text
        partial = _PARTIAL.search(text)  # an escape sequence cut off at the end of a chunk
        self._pending = partial.group() if partial else ""
        if partial:
            text = text[: partial.start()]
        for token in _SEQ.finditer(text):
            if token.group("text") is not None:
                for char in token.group("text"):
                    self._put(char)
            elif token.group("ctl") is not None:
                self._control(token.group("ctl"))
            elif token.group("final") is not None:
                self._csi(token.group("params") or "", token.group("final"))

    def lines(self) -> list[str]:
        """The screen's rows, trailing spaces removed, trailing empty rows dropped."""
        out = ["".join(row).rstrip() for row in self.rows]
        while out and not out[-1]:
            out.pop()
        return out

    def _put(self, char: str) -> None:
        if self._wrap_pending:
            self.x = 0
            self._linefeed()
            self._wrap_pending = False
        self.rows[self.y][self.x] = char
        if self.x == self.width - 1:
            self._wrap_pending = True
        else:
            self.x += 1

    def _linefeed(self) -> None:
        if self.y == self.height - 1:
            self.rows.pop(0)
            self.rows.append([" "] * self.width)
        else:
            self.y += 1

    def _control(self, char: str) -> None:
        if char == "\n" or char in "\x0b\x0c":
            self._wrap_pending = False
            self._linefeed()
        elif char == "\r":
            self._wrap_pending = False
            self.x = 0
        elif char == "\x08":
            self._wrap_pending = False
            self.x = max(0, self.x - 1)
        elif char == "\t":
            self.x = min(self.width - 1, (self.x // 8 + 1) * 8)

    def _csi(self, params: str, final: str) -> None:
        if params.startswith("?"):
            return  # private modes (cursor visibility...) change nothing shown
        numbers = [int(p) if p.isdigit() else 0 for p in params.split(";")] if params else []
        first = numbers[0] if numbers else 0
        count = max(1, first)
        self._wrap_pending = False
        if final == "A":
            self.y = max(0, self.y - count)
        elif final == "B":
            self.y = min(self.height - 1, self.y + count)
        elif final == "C":
            self.x = min(self.width - 1, self.x + count)
        elif final == "D":
            self.x = max(0, self.x - count)
        elif final == "G":
            self.x = min(self.width - 1, count - 1)
        elif final in "Hf":
            row = numbers[0] if numbers else 1
            col = numbers[1] if len(numbers) > 1 else 1
            self.y = min(self.height - 1, max(1, row) - 1)
            self.x = min(self.width - 1, max(1, col) - 1)
        elif final == "K":
            cells = self.rows[self.y]
            span = {0: range(self.x, self.width), 1: range(0, self.x + 1)}.get(
                first, range(self.width)
            )
            for i in span:
                cells[i] = " "
        elif final == "J":
            if first == 0:
                self._csi("0", "K")
                for r in range(self.y + 1, self.height):
                    self.rows[r] = [" "] * self.width
            elif first == 1:
                self._csi("1", "K")
                for r in range(0, self.y):
                    self.rows[r] = [" "] * self.width
            else:
                self.rows = [[" "] * self.width for _ in range(self.height)]


def final_screen(output: Iterable[str], width: int = WIDTH, height: int = HEIGHT) -> list[str]:
    """The rows a terminal shows after ``output`` (a sequence of chunks)."""
    screen = Screen(width, height)
    for chunk in output:
        screen.feed(chunk)
    return screen.lines()
