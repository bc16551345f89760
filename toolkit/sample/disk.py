"""The sample's "flash": a raw disk image in its directory (QEMU presents it as the profile's
``[qemu] disk_device``: a virtio-blk disk, an NVMe drive...).

pflash writes are broken in QEMU 7.2, so the virtual board's flash is a disk with an MBR whose
first partition holds ``boot.scr`` (U-Boot's distro boot runs it). The factory image comes from
``toolkit.firmware.disk.ensure_factory_disk`` (the reference firmware build); while that is not
available, a blank disk of the profile's size still lets U-Boot come up.
"""

from __future__ import annotations

import importlib
import inspect
import os
import shutil
from pathlib import Path

from toolkit.boards import Board
from toolkit.errors import NotFoundError, SampleError
from toolkit.events import Reporter

DISK_FILE = "disk.img"


def has_partition_table(path: Path) -> bool:
    """True when the image starts with an MBR (0x55AA at 510): it holds firmware, not zeros."""
    try:
        with open(path, "rb") as fh:
            fh.seek(510)
            return fh.read(2) == b"\x55\xaa"
    except OSError:
        return False


def factory_builder() -> object | None:
    """``ensure_factory_disk`` of the firmware package, or None while it does not exist."""
    try:
        module = importlib.import_module("toolkit.firmware.disk")
    except ModuleNotFoundError as exc:
        if exc.name in ("toolkit.firmware.disk", "toolkit.firmware"):
            return None
        raise
    return getattr(module, "ensure_factory_disk", None)


def prepare(
    board: Board, directory: Path, source: str | Path | None, fresh: bool, reporter: Reporter
) -> tuple[Path, bool]:
    """Put the disk in place; returns its path and whether it holds firmware."""
    dest = directory / DISK_FILE
    if source is not None:
        src = Path(source)
        if not src.is_file():
            raise NotFoundError(f"disk image {src} does not exist")
        if src.resolve() != dest.resolve():
            # A copy: the sample writes to its disk (boot counter, flashing); the caller's
            # image must stay as it was.
            tmp = dest.with_suffix(".tmp")
            shutil.copyfile(src, tmp)
            if has_partition_table(tmp):
                _authorize_owner(board, tmp)
            os.replace(tmp, dest)
        return dest, has_partition_table(dest)
    builder = factory_builder()
    if dest.is_file() and not fresh and (has_partition_table(dest) or builder is None):
        return dest, has_partition_table(dest)
    if builder is not None:
        reporter.message("writing the factory disk (reference firmware)")
        _call_builder(builder, board, dest, reporter)
        if not dest.is_file():
            raise SampleError(f"the firmware disk builder did not create {dest}")
        return dest, has_partition_table(dest)
    reporter.message("no reference firmware yet: booting a blank disk (U-Boot only)", "warning")
    size = int(board.get("flash.disk_size_mib", 80)) * 1024 * 1024
    dest.unlink(missing_ok=True)
    with open(dest, "wb") as fh:
        fh.truncate(size)  # sparse: costs no space until written
    return dest, False


def _authorize_owner(board: Board, disk: Path) -> None:
    """The person who starts a virtual sample owns it: their routerkit SSH key is authorized
    in its settings, as a factory would for the buyer (images carry no login key)."""
    from toolkit.firmware.disk import provision_authorized_keys
    from toolkit.identity import public_line

    provision_authorized_keys(board, disk, [public_line()])


def _call_builder(builder: object, board: Board, dest: Path, reporter: Reporter) -> None:
    """Call ``ensure_factory_disk(board, dest[, reporter=...])`` with what it accepts."""
    assert callable(builder)
    params = inspect.signature(builder).parameters
    kwargs: dict[str, object] = {}
    if "reporter" in params:
        kwargs["reporter"] = reporter
    if "authorized_keys" in params:
        from toolkit.identity import public_line

        kwargs["authorized_keys"] = [public_line()]
    builder(board, dest, **kwargs)
