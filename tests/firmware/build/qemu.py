"""A minimal QEMU runner for the firmware's own boot tests (the full lifecycle is toolkit.sample).

Serial on stdio pipes read by a thread; SSH forwarded to a free loopback port. Always use it as
a context manager: QEMU is killed by PID on exit. The machine options and the control DTB
(U-Boot's trusted FIT keys) are the sample's own (``toolkit.sample.qemu``/``dtb``).
"""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType

from tests.tools import board_under_test
from toolkit.boards import Board, load_board
from toolkit.sample.qemu import find_qemu, machine_args, verified_boot_args


def uboot(board: Board) -> Path:
    """The stock U-Boot binary the board's virtual sample runs."""
    return Path(str(board.require("qemu.uboot")))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Qemu:
    def __init__(
        self, disk: Path, workdir: Path, dtb: Path | None = None, board: Board | None = None
    ) -> None:
        """``dtb``: the control DTB (default: the sample's, trusting this user's FIT keys);
        ``board``: default the board under test."""
        self.board = board or load_board(board_under_test())
        self.disk = disk
        self.workdir = workdir
        self.dtb = dtb
        self.ssh_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._buf = bytearray()
        self._lock = threading.Lock()
        self._pos = 0

    def __enter__(self) -> Qemu:
        board = self.board
        dtb = ["-dtb", str(self.dtb)] if self.dtb else verified_boot_args(board)
        cmd = [
            find_qemu(board),
            *machine_args(board),
            *dtb,
            "-serial",
            "stdio",
            "-drive",
            f"if=none,file={self.disk},format=raw,id=d0",
            "-device",
            f"{board.get('qemu.disk_device', 'virtio-blk-device')},drive=d0",
            "-netdev",
            f"user,id=n0,hostfwd=tcp:127.0.0.1:{self.ssh_port}-:22",
            "-device",
            f"{board.get('qemu.net_device', 'virtio-net-device')},netdev=n0",
        ]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        threading.Thread(target=self._reader, daemon=True).start()
        return self

    def _reader(self) -> None:
        assert self.proc and self.proc.stdout
        while True:
            chunk = self.proc.stdout.read1(4096)
            if not chunk:
                return
            with self._lock:
                self._buf += chunk

    @property
    def transcript(self) -> str:
        with self._lock:
            return self._buf.decode(errors="replace")

    def expect(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        """Wait for ``pattern`` after the last match; returns the match."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while time.monotonic() < deadline:
            text = self.transcript
            match = rx.search(text, self._pos)
            if match:
                self._pos = match.end()
                return match
            if self.proc and self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise TimeoutError(f"{pattern!r} not seen; console tail:\n{self.transcript[-3000:]}")

    def send(self, text: str) -> None:
        assert self.proc and self.proc.stdin
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def run(self, command: str, timeout: float = 30.0) -> str:
        """Run a shell command on the console; returns its output (escape codes stripped)."""
        marker = f"RK{int(time.monotonic() * 1000)}"
        self.send(f"{command}; echo {marker}-$?-END\n")
        match = self.expect(rf"{marker}-(\d+)-END", timeout)
        start = self.transcript.rfind(command, 0, match.start())
        out = self.transcript[start + len(command) : match.start()]
        out = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", out)
        return out.split("\n", 1)[1] if "\n" in out else out

    def __exit__(self, *exc: object | TracebackType) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
