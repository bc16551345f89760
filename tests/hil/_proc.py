"""Starting an inner pytest the way a user at a terminal would, and pressing Ctrl-C in it."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest


def sigint_as_in_a_terminal() -> None:
    """``preexec_fn`` for a child that a test will stop with Ctrl-C (SIGINT).

    A job started with ``&`` by a non-interactive shell ignores SIGINT, children inherit that,
    and Python then installs no KeyboardInterrupt handler at all: run from such a job, a Ctrl-C
    test could never pass. A terminal's Ctrl-C reaches a process whose SIGINT is the default.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextlib.contextmanager
def inner_pytest(pytester: pytest.Pytester, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """``pytest ARGS`` in ``pytester.path``, output in ``out.txt`` there; killed if still running
    when the block ends."""
    with (pytester.path / "out.txt").open("wb") as out:
        proc = pytester.popen(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
            stdout=out, stderr=subprocess.STDOUT, preexec_fn=sigint_as_in_a_terminal,
        )  # fmt: skip
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def press_ctrl_c(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT, and the run must end as interrupted within a minute."""
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == pytest.ExitCode.INTERRUPTED
