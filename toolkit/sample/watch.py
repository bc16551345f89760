"""Watching the sample boot over its serial console until it reaches the wanted state.

``up`` connects once, records every byte of the boot into a transcript, and stops at:

- ``uboot``: the U-Boot prompt. Autoboot is interrupted (the profile's interrupt key, sent
  repeatedly until the prompt answers) and the sample is left sitting at a synced ``=> ``.
- ``linux``: a Linux shell on the console. U-Boot's autoboot countdown (2 s in Debian's
  build, and the environment cannot be saved: pflash writes are broken in QEMU 7.2) is skipped
  by interrupting it and typing the profile's ``console.boot_command``, which runs the same
  ``bootcmd`` autoboot would have run.
- ``ssh``: as ``linux``, then an SSH server's banner on the forwarded port.

The dialogues themselves are the target drivers' (:mod:`toolkit.target.uboot`,
:mod:`toolkit.target.shell`, over a Console).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from toolkit.boards import Board
from toolkit.errors import DeviceTimeout, PortError
from toolkit.protocol.console import Console
from toolkit.target.shell import LinuxShell
from toolkit.target.uboot import UBoot
from toolkit.transport import Transport, open_serial


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
    """Drive the boot to ``wait``; returns seconds since ``t0`` at each milestone."""
    marks: dict[str, float] = {}

    def mark(name: str) -> None:
        marks[name] = round(time.monotonic() - t0, 3)
        if on_mark is not None:
            on_mark(name, marks[name])

    uboot_limit = float(board.get("console.interrupt_timeout", 30.0))
    linux_limit = float(board.get("console.linux_boot_timeout", 90.0))
    if timeout is not None:
        uboot_limit = linux_limit = timeout
    deadline = time.monotonic() + uboot_limit
    banner = str(board.get("console.uboot_banner", "U-Boot "))
    # The sample's console is connected from power-on (QEMU waits for us), so the banner is
    # always there; waiting for it first gives the breakdown its first milestone.
    console.expect(banner, timeout=uboot_limit)
    mark("uboot_banner")
    uboot = UBoot(console, board)
    uboot.interrupt_autoboot(timeout=max(1.0, deadline - time.monotonic()))
    mark("uboot_prompt")
    if wait == "uboot":
        return marks
    deadline = time.monotonic() + linux_limit
    uboot.boot()
    LinuxShell(console, board).wait_boot(
        max(0.1, deadline - time.monotonic()), on_kernel=lambda: mark("kernel_start")
    )
    mark("linux_shell")
    if wait == "linux":
        return marks
    wait_ssh_banner("127.0.0.1", ssh_port, deadline)
    mark("ssh_ready")
    return marks


def wait_ssh_banner(host: str, port: int, deadline: float) -> str:
    """Poll the forwarded port until an SSH server greets us; returns its banner line.

    QEMU's user-mode forward accepts the TCP connection even when nothing listens in the guest
    (and then closes it), so a successful connect proves nothing; only the banner does.
    """
    while True:
        try:
            with socket.create_connection((host, port), timeout=2.0) as sock:
                sock.settimeout(2.0)
                data = sock.recv(256)
                if data.startswith(b"SSH-"):
                    return data.split(b"\r\n")[0].decode("ascii", "replace")
        except OSError:
            pass
        if time.monotonic() >= deadline:
            raise DeviceTimeout(f"no SSH server answered on {host}:{port} in time")
        time.sleep(0.2)
