"""Targets: one answer to "which device, and how do I reach it?".

A target is a running virtual sample (by name), a target of a ``lab.toml`` (``lab.toml:NAME``),
or an ad-hoc device given by ``--port``/``--host``. Every journey (flash, verify, fleet, the
pytest plugin) resolves its target here, so they all understand the same names.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from toolkit.boards import DEFAULT_BOARD
from toolkit.errors import NotFoundError, SampleError

#: Where the virtual sample's guest sees the host (QEMU user networking).
QEMU_HOST_IP = "10.0.2.2"
QEMU_GUEST_IP = "10.0.2.15"


@dataclass
class Target:
    name: str
    board: str = DEFAULT_BOARD
    serial_url: str | None = None
    ssh_host: str | None = None
    ssh_port: int = 22
    ssh_user: str = "root"
    identity: str | None = None
    #: {"kind": "qmp", "socket": ...} | {"kind": "command", "reset": ...} | {"kind": "manual"}
    power: dict[str, Any] = field(default_factory=lambda: {"kind": "manual"})
    #: A directory served by the bench's TFTP server, and its address as the device sees it.
    tftp_dir: str | None = None
    tftp_server_ip: str | None = None
    device_ip: str | None = None
    sample: str | None = None  # name of the virtual sample, when it is one
    labgrid_place: str | None = None
    lab: str | None = None  # the lab file (absolute path) the target comes from, if any

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def spec(self) -> str:
        """The target as ``--target`` (and the pytest plugin's ``--routerkit-target``) name it
        from anywhere: ``LAB.toml:NAME`` for a lab file's target, else its name (a sample's
        name, ``labgrid:PLACE``, a serial URL)."""
        return f"{self.lab}:{self.name}" if self.lab else self.name

    @property
    def is_virtual(self) -> bool:
        return self.sample is not None


def from_sample(name: str) -> Target:
    """The target of a running virtual sample."""
    from toolkit import sample as samples

    state = samples.status(name)
    if state is None:
        raise SampleError(
            f"virtual sample {name!r} is not running", hint="start it with `routerkit sample up`"
        )
    return Target(
        name=name,
        board=state.board,
        serial_url=state.serial_url,
        ssh_host=state.ssh_host,
        ssh_port=state.ssh_port,
        ssh_user="root",
        power={"kind": "qmp", "socket": state.qmp, "sample": name},
        tftp_dir=state.tftp_dir,
        tftp_server_ip=QEMU_HOST_IP,
        device_ip=QEMU_GUEST_IP,
        sample=name,
    )


def from_lab(lab_path: Path, name: str) -> Target:
    """The target ``name`` of a lab file. An entry with ``sample = "NAME"`` starts from that
    running sample's values (ports, QMP power, TFTP) and overrides whatever else it sets: a
    bench may reach a sample through its own serial server or switch it with its own relay."""
    from toolkit.lab import load_lab

    entry = load_lab(lab_path).target(name)
    values = {k: v for k, v in entry.values.items() if k in Target.__dataclass_fields__}
    values.pop("board", None)
    lab = str(Path(lab_path).resolve())
    if not entry.get("sample"):
        return Target(name=name, board=entry.board, lab=lab, **values)
    target = from_sample(str(entry.get("sample")))
    target.name = name
    target.board = entry.board
    target.lab = lab
    for key, value in values.items():
        setattr(target, key, value)
    return target


def resolve(
    name: str | None = None,
    *,
    lab: Path | None = None,
    board: str | None = None,
    serial_url: str | None = None,
    ssh_host: str | None = None,
    ssh_port: int | None = None,
) -> Target:
    """Resolve what the user named into a :class:`Target`.

    Precedence: an explicit ``--port``/``--host`` builds an ad-hoc target; ``lab.toml:NAME``
    or ``--lab`` picks a lab target; a name picks a running virtual sample; nothing picks the
    only running sample.
    """
    if serial_url or ssh_host:
        target = Target(
            name=name or (ssh_host or serial_url or "device"),
            board=board or DEFAULT_BOARD,
            serial_url=serial_url,
            ssh_host=ssh_host,
            ssh_port=ssh_port or 22,
        )
        return target
    if name and ":" in name and name.split(":", 1)[0].endswith(".toml"):
        lab_file, _, entry = name.partition(":")
        target = from_lab(Path(lab_file), entry)
    elif lab is not None:
        if not name:
            raise NotFoundError(f"--lab {lab} needs --target NAME")
        target = from_lab(lab, name)
    else:
        target = from_sample(name or _only_running_sample())
    if board:
        target.board = board
    if ssh_port:
        target.ssh_port = ssh_port
    return target


def _only_running_sample() -> str:
    from toolkit import sample as samples

    running = [s.name for s in samples.list_samples()]
    if not running:
        raise SampleError(
            "no target given and no virtual sample is running",
            hint="start one with `routerkit sample up`, or pass --port/--host/--target",
        )
    if "default" in running:
        return "default"
    if len(running) > 1:
        raise NotFoundError(
            f"several virtual samples are running ({', '.join(running)}); pick one with --target"
        )
    return running[0]
