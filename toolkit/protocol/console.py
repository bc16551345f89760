"""The console: expect/sendline with deadlines over any Transport, plus a full transcript.

Every dialogue (U-Boot, a Linux shell, XMODEM) talks through one :class:`Console`:

* ``expect(patterns, timeout)`` waits for text with a deadline and raises
  :class:`~toolkit.errors.DeviceTimeout` carrying the console tail (``last_output``).
* Matching runs on a *clean text view*: terminal escapes are dropped (CSI such as the
  ``ESC[6n`` busybox ash sends with its prompt, ``ESC[?25h``, OSC titles, charset selects),
  ``\\r\\n``/``\\r\\r\\n``/bare ``\\r`` become ``\\n``, backspaces erase (U-Boot's autoboot countdown)
  and other control bytes vanish. A ``str`` pattern is literal text; pass ``re.compile(...)``
  for a regular expression.
* The raw bytes are kept: appended to ``transcript_path`` as they arrive and in memory
  (``transcript_bytes()``, ``transcript_text()``, ``tail()``).
* Binary transfers use ``read_raw``/``write_raw``. ``read_raw`` first hands over bytes that
  arrived but were not consumed by an ``expect`` (e.g. the first ``C`` of XMODEM arriving in
  the same chunk as ``loadx``'s banner), then reads the transport directly without cleaning.
  ``with console.binary():`` keeps those bytes out of the transcript.
* Next to a transcript file, the same bytes are recorded with their timing as an asciicast v2
  file (``console.log`` → ``console.cast``, or ``recording_path``): see
  :mod:`toolkit.protocol.asciicast`. ``routerkit sessions replay`` plays it.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import re
import time
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

from toolkit.errors import DeviceTimeout
from toolkit.protocol.asciicast import CastWriter
from toolkit.transport.base import Transport

Pattern = str | re.Pattern[str]
"""A ``str`` is literal text; a compiled ``re.Pattern[str]`` is a regular expression."""

_READ_CHUNK = 4096
_TEXT_CAP = 256 * 1024  # unconsumed text kept for matching; older text is dropped (not lost:
_RAW_CAP = 1024 * 1024  # the transcript keeps everything)

# One token of console output. Complete escape sequences and control bytes are dropped, runs of
# CR (optionally followed by LF) are one line break, printable text (incl. tab and UTF-8) stays.
_TOKEN = re.compile(
    rb"(?P<esc>\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: ESC[6n, ESC[?25h, ESC[0;32m ...
    rb"|\x1b\][^\x07\x1b]{0,512}(?:\x07|\x1b\\)"  # OSC: ESC]0;title BEL
    rb"|\x1b[ -/]*[0-~])"  # two-byte escapes and charset selects: ESC(B, ESC=
    rb"|(?P<nl>\r+\n?|\n)"
    rb"|(?P<bs>\x08)"
    rb"|(?P<ctl>[\x00-\x07\x0b-\x1f\x7f])"
    rb"|(?P<text>[^\x00-\x08\x0a-\x1f\x7f]+)"
)
# An escape sequence cut off at the end of a read: hold it back until the rest arrives.
_PARTIAL_ESC = re.compile(rb"\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]{0,512}\x1b?|[ -/]*)\Z")
_SURROGATES = re.compile("[\udc80-\udcff]")


def _held_back(data: bytes) -> int:
    """How many bytes at the end of ``data`` may still be the start of something longer."""
    esc = data.rfind(b"\x1b", max(0, len(data) - 520))
    if esc >= 0 and _PARTIAL_ESC.match(data, esc):
        return len(data) - esc
    if data.endswith(b"\r"):
        return len(data) - len(data.rstrip(b"\r"))  # a CR run may still get its LF
    for back in range(1, min(3, len(data)) + 1):  # an unfinished UTF-8 sequence
        byte = data[-back]
        if byte & 0xC0 == 0xC0:
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return back if need > back else 0
        if byte & 0xC0 != 0x80:
            break
    return 0


def _decode(run: bytes) -> str:
    return _SURROGATES.sub("\ufffd", run.decode("utf-8", "surrogateescape"))


def strip_terminal(data: bytes) -> str:
    """Console bytes → clean text: no escapes, ``\\n`` line ends, backspaces applied."""
    out: list[str] = []
    for token in _TOKEN.finditer(data):
        kind = token.lastgroup
        if kind == "text":
            out.append(_decode(token.group()))
        elif kind == "nl":
            out.append("\n")
        elif kind == "bs" and out and out[-1] and out[-1][-1] != "\n":
            out[-1] = out[-1][:-1]
    return "".join(out)


@dataclass(frozen=True)
class ExpectMatch:
    """What :meth:`Console.expect` found: which pattern (``index``), the match, and the text
    between the previous match and this one (``before``)."""

    index: int
    match: re.Match[str]
    before: str

    @property
    def text(self) -> str:
        """The matched text itself."""
        return self.match.group(0)


@dataclass(frozen=True)
class CommandResult:
    """A command run on a device: its exit status and its output (echo and prompt removed)."""

    exit_status: int
    output: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


def _compile(pattern: Pattern) -> re.Pattern[str]:
    return pattern if isinstance(pattern, re.Pattern) else re.compile(re.escape(pattern))


def describe(patterns: Sequence[Pattern]) -> str:
    """Human wording of what we waited for, for error messages."""
    shown = [p.pattern if isinstance(p, re.Pattern) else p for p in patterns]
    return " or ".join(repr(s) for s in shown)


class Console:
    """Expect-style dialogue over a :class:`~toolkit.transport.base.Transport`."""

    def __init__(
        self,
        transport: Transport,
        *,
        transcript_path: Path | None = None,
        name: str = "console",
        newline: str = "\n",
        default_timeout: float = 10.0,
        recording_path: Path | None = None,
    ) -> None:
        self.transport = transport
        self.name = name
        self.newline = newline
        self.default_timeout = default_timeout
        self.transcript_path = transcript_path
        self._log: BinaryIO | None = None
        if transcript_path is not None:
            transcript_path.parent.mkdir(parents=True, exist_ok=True)
            # 0600 whatever the umask: a transcript can hold passwords typed at a prompt
            fd = os.open(transcript_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._log = open(fd, "ab")  # noqa: SIM115 - closed by close()
        if recording_path is None and transcript_path is not None:
            recording_path = transcript_path.with_suffix(".cast")
            if recording_path == transcript_path:  # a transcript named *.cast: never one file
                recording_path = transcript_path.with_name(transcript_path.name + ".cast")
        self.recording_path = recording_path
        self._cast: CastWriter | None = None
        if recording_path is not None:
            self._cast = CastWriter(recording_path, title=name)
        self._transcript = bytearray()
        self._binary_depth = 0
        self._binary_skipped = 0
        # Unconsumed input: raw bytes from absolute offset _raw_base, the clean text made from
        # them, and for each text character the absolute offset just past its bytes (so a
        # match in the text maps back to a position in the raw stream for read_raw).
        self._raw = bytearray()
        self._raw_base = 0
        self._cooked_upto = 0  # absolute offset up to which raw bytes became text
        self._text = ""
        self._ends = array("q")
        #: Writes so far: whoever last saw the device at rest can tell whether anyone has
        #: typed since (a driver believing a prompt, see :mod:`toolkit.target.runner`).
        self.writes = 0

    # --- writing ---------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Send bytes as they are."""
        self.writes += 1
        self.transport.write(data)

    def sendline(self, line: str = "") -> None:
        """Send ``line`` followed by the console's newline."""
        self.write((line + self.newline).encode("utf-8"))

    def write_raw(self, data: bytes) -> None:
        """Send binary data (XMODEM blocks ...). Same as :meth:`write`; named for symmetry."""
        self.write(data)

    # --- reading ---------------------------------------------------------------------

    def expect(
        self, patterns: Pattern | Sequence[Pattern], timeout: float | None = None
    ) -> ExpectMatch:
        """Wait until one of ``patterns`` appears; the earliest match wins (ties: list order).

        Raises :class:`~toolkit.errors.DeviceTimeout` with ``last_output`` (the console tail)
        when ``timeout`` (default ``default_timeout``) seconds pass without a match.
        """
        wait = self.default_timeout if timeout is None else timeout
        plist = [patterns] if isinstance(patterns, str | re.Pattern) else list(patterns)
        found = self.try_expect(plist, wait)
        if found is None:
            raise DeviceTimeout(
                f"{self.name}: no {describe(plist)} within {wait:g} s",
                hint="is the device powered and on this port? the console tail is in the log",
                last_output=self.tail(),
            )
        return found

    def try_expect(
        self, patterns: Pattern | Sequence[Pattern], timeout: float
    ) -> ExpectMatch | None:
        """Like :meth:`expect` but returns ``None`` on timeout (for polling loops)."""
        plist = [patterns] if isinstance(patterns, str | re.Pattern) else list(patterns)
        compiled = [_compile(p) for p in plist]
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            found = self._search(compiled)
            if found is not None:
                return found
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self._fill(left)

    def read_raw(self, max_bytes: int, timeout: float) -> bytes:
        """Binary read: buffered-but-unconsumed bytes first, else whatever arrives in time."""
        if self._raw:
            data = bytes(self._raw[:max_bytes])
            self._drop_raw_before(self._raw_base + len(data))
            return data
        data = self.transport.read(max_bytes, timeout)
        if data:
            self._record(data)
        return data

    def flush_input(self, quiet: float = 0.0, timeout: float = 5.0) -> str:
        """Discard unconsumed input (after reading until ``quiet`` s pass with nothing new,
        at most ``timeout`` s). Returns the discarded text."""
        deadline = time.monotonic() + timeout
        while quiet > 0 and time.monotonic() < deadline:
            if not self._fill(min(quiet, deadline - time.monotonic())):
                break
        text = self._text
        self._drop_raw_before(self._raw_base + len(self._raw))
        return text

    @property
    def pending_text(self) -> str:
        """Clean text received but not consumed by a match yet."""
        return self._text

    def idle(self) -> bool:
        """True when no text has arrived that nobody consumed yet (what the transport holds
        already is read first; nothing is waited for)."""
        self._fill(0.0)
        return not self._text

    # --- transcript ------------------------------------------------------------------

    @contextlib.contextmanager
    def binary(self) -> Iterator[None]:
        """Keep received bytes out of the transcript (a one-line note replaces them)."""
        self._binary_depth += 1
        try:
            yield
        finally:
            self._binary_depth -= 1
            if self._binary_depth == 0 and self._binary_skipped:
                note = f"\n[routerkit: {self._binary_skipped} bytes of binary transfer not shown]\n"
                self._binary_skipped = 0
                self._append_transcript(note.encode())

    def mark(self, label: str) -> None:
        """A named marker in the recording (a test or a bisect step starts here)."""
        if self._cast is not None:
            self._cast.marker(label)

    def transcript_bytes(self) -> bytes:
        """Every byte received (except inside ``binary()``), exactly as it came."""
        return bytes(self._transcript)

    def transcript_text(self) -> str:
        """The whole transcript as clean text."""
        return strip_terminal(bytes(self._transcript))

    def tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of the transcript as clean text."""
        text = strip_terminal(bytes(self._transcript[-16384:]))
        return "\n".join(text.rstrip("\n").split("\n")[-lines:])

    def close(self) -> None:
        """Close the transcript file and the transport."""
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._cast is not None:
            self._cast.close()
            self._cast = None
        self.transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- internals -------------------------------------------------------------------

    def _append_transcript(self, data: bytes) -> None:
        self._transcript += data
        if self._log is not None:
            self._log.write(data)
            self._log.flush()  # a crash must not lose the console log of the failure
        if self._cast is not None:
            self._cast.output(data)

    def _record(self, data: bytes) -> None:
        if self._binary_depth:
            self._binary_skipped += len(data)
        else:
            self._append_transcript(data)

    def _fill(self, timeout: float) -> bool:
        data = self.transport.read(_READ_CHUNK, timeout)
        if not data:
            return False
        self._record(data)
        self._raw += data
        self._cook()
        return True

    def _cook(self) -> None:
        """Turn newly received raw bytes into text, holding back unfinished sequences."""
        start = self._cooked_upto - self._raw_base
        chunk = bytes(self._raw[start:])
        keep = _held_back(chunk)
        if keep:
            chunk = chunk[:-keep]
        base = self._cooked_upto
        parts: list[str] = []
        for token in _TOKEN.finditer(chunk):
            kind = token.lastgroup
            if kind == "text":
                run = token.group()
                if run.isascii():
                    parts.append(run.decode("ascii"))
                    self._ends.extend(range(base + token.start() + 1, base + token.end() + 1))
                else:
                    pos = base + token.start()
                    for char in run.decode("utf-8", "surrogateescape"):
                        pos += len(char.encode("utf-8", "surrogateescape"))
                        self._ends.append(pos)
                    parts.append(_decode(run))
            elif kind == "nl":
                parts.append("\n")
                self._ends.append(base + token.end())
            elif kind == "bs":
                # Erase the previous character on this line, as a terminal would.
                self._text += "".join(parts)
                parts = []
                if self._text and self._text[-1] != "\n":
                    self._text = self._text[:-1]
                    self._ends.pop()
        self._text += "".join(parts)
        self._cooked_upto = base + len(chunk)
        if len(self._text) > _TEXT_CAP:
            self._consume(len(self._text) - _TEXT_CAP // 2)
        if len(self._raw) > _RAW_CAP:
            self._drop_raw_before(self._raw_base + len(self._raw) - _RAW_CAP // 2)

    def _search(self, compiled: list[re.Pattern[str]]) -> ExpectMatch | None:
        best: tuple[int, int, re.Match[str]] | None = None
        for index, regex in enumerate(compiled):
            match = regex.search(self._text)
            if match and (best is None or match.start() < best[0]):
                best = (match.start(), index, match)
        if best is None:
            return None
        _, index, match = best
        before = self._text[: match.start()]
        self._consume(match.end())
        return ExpectMatch(index=index, match=match, before=before)

    def _consume(self, chars: int) -> None:
        """Drop the first ``chars`` text characters and the raw bytes behind them."""
        if chars <= 0:
            return
        end = self._ends[chars - 1]
        self._text = self._text[chars:]
        del self._ends[:chars]
        del self._raw[: end - self._raw_base]
        self._raw_base = end

    def _drop_raw_before(self, position: int) -> None:
        """Forget raw bytes before absolute ``position`` and the text made from them."""
        chars = bisect.bisect_right(self._ends, position)
        self._text = self._text[chars:]
        del self._ends[:chars]
        del self._raw[: position - self._raw_base]
        self._raw_base = position
        self._cooked_upto = max(self._cooked_upto, position)
