"""Watching the sample boot over its serial console until it reaches the wanted state.

``up`` connects once, records every byte of the boot into a transcript, and stops at:

- ``uboot``: the U-Boot prompt. Autoboot is interrupted (the profile's interrupt key, sent
  repeatedly until the prompt answers) and the sample is left sitting at a synced ``=> ``.
- ``linux``: a Linux shell on the console. U-Boot's autoboot countdown (2 s in Debian's
  build, and the environment cannot be saved: pflash writes are broken in QEMU 7.2) is skipped
  by interrupting it and typing the profile's ``console.boot_command``, which runs the same
  ``bootcmd`` autoboot would have run.
- ``ssh``: as ``linux``, then an SSH server's banner on the forwarded port.

How each state is reached is the target's strategy (:mod:`toolkit.target.strategy`), the
same one the flash, verify, the guide's checks and the HIL fixtures use.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from toolkit.boards import Board
from toolkit.errors import PortError
from toolkit.protocol.console import Console
from toolkit.target.power import ManualPower
from toolkit.target.strategy import Status, Strategy
from toolkit.transport import Transport, open_serial

_WANTED = {"uboot": Status.UBOOT, "linux": Status.LINUX, "ssh": Status.SSH}


def connect(url: str, deadline: float) -> Transport:
    """Open the console, retrying until ``deadline`` (a chardev binds a moment after start)."""
    while True:
        try:
            return open_serial(url)
        except PortError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def watch_boot(
    console: Console,
    board: Board,
    wait: str,
    t0: float,
    ssh_port: int,
    timeout: float | None = None,
    on_mark: Callable[[str, float], None] | None = None,
) -> dict[str, float]:
    """Drive the boot to ``wait`` (``uboot``, ``linux`` or ``ssh``) through the target's
    :class:`~toolkit.target.strategy.Strategy`, watching from power-on; returns seconds since
    ``t0`` at each milestone it passed."""
    marks: dict[str, float] = {}

    def mark(name: str) -> None:
        marks[name] = round(time.monotonic() - t0, 3)
        if on_mark is not None:
            on_mark(name, marks[name])

    strategy = Strategy.attached(
        console, board, ManualPower(name="the sample"), ssh_address=("127.0.0.1", ssh_port),
        name=console.name, status=Status.POWERED, on_mark=mark,
    )  # fmt: skip
    strategy.transition(_WANTED[wait], timeout=timeout)
    return marks
