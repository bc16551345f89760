"""Byte links over socket pairs for the protocol tests."""

from __future__ import annotations

import socket


class SockLink:
    """The Link protocol (read_raw/write_raw) over one end of a socket pair."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def read_raw(self, size: int, timeout: float) -> bytes:
        self.sock.settimeout(max(timeout, 0.001))
        try:
            return self.sock.recv(size)
        except (TimeoutError, BlockingIOError):
            return b""

    def write_raw(self, data: bytes) -> None:
        self.sock.sendall(data)
