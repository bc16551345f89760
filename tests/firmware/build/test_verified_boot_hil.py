"""Verified boot on the virtual sample: U-Boot boots only FIT configurations signed by a key of
its control DTB, and a refused slot falls back to the other one.

Slot A gets a FIT with the very kernel and initramfs of the good image, signed by a key the
sample does not trust (under the trusted key's name, as an attacker would), or not signed at all.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.firmware.build.qemu import Qemu
from toolkit.boards import load_board
from toolkit.firmware import fit as fitmod
from toolkit.firmware import fitkeys, keys
from toolkit.firmware.build import build_image
from toolkit.firmware.disk import ensure_factory_disk, make_disk
from toolkit.firmware.fdt import parse_fdt
from toolkit.firmware.image import parse

# QEMU and u-boot-qemu come with `make setup`: a missing one fails these tests, never skips.
pytestmark = pytest.mark.hil
BOARD = load_board("es-virt")
FAT_OFFSET = BOARD.get("flash.bootstate.start_block") * BOARD.block_size
FALLBACK = "routerkit: slot A has no valid signature from a trusted key, falling back to slot B"


@pytest.fixture(autouse=True)
def _one_trusted_key() -> None:
    """Only this home's dev FIT key in the control DTB (tests/conftest.py also trusts the same
    test key by config, which would add a second node and U-Boot's "any" wording)."""
    (keys.trusted_dir() / "test-dev.fit.crt").unlink()


def _state(disk: Path) -> str:
    return (
        subprocess.run(
            ["mtype", "-i", f"{disk}@@{FAT_OFFSET}", "::state.env"],
            env=dict(os.environ, MTOOLS_SKIP_CHECK="1"),
            check=True,
            capture_output=True,
        )
        .stdout.decode()
        .replace("\0", "")
    )


def _rogue_key(tmp_path: Path) -> fitkeys.FitKey:
    """A fresh RSA key, moved out of the keys dir (everything there is trusted), that calls
    itself "dev" in the FIT like the trusted key."""
    made = fitkeys.fit_key("rogue")
    assert made.key is not None
    key, cert = tmp_path / "rogue.key", tmp_path / "rogue.crt"
    shutil.move(made.key, key)
    shutil.move(made.cert, cert)
    return fitkeys.FitKey("dev", cert, key)


def _refit(good: Path, tmp_path: Path, key: fitkeys.FitKey | None) -> Path:
    """The good image's kernel and initramfs in a new FIT signed by ``key`` (None: unsigned)."""
    image = parse(good)
    images = dict(parse_fdt(good.read_bytes()[: image.fit_size]).walk())
    files = {
        name: bytes(images[f"/images/{node}"].props["data"])
        for name, node in (("kernel.gz", "kernel-1"), ("initramfs.cpio.gz", "ramdisk-1"))
    }
    its = fitmod.its_source(
        description="routerkit es-virt 1.0.0",
        kernel="kernel.gz",
        initramfs="initramfs.cpio.gz",
        load="0x40400000",
        signed_by=key.name if key else None,
    )
    out = tmp_path / "slotA.fit"
    out.write_bytes(fitmod.make_fit(its, files, 1700000000, tmp_path, keys=[key] if key else []))
    return out


def _boot_refused_slot_a(tmp_path: Path, key: fitkeys.FitKey | None) -> str:
    good = build_image("1.0.0").path
    disk = make_disk(BOARD, tmp_path / "disk.img", _refit(good, tmp_path, key), good, "A")
    with Qemu(disk, tmp_path) as q:
        q.expect(r"Failed to verify required signature 'key-dev'", 90)
        q.expect(FALLBACK, 30)
        q.expect(r"sha256,rsa2048:dev\+ OK", 30)  # slot B: signed by the trusted key
        q.expect(r"routerkit: booted slot B version 1\.0\.0", 90)
        q.expect(r"# ", 30)
        q.run("sync")
    assert _state(disk) == "rk_active=B\nrk_tries=0\n"
    return q.transcript


def test_slot_signed_by_an_untrusted_key_is_refused_and_the_other_slot_boots(
    tmp_path: Path,
) -> None:
    console = _boot_refused_slot_a(tmp_path, _rogue_key(tmp_path))
    assert "sha256,rsa2048:dev-  error!" in console  # the signature of slot A did not verify


def test_slot_with_an_unsigned_fit_is_refused_and_the_other_slot_boots(tmp_path: Path) -> None:
    console = _boot_refused_slot_a(tmp_path, None)
    assert "No 'signature' subnode found" in console


def test_a_signed_slot_boots_after_its_signature_is_checked(tmp_path: Path) -> None:
    disk = ensure_factory_disk("es-virt", tmp_path / "disk.img", version="1.0.0")
    with Qemu(disk, tmp_path) as q:
        q.expect(r"routerkit: booting slot A", 60)
        q.expect(r"Verifying Hash Integrity \.\.\. sha256,rsa2048:dev\+ OK", 30)
        q.expect(r"routerkit: booted slot A version 1\.0\.0", 90)
    assert "falling back" not in q.transcript
