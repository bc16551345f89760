"""Watching the sample boot over its serial console until it reaches the wanted state.

``up`` connects once, records every byte of the boot into a transcript, and stops at:

- ``uboot``: the U-Boot prompt. Autoboot is interrupted (the profile's interrupt key, sent
  repeatedly until the prompt answers) and the sample is left sitting at a synced ``=> ``.
- ``linux``: a Linux shell on the console. U-Boot's autoboot countdown (2 s in Debian's
  build, and the environment cannot be saved: pflash writes are broken in QEMU 7.2) is skipped
  by interrupting it and typing the profile's ``console.boot_command``, which runs the same
  ``bootcmd`` autoboot would have run.
- ``ssh``: as ``linux``, then an SSH server's banner on the forwarded port.

The dialogues themselves are ``toolkit.protocol``'s (UBoot, LinuxShell over a Console).
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable

from toolkit.boards import Board
from toolkit.errors import DeviceTimeout, PortError
from toolkit.protocol.console import Console
from toolkit.protocol.shell import LinuxShell
from toolkit.protocol.uboot import UBoot
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
    UBoot(console, board).interrupt_autoboot(timeout=max(1.0, deadline - time.monotonic()))
    mark("uboot_prompt")
    if wait == "uboot":
        return marks
    deadline = time.monotonic() + linux_limit
    console.sendline(str(board.get("console.boot_command", "boot")))
    wait_linux_prompt(console, board, deadline, on_kernel=lambda: mark("kernel_start"))
    mark("linux_shell")
    if wait == "linux":
        return marks
    wait_ssh_banner("127.0.0.1", ssh_port, deadline)
    mark("ssh_ready")
    return marks


def wait_linux_prompt(
    console: Console, board: Board, deadline: float, on_kernel: Callable[[], None] | None = None
) -> None:
    """Wait for the shell's first prompt during a boot we watched from the start, then sync.

    A prompt is only believed at the end of the output, after the kernel started, and when
    nothing follows it for a moment: boot output such as U-Boot's ``virtio read: ... block # ``
    ends in ``# `` whenever a read happens to stop right there. Nothing is typed before the
    prompt: keys pressed during the boot would be echoed into the shell's first line.
    """
    prompt = str(board.get("console.linux_prompt", "# "))
    at_end = re.compile(re.escape(prompt) + r"\Z")
    never = re.compile(r"(?!)")
    kernel = str(board.get("console.kernel_banner", "Starting kernel"))
    console.expect(kernel, timeout=max(0.1, deadline - time.monotonic()))
    if on_kernel is not None:
        on_kernel()
    while True:
        console.expect(at_end, timeout=max(0.1, deadline - time.monotonic()))
        console.try_expect(never, 0.3)  # read for a moment; anything new means "not yet"
        if not console.pending_text.strip():
            break
    LinuxShell(console, board).sync(timeout=max(2.0, min(10.0, deadline - time.monotonic())))


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
