"""Disk image of the virtual sample: what the sample's "flash" looks like in the factory.

Layout (all from the board profile, ``[flash.bootstate]`` and ``[flash.slots.*]``): an MBR,
partition 1 a small FAT holding ``boot.scr`` (the A/B logic, compiled from
``firmware/boot/boot.cmd``) and ``state.env`` (the boot counter), then one raw partition per
slot holding a v1 image at its first block. QEMU presents the file as the profile's disk
(``[qemu] disk_device``: virtio-blk, NVMe...); U-Boot's distro boot runs ``/boot.scr`` from
partition 1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from toolkit import resources
from toolkit.boards import Board, load_board
from toolkit.errors import BuildError, ImageTooLargeError
from toolkit.events import NullReporter, Reporter, step
from toolkit.firmware.guest import GuestSpec, need_tool

#: Fixed identifiers so two disks made from the same images are byte-identical.
MBR_ID = "0x524b5631"
FAT_VOLUME_ID = "524b4254"
FAT_LABEL = "RKBOOT"


#: 1980-01-01, FAT's epoch. mtools stamps what it writes with SOURCE_DATE_EPOCH: at 0 (1970,
#: before FAT's first year) the year wraps to 2098, which a 32-bit ``time_t`` cannot hold, so
#: a 32-bit guest's ``stat`` fails on the file with EOVERFLOW and the file looks absent.
FAT_EPOCH = 315532800


def _tool_env() -> dict[str, str]:
    """The environment of mkfs/mtools/mkimage: C locale, and a SOURCE_DATE_EPOCH FAT can hold."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "")
    if not epoch.isdigit() or int(epoch) < FAT_EPOCH:
        epoch = str(FAT_EPOCH)
    return dict(os.environ, LC_ALL="C", SOURCE_DATE_EPOCH=epoch, MTOOLS_SKIP_CHECK="1")


def _run(args: list[str], what: str, **kwargs: object) -> None:
    env = _tool_env()
    proc = subprocess.run(args, capture_output=True, text=True, check=False, env=env, **kwargs)  # type: ignore[call-overload]
    if proc.returncode != 0:
        raise BuildError(f"{what} failed: {(proc.stderr or proc.stdout).strip()[-300:]}")


def boot_script_source(board: Board) -> str:
    """boot.cmd with the board profile's values filled in."""
    values = {
        "LOAD_ADDR": str(board.require("flash.load_addr")),
        "IFACE": str(board.require("flash.interface")),
        "DEV": str(board.get("flash.device", "0")),
        "BOOT_PART": str(board.require("flash.bootstate.partition")),
        "STATE_FILE": str(board.get("flash.bootstate.file", "state.env")),
        "MAX_TRIES": str(board.get("flash.bootstate.max_tries", 3)),
        "CONSOLE": str(board.get("firmware.console", "ttyAMA0")),
    }
    for name, slot in board.slots.items():
        values[f"{name}_START"] = hex(slot.start_block)
        values[f"{name}_COUNT"] = hex(slot.blocks)
    template = resources.boot_script()
    text = template.read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    if "@" in "".join(line for line in text.splitlines() if not line.lstrip().startswith("#")):
        raise BuildError(f"{template}: a placeholder has no value in board {board.id}")
    return text


def state_env(active: str) -> bytes:
    return f"rk_active={active}\nrk_tries=0\n".encode()


def _fat_image(board: Board, path: Path, active: str, workdir: Path) -> None:
    blocks = int(board.require("flash.bootstate.blocks"))
    size = blocks * board.block_size
    with path.open("wb") as f:
        f.truncate(size)
    _run(
        [need_tool("mkfs.vfat"), "--invariant", "-i", FAT_VOLUME_ID, "-n", FAT_LABEL, str(path)],
        "mkfs.vfat",
    )
    script = workdir / "boot.cmd"
    script.write_text(boot_script_source(board))
    scr = workdir / "boot.scr"
    _run(
        [
            need_tool("mkimage"),
            "-A",
            GuestSpec.of(board).debian.fit_arch,
            "-O",
            "linux",
            "-T",
            "script",
            "-C",
            "none",
            "-n",
            "routerkit A/B boot",
            "-d",
            str(script),
            str(scr),
        ],
        "mkimage (boot.scr)",
    )
    state = workdir / str(board.get("flash.bootstate.file", "state.env"))
    state.write_bytes(state_env(active))
    for item in (scr, state):
        os.utime(item, (FAT_EPOCH, FAT_EPOCH))  # reproducible
    _run([need_tool("mcopy"), "-m", "-i", str(path), str(scr), str(state), "::"], "mcopy")


def _sfdisk_script(board: Board) -> str:
    boot_start = int(board.require("flash.bootstate.start_block"))
    boot_blocks = int(board.require("flash.bootstate.blocks"))
    parts = {int(board.require("flash.bootstate.partition")): (boot_start, boot_blocks, "c", True)}
    for slot in board.slots.values():
        # 0xda: "non-FS data" -- raw image, no filesystem for anyone to auto-mount.
        parts[slot.partition] = (slot.start_block, slot.blocks, "da", False)
    if sorted(parts) != list(range(1, len(parts) + 1)):
        raise BuildError(f"board {board.id}: partitions must be numbered 1..{len(parts)}")
    lines = ["label: dos", f"label-id: {MBR_ID}", "unit: sectors", ""]
    for number in sorted(parts):
        start, size, kind, boot = parts[number]
        lines.append(f"start={start}, size={size}, type={kind}" + (", bootable" if boot else ""))
    return "\n".join(lines) + "\n"


def make_disk(
    board: str | Board,
    out: Path,
    slot_a: Path,
    slot_b: Path | None = None,
    active: str = "A",
    reporter: Reporter | None = None,
) -> Path:
    """Write a factory disk image: MBR, FAT with boot.scr + state.env, images in the slots."""
    reporter = reporter or NullReporter()
    board_obj = board if isinstance(board, Board) else load_board(board)
    if active not in board_obj.slots:
        raise BuildError(f"active slot must be one of {', '.join(board_obj.slots)}, not {active!r}")
    images = {"A": slot_a, "B": slot_b}
    for name, image in images.items():
        if image is None:
            continue
        slot = board_obj.slot(name)
        size = image.stat().st_size
        if size > slot.size_bytes(board_obj.block_size):
            raise ImageTooLargeError(f"{image} ({size} bytes) does not fit slot {name}")
    disk_bytes = int(board_obj.get("flash.disk_size_mib", 80)) * 1024 * 1024
    last = max(s.start_block + s.blocks for s in board_obj.slots.values())
    if last * board_obj.block_size > disk_bytes:
        raise BuildError(f"board {board_obj.id}: slots end past disk_size_mib")
    out.parent.mkdir(parents=True, exist_ok=True)
    with (
        step(reporter, "disk image", str(out)),
        tempfile.TemporaryDirectory(prefix="rk-disk-", dir=out.parent) as tmp,
    ):
        work = Path(tmp)
        disk = work / "disk.img"
        with disk.open("wb") as f:
            f.truncate(disk_bytes)
        _run(
            [need_tool("sfdisk"), "--no-reread", "--no-tell-kernel", "-q", str(disk)],
            "sfdisk",
            input=_sfdisk_script(board_obj),
        )
        fat = work / "boot.fat"
        _fat_image(board_obj, fat, active, work)
        boot_offset = int(board_obj.require("flash.bootstate.start_block")) * board_obj.block_size
        with disk.open("r+b") as f:
            f.seek(boot_offset)
            f.write(fat.read_bytes())
            for name, image in images.items():
                if image is None:
                    continue
                f.seek(board_obj.slot(name).start_block * board_obj.block_size)
                with image.open("rb") as src:
                    shutil.copyfileobj(src, f, 1 << 20)
            f.flush()
            os.fsync(f.fileno())
        os.replace(disk, out)
    return out


SETTINGS_DIR = "settings"


def provision_authorized_keys(board: str | Board, disk: Path, lines: list[str]) -> None:
    """Authorize ``lines`` (SSH public key lines) in the settings on ``disk``'s boot partition,
    keeping the keys already there: what a factory does for the person who will own the
    device, and what ``sample up`` does for the owner of a virtual sample. The device reads
    them at boot (``rk-settings``); images themselves never carry a login key.
    """
    board_obj = board if isinstance(board, Board) else load_board(board)
    offset = int(board_obj.require("flash.bootstate.start_block")) * board_obj.block_size
    image = f"{disk}@@{offset}"
    env = _tool_env()
    target = f"::{SETTINGS_DIR}/authorized_keys"
    current = subprocess.run(
        [need_tool("mtype"), "-i", image, target],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    existing = (
        [ln.strip() for ln in current.stdout.splitlines() if ln.strip()]
        if current.returncode == 0
        else []
    )
    wanted = existing + [ln for ln in lines if ln not in existing]
    if wanted == existing and current.returncode == 0:
        return
    subprocess.run(
        [need_tool("mmd"), "-i", image, f"::{SETTINGS_DIR}"],
        capture_output=True,
        check=False,
        env=env,
    )  # fails harmlessly when it exists
    with tempfile.TemporaryDirectory(prefix="rk-keys-") as tmp:
        src = Path(tmp) / "authorized_keys"
        src.write_text("".join(f"{ln}\n" for ln in wanted))
        _run([need_tool("mcopy"), "-o", "-i", image, str(src), target], "mcopy (authorized_keys)")


def ensure_factory_disk(
    board: str | Board,
    dest: Path,
    version: str = "1.0.0",
    reporter: Reporter | None = None,
    authorized_keys: list[str] | None = None,
) -> Path:
    """A disk with ``version`` in both slots (slot A active) at ``dest``; built once, cached
    in ``cache_dir()/firmware/`` and copied, since every sample starts from a fresh copy.
    ``authorized_keys`` go into the copy's settings (:func:`provision_authorized_keys`)."""
    from filelock import FileLock

    from toolkit.firmware.build import build_image, firmware_cache, prune

    board_obj = board if isinstance(board, Board) else load_board(board)
    result = build_image(version, board_obj, reporter=reporter)
    cache = firmware_cache() / "disks"
    cache.mkdir(parents=True, exist_ok=True)
    key = f"{board_obj.id}-{version}-{result.sha256[:16]}"
    cached = cache / f"factory-{key}.img"
    with FileLock(str(cache / f".{key}.lock")):
        if not cached.exists():
            make_disk(board_obj, cached, result.path, result.path, "A", reporter)
            prune(cache, "factory-*.img", keep=4)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.copyfile(cached, tmp)
    if authorized_keys:
        provision_authorized_keys(board_obj, tmp, authorized_keys)
    os.replace(tmp, dest)
    return dest
