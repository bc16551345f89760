"""`routerkit sample console` in a real pseudo-terminal: type, see, quit with Ctrl-], and find
the transcript in the session journal. Marked hil."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

import pytest

from toolkit import sample
from toolkit.record import Journal

pytestmark = pytest.mark.hil


def _read_until(fd: int, needle: bytes, limit: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + limit
    while needle not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                break
    return seen


def test_console_is_interactive_and_saves_its_transcript() -> None:
    state = sample.up(name="tty", wait="uboot")
    master, slave = pty.openpty()
    proc = None
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "toolkit.cli", "sample", "console", "--name", "tty"],
            stdin=slave, stdout=slave, stderr=slave, env=os.environ.copy(), close_fds=True,
        )  # fmt: skip
        os.close(slave)
        assert b"Ctrl-]" in _read_until(master, b"Ctrl-]", 20)
        os.write(master, b"version\r")
        assert b"U-Boot 20" in _read_until(master, b"U-Boot 20", 20)
        os.write(master, b"\x1d")
        tail = _read_until(master, b"transcript in session", 20)
        assert proc.wait(timeout=20) == 0, tail
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        sample.down("tty")
    journal = Journal.latest(kind="console")
    assert journal is not None
    event = journal.last("console_transcript")
    assert event is not None and event["sample"] == "tty"
    assert b"U-Boot 20" in (journal.dir / event["file"]).read_bytes()
    assert not os.path.exists(f"/proc/{state.pid}")
