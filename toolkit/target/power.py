"""How a device under test is powered: one small object per kind of power switch.

Every caller (the serial flash, the HIL strategy, ``routerkit sample reset``, the guide's
live checks) asks :func:`from_target` for the switch a target describes and calls
``cycle()`` (alias ``reset()``), ``on()`` or ``off()``; which button gets pressed is decided
here, once, from the target's ``power`` entry:

- ``qmp``: a virtual sample; QMP ``system_reset`` on its socket while it runs, and an ``on``
  callback (a fresh ``sample up``) after a power cut or when it is stopped.
- ``command``: a bench's relay or PDU script (``reset = "..."``, optional ``on``/``off``),
  run by ``/bin/sh -c`` so ``usbrelay R1=0 && sleep 1 && usbrelay R1=1`` works, bounded in
  time, its output captured (never printed) and kept in :attr:`Power.last_run`.
- ``labgrid``: the acquired place's power through ``labgrid-client power ...``.
- ``manual``: a person presses the button; ``ask`` tells them (the CLI's reporter). Without
  ``ask`` (a non-interactive run) nobody can, and ``can_cycle`` is False.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.errors import ConfigError, ConsentRequired, DeviceError, SampleError

log = logging.getLogger(__name__)

#: A bench's power script gets this long before it is killed (a relay, a PDU over the network).
COMMAND_TIMEOUT = 60.0
#: Captured output kept per run: enough for an error report, bounded for the journal.
OUTPUT_LIMIT = 4000


@dataclass(frozen=True)
class PowerRun:
    """What one press of the button did (a command's exit status and captured output)."""

    action: str  # cycle | on | off
    how: str  # the command, "QMP system_reset", "labgrid power cycle", "asked the tester"
    seconds: float
    exit_status: int | None = None
    output: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "how": self.how, "seconds": self.seconds,
                "exit_status": self.exit_status, "output": self.output}  # fmt: skip


class Power:
    """No power control: the base every switch refines (``manual`` without anyone to ask)."""

    kind = "manual"
    can_cycle = False
    can_off = False
    last_run: PowerRun | None = None

    @property
    def description(self) -> str:
        return "no power control (manual)"

    def cycle(self) -> None:
        """Turn the target off and on again (a cold boot from power-on)."""
        raise ConsentRequired(
            "this target has no power control and nobody may be asked to reset it",
            hint="run interactively, or give the target a power entry in lab.toml (qmp, command or labgrid)",
        )

    def reset(self) -> None:
        """Same as :meth:`cycle`: the reset button of a board is a power cycle to us."""
        self.cycle()

    def on(self) -> None:
        """Switch the power on (nothing to do when it cannot be switched off)."""

    def off(self) -> None:
        """Cut the power."""
        raise DeviceError(f"{self.description}: the power cannot be switched off")

    def _done(self, action: str, how: str, start: float, **extra: Any) -> None:
        self.last_run = PowerRun(action, how, round(time.monotonic() - start, 3), **extra)


class ManualPower(Power):
    """A person at the bench presses the button; ``ask`` tells them to (e.g. a reporter)."""

    def __init__(self, ask: Callable[[str], None] | None = None, name: str = "the device") -> None:
        self._ask = ask
        self.name = name
        self.can_cycle = ask is not None

    @property
    def description(self) -> str:
        return "manual reset (asks the tester)" if self._ask else "no power control (manual)"

    def cycle(self) -> None:
        if self._ask is None:
            raise ConsentRequired(
                f"{self.name} needs a manual reset, and this run may not ask",
                hint="run interactively, or give the target a power command in lab.toml",
            )
        start = time.monotonic()
        self._ask(f"press the reset button of {self.name} now")
        self._done("cycle", "asked the tester", start)


class QMPPower(Power):
    """A virtual sample's reset button through its QMP socket.

    ``socket``: the QMP socket to reset through. ``state``: how to find the sample (a callable
    returning a sample name or ``SampleState``), for ``off`` (a power cut) and, without a
    socket, for ``cycle``: then a sample that is not running is powered on with ``on`` (the
    pytest session's ``sample up``) rather than reset.
    """

    kind = "qmp"
    can_cycle = True

    def __init__(
        self,
        socket: str | Path | None = None,
        *,
        name: str = "",
        state: Callable[[], Any] | None = None,
        on: Callable[[], Any] | None = None,
        timeout: float = 5.0,
    ) -> None:
        if socket is None and state is None:
            raise ConfigError("QMP power needs the sample's QMP socket or the sample")
        self.socket = Path(socket) if socket is not None else None
        self._name = name
        self._state = state
        self._on = on
        self.timeout = timeout
        self.can_off = state is not None

    @property
    def name(self) -> str:
        if self._name:
            return self._name
        if self._state is not None:
            current = self._state()
            return str(getattr(current, "name", current))
        return self._name or str(self.socket)

    @property
    def description(self) -> str:
        return f"QMP reset of virtual sample {self.name}"

    def _running(self) -> Any:
        """The sample's current state if it runs, else None (only with ``state``)."""
        from toolkit import sample

        assert self._state is not None
        current = sample.status(self._state())
        return current if current is not None and current.running else None

    def cycle(self) -> None:
        start = time.monotonic()
        socket = self.socket
        if socket is None and self._state is not None:
            current = self._running()
            if current is None:
                self._power_on(start)
                return
            socket = Path(current.qmp)
        assert socket is not None
        self._qmp(socket, "system_reset")
        self._done("cycle", "QMP system_reset", start)

    def on(self) -> None:
        if self._state is not None and self._running() is None:
            self._power_on(time.monotonic())

    def off(self) -> None:
        if self._state is None:
            super().off()
            return
        from toolkit import sample

        start = time.monotonic()
        current = self._running()
        if current is not None:
            sample.power_cut(current)
        self._done("off", "power cut (QEMU killed)", start)

    def _power_on(self, start: float) -> None:
        if self._on is None:
            raise DeviceError(
                f"virtual sample {self.name} is not running and was not started by this session",
                hint="`routerkit sample up --name NAME` starts it",
            )
        self._on()
        self._done("on", "sample up", start)

    def _qmp(self, socket: Path, command: str) -> None:
        from toolkit.sample.qmp import QMPClient, QMPError

        try:
            with QMPClient(socket, timeout=self.timeout) as client:
                client.execute(command)
        except QMPError as exc:
            raise SampleError(
                f"sample {self.name!r} did not accept {command}: {exc.message}",
                hint="with --serial socket the sample waits for its first console client",
            ) from None


class CommandPower(Power):
    """A bench's own power script (a relay, a PDU), run by ``/bin/sh -c``, bounded in time.

    The output is captured (stdout and stderr together), logged at debug level and kept in
    :attr:`last_run`: a command that talks must never end up in front of ``--json`` output.
    """

    kind = "command"
    can_cycle = True

    def __init__(
        self, reset: str, *, off: str | None = None, on: str | None = None,
        timeout: float = COMMAND_TIMEOUT,
    ) -> None:  # fmt: skip
        self.reset_cmd = reset
        self.off_cmd = off
        self.on_cmd = on
        self.can_off = off is not None
        self.timeout = timeout

    @property
    def description(self) -> str:
        return f"power command {self.reset_cmd!r}"

    def cycle(self) -> None:
        self._run("cycle", self.reset_cmd)

    def on(self) -> None:
        if self.on_cmd is not None:
            self._run("on", self.on_cmd)

    def off(self) -> None:
        if self.off_cmd is None:
            super().off()
        else:
            self._run("off", self.off_cmd)

    def _run(self, action: str, cmd: str) -> None:
        start = time.monotonic()
        # A session of its own, so a timeout kills the whole pipeline (`sleep` included),
        # not just the shell while its children keep our pipe open.
        proc = subprocess.Popen(
            ["/bin/sh", "-c", cmd], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            raw, _ = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raw, _ = proc.communicate()
            output = _text(raw)
            self._done(action, cmd, start, exit_status=None, output=output)
            raise DeviceError(
                f"power command {cmd!r} did not finish in {self.timeout:g} s (killed)",
                hint="check the relay/PDU and the command in lab.toml",
                last_output=output or None,
            ) from None
        output = _text(raw)
        self._done(action, cmd, start, exit_status=proc.returncode, output=output)
        log.debug("power command %r exited %s: %s", cmd, proc.returncode, output)
        if proc.returncode != 0:
            raise DeviceError(
                f"power command {cmd!r} failed with exit status {proc.returncode}",
                hint="run it by hand at the bench to see why; its output is in the error details",
                last_output=output or None,
            )


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
        self._client("cycle")

    def on(self) -> None:
        self._client("on")

    def off(self) -> None:
        self._client("off")

    def _client(self, action: str) -> None:
        from toolkit import coordinator

        start = time.monotonic()
        output = coordinator.run_client(self.lease.coordinator, self.lease.place, "power", action)
        self._done(
            action, f"labgrid-client power {action}", start, exit_status=0, output=_text(output)
        )


def from_target(
    target: Any,
    *,
    lease: Any = None,
    on: Callable[[], Any] | None = None,
    state: Callable[[], Any] | None = None,
    ask: Callable[[str], None] | None = None,
) -> Power:
    """The power switch a :class:`toolkit.targets.Target` describes.

    ``lease``: the acquired labgrid place (labgrid power); ``state``/``on``: how the pytest
    session finds and starts its virtual sample; ``ask``: how to ask a person to press the
    reset button (manual power; None in a run that may not ask).
    """
    spec: dict[str, Any] = dict(target.power or {"kind": "manual"})
    kind = spec.get("kind", "manual")
    if kind == "qmp":
        sample_name = spec.get("sample") or target.sample
        if state is None and sample_name:

            def state() -> Any:
                return sample_name

        if state is None and not spec.get("socket"):
            raise ConfigError(
                f"target {target.name}: power kind qmp needs a sample name or a socket"
            )
        return QMPPower(spec.get("socket") or None, name=str(sample_name or ""), state=state, on=on)
    if kind == "command":
        reset = spec.get("reset") or spec.get("cycle")
        if not reset:
            raise ConfigError(f'target {target.name}: power kind command needs reset = "..."')
        timeout = float(spec.get("timeout", COMMAND_TIMEOUT))
        return CommandPower(str(reset), off=_opt(spec, "off"), on=_opt(spec, "on"), timeout=timeout)
    if kind == "labgrid":
        if lease is None:
            raise ConfigError(f"target {target.name}: labgrid power needs an acquired place")
        return LabgridPower(lease)
    if kind == "manual":
        return ManualPower(ask, name=f"target {target.name}")
    raise ConfigError(
        f"target {target.name}: unknown power kind {kind!r} (qmp, command, labgrid, manual)"
    )


def _opt(spec: dict[str, Any], key: str) -> str | None:
    value = spec.get(key)
    return str(value) if value else None


def _text(raw: bytes | str | None) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else (raw or "")
    return text[-OUTPUT_LIMIT:]


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
