"""The state file of a virtual sample, so ``status``/``down`` work from another shell.

``paths.data_dir()/samples/<name>/state.json`` is written atomically; the directory also holds
the sample's disk (``disk.img``), QMP socket, boot transcript and ser2net config. A state file
whose PID is dead (a power cut, a crash, a reboot of the host) is reported as not running.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from toolkit import paths
from toolkit.errors import ConfigError, SampleError
from toolkit.record import atomic_write

STATE_FILE = "state.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,40}$")


@dataclass
class SampleState:
    """A running (or power-cut) virtual sample, as recorded in its state file."""

    name: str
    board: str
    pid: int | None
    qmp: str
    serial_url: str
    serial_mode: str  # "socket" or "rfc2217"
    ssh_host: str
    ssh_port: int
    tftp_dir: str
    disk: str
    started: str
    ser2net_pid: int | None
    boot_log: str
    running: bool = True  # False after a power cut: the disk is kept, `up` powers it on again
    firmware: bool = False  # the disk holds routerkit firmware (False: a blank disk, U-Boot only)
    journal: str | None = None  # session id of the last `up` that watched the boot
    dir: str = ""  # the sample's directory (absolute), so a state object works from anywhere
    boot_times: dict[str, float] = field(default_factory=dict)  # seconds from QEMU start

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SampleState:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def directory(self) -> Path:
        return Path(self.dir) if self.dir else sample_dir(self.name)

    @property
    def serial_port(self) -> int:
        """The TCP port in ``serial_url`` (the chardev server or ser2net's accepter)."""
        match = re.search(r":(\d+)(?:\?|$)", self.serial_url)
        if not match:
            raise SampleError(f"malformed serial_url {self.serial_url!r} in sample {self.name}")
        return int(match.group(1))


def check_name(name: str) -> str:
    """Sample names become directory names: keep them short and path-safe."""
    if not _NAME.match(name):
        raise ConfigError(
            f"invalid sample name {name!r}: use letters, digits, '.', '_' or '-' (max 41 chars)"
        )
    return name


def samples_root() -> Path:
    path = paths.data_dir() / "samples"
    path.mkdir(parents=True, exist_ok=True)
    return path


def sample_dir(name: str) -> Path:
    return samples_root() / check_name(name)


def state_path(name: str) -> Path:
    return sample_dir(name) / STATE_FILE


def load_state(name: str) -> SampleState | None:
    """The recorded state, or None when there is no (readable) state file."""
    path = state_path(name)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise SampleError(
            f"state file {path} is unreadable ({exc})",
            hint=f"`routerkit sample down --name {name}` cleans it up",
        ) from None
    if not isinstance(data, dict):
        raise SampleError(f"state file {path} does not hold a JSON object")
    try:
        return SampleState.from_dict(data)
    except TypeError as exc:
        raise SampleError(f"state file {path} is missing keys ({exc})") from None


def save_state(state: SampleState) -> Path:
    path = state.directory / STATE_FILE
    atomic_write(path, (json.dumps(state.to_dict(), indent=2) + "\n").encode())
    return path


def remove_state(name: str) -> None:
    state_path(name).unlink(missing_ok=True)


def all_names() -> list[str]:
    """Names of every sample with a state file."""
    root = samples_root()
    return sorted(d.name for d in root.iterdir() if (d / STATE_FILE).is_file())


def pid_alive(pid: int | None) -> bool:
    """True when ``pid`` exists (and is not a zombie waiting for its parent)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")
