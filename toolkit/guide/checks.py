"""Automatic assembly checks, looked up by name from the guide (``kind: uboot_banner``).

A check kind is a function ``run(device, params) -> CheckResult`` plus the parameters it accepts
(the loader validates them, with line numbers, before anything runs). Kinds live in a
:class:`CheckRegistry` built by :func:`default_registry`; the engine receives the registry by
injection, so tests and other boards can add kinds without touching a global.

The device is reached only through :class:`Device`, a bag of injected callables: unit tests pass
fakes, the CLI passes :func:`toolkit.guide.device.sample_device` (the virtual sample) — the check
code never knows which.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from toolkit.errors import RouterkitError


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str  # one line for the tester and the build log
    data: dict[str, Any] = field(default_factory=dict)  # e.g. the selftest JSON, the banner


class SerialLink(Protocol):
    """The two primitives a check needs from a console: read what is there, write bytes."""

    def read_available(self, timeout: float) -> bytes: ...

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


@dataclass
class Device:
    """How checks reach the device. Every member is optional; a check that needs a missing one
    fails with a clear detail instead of raising (a check is evidence, never a crash)."""

    description: str = "device"
    #: opens the serial console (already connected, nothing read yet)
    open_console: Callable[[], SerialLink] | None = None
    #: power-cycles or resets the device (QMP ``system_reset`` on the virtual sample)
    reset: Callable[[], None] | None = None
    #: runs a shell command on the device (SSH or serial), returns (exit status, output)
    shell: Callable[[str, float], tuple[int, str]] | None = None
    #: board console settings (``uboot_banner``, ``interrupt_timeout``...)
    console_settings: Mapping[str, Any] = field(default_factory=dict)
    #: why the device is unreachable, if known up front (e.g. "the sample is not running")
    unavailable: str | None = None


@dataclass(frozen=True)
class Param:
    type: str  # "str", "number", "bool", "list", "any"
    required: bool = False
    help: str = ""


@dataclass(frozen=True)
class CheckKind:
    name: str
    summary: str
    run: Callable[[Device, Mapping[str, Any]], CheckResult]
    params: Mapping[str, Param] = field(default_factory=dict)


class CheckRegistry:
    """Check kinds by name. ``confirm`` (the manual yes/no) is built in and never run here."""

    def __init__(self) -> None:
        self._kinds: dict[str, CheckKind] = {}

    def register(self, kind: CheckKind) -> None:
        if kind.name in self._kinds or kind.name == "confirm":
            raise ValueError(f"check kind {kind.name!r} registered twice")
        self._kinds[kind.name] = kind

    def names(self) -> list[str]:
        return ["confirm", *sorted(self._kinds)]

    def params(self, name: str) -> Mapping[str, Param] | None:
        """The parameters a kind accepts; None for an unknown kind."""
        if name == "confirm":
            return {}
        kind = self._kinds.get(name)
        return None if kind is None else kind.params

    def get(self, name: str) -> CheckKind:
        return self._kinds[name]

    def run(self, name: str, device: Device, params: Mapping[str, Any]) -> CheckResult:
        """Run one automatic check. Device errors become a failed result, never an exception."""
        kind = self._kinds[name]
        if device.unavailable:
            return CheckResult(False, device.unavailable)
        try:
            return kind.run(device, params)
        except RouterkitError as err:
            return CheckResult(False, str(err))
        except OSError as err:  # a refused socket, a vanished pty
            return CheckResult(False, f"cannot reach the {device.description}: {err}")


# --- uboot_banner ---------------------------------------------------------------------------

SETTLE_POLL = 2.0  # seconds between selftest runs while settling

_ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


def check_uboot_banner(device: Device, params: Mapping[str, Any]) -> CheckResult:
    """Reset the device with the console attached and watch for the U-Boot banner line.

    The banner is the first thing U-Boot prints, so seeing it proves the serial wiring (TX/RX the
    right way round, GND shared, levels right) and that the SoC runs its boot loader."""
    if device.open_console is None:
        return CheckResult(False, "no serial console configured for this device")
    if device.reset is None:
        return CheckResult(False, "cannot reset the device: no power control configured")
    banner = str(params.get("banner") or device.console_settings.get("uboot_banner") or "U-Boot ")
    timeout = float(params.get("timeout") or device.console_settings.get("interrupt_timeout") or 30)
    link = device.open_console()
    seen = b""
    try:
        # Drain what is already buffered so an old banner cannot pass the check.
        drain_until = time.monotonic() + 2.0
        while link.read_available(0.1) and time.monotonic() < drain_until:
            pass
        device.reset()
        deadline = time.monotonic() + timeout
        needle = banner.encode()
        while time.monotonic() < deadline:
            seen += link.read_available(0.2)
            clean = _ANSI.sub(b"", seen)
            at = clean.find(needle)
            if at >= 0:
                end = clean.find(b"\n", at)
                if end < 0 and time.monotonic() + 0.5 < deadline:
                    continue  # the version string is still arriving
                line = clean[at : end if end >= 0 else None].decode(errors="replace").strip()
                return CheckResult(True, f"serial console shows: {line}", {"banner": line})
    finally:
        link.close()
    tail = _ANSI.sub(b"", seen).decode(errors="replace").strip().splitlines()[-3:]
    if not seen:
        why = "nothing at all on the serial console — check GND, and TX/RX swapped"
    else:
        why = f"no {banner.strip()!r} in what arrived (wrong baud rate?): {' | '.join(tail)}"
    return CheckResult(False, f"{why} (waited {timeout:.0f} s after reset)")


# --- selftest -------------------------------------------------------------------------------


def _dig(data: Any, dotted: str) -> Any:
    for key in dotted.split("."):
        if isinstance(data, dict) and key in data:
            data = data[key]
        elif isinstance(data, list) and key.isdigit() and int(key) < len(data):
            data = data[int(key)]
        else:
            raise KeyError(dotted)
    return data


def _extract_json(output: str) -> Any:
    """The selftest prints one JSON object; consoles may wrap it in echo and prompts."""
    start, end = output.find("{"), output.rfind("}")
    if start < 0 or end < start:
        raise ValueError("no JSON object in the output")
    return json.loads(output[start : end + 1])


def check_selftest(device: Device, params: Mapping[str, Any]) -> CheckResult:
    """Run the on-device ``selftest`` and compare one field of its JSON with what we expect."""
    if device.shell is None:
        return CheckResult(False, "no shell access (SSH or console) configured for this device")
    command = str(params.get("command") or "selftest")
    path = str(params["field"])
    expect = params.get("expect")
    accepted = expect if isinstance(expect, list) else [expect]
    timeout = float(params.get("timeout") or 30)
    # A device that has just booted may still be bringing its network up (DHCP): with
    # ``settle``, a wrong value is asked again for that many seconds before it counts.
    settle_until = time.monotonic() + float(params.get("settle") or 0)
    while True:
        status, output = device.shell(command, timeout)
        if time.monotonic() >= settle_until or expect is None:
            break
        try:
            if status == 0 and _dig(_extract_json(output), path) in accepted:
                break
        except (ValueError, KeyError):
            pass
        time.sleep(SETTLE_POLL)
    if status != 0:
        last = output.strip().splitlines()[-1:] or ["(no output)"]
        return CheckResult(False, f"`{command}` exited with {status}: {last[0]}")
    try:
        report = _extract_json(output)
        value = _dig(report, path)
    except ValueError as err:
        return CheckResult(False, f"`{command}` did not print JSON: {err}")
    except KeyError:
        return CheckResult(False, f"`{command}` reports no {path!r}", {"selftest": report})
    shown = json.dumps(value)
    if expect is None or value in accepted:
        return CheckResult(True, f"{path} = {shown}", {"selftest": report, "value": value})
    want = " or ".join(json.dumps(a) for a in accepted)
    return CheckResult(False, f"{path} = {shown}, expected {want}", {"selftest": report})


def default_registry() -> CheckRegistry:
    """The check kinds routerkit ships."""
    reg = CheckRegistry()
    reg.register(
        CheckKind(
            "uboot_banner",
            "reset the device and watch the serial console for the U-Boot banner",
            check_uboot_banner,
            {
                "banner": Param("str", help="text that starts the banner (board default)"),
                "timeout": Param("number", help="seconds to wait after the reset"),
            },
        )
    )
    reg.register(
        CheckKind(
            "selftest",
            "run selftest on the device and check one field of its JSON report",
            check_selftest,
            {
                "field": Param("str", required=True, help="dotted path, e.g. fan.status"),
                "expect": Param("any", help="accepted value, or a list of accepted values"),
                "command": Param("str", help="command to run (default: selftest)"),
                "timeout": Param("number", help="seconds for the command"),
                "settle": Param(
                    "number", help="keep asking for this long while the value is wrong (fresh boot)"
                ),
            },
        )
    )
    return reg
