"""Wire traces: every byte a serial transport sends or receives, for bug reports.

One tap at the transport level (:class:`~toolkit.transport.serial.SerialTransport` calls
:func:`record` on every read and write), so console dialogues, U-Boot commands and X/YMODEM
blocks all land in one file, in order, without any protocol knowing. Off by default: the CLI's
``--trace FILE`` calls :func:`start`; library users may too. Nothing is printed.

The format is line-oriented text, 16 bytes per line, hex then ASCII::

    # routerkit wire trace; started 2026-12-06T09:45:01Z
    # seconds-since-start  port  direction (> host to device, < device to host)  hex  |ascii|
    0.012345 socket://127.0.0.1:4321 > 76 65 72 73 69 6f 6e 0a                          |version.|
    0.015001 socket://127.0.0.1:4321 < 76 65 72 73 69 6f 6e 0d 0a 55 2d 42 6f 6f 74 20  |version..U-Boot |

The continuation lines of one chunk repeat its time stamp and direction, so ``grep ' > '``
keeps one direction whole.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

TX = ">"  # host to device
RX = "<"  # device to host
WIDTH = 16


class WireTrace:
    """An open trace file (thread-safe; each chunk is written and flushed whole)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._file: TextIO = self.path.open("w", encoding="ascii", newline="\n")
        self._lock = threading.Lock()
        self._start = time.monotonic()
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._file.write(
            f"# routerkit wire trace; started {stamp}\n"
            f"# seconds-since-start  port  direction ({TX} host to device, {RX} device to host)"
            "  hex  |ascii|\n"
        )
        self._file.flush()

    def record(self, port: str, direction: str, data: bytes) -> None:
        if not data:
            return
        at = f"{time.monotonic() - self._start:.6f} {port} {direction}"
        lines = []
        for offset in range(0, len(data), WIDTH):
            chunk = data[offset : offset + WIDTH]
            hexed = " ".join(f"{b:02x}" for b in chunk)
            text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
            lines.append(f"{at} {hexed:<{WIDTH * 3 - 1}}  |{text}|\n")
        with self._lock:
            if not self._file.closed:
                self._file.write("".join(lines))
                self._file.flush()  # a trace is for crashes and hangs too

    def close(self) -> None:
        with self._lock:
            self._file.close()


_sink: WireTrace | None = None


def start(path: Path | str) -> WireTrace:
    """Trace every serial transport of this process into ``path`` (replacing an earlier trace)."""
    global _sink
    stop()
    _sink = WireTrace(path)
    return _sink


def stop() -> None:
    """Stop tracing and close the file. Idempotent."""
    global _sink
    sink, _sink = _sink, None
    if sink is not None:
        sink.close()


def active() -> WireTrace | None:
    return _sink


def record(port: str, direction: str, data: bytes) -> None:
    """Called by transports for every chunk sent (:data:`TX`) or received (:data:`RX`)."""
    sink = _sink
    if sink is not None:
        sink.record(port, direction, data)
