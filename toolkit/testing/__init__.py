"""Test tools shipped with routerkit, because users test their benches with them too.

- :mod:`toolkit.testing.fake`: scripted serial transports (``FakeTransport``, a receive queue
  and a transmit log with pattern responders) and ``FakeUBoot``, a tiny simulated U-Boot.
- :mod:`toolkit.testing.fake_shell`: ``FakeShell``, a tiny busybox shell that answers the
  shell driver's framed commands (with faults: a garbled echo, output or end marker).
- :mod:`toolkit.testing.fake_board`: ``FakeBoard``, a whole board in memory for the serial
  flash (U-Boot with real YMODEM, a disk with A/B slots, then Linux) whose ``console`` and
  ``power`` are drop-in factories for :func:`toolkit.journeys.flash_serial.flash`.
- :mod:`toolkit.testing.fake_ssh`: ``FakeSSHDevice``, an in-memory device behind SSH (files,
  A/B slots, fwinfo, sysupgrade) whose ``connect`` is a drop-in ``connect_target`` factory.
- :mod:`toolkit.testing.dropbear`: a light SSH device on loopback (a real dropbear running the
  firmware's on-device scripts).
- :mod:`toolkit.testing.serial_proxy`: a fault-injecting serial link (noise, drops,
  duplicates, cuts, a real baud rate) to put between routerkit and a serial server.
"""

from toolkit.testing.fake import FakeTransport, FakeUBoot, Responder
from toolkit.testing.fake_board import FakeBoard
from toolkit.testing.fake_shell import FakeShell
from toolkit.testing.serial_proxy import Faults, ProxyStats, SerialFaultProxy

__all__ = [
    "FakeBoard",
    "FakeShell",
    "FakeTransport",
    "FakeUBoot",
    "Faults",
    "ProxyStats",
    "Responder",
    "SerialFaultProxy",
]
