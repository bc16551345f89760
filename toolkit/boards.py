"""Board profiles: the data that makes one router different from another.

A profile is a TOML file (see ``firmware/boards/es-virt.toml``), looked up in
``ROUTERKIT_BOARDS``, the user's ``<config>/boards``, then among the shipped ones
(:func:`toolkit.paths.board_dirs`). Code asks the profile, never ``if board == ...``. Loading
validates the keys every journey relies on and reports a broken file with its path, line (for
syntax errors) and the dotted key at fault; ``toolkit.boardkit`` lints a profile in full.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit import paths
from toolkit.errors import ConfigError, NotFoundError

DEFAULT_BOARD = "es-virt"

# Dotted key -> expected type. Everything else is optional and read with .get().
_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "board.id": str,
    "board.name": str,
    "board.compatible": list,
    "board.compat_version": str,
    "console.uboot_prompt": str,
    "console.interrupt": str,
    "console.interrupt_timeout": (int, float),
    "console.linux_prompt": str,
    "power.kind": str,
    "flash.interface": str,
    "flash.block_size": int,
    "flash.load_addr": str,
    "flash.write": str,
    "flash.read": str,
    "flash.slots": dict,
    "ssh.user": str,
    "ssh.port": int,
}


@dataclass(frozen=True)
class Slot:
    name: str
    partition: int
    start_block: int
    blocks: int

    def size_bytes(self, block_size: int) -> int:
        return self.blocks * block_size


@dataclass(frozen=True)
class Board:
    """A validated board profile. ``data`` keeps the whole TOML for optional keys."""

    id: str
    path: Path
    data: dict[str, Any]

    def get(self, dotted: str, default: Any = None) -> Any:
        node: Any = self.data
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def require(self, dotted: str) -> Any:
        value = self.get(dotted)
        if value is None:
            raise ConfigError(f"{self.path}: missing key {dotted!r}")
        return value

    @property
    def name(self) -> str:
        return str(self.data["board"]["name"])

    @property
    def compatible(self) -> list[str]:
        return [str(c) for c in self.data["board"]["compatible"]]

    @property
    def block_size(self) -> int:
        return int(self.data["flash"]["block_size"])

    @property
    def slots(self) -> dict[str, Slot]:
        return {
            name: Slot(name, int(s["partition"]), int(s["start_block"]), int(s["blocks"]))
            for name, s in self.data["flash"]["slots"].items()
        }

    def slot(self, name: str) -> Slot:
        try:
            return self.slots[name]
        except KeyError:
            raise ConfigError(
                f"{self.path}: board {self.id} has no slot {name!r} "
                f"(slots: {', '.join(self.slots)})"
            ) from None

    def other_slot(self, name: str) -> Slot:
        others = [s for s in self.slots if s != name]
        if len(others) != 1:
            raise ConfigError(f"{self.path}: A/B flashing needs exactly two slots")
        return self.slots[others[0]]

    @property
    def slot_size(self) -> int:
        """The smallest slot in bytes: the largest image this board accepts."""
        return min(s.size_bytes(self.block_size) for s in self.slots.values())


def load_board_file(path: Path) -> Board:
    """Load and validate one profile. Errors name the file, line and key."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(f"board profile {path} does not exist") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message already says "(at line N, column M)".
        raise ConfigError(f"{path}: {exc}") from None
    for dotted, expected in _REQUIRED.items():
        node: Any = data
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(f"{path}: missing key {dotted!r}")
            node = node[part]
        if isinstance(node, bool) or not isinstance(node, expected):
            names = (
                expected.__name__
                if isinstance(expected, type)
                else " or ".join(t.__name__ for t in expected)
            )
            raise ConfigError(f"{path}: key {dotted!r} must be {names}, not {type(node).__name__}")
    for name, slot in data["flash"]["slots"].items():
        for key in ("partition", "start_block", "blocks"):
            value = slot.get(key) if isinstance(slot, dict) else None
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(
                    f"{path}: key 'flash.slots.{name}.{key}' must be a non-negative integer"
                )
    return Board(id=data["board"]["id"], path=path, data=data)


@dataclass(frozen=True)
class BoardSource:
    """Where the profile of one board id was found (``origin``: env, user or bundled), and the
    profiles of the same id further down the lookup order that it hides."""

    id: str
    path: Path
    origin: str
    shadows: tuple[Path, ...] = ()


def board_sources() -> list[BoardSource]:
    """Every board id in the lookup order of :func:`toolkit.paths.board_dirs`, first match wins."""
    found: dict[str, BoardSource] = {}
    for origin, directory in paths.board_dirs():
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.toml")):
            seen = found.get(path.stem)
            if seen is None:
                found[path.stem] = BoardSource(path.stem, path, origin)
            else:
                found[path.stem] = BoardSource(
                    seen.id, seen.path, seen.origin, (*seen.shadows, path)
                )
    return [found[k] for k in sorted(found)]


def find_board(board_id: str) -> BoardSource | None:
    """The profile ``load_board(board_id)`` would read, or None."""
    for origin, directory in paths.board_dirs():
        path = directory / f"{board_id}.toml"
        if path.is_file():
            return BoardSource(board_id, path, origin)
    return None


def available_boards() -> list[str]:
    return [source.id for source in board_sources()]


def load_board(board_id: str = DEFAULT_BOARD) -> Board:
    """Load a board profile by id (the file name without ``.toml``, looked up in
    ``ROUTERKIT_BOARDS``, the user's config dir, then the shipped profiles) or by path."""
    candidate = Path(board_id)
    if candidate.suffix == ".toml" and candidate.exists():
        return load_board_file(candidate)
    source = find_board(board_id)
    if source is None:
        known = ", ".join(available_boards()) or "none"
        looked = ", ".join(str(d) for _, d in paths.board_dirs())
        raise NotFoundError(
            f"unknown board {board_id!r} (known boards: {known}; looked in {looked})"
        )
    board = load_board_file(source.path)
    if board.id != board_id:
        raise ConfigError(
            f"{source.path}: key 'board.id' is {board.id!r} but the file is {board_id!r}"
        )
    return board
