"""Transports: bytes to and from a device, with a deadline on every read.

``Transport`` is the contract (``read``/``write``/``close``); ``SerialTransport`` covers every
pyserial URL (``/dev/tty*``, ``socket://``, ``rfc2217://``, ``loop://``); ``open_serial(url)``
is the short way in. The scripted doubles for tests (``FakeTransport``, ``FakeUBoot``) ship in
:mod:`toolkit.testing`.
"""

from __future__ import annotations

from toolkit.transport.base import Transport, TransportBase
from toolkit.transport.serial import SerialTransport, normalize_url


def open_serial(url: str, *, baudrate: int = 115200) -> SerialTransport:
    """Open a serial port or URL; raises :class:`toolkit.errors.PortError` with a hint."""
    return SerialTransport(url, baudrate=baudrate)


__all__ = [
    "SerialTransport",
    "Transport",
    "TransportBase",
    "normalize_url",
    "open_serial",
]
