"""Board kits: check a board profile against the schema, and start a new one from an existing one.

A bench owner adding a real router writes a profile (and a guide) into the user's config dir
(``routerkit board new``), fills in what they measured, and runs ``routerkit board lint`` until it
is clean. The lint reports every problem as ``FILE:LINE: KEY: message`` (like ``guide lint``): it
checks what :func:`toolkit.boards.load_board_file` requires, and what would otherwise only fail
on the bench — slots outside the disk or overlapping, partitions not numbered 1..n, addresses that
are not numbers, and command templates with a placeholder no journey fills in.
"""

from __future__ import annotations

import difflib
import re
import string
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit import boards, paths
from toolkit.errors import ConfigError, NotFoundError

# Values the journeys fill into a profile's command templates; a dry run formats each template
# with these, so an unknown {placeholder} or a bad format spec fails here and not on the bench.
TEMPLATE_VALUES: dict[str, dict[str, Any]] = {
    "flash.write": {"addr": "0x50000000", "block": 18432, "count": 65536},
    "flash.read": {"addr": "0x60000000", "block": 18432, "count": 65536},
    "flash.rescan": {},
}
# Placeholders a template must use: a write that ignores {block} writes to the wrong place.
TEMPLATE_NEEDS: dict[str, tuple[str, ...]] = {
    "flash.write": ("addr", "block", "count"),
    "flash.read": ("addr", "block", "count"),
}
# Keys read by code beyond those in the reference profile; with the reference profile's own
# keys, a key that is not one of these but looks like one is reported as a probable typo.
_EXTRA_KEYS = (
    "console.boot_command",
    "console.interrupt_newline_interval",
    "console.uboot_errors",
    "console.kernel_banner",
    "qemu.verified_boot",
    "qemu.cpus",
    "qemu.binary",
    "flash.tftp.netmask",
    "flash.tftp.device_ip",
)
_ADDRESS_KEYS = (
    "flash.load_addr",
    "flash.scratch_addr",
    "flash.copy_addr",
    "firmware.kernel_load",
)
_POSITIVE_NUMBERS = (
    "console.interrupt_timeout",
    "console.interrupt_interval",
    "console.linux_boot_timeout",
    "ssh.reboot_timeout",
    "flash.disk_size_mib",
)


@dataclass(frozen=True)
class Issue:
    """One problem in a profile: ``FILE:LINE: KEY: message`` (lines are 1-based)."""

    file: str
    line: int
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.key}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "key": self.key, "message": self.message}


#: Reports a problem: (dotted key, message); the line is looked up from the key.
_Add = Callable[[str, str], None]


# --- where each key is --------------------------------------------------------------------------

_BARE = r"[A-Za-z0-9_-]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"|\'[^\']*\''
_KEY = rf"(?:{_BARE}|{_QUOTED})(?:\s*\.\s*(?:{_BARE}|{_QUOTED}))*"
_HEADER = re.compile(rf"^\s*\[\[?\s*({_KEY})\s*\]\]?")
_ASSIGN = re.compile(rf"^\s*({_KEY})\s*=")
_PART = re.compile(rf"{_BARE}|{_QUOTED}")


def _split_key(text: str) -> list[str]:
    return [p[1:-1] if p[0] in "\"'" else p for p in _PART.findall(text)]


def key_lines(text: str) -> dict[str, int]:
    """Dotted key -> the 1-based line that defines it (table headers included).

    tomllib keeps no positions, so this reads the lines the way a person would: table headers
    and ``key =`` at the start of a line, skipping multi-line strings. Keys inside an inline
    table or an array are found through their nearest ancestor (:func:`_line_of`).
    """
    lines: dict[str, int] = {}
    table: list[str] = []
    in_string: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if in_string:
            if line.count(in_string) % 2 == 1:
                in_string = None
            continue
        header = _HEADER.match(line)
        if header:
            table = _split_key(header.group(1))
            lines.setdefault(".".join(table), number)
            continue
        assign = _ASSIGN.match(line)
        if assign:
            lines.setdefault(".".join([*table, *_split_key(assign.group(1))]), number)
            rest = line[assign.end() :]
            for quote in ('"""', "'''"):
                if rest.count(quote) % 2 == 1:
                    in_string = quote
    return lines


def _line_of(lines: dict[str, int], dotted: str) -> int:
    parts = dotted.split(".")
    while parts:
        found = lines.get(".".join(parts))
        if found:
            return found
        parts.pop()
    return 1


# --- the lint ------------------------------------------------------------------------------------


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _get(data: dict[str, Any], dotted: str) -> tuple[bool, Any]:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _walk(node: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        yield dotted
        if isinstance(value, dict) and dotted != "flash.slots":
            yield from _walk(value, f"{dotted}.")


def _type_name(expected: type | tuple[type, ...]) -> str:
    if isinstance(expected, type):
        return expected.__name__
    return " or ".join(t.__name__ for t in expected)


def _known_keys() -> set[str]:
    reference = _reference_profile()
    keys = set(_EXTRA_KEYS) | set(boards._REQUIRED)
    if reference is not None:
        keys |= set(_walk(reference))
    return keys


def _reference_profile() -> dict[str, Any] | None:
    """The shipped reference profile (the schema by example), or None if it cannot be read."""
    from toolkit import resources

    try:
        return tomllib.loads(
            (resources.bundled_boards_dir() / f"{boards.DEFAULT_BOARD}.toml").read_text()
        )
    except (OSError, tomllib.TOMLDecodeError):
        return None


def lint_text(text: str, file: str, stem: str | None = None) -> list[Issue]:
    """Every problem of one profile's TOML ``text``; ``stem`` is the file name the id must match."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        line = int(match.group(1)) if match else 1
        return [Issue(file, line, "(toml)", str(exc))]
    lines = key_lines(text)
    issues: list[Issue] = []

    def add(dotted: str, message: str) -> None:
        issues.append(Issue(file, _line_of(lines, dotted), dotted, message))

    for dotted, expected in boards._REQUIRED.items():
        present, value = _get(data, dotted)
        if not present:
            add(dotted, f"missing (required, {_type_name(expected)})")
        elif isinstance(value, bool) or not isinstance(value, expected):
            add(dotted, f"must be {_type_name(expected)}, not {type(value).__name__}")

    _check_identity(data, stem, add)
    _check_numbers(data, add)
    _check_layout(data, add)
    _check_templates(data, add)

    known = _known_keys()
    for dotted in _walk(data):
        if dotted in known or dotted.startswith("flash.slots."):
            continue
        close = difflib.get_close_matches(dotted, sorted(known), n=1, cutoff=0.85)
        if close:
            add(dotted, f"unknown key: did you mean {close[0]!r}?")
    return sorted(issues, key=lambda i: (i.line, i.key))


def _check_identity(data: dict[str, Any], stem: str | None, add: _Add) -> None:
    present, board_id = _get(data, "board.id")
    if present and isinstance(board_id, str):
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,47}", board_id):
            add("board.id", "must be lower-case letters, digits and '-' (at most 48)")
        if stem is not None and board_id != stem:
            add(
                "board.id",
                f"is {board_id!r} but the file is {stem}.toml (profiles are found by file name)",
            )
    present, compatible = _get(data, "board.compatible")
    if present and isinstance(compatible, list):
        if not compatible or not all(isinstance(c, str) and c for c in compatible):
            add("board.compatible", "must be a non-empty list of strings")
        elif isinstance(board_id, str) and board_id not in compatible:
            add("board.compatible", f"must include the board id {board_id!r} (images name it)")
    present, version = _get(data, "board.compat_version")
    if present and isinstance(version, str) and not re.fullmatch(r"\d+\.\d+", version):
        add("board.compat_version", f'must be MAJOR.MINOR, like "1.0", not {version!r}')
    present, prompt = _get(data, "console.uboot_prompt")
    if present and prompt == "":
        add("console.uboot_prompt", "must not be empty")


def _check_numbers(data: dict[str, Any], add: _Add) -> None:
    for dotted in _ADDRESS_KEYS:
        present, value = _get(data, dotted)
        if not present:
            continue
        try:
            if not isinstance(value, str) or int(value, 0) < 0:
                raise ValueError
        except ValueError:
            add(dotted, f'must be an address string such as "0x50000000", not {value!r}')
    for dotted in _POSITIVE_NUMBERS:
        present, value = _get(data, dotted)
        if present and (
            isinstance(value, bool) or not isinstance(value, int | float) or value <= 0
        ):
            add(dotted, f"must be a positive number, not {value!r}")
    present, block = _get(data, "flash.block_size")
    if (
        present
        and isinstance(block, int)
        and not isinstance(block, bool)
        and (block <= 0 or block & (block - 1))
    ):
        add("flash.block_size", f"must be a power of two, not {block}")
    present, port = _get(data, "ssh.port")
    if present and isinstance(port, int) and not 0 < port < 65536:
        add("ssh.port", f"must be 1..65535, not {port}")


def _region(data: dict[str, Any], dotted: str, add: _Add) -> tuple[int, int, int] | None:
    """(partition, first block, block count) of a slot or the boot-state area, or None."""
    present, node = _get(data, dotted)
    if not present:
        return None
    if not isinstance(node, dict):
        add(
            dotted,
            f"must be a table with partition, start_block and blocks, not {type(node).__name__}",
        )
        return None
    values = []
    for key in ("partition", "start_block", "blocks"):
        value = node.get(key)
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or value < (1 if key != "start_block" else 0)
        ):
            least = "a positive" if key != "start_block" else "a non-negative"
            add(f"{dotted}.{key}", f"must be {least} integer, not {value!r}")
            return None
        values.append(value)
    return values[0], values[1], values[2]


def _check_layout(data: dict[str, Any], add: _Add) -> None:
    present, slots = _get(data, "flash.slots")
    if not present or not isinstance(slots, dict):
        return
    if len(slots) != 2:
        add("flash.slots", f"A/B flashing needs exactly two slots, not {len(slots)}")
    regions = {f"flash.slots.{name}": _region(data, f"flash.slots.{name}", add) for name in slots}
    regions["flash.bootstate"] = _region(data, "flash.bootstate", add)
    known = {k: r for k, r in regions.items() if r is not None}
    _, block = _get(data, "flash.block_size")
    present, disk_mib = _get(data, "flash.disk_size_mib")
    if present and isinstance(disk_mib, int | float) and isinstance(block, int) and block > 0:
        disk_blocks = int(disk_mib * 1024 * 1024) // block
        for dotted, (_, start, count) in known.items():
            if start + count > disk_blocks:
                add(
                    f"{dotted}.blocks",
                    f"ends at block {start + count}, past the end of the disk "
                    f"({disk_blocks} blocks of {block} bytes = flash.disk_size_mib {disk_mib})",
                )
    ordered = sorted(known.items(), key=lambda kv: kv[1][1])
    for (a, (_, a_start, a_count)), (b, (_, b_start, _)) in zip(ordered, ordered[1:], strict=False):
        if b_start < a_start + a_count:
            add(
                f"{b}.start_block",
                f"block {b_start} is inside {a} (blocks {a_start}..{a_start + a_count - 1})",
            )
    numbers: dict[int, str] = {}
    for dotted, (partition, _, _) in known.items():
        if partition in numbers:
            add(f"{dotted}.partition", f"partition {partition} is also {numbers[partition]}")
        numbers.setdefault(partition, dotted)
    if numbers and sorted(numbers) != list(range(1, len(numbers) + 1)):
        last = max(known, key=lambda k: known[k][0])
        add(
            f"{last}.partition",
            "partitions must be numbered 1..n without gaps, "
            f"got {', '.join(str(n) for n in sorted(numbers))}",
        )


def _check_templates(data: dict[str, Any], add: _Add) -> None:
    for dotted, values in TEMPLATE_VALUES.items():
        present, template = _get(data, dotted)
        if not present or not isinstance(template, str):
            continue
        try:
            used = {
                field for _, field, _, _ in string.Formatter().parse(template) if field is not None
            }
            template.format(**values)
        except KeyError as exc:
            known = ", ".join(f"{{{k}}}" for k in values) or "none"
            add(dotted, f"unknown placeholder {{{exc.args[0]}}} (this command gets: {known})")
            continue
        except (ValueError, IndexError) as exc:
            add(dotted, f"does not format: {exc}")
            continue
        missing = [f"{{{k}}}" for k in TEMPLATE_NEEDS.get(dotted, ()) if k not in used]
        if missing:
            add(dotted, f"does not use {', '.join(missing)}")


def lint_file(path: Path) -> list[Issue]:
    """Every problem of the profile at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFoundError(f"board profile {path} does not exist") from None
    except UnicodeDecodeError as exc:
        return [Issue(_display(path), 1, "(file)", f"not UTF-8 text ({exc.reason})")]
    return lint_text(text, _display(path), path.stem)


def resolve(target: str) -> Path:
    """A board id (looked up like ``load_board``) or a path to a profile."""
    candidate = Path(target)
    if candidate.suffix == ".toml" or candidate.exists():
        if not candidate.is_file():
            raise NotFoundError(f"board profile {candidate} does not exist")
        return candidate
    source = boards.find_board(target)
    if source is None:
        known = ", ".join(boards.available_boards()) or "none"
        raise NotFoundError(f"unknown board {target!r} (known boards: {known})")
    return source.path


# --- a new board ---------------------------------------------------------------------------------

_ID_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,47}")

_PROFILE_HEADER = """\
# Board profile of {name}, started from {source} by `routerkit board new`.
# Every value below was copied from {source}: replace the ones marked MEASURE with what your
# bench shows, then check the file with `routerkit board lint {name}` until it is clean.
#
# What to measure on the real board (serial console at the right baud, power-cycle it):
#   console.uboot_prompt     the U-Boot prompt exactly as printed, trailing space included
#   console.autoboot_banner  the countdown line ("Hit any key to stop autoboot", "Press ... to abort")
#   console.interrupt        the key that stops the countdown (" " for most builds, "\\u0003" for
#                            builds that want Ctrl-C); interrupt_timeout: power-on to prompt, plus margin
#   console.linux_prompt     the shell prompt of the running firmware on the same console
#   flash.write / flash.read the U-Boot commands that copy RAM to the boot medium and back
#                            (`help` at the prompt lists them); {{addr}} {{block}} {{count}} are filled in
#   flash.load_addr          free RAM for transfers (`bdinfo`, `printenv loadaddr kernel_addr_r`)
#   flash.slots.*            first block and length of each firmware slot, in flash.block_size units
#                            (the vendor's partition table, or `part list` at the prompt)
#   power.kind               "manual" (you switch it) or "command" (a relay script); "qmp" is only
#                            the virtual sample
# Then flash it without the virtual sample:
#   routerkit flash IMAGE --via serial --board {name} --port /dev/ttyUSB0
"""
_MEASURE = {
    "console": (
        "uboot_prompt",
        "autoboot_banner",
        "interrupt",
        "interrupt_timeout",
        "linux_prompt",
    ),
    "power": ("kind",),
    "flash": (
        "interface",
        "device",
        "block_size",
        "load_addr",
        "scratch_addr",
        "copy_addr",
        "write",
        "read",
        "rescan",
        "linux_device",
        "disk_size_mib",
    ),
    "firmware": ("console", "kernel_load"),
    "flash.slots.A": ("start_block", "blocks"),
    "flash.slots.B": ("start_block", "blocks"),
}


def new_profile_text(name: str, source_text: str, source_id: str) -> str:
    """``source_text`` (a profile) made into the profile of board ``name``: identity replaced,
    the values a bench owner must measure marked, the source's own header comment dropped."""
    body = source_text.splitlines()
    while body and (body[0].startswith("#") or not body[0].strip()):
        body.pop(0)
    out: list[str] = []
    table = ""
    for line in body:
        header = _HEADER.match(line)
        if header:
            table = ".".join(_split_key(header.group(1)))
        assign = _ASSIGN.match(line)
        key = ".".join(_split_key(assign.group(1))) if assign else ""
        if table == "board" and key == "id":
            line = f'id = "{name}"  # the file name; images name it in supported_devices'
        elif table == "board" and key == "name":
            line = f'name = "{name}"'
        elif table == "board" and key == "compatible":
            line = f'compatible = ["{name}"]'
        elif key in _MEASURE.get(table, ()):
            line = f"{line.rstrip()}  # MEASURE"
        out.append(line)
    return _PROFILE_HEADER.format(name=name, source=source_id) + "\n" + "\n".join(out) + "\n"


_GUIDE = """\
# Assembly guide of {name}, started by `routerkit board new` (schema: `routerkit guide lint`).
# Replace the parts, tools and steps with your board's; every step needs an illustration.
schema: 1
board: {name}
title: Assemble {name}
summary: >-
  Describe here what the tester builds, in two sentences.
difficulty: moderate
time_minutes: [15, 30]
prerequisites:
  - A USB-serial adapter with 3.3 V logic and `routerkit` installed.

tools:
  - {{id: usb-serial, name: "USB-serial adapter with 3.3 V logic"}}
  - {{id: camera, name: "Phone or camera"}}

parts:
  - {{id: board, name: "{name} board", quantity: 1}}

steps:
  - id: serial
    title: Connect the serial console and power on
    minutes: 5
    images: [img/01-serial.svg]
    tools: [usb-serial]
    parts: [board]
    lines:
      - Connect GND, then the adapter's TX to the board's RX and RX to TX; leave VCC unconnected.
      - kind: caution
        text: Check with a multimeter that the header is at 3.3 V before connecting.
      - Power the board on.
    photos:
      - {{id: serial-connected, shows: "The adapter's leads on the board's serial header"}}
    checks:
      - {{id: uboot, kind: uboot_banner, prompt: "U-Boot starts on the serial console?", timeout: 30}}
"""
_SVG = """\
<svg xmlns="http://www.w3.org/2000/svg" width="400" height="240" viewBox="0 0 400 240">
  <title>Placeholder: draw or photograph this step</title>
  <rect x="10" y="10" width="380" height="220" fill="none" stroke="#888" stroke-dasharray="8 6"/>
  <text x="200" y="125" text-anchor="middle" font-family="sans-serif" font-size="18" fill="#666">serial console</text>
</svg>
"""


@dataclass(frozen=True)
class NewBoard:
    """What ``new_board`` wrote."""

    id: str
    source: str
    profile: Path
    guide: Path
    files: tuple[Path, ...]


def new_board(name: str, source: str = boards.DEFAULT_BOARD, *, force: bool = False) -> NewBoard:
    """Write a commented profile of ``name`` (started from board ``source``) into
    ``<config>/boards/`` and a guide skeleton into ``<config>/guides/<name>/``."""
    if not _ID_RE.fullmatch(name):
        raise ConfigError(
            f"board name {name!r}: use lower-case letters, digits and '-' (at most 48)"
        )
    src = boards.find_board(source)
    if src is None:
        known = ", ".join(boards.available_boards()) or "none"
        raise NotFoundError(f"unknown board {source!r} to start from (known boards: {known})")
    config = paths.config_dir()
    profile = config / "boards" / f"{name}.toml"
    guide_dir = config / "guides" / name
    guide = guide_dir / "guide.yaml"
    image = guide_dir / "img" / "01-serial.svg"
    existing = [p for p in (profile, guide) if p.exists()]
    if existing and not force:
        raise ConfigError(
            f"{existing[0]} already exists; pass --force to overwrite it",
            hint="or choose another name",
        )
    profile.parent.mkdir(parents=True, exist_ok=True)
    profile.write_text(new_profile_text(name, src.path.read_text(encoding="utf-8"), source))
    image.parent.mkdir(parents=True, exist_ok=True)
    guide.write_text(_GUIDE.format(name=name))
    image.write_text(_SVG)
    return NewBoard(name, source, profile, guide, (profile, guide, image))
