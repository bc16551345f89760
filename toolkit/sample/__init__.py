"""The virtual engineering samples: QEMU + stock U-Boot + routerkit's reference firmware, one per
board profile with a ``[qemu]`` section (es-virt: arm64 + virtio disk; es-arm32: 32-bit ARM +
NVMe).

Library API (the CLI ``routerkit sample`` is a thin layer over it)::

    state = up(name="default", board="es-virt", wait="ssh")   # -> SampleState
    status("default")      # SampleState (``running`` checked against the PID) or None
    reset("default")       # QMP system_reset
    power_cut("default")   # SIGKILL QEMU; the disk stays, `up` powers it on again
    down("default")        # stop QEMU (and ser2net), remove the state; no process is left
    list_samples()

Every function taking a ``name`` also accepts a :class:`SampleState`, whose recorded directory
is then used (useful when the data dir of the caller differs, e.g. across pytest tests).
"""

from toolkit.sample.lifecycle import (
    SERIAL_MODES,
    WAIT_STATES,
    down,
    list_samples,
    power_cut,
    reset,
    status,
    up,
)
from toolkit.sample.state import SampleState

__all__ = [
    "SERIAL_MODES",
    "WAIT_STATES",
    "SampleState",
    "down",
    "list_samples",
    "power_cut",
    "reset",
    "status",
    "up",
]
