"""Test tools shipped with routerkit, because users test their benches with them too.

:mod:`toolkit.testing.serial_proxy` is a fault-injecting serial link (noise, drops,
duplicates, cuts, a real baud rate) to put between routerkit and a serial server.
"""

from toolkit.testing.serial_proxy import Faults, ProxyStats, SerialFaultProxy

__all__ = ["Faults", "ProxyStats", "SerialFaultProxy"]
