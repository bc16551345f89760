"""Starting an inner pytest the way a user at a terminal would."""

from __future__ import annotations

import signal


def sigint_as_in_a_terminal() -> None:
    """``preexec_fn`` for a child that a test will stop with Ctrl-C (SIGINT).

    A job started with ``&`` by a non-interactive shell ignores SIGINT, children inherit that,
    and Python then installs no KeyboardInterrupt handler at all: run from such a job, a Ctrl-C
    test could never pass. A terminal's Ctrl-C reaches a process whose SIGINT is the default.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
