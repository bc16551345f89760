"""Stopping processes by PID without leaving zombies behind.

``down`` may run in the process that started QEMU (tests, the pytest plugin) or in another shell.
A child that was killed stays a zombie in /proc until its parent waits for it, so children we
started are remembered here and reaped; for others, /proc and ``kill(pid, 0)`` decide.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path

from toolkit.sample.state import pid_alive

#: Popen objects of QEMUs/ser2nets started by this process.
children: dict[int, subprocess.Popen[bytes]] = {}


def cmdline_has(pid: int, word: str) -> bool:
    """``word`` is in the command line of ``pid`` (guards against a recycled PID)."""
    try:
        return word.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def kill(pid: int | None, sig: int, wait: float) -> None:
    """Send ``sig`` to ``pid`` (if it still runs) and wait up to ``wait`` s for it to exit."""
    if not pid or gone(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    wait_gone(pid, wait)


def wait_gone(pid: int, wait: float) -> bool:
    """True once ``pid`` exited within ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while not gone(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def gone(pid: int) -> bool:
    """True when ``pid`` has exited; our own children are also reaped (no zombie is left).

    For a child, only ``waitpid`` is trusted: while its threads exit, /proc already shows the
    leader as a zombie although it cannot be reaped yet.
    """
    proc = children.get(pid)
    if proc is not None:
        if proc.poll() is None:
            return False
        children.pop(pid, None)
        return True
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    return not pid_alive(pid)
