"""How a HIL target is power-cycled: one small object per kind of power switch.

The strategy only calls ``cycle()`` / ``off()`` and reads ``can_cycle``; which button gets
pressed is decided here, once, from the target's ``power`` entry:

- ``qmp``: a virtual sample; ``toolkit.sample.reset`` (QMP ``system_reset``) while it runs, a
  fresh power-on (``on``) after a power cut or when it is stopped.
- ``command``: a bench's relay or PDU script (``reset = "..."``, optional ``off = "..."``).
- ``labgrid``: the place's power through ``labgrid-client power cycle``.
- ``manual``: nobody can press the button; the strategy falls back to soft reboots.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

from toolkit.errors import ConfigError, DeviceError


class Power:
    """No power control (``manual``): the base every switch refines."""

    kind = "manual"
    can_cycle = False
    can_off = False

    @property
    def description(self) -> str:
        return "no power control (manual)"

    def cycle(self) -> None:
        """Turn the target off and on again (a cold boot from power-on)."""
        raise DeviceError(
            "this target has no power control, so it cannot be power-cycled",
            hint="give the target a power entry in lab.toml (qmp, command or labgrid)",
        )

    def off(self) -> None:
        """Cut the power."""
        raise DeviceError("this target has no power control, so it cannot be switched off")


class SamplePower(Power):
    """A virtual sample's QMP reset. ``on`` boots it again when it is not running."""

    kind = "qmp"
    can_cycle = True
    can_off = True

    def __init__(self, state: Callable[[], Any], on: Callable[[], Any] | None = None) -> None:
        self._state = state
        self._on = on

    @property
    def name(self) -> str:
        current = self._state()
        return str(getattr(current, "name", current))

    @property
    def description(self) -> str:
        return f"QMP reset of virtual sample {self.name}"

    def cycle(self) -> None:
        from toolkit import sample

        current = sample.status(self._state())
        if current is not None and current.running:
            sample.reset(current)
            return
        if self._on is None:
            raise DeviceError(
                f"virtual sample {self.name} is not running and was not started by "
                "this test session", hint="`routerkit sample up --name NAME` starts it"
            )
        self._on()

    def off(self) -> None:
        from toolkit import sample

        current = sample.status(self._state())
        if current is not None and current.running:
            sample.power_cut(current)


class CommandPower(Power):
    """A bench's own power script (a relay, a PDU); run by the shell, bounded in time."""

    kind = "command"
    can_cycle = True

    def __init__(self, reset: str, off: str | None = None, timeout: float = 60.0) -> None:
        self.reset_cmd = reset
        self.off_cmd = off
        self.can_off = off is not None
        self.timeout = timeout

    @property
    def description(self) -> str:
        return f"power command {self.reset_cmd!r}"

    def _run(self, cmd: str) -> None:
        try:
            proc = subprocess.run(
                cmd, shell=True, capture_output=True, text=True, timeout=self.timeout
            )
        except subprocess.TimeoutExpired:
            raise DeviceError(f"power command {cmd!r} did not finish in {self.timeout:g} s") from None
        if proc.returncode != 0:
            raise DeviceError(
                f"power command {cmd!r} failed with status {proc.returncode}",
                last_output=(proc.stderr or proc.stdout)[-2000:],
            )

    def cycle(self) -> None:
        self._run(self.reset_cmd)

    def off(self) -> None:
        if self.off_cmd is None:
            super().off()
        else:
            self._run(self.off_cmd)


class LabgridPower(Power):
    """The power resource of an acquired labgrid place."""

    kind = "labgrid"
    can_cycle = True
    can_off = True

    def __init__(self, lease: Any) -> None:
        self.lease = lease

    @property
    def description(self) -> str:
        return f"labgrid power of place {self.lease.place}"

    def cycle(self) -> None:
        from toolkit import coordinator

        coordinator.power_cycle(self.lease)

    def off(self) -> None:
        from toolkit import coordinator

        coordinator.run_client(self.lease.coordinator, self.lease.place, "power", "off")


def from_target(target: Any, *, lease: Any = None, on: Callable[[], Any] | None = None,
                state: Callable[[], Any] | None = None) -> Power:
    """The power switch a :class:`toolkit.targets.Target` describes."""
    spec: dict[str, Any] = dict(target.power or {"kind": "manual"})
    kind = spec.get("kind", "manual")
    if kind == "qmp":
        name = spec.get("sample") or target.sample
        if state is None:
            if not name:
                raise ConfigError(f"target {target.name}: power kind qmp needs a sample name")

            def state() -> Any:
                return name

        return SamplePower(state, on)
    if kind == "command":
        reset = spec.get("reset") or spec.get("cycle")
        if not reset:
            raise ConfigError(f"target {target.name}: power kind command needs reset = \"...\"")
        return CommandPower(str(reset), spec.get("off"))
    if kind == "labgrid":
        if lease is None:
            raise ConfigError(f"target {target.name}: labgrid power needs an acquired place")
        return LabgridPower(lease)
    if kind == "manual":
        return Power()
    raise ConfigError(f"target {target.name}: unknown power kind {kind!r} (qmp, command, labgrid, manual)")
