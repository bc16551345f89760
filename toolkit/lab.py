"""``lab.toml``: the benches and targets of a lab, shared by ``fleet flash`` and the pytest plugin.

Example::

    [lab]
    name = "bench-room"

    [targets.es1]
    board = "es-virt"
    sample = "es1"                      # a virtual sample started with `routerkit sample up --name es1`

    [targets.desk]
    board = "es-virt"
    ssh_host = "192.0.2.10"
    ssh_port = 22
    serial_url = "rfc2217://bench-host:7000"
    power = { kind = "command", reset = "usbrelay R1=0 && sleep 1 && usbrelay R1=1" }

Errors name the file, the line and the key, because a lab file is edited by hand at a bench.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.errors import ConfigError, NotFoundError

_TARGET_KEYS: dict[str, type | tuple[type, ...]] = {
    "board": str,
    "sample": str,
    "ssh_host": str,
    "ssh_port": int,
    "ssh_user": str,
    "identity": str,
    "serial_url": str,
    "power": dict,
    "tftp_dir": str,
    "tftp_server_ip": str,
    "device_ip": str,
    "labgrid_place": str,
}


@dataclass(frozen=True)
class LabTarget:
    name: str
    board: str
    values: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)


@dataclass(frozen=True)
class Lab:
    path: Path
    name: str
    targets: dict[str, LabTarget]

    def target(self, name: str) -> LabTarget:
        try:
            return self.targets[name]
        except KeyError:
            known = ", ".join(self.targets) or "none"
            raise NotFoundError(f"{self.path}: no target {name!r} (targets: {known})") from None


def _line_of(text: str, table: str, key: str | None = None) -> int | None:
    """Best-effort line number of ``[table]`` (or of ``key`` inside it) for error messages."""
    lines = text.splitlines()
    header = re.compile(r"^\s*\[\s*" + re.escape(table).replace(r"\.", r"\s*\.\s*") + r"\s*\]")
    for i, line in enumerate(lines):
        if header.match(line):
            if key is None:
                return i + 1
            for j in range(i + 1, len(lines)):
                if lines[j].lstrip().startswith("["):
                    break
                if re.match(r"^\s*" + re.escape(key) + r"\s*=", lines[j]):
                    return j + 1
            return i + 1
    return None


def _where(path: Path, text: str, table: str, key: str | None = None) -> str:
    line = _line_of(text, table, key)
    return f"{path}:{line}" if line else str(path)


def load_lab(path: Path) -> Lab:
    """Parse and validate a lab file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFoundError(f"lab file {path} does not exist") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    targets_raw = data.get("targets")
    if not isinstance(targets_raw, dict) or not targets_raw:
        raise ConfigError(f"{path}: no [targets.NAME] tables (a lab needs at least one target)")
    targets: dict[str, LabTarget] = {}
    for name, raw in targets_raw.items():
        table = f"targets.{name}"
        if not isinstance(raw, dict):
            raise ConfigError(f"{_where(path, text, table)}: {table} must be a table")
        for key, value in raw.items():
            expected = _TARGET_KEYS.get(key)
            if expected is None:
                known = ", ".join(sorted(_TARGET_KEYS))
                raise ConfigError(
                    f"{_where(path, text, table, key)}: unknown key {table}.{key} (known: {known})"
                )
            if isinstance(value, bool) or not isinstance(value, expected):
                want = expected.__name__ if isinstance(expected, type) else "value"
                raise ConfigError(
                    f"{_where(path, text, table, key)}: {table}.{key} must be {want}, "
                    f"not {type(value).__name__}"
                )
        if "board" not in raw:
            raise ConfigError(f"{_where(path, text, table)}: {table}.board is missing")
        if not any(k in raw for k in ("sample", "ssh_host", "serial_url", "labgrid_place")):
            raise ConfigError(
                f"{_where(path, text, table)}: {table} needs one of sample, ssh_host, "
                "serial_url or labgrid_place"
            )
        targets[name] = LabTarget(name=name, board=raw["board"], values=dict(raw))
    lab_name = (
        data.get("lab", {}).get("name", path.stem)
        if isinstance(data.get("lab"), dict)
        else path.stem
    )
    return Lab(path=path, name=str(lab_name), targets=targets)
