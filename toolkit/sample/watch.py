"""Watching the sample boot over its serial console until it reaches the wanted state.

``up`` connects once, records every byte of the boot into a transcript, and stops at:

- ``uboot``: the U-Boot prompt. Autoboot is interrupted (the profile's interrupt key, sent
  repeatedly until the prompt answers) and the sample is left sitting at ``=> ``.
- ``linux``: a Linux shell on the console. U-Boot's 2 s autoboot countdown is skipped by
  interrupting it and typing the profile's boot command, which runs the same ``bootcmd``.
- ``ssh``: as ``linux``, then dropbear's banner on the forwarded SSH port.

The serial link here is a small private helper over pyserial; the protocol layer
(``toolkit.protocol``) owns the full console dialogue for everything after ``up``.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from toolkit.boards import Board
from toolkit.errors import DeviceTimeout, PortError

# CSI sequences (busybox ash asks for the cursor position with ESC[6n), OSC titles, charset picks.
_ESCAPES = re.compile(rb"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][A-Za-z0-9]|\r")


def strip_escapes(data: bytes) -> bytes:
    """Remove terminal escape sequences and carriage returns (for matching, not the transcript)."""
    return _ESCAPES.sub(b"", data)


@dataclass
class SerialLink:
    """A serial connection with a raw transcript and deadline-bound ``expect``."""

    url: str
    port: Any = None
    transcript: bytearray = field(default_factory=bytearray)
    _seen: int = 0  # index in the stripped text from which the next expect searches

    def open(self, deadline: float) -> None:
        """Connect, retrying until ``deadline`` (QEMU binds its chardev a moment after start)."""
        import serial

        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                self.port = serial.serial_for_url(self.url, baudrate=115200, timeout=0.05)
                return
            except (serial.SerialException, OSError) as exc:
                last = exc
                time.sleep(0.05)
        raise PortError(f"cannot connect to the sample console {self.url}: {last}")

    def close(self) -> None:
        if self.port is not None:
            self.port.close()
            self.port = None

    def write(self, data: bytes) -> None:
        assert self.port is not None
        self.port.write(data)

    def read_some(self) -> bytes:
        """Whatever is available now (up to the port's 50 ms timeout); never waits for a count."""
        assert self.port is not None
        waiting = max(1, self.port.in_waiting)
        data = bytes(self.port.read(waiting))
        self.transcript += data
        return data

    def text(self) -> str:
        return strip_escapes(bytes(self.transcript)).decode("utf-8", "replace")

    def expect(
        self,
        pattern: re.Pattern[str],
        deadline: float,
        what: str,
        poke: Callable[[], None] | None = None,
    ) -> re.Match[str]:
        """Wait for ``pattern`` in the (escape-stripped) output after the last match.

        ``poke`` is called after every read (e.g. to send the autoboot interrupt key).
        """
        while True:
            match = pattern.search(self.text(), self._seen)
            if match:
                self._seen = match.end()
                return match
            if time.monotonic() >= deadline:
                raise DeviceTimeout(
                    f"the sample did not reach {what} in time",
                    last_output=self.text()[-2000:],
                )
            self.read_some()
            if poke is not None:
                poke()


def _rx(text: str) -> re.Pattern[str]:
    return re.compile(re.escape(text))


def watch_boot(
    link: SerialLink,
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
    countdown = str(board.get("console.autoboot_banner", "Hit any key to stop autoboot"))
    link.expect(_rx(banner), deadline, "the U-Boot banner")
    mark("uboot_banner")
    link.expect(_rx(countdown), deadline, "the U-Boot autoboot countdown")
    interrupt_prompt(link, board, deadline)
    mark("uboot_prompt")
    if wait == "uboot":
        return marks
    # Skipping the countdown: `boot` runs the same bootcmd autoboot would have run.
    link.write(str(board.get("console.boot_command", "boot")).encode() + b"\n")
    deadline = time.monotonic() + linux_limit
    wait_linux_prompt(link, board, deadline)
    mark("linux_shell")
    if wait == "linux":
        return marks
    wait_ssh_banner("127.0.0.1", ssh_port, deadline)
    mark("ssh_ready")
    return marks


def interrupt_prompt(link: SerialLink, board: Board, deadline: float) -> None:
    """Send the interrupt key until U-Boot's prompt answers, then sync on a fresh prompt.

    The prompt is matched after a newline: ``crc32`` output contains ``==> ``.
    """
    key = str(board.get("console.interrupt", " ")).encode()
    interval = float(board.get("console.interrupt_interval", 0.05))
    prompt = str(board.get("console.uboot_prompt", "=> "))
    last = 0.0

    def poke() -> None:
        nonlocal last
        if time.monotonic() - last >= interval:
            link.write(key)
            last = time.monotonic()

    poke()
    link.expect(re.compile(r"(?:^|\n)" + re.escape(prompt)), deadline, "the U-Boot prompt", poke)
    # Keys sent after the prompt appeared sit on the command line: clear it with Ctrl-C and
    # sync on a fresh prompt so the next command starts clean.
    time.sleep(interval)
    link.read_some()
    link.write(b"\x03")
    link.expect(re.compile(r"\n" + re.escape(prompt) + r"$"), deadline, "a fresh U-Boot prompt")


def wait_linux_prompt(link: SerialLink, board: Board, deadline: float) -> None:
    """Wait for the shell prompt at the end of the output, then check it answers a command."""
    prompt = str(board.get("console.linux_prompt", "# "))
    at_end = re.compile(re.escape(prompt) + r"$")
    link.expect(re.compile(r"Linux version|Starting kernel"), deadline, "the Linux kernel")
    while True:
        link.expect(at_end, deadline, "a Linux shell")
        # A quiet moment proves it is a prompt and not a '# ' inside a boot message.
        time.sleep(0.2)
        if not link.read_some():
            break
    token = f"rk{int(time.monotonic() * 1000) % 100000}"
    link.write(f"echo {token}-ok\n".encode())
    link.expect(re.compile(re.escape(f"{token}-ok") + r"\n.*" + re.escape(prompt)), deadline,
                "a Linux shell that answers")  # fmt: skip


def wait_ssh_banner(host: str, port: int, deadline: float) -> str:
    """Poll the forwarded port until an SSH server greets us.

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
