"""Labs that outgrow one bench: places reserved through labgrid's coordinator.

We do not build a lab scheduler. labgrid already has one (``labgrid-coordinator``, exporters
that publish serial ports through ser2net/RFC 2217). routerkit drives it through the
``labgrid-client`` command line, whose behaviour and messages are labgrid's stable user
interface, and turns an acquired place into a :class:`toolkit.targets.Target`.

``--routerkit-target labgrid:PLACE`` (the pytest plugin) uses :func:`lease`, which acquires
the place, yields its target and always releases it, also on Ctrl-C; ``--target
labgrid:PLACE`` of the commands holds it for the command's duration.

A command that holds a place while it runs another program (``routerkit bisect`` running the
developer's test) names the place in ``$ROUTERKIT_LABGRID_HELD``. labgrid refuses to acquire a
place twice, even to its holder, so routerkit in that program uses the held place as it is:
it neither acquires nor releases it (:attr:`Lease.owned`).
"""

from __future__ import annotations

import ast
import contextlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.errors import (
    ConfigError,
    NotFoundError,
    PlaceError,
    RouterkitError,
    ToolMissingError,
)

DEFAULT_COORDINATOR = "127.0.0.1:20408"
#: The place the routerkit command that started this process holds for it (see above).
HELD_ENV = "ROUTERKIT_LABGRID_HELD"
#: What :func:`_explain` says when labgrid finds the place already acquired by this very user
#: on this very host (labgrid's own words: "You have already acquired place ...").
_YOURS = "labgrid place {} is already acquired by you (another session holds it)"


@dataclass
class Lease:
    place: str
    coordinator: str
    resources: list[dict[str, Any]] = field(default_factory=list)
    #: False: the command that started this process holds the place; not ours to release
    owned: bool = True

    @property
    def serial_url(self) -> str | None:
        for res in self.resources:
            if res.get("cls") == "NetworkSerialPort":
                params = res.get("params", {})
                host, port = params.get("host"), params.get("port")
                if host and port:
                    return f"rfc2217://{host}:{port}?ign_set_control"
        return None

    @property
    def has_power(self) -> bool:
        return any("Power" in str(res.get("cls", "")) for res in self.resources)


def _client() -> str:
    beside = Path(sys.executable).with_name("labgrid-client")
    if beside.exists():
        return str(beside)
    found = shutil.which("labgrid-client")
    if not found:
        raise ToolMissingError(
            "labgrid-client is not installed", hint="`make setup` installs labgrid from PyPI"
        )
    return found


def coordinator_address(explicit: str | None = None) -> str:
    return explicit or os.environ.get("LG_COORDINATOR") or DEFAULT_COORDINATOR


def run_client(coordinator: str, place: str | None, *args: str, timeout: float = 30.0) -> str:
    """Run one ``labgrid-client`` command; map its errors onto :class:`PlaceError`."""
    cmd = [_client(), "-x", coordinator]
    if place:
        cmd += ["-p", place]
    cmd += list(args)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise PlaceError(
            f"labgrid coordinator {coordinator} did not answer in {timeout:.0f} s"
        ) from None
    if proc.returncode != 0:
        raise PlaceError(_explain(proc.stderr or proc.stdout, coordinator, place))
    return proc.stdout


def _explain(output: str, coordinator: str, place: str | None) -> str:
    text = " ".join(output.split())
    if "Could not connect to coordinator" in text or "coordinator is unavailable" in text:
        return f"labgrid coordinator {coordinator} is unreachable (is labgrid-coordinator running?)"
    if "You have already acquired place" in text:
        return _YOURS.format(place)
    busy = re.search(r"already acquired by (\S+?)\.", text)
    if busy:
        return f"labgrid place {place} is already acquired by {busy.group(1)}"
    if "matches nothing" in text:
        return f"labgrid place {place} does not exist on {coordinator}"
    match = re.search(r"Error: (.*)", text)
    return f"labgrid: {match.group(1) if match else text or 'unknown error'}"


def parse_show(output: str) -> list[dict[str, Any]]:
    """Extract the acquired resources from ``labgrid-client show`` output."""
    resources: list[dict[str, Any]] = []
    lines = output.splitlines()
    i = 0
    while i < len(lines):
        head = re.match(r"^Acquired resource '([^']+)' \(([^)]+)\):", lines[i])
        if not head:
            i += 1
            continue
        body = []
        i += 1
        while i < len(lines) and lines[i].startswith((" ", "\t")):
            body.append(lines[i])
            i += 1
        try:
            value = ast.literal_eval("\n".join(body).strip())
        except (ValueError, SyntaxError):
            continue
        if isinstance(value, dict):
            value["name"], value["path"] = head.group(1), head.group(2)
            resources.append(value)
    return resources


def acquire(place: str, coordinator: str | None = None) -> Lease:
    """Acquire ``place`` and read its resources. Raises PlaceError naming who holds it; a
    place the command that started this process holds for it (``$ROUTERKIT_LABGRID_HELD``)
    is used as it is held."""
    if not place:
        raise ConfigError("labgrid target needs a place name: labgrid:PLACE")
    address = coordinator_address(coordinator)
    owned = True
    try:
        run_client(address, place, "acquire")
    except PlaceError as exc:
        # ours already: held for us by the routerkit command that runs this program
        if exc.message != _YOURS.format(place) or os.environ.get(HELD_ENV) != place:
            raise
        owned = False
    try:
        resources = parse_show(run_client(address, place, "show"))
    except BaseException:
        release(Lease(place, address, owned=owned))
        raise
    lease = Lease(place=place, coordinator=address, resources=resources, owned=owned)
    if lease.serial_url is None:
        release(lease)
        raise NotFoundError(f"labgrid place {place} exports no network serial port")
    return lease


def release(lease: Lease) -> None:
    """Release a place (unless it is held for us, see :attr:`Lease.owned`); never raises (it
    runs in finally blocks and on Ctrl-C)."""
    if not lease.owned:
        return
    with contextlib.suppress(RouterkitError, OSError):
        run_client(lease.coordinator, lease.place, "release", timeout=15)


@contextlib.contextmanager
def lease(place: str, coordinator: str | None = None) -> Iterator[Lease]:
    """Hold ``place`` for the duration of the block; released even on Ctrl-C."""
    held = acquire(place, coordinator)
    try:
        yield held
    finally:
        release(held)


def target_for(held: Lease, board: str) -> Any:
    """A :class:`toolkit.targets.Target` for an acquired place."""
    from toolkit.targets import Target

    power = {"kind": "labgrid", "place": held.place, "coordinator": held.coordinator}
    return Target(
        name=f"labgrid:{held.place}",
        board=board,
        serial_url=held.serial_url,
        power=power if held.has_power else {"kind": "manual"},
        labgrid_place=held.place,
    )
