"""The factory disk: partition table from the board profile, boot partition, slot contents."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.firmware.build.conftest import Built
from toolkit.boards import load_board
from toolkit.errors import ImageTooLargeError
from toolkit.firmware.disk import boot_script_source, make_disk


def mtype(disk: Path, offset: int, name: str) -> bytes:
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    return subprocess.run(
        ["mtype", "-i", f"{disk}@@{offset}", f"::{name}"], env=env, capture_output=True, check=True
    ).stdout


def test_disk_has_the_partition_table_of_the_profile(built: Built, tmp_path: Path) -> None:
    board = load_board("es-virt")
    disk = make_disk(board, tmp_path / "disk.img", built.path, None, active="B")
    table = json.loads(
        subprocess.run(
            ["sfdisk", "--json", str(disk)], capture_output=True, text=True, check=True
        ).stdout
    )["partitiontable"]
    assert table["label"] == "dos"
    parts = {int(p["node"][len(str(disk)) :]): p for p in table["partitions"]}
    boot = board.get("flash.bootstate")
    assert (parts[boot["partition"]]["start"], parts[boot["partition"]]["size"]) == (
        boot["start_block"],
        boot["blocks"],
    )
    assert parts[boot["partition"]].get("bootable") is True
    for slot in board.slots.values():
        assert (parts[slot.partition]["start"], parts[slot.partition]["size"]) == (
            slot.start_block,
            slot.blocks,
        )
    assert disk.stat().st_size == board.get("flash.disk_size_mib") * 1024 * 1024


def test_disk_holds_boot_script_state_and_slot_images(built: Built, tmp_path: Path) -> None:
    board = load_board("es-virt")
    other = tmp_path / "other.img"
    other.write_bytes(b"B-image" * 1000)
    disk = make_disk(board, tmp_path / "disk.img", built.path, other, active="B")
    fat_offset = board.get("flash.bootstate.start_block") * board.block_size
    assert mtype(disk, fat_offset, "state.env") == b"rk_active=B\nrk_tries=0\n"
    scr = mtype(disk, fat_offset, "boot.scr")
    assert scr[:4] == b"\x27\x05\x19\x56"  # legacy U-Boot image header (mkimage -T script)
    assert b"falling back to slot" in scr and b"@LOAD_ADDR@" not in scr
    image = built.path.read_bytes()
    with disk.open("rb") as f:
        f.seek(board.slot("A").start_block * board.block_size)
        assert f.read(len(image)) == image
        f.seek(board.slot("B").start_block * board.block_size)
        assert f.read(7000) == other.read_bytes()


def test_boot_script_uses_the_profile_values() -> None:
    board = load_board("es-virt")
    text = boot_script_source(board)
    for slot in board.slots.values():
        assert f"{slot.start_block:#x}" in text and f"{slot.blocks:#x}" in text
    assert f"setenv rk_max_tries {board.get('flash.bootstate.max_tries')}" in text
    assert "saveenv" not in text.replace("Never saveenv", "")


def test_disk_refuses_an_image_larger_than_its_slot(tmp_path: Path) -> None:
    board = load_board("es-virt")
    big = tmp_path / "big.img"
    with big.open("wb") as f:
        f.truncate(board.slot("A").size_bytes(board.block_size) + 1)
    with pytest.raises(ImageTooLargeError):
        make_disk(board, tmp_path / "disk.img", big)
    assert not (tmp_path / "disk.img").exists()


def test_cli_disk_writes_a_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from toolkit.cli import root

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    out = tmp_path / "d.img"
    result = CliRunner().invoke(
        root, ["firmware", "disk", "--out", str(out), "--version", "2.0.0", "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["path"] == str(out) and data["active"] == "A" and out.is_file()


def test_files_written_to_the_boot_fat_carry_dates_a_32_bit_guest_can_stat(
    built: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mtools stamps files with SOURCE_DATE_EPOCH; 0 (1970) is before FAT's first year and
    wraps to 2098, which a 32-bit time_t cannot hold: the armhf guest's stat() then fails
    (EOVERFLOW) and its authorized_keys looked absent. Every date must be 1980..2037."""
    from toolkit.firmware.disk import SETTINGS_DIR, provision_authorized_keys

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    board = load_board("es-virt")
    disk = make_disk(board, tmp_path / "disk.img", built.path, None, active="A")
    provision_authorized_keys(board, disk, ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA test"])
    fat = f"{disk}@@{board.get('flash.bootstate.start_block') * board.block_size}"
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1", LC_ALL="C")
    listing = ""
    for where in ("::", f"::{SETTINGS_DIR}"):
        listing += subprocess.run(
            ["mdir", "-i", fat, where], env=env, capture_output=True, text=True, check=True
        ).stdout
    years = [int(year) for year in re.findall(r"\b(\d{4})-\d{2}-\d{2}\b", listing)]
    assert "authorized_keys" in listing
    assert years and all(1980 <= y <= 2037 for y in years), listing
