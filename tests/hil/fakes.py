"""Helpers for the plugin tests: a fake U-Boot served on a TCP port (``socket://``), a board
profile with short timeouts, and a free-port finder."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from toolkit import resources
from toolkit.testing.fake import FakeTransport, FakeUBoot


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def short_board(tmp: Path, interrupt: float = 1.0, linux: float = 3.0) -> Path:
    """es-virt with short console timeouts, so a failing transition fails in seconds."""
    text = (resources.bundled_boards_dir() / "es-virt.toml").read_text()
    text = text.replace("interrupt_timeout = 30.0", f"interrupt_timeout = {interrupt}")
    text = text.replace("linux_boot_timeout = 90.0", f"linux_boot_timeout = {linux}")
    assert f"interrupt_timeout = {interrupt}" in text, "es-virt.toml changed: update short_board"
    path = tmp / "short-es-virt.toml"
    path.write_text(text)
    return path


class FakeDeviceServer:
    """Serves a fake device on ``socket://127.0.0.1:PORT``, one client at a time (like QEMU's
    chardev). ``make()`` builds the device; it is kept across connections, as a board is."""

    def __init__(self, make: Callable[[], FakeTransport]) -> None:
        self.device = make()
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(1)
        self.port = int(self._sock.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._sock], [], [], 0.05)
            if not ready:
                continue
            conn, _ = self._sock.accept()
            with conn:
                self._bridge(conn)

    def _bridge(self, conn: socket.socket) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([conn], [], [], 0.005)
            if ready:
                data = conn.recv(4096)
                if not data:
                    return
                self.device.write(data)
            out = self.device.read(4096, 0.005)
            if out:
                with contextlib.suppress(OSError):
                    conn.sendall(out)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()


@contextlib.contextmanager
def serve(make: Callable[[], FakeTransport]) -> Iterator[FakeDeviceServer]:
    server = FakeDeviceServer(make)
    try:
        yield server
    finally:
        server.close()


def uboot_at_prompt() -> FakeUBoot:
    return FakeUBoot(at_prompt=True)


def silent() -> FakeTransport:
    return FakeTransport()
