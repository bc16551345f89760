"""A bare U-Boot in QEMU (no disk) for the transfer benchmarks: start, prompt, commands."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BareUBoot:
    """QEMU virt + stock U-Boot; ``sock`` is the console (one client at a time)."""

    def __init__(self, tftp_dir: Path | None = None) -> None:
        from toolkit.boards import load_board
        from toolkit.sample.qemu import uboot_pflash

        self.port = _free_port()
        self.port_direct = self.port  # the chardev itself, when ``port`` points at a proxy
        net = "user,id=n0" + (f",tftp={tftp_dir}" if tftp_dir else "")
        cmd = ["qemu-system-aarch64", "-machine", "virt", "-cpu", "cortex-a57", "-m", "1024",
               "-nographic", "-monitor", "none", "-nodefaults",
               "-drive", f"if=pflash,format=raw,readonly=on,file={uboot_pflash(load_board())}",
               "-netdev", net, "-device", "virtio-net-device,netdev=n0",
               "-chardev", f"socket,id=ser0,host=127.0.0.1,port={self.port},server=on,wait=on,nodelay=on",
               "-serial", "chardev:ser0"]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        # Bytes that came in the same read as an expected text (loady's first "C" arrives
        # with its banner): a transfer must get them, or it waits ~3 s for the next "C".
        self.pending = b""
        self.sock = self.connect()
        self.prompt()

    def connect(self) -> socket.socket:
        for _ in range(200):
            try:
                s = socket.create_connection(("127.0.0.1", self.port))
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return s
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("QEMU chardev did not come up")

    def expect(self, pattern: bytes, timeout: float = 30.0) -> bytes:
        buf, self.pending = self.pending, b""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.sock.settimeout(max(0.01, end - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                break
            if not data:
                break
            buf += data
            if pattern in buf:
                cut = buf.index(pattern) + len(pattern)
                buf, self.pending = buf[:cut], buf[cut:]
                return buf
        raise TimeoutError(f"no {pattern!r}: {buf[-300:]!r}")

    def prompt(self) -> None:
        buf = b""
        end = time.monotonic() + 30
        while time.monotonic() < end:
            self.sock.sendall(b" ")
            self.sock.settimeout(0.05)
            with contextlib.suppress(TimeoutError):
                buf += self.sock.recv(65536)
            if b"=> " in buf:
                break
        self.cmd("echo synced")

    def link(self) -> SockLink:
        """The console as a transfer link, starting with the bytes ``expect`` left over."""
        pending, self.pending = self.pending, b""
        return SockLink(self.sock, pending)

    def cmd(self, line: str, timeout: float = 60.0) -> str:
        self.pending = b""
        self.sock.sendall(line.encode() + b"\n")
        return self.expect(b"\n=> ", timeout).decode(errors="replace")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        self.proc.kill()
        self.proc.wait()


class SockLink:
    def __init__(self, sock: socket.socket, pending: bytes = b"") -> None:
        self.sock = sock
        self.pending = pending

    def read_raw(self, size: int, timeout: float) -> bytes:
        if self.pending:
            data, self.pending = self.pending[:size], self.pending[size:]
            return data
        self.sock.settimeout(max(timeout, 0.001))
        try:
            return self.sock.recv(size)
        except TimeoutError:
            return b""

    def write_raw(self, data: bytes) -> None:
        self.sock.sendall(data)


@contextlib.contextmanager
def bare_uboot(tftp_dir: Path | None = None) -> Iterator[BareUBoot]:
    os.environ.setdefault("ROUTERKIT_CACHE", str(Path.home() / ".cache" / "routerkit-test"))
    ub = BareUBoot(tftp_dir)
    try:
        yield ub
    finally:
        ub.close()
