"""A tiny QMP (QEMU Machine Protocol) client over the sample's unix socket.

Only what power control needs: the capabilities handshake, ``system_reset``, ``quit``,
``query-status``, ``query-chardev`` and ``cont``. QMP is line-delimited JSON; asynchronous
events (``{"event": ...}``) can arrive between a command and its answer and are skipped.
A power cut is not a QMP command: it is SIGKILL of the QEMU process (see ``toolkit.sample``).
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from toolkit.errors import SampleError


class QMPError(SampleError):
    """QEMU answered a QMP command with an error, or the QMP socket misbehaved."""


class QMPClient:
    """One QMP session. Use as a context manager; every call has a deadline."""

    def __init__(self, path: Path, timeout: float = 5.0) -> None:
        self.path = path
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._buf = b""

    def __enter__(self) -> QMPClient:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def connect(self) -> None:
        """Connect, read the greeting and leave capabilities-negotiation mode."""
        deadline = time.monotonic() + self.timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            try:
                sock.connect(str(self.path))
                break
            except (ConnectionRefusedError, FileNotFoundError) as exc:
                # QEMU creates the socket file a moment before it listens on it.
                sock.close()
                if time.monotonic() >= deadline:
                    raise QMPError(
                        f"cannot connect to QMP socket {self.path}: {exc.strerror}"
                    ) from None
                time.sleep(0.02)
            except OSError as exc:
                sock.close()
                raise QMPError(
                    f"cannot connect to QMP socket {self.path}: {exc.strerror or exc}"
                ) from None
        self._sock = sock
        greeting = self._read_message(time.monotonic() + self.timeout)
        if "QMP" not in greeting:
            raise QMPError(f"unexpected QMP greeting: {greeting!r}")
        self.execute("qmp_capabilities")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        """Run one command and return its ``return`` value; QMPError on ``error``."""
        if self._sock is None:
            raise QMPError("QMP client is not connected")
        msg: dict[str, Any] = {"execute": command}
        if arguments:
            msg["arguments"] = arguments
        try:
            self._sock.sendall(json.dumps(msg).encode() + b"\n")
        except OSError as exc:
            raise QMPError(f"QMP {command}: {exc}") from None
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if "event" in reply:
                continue
            if "error" in reply:
                err = reply["error"]
                raise QMPError(f"QMP {command} failed: {err.get('desc', err)}")
            if "return" in reply:
                return reply["return"]

    def _read_message(self, deadline: float) -> dict[str, Any]:
        assert self._sock is not None
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise QMPError(f"QMP socket {self.path} did not answer in time")
            self._sock.settimeout(left)
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError as exc:
                raise QMPError(f"QMP socket {self.path}: {exc}") from None
            if not chunk:
                raise QMPError(f"QEMU closed the QMP socket {self.path}")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        try:
            value = json.loads(line)
        except ValueError:
            raise QMPError(f"QMP sent something that is not JSON: {line[:80]!r}") from None
        if not isinstance(value, dict):
            raise QMPError(f"QMP sent a non-object: {line[:80]!r}")
        return value

    # --- the commands the sample uses -------------------------------------------------

    def query_status(self) -> dict[str, Any]:
        """``{"running": bool, "status": "running"|"paused"|"prelaunch"|...}``."""
        result = self.execute("query-status")
        return result if isinstance(result, dict) else {}

    def system_reset(self) -> None:
        self.execute("system_reset")

    def cont(self) -> None:
        self.execute("cont")

    def quit(self) -> None:
        """Ask QEMU to exit. It may close the socket before answering; that is success."""
        try:
            self.execute("quit")
        except QMPError as exc:
            if "closed" not in str(exc):
                raise

    def query_chardev(self) -> list[dict[str, Any]]:
        result = self.execute("query-chardev")
        return result if isinstance(result, list) else []

    def pty_path(self, label: str = "serial0") -> str | None:
        """The host pty of a ``-serial pty`` chardev (``filename`` is ``pty:/dev/pts/N``)."""
        for dev in self.query_chardev():
            name = str(dev.get("filename", ""))
            if dev.get("label") == label and name.startswith("pty:"):
                return name[4:]
        return None
