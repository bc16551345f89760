"""Serial transport: anything pyserial's ``serial_for_url`` can open.

``/dev/ttyUSB0`` (a real bench), ``socket://127.0.0.1:P`` (the virtual sample's QEMU chardev),
``rfc2217://host:port`` (a port shared by ser2net) and ``loop://`` (tests) all work the same.

How reads stay fast: ports that have a file descriptor (local ttys, ``socket://``) are put in
non-blocking mode and waited on with ``select`` for exactly the time left, then drained of
whatever is there. Ports without one (``rfc2217://``, ``loop://``) are read with a short fixed
pyserial timeout, which returns the moment the first byte arrives; the read timeout is set once
at open, because changing it on an RFC2217 port renegotiates the line settings over the network.
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import select
import time
from typing import Any

import serial

from toolkit.errors import PortError
from toolkit.transport import trace
from toolkit.transport.base import TransportBase

log = logging.getLogger(__name__)

# Granularity of reads on ports without a file descriptor. Data wakes the read immediately;
# this only bounds how far past its deadline a read that got nothing may return.
_POLL = 0.01


def normalize_url(url: str) -> str:
    """Return ``url`` as pyserial should see it.

    RFC2217 URLs get ``ign_set_control``: ser2net on a pty never acknowledges SET_CONTROL
    (there are no modem lines), and without the option pyserial times out opening the port.
    """
    if url.startswith("rfc2217://") and "ign_set_control" not in url:
        url += ("&" if "?" in url else "?") + "ign_set_control"
    return url


def _hint_for(url: str, exc: BaseException) -> str:
    """A helpful word for the common causes of an open failure."""
    err = exc.__context__ if isinstance(exc.__context__, OSError) else exc
    code = getattr(err, "errno", None)
    text = str(exc).lower()
    if "://" in url and ("refused" in text or code == errno.ECONNREFUSED):
        return "nothing is listening there: is the sample up / is ser2net running?"
    if code == errno.ENOENT or "no such file" in text:
        return "no such device: is the USB-serial adapter plugged in? (see ls /dev/serial/by-id/)"
    if code == errno.EACCES or "permission denied" in text:
        return "permission denied: add your user to the 'dialout' group and log in again"
    if code == errno.EBUSY or "lock" in text or "busy" in text:
        return "the port is in use by another program (screen, minicom, another routerkit?)"
    if "timed out" in text or "timeout" in text:
        return "the other end did not answer: check host, port and firewall"
    return "check the port name or URL and the cable"


class SerialTransport(TransportBase):
    """A :class:`~toolkit.transport.base.Transport` over a pyserial port.

    ``SerialTransport("socket://127.0.0.1:4321")`` opens at once; errors are
    :class:`~toolkit.errors.PortError` with a hint. Use :meth:`from_serial` to wrap an
    already-open ``serial.Serial`` (pyserial habit: tools take an open instance).
    """

    def __init__(self, url: str, *, baudrate: int = 115200, **serial_kwargs: Any) -> None:
        self.url = normalize_url(url)
        kwargs: dict[str, Any] = {"baudrate": baudrate, "timeout": _POLL, **serial_kwargs}
        if "://" not in url:
            # Local ttys: refuse to share the port with a running minicom/screen.
            kwargs.setdefault("exclusive", True)
        try:
            port = serial.serial_for_url(self.url, **kwargs)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise PortError(
                f"cannot open serial port {url}: {exc}", hint=_hint_for(url, exc)
            ) from exc
        log.debug("opened serial port %s at %d baud", self.url, baudrate)
        self._setup(port)

    @classmethod
    def from_serial(cls, port: serial.SerialBase) -> SerialTransport:
        """Wrap an already-open pyserial port. Its read timeout is changed once, here."""
        self = cls.__new__(cls)
        self.url = str(getattr(port, "portstr", None) or port.port)
        self._setup(port)
        return self

    def _setup(self, port: serial.SerialBase) -> None:
        # Any: every URL handler has in_waiting, but the stubs only give it to serial.Serial.
        self._port: Any = port
        self._closed = False
        self._fd: int | None
        try:
            self._fd = int(port.fileno())  # type: ignore[attr-defined]
        except (AttributeError, OSError, io.UnsupportedOperation, ValueError):
            self._fd = None
        if self._fd is not None:
            # Non-blocking reads; we wait with select ourselves (exact deadlines).
            port.timeout = 0
        elif port.timeout != _POLL:
            port.timeout = _POLL

    @property
    def serial(self) -> serial.SerialBase:
        """The underlying pyserial port (for modem lines, break, baud changes)."""
        return self._port

    def read(self, max_bytes: int, timeout: float) -> bytes:
        """Return what is available (≥ 1 byte) as soon as it arrives, or ``b""`` on timeout."""
        if self._closed:
            raise PortError(f"serial port {self.url} is closed")
        max_bytes = max(1, max_bytes)
        try:
            if self._fd is not None:
                data = self._read_fd(max_bytes, timeout)
            else:
                data = self._read_polled(max_bytes, timeout)
        except (serial.SerialException, OSError) as exc:
            log.debug("serial link %s dropped while reading: %s", self.url, exc)
            raise PortError(
                f"serial link {self.url} dropped while reading: {exc}",
                hint="cable unplugged, board powered off, or the sample/ser2net stopped",
            ) from exc
        trace.record(self.url, trace.RX, data)
        return data

    def _read_fd(self, max_bytes: int, timeout: float) -> bytes:
        assert self._fd is not None
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            left = max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self._fd], [], [], left)
            if ready:
                # Readable with nothing to read means the other end hung up; pyserial raises
                # SerialException for that ("socket disconnected" / "device reports readiness").
                data = bytes(self._port.read(max_bytes))
                if data:
                    return data
            if time.monotonic() >= deadline:
                return b""

    def _read_polled(self, max_bytes: int, timeout: float) -> bytes:
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            waiting = self._port.in_waiting
            if waiting:
                return bytes(self._port.read(min(waiting, max_bytes)))
            if time.monotonic() >= deadline:
                return b""
            first = bytes(self._port.read(1))  # wakes as soon as one byte is there
            if first:
                waiting = self._port.in_waiting if max_bytes > 1 else 0
                if waiting:
                    first += bytes(self._port.read(min(waiting, max_bytes - 1)))
                return first

    def write(self, data: bytes) -> None:
        """Send all of ``data``; a dropped link raises :class:`~toolkit.errors.PortError`."""
        if self._closed:
            raise PortError(f"serial port {self.url} is closed")
        try:
            self._port.write(data)
        except (serial.SerialException, OSError) as exc:
            log.debug("serial link %s dropped while writing: %s", self.url, exc)
            raise PortError(
                f"serial link {self.url} dropped while writing: {exc}",
                hint="cable unplugged, board powered off, or the sample/ser2net stopped",
            ) from exc
        trace.record(self.url, trace.TX, bytes(data))

    def close(self) -> None:
        """Close the port. Idempotent."""
        if not self._closed:
            self._closed = True
            log.debug("closed serial port %s", self.url)
            # Closing a port that already went away is not an error.
            with contextlib.suppress(serial.SerialException, OSError):
                self._port.close()

    def __repr__(self) -> str:
        return f"SerialTransport({self.url!r})"
