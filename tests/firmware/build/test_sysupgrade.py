"""The on-device sysupgrade/fwinfo scripts, run on the HOST with busybox sh against plain files.

The scripts take every device path from the environment (RK_DEV_A, RK_DEV_B, RK_BOOT_DIR,
RK_CMDLINE...), so the same code that runs on the sample is exercised here with real images
sealed by toolkit.firmware.image.seal, in milliseconds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.tools import require
from toolkit.firmware import fit as fitmod
from toolkit.firmware.image import seal

ROOTFS = Path(__file__).parents[3] / "firmware" / "rootfs"
TEST_KEYS = Path(__file__).parents[2] / "keys"
BUSYBOX = shutil.which("busybox")
SIGNIFY = shutil.which("signify-openbsd") or "signify-openbsd"  # a missing tool fails the tests


@pytest.fixture(autouse=True, scope="module")
def _tools() -> None:
    require("busybox", "mkimage")


SLOT_BYTES = 256 * 1024
OLD_A = b"\x5a" * SLOT_BYTES


def make_image(
    tmp: Path,
    version: str = "5.0.0",
    devices: tuple[str, ...] = ("es-virt",),
    payload: int = 40_000,
) -> Path:
    """A small but real v1 image: mkimage FIT + sealed metadata + signature + footer."""
    its = fitmod.its_source(
        description=f"test {version}", kernel="k.gz", initramfs="i.gz", load="0x40400000"
    )
    kernel = os.urandom(payload)
    fit = fitmod.make_fit(its, {"k.gz": kernel, "i.gz": b"initramfs" * 100}, 1700000000)
    meta = {
        "board": devices[0],
        "supported_devices": list(devices),
        "version": version,
        "compat_version": "1.0",
        "build_date": "2023-11-14T22:13:20Z",
    }
    path = tmp / f"fw-{version}.img"
    path.write_bytes(seal(fit, meta))
    return path


@dataclass
class Device:
    root: Path
    env: dict[str, str]

    def run(self, script: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BUSYBOX), "sh", str(ROOTFS / script), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    @property
    def slot_a(self) -> bytes:
        return (self.root / "slotA").read_bytes()

    @property
    def slot_b(self) -> bytes:
        return (self.root / "slotB").read_bytes()

    @property
    def state(self) -> str:
        return (self.root / "boot" / "state.env").read_text()


@pytest.fixture
def device(tmp_path: Path) -> Device:
    root = tmp_path / "dev"
    (root / "boot").mkdir(parents=True)
    (root / "slotA").write_bytes(OLD_A)
    (root / "slotB").write_bytes(b"\0" * SLOT_BYTES)
    # A trailing NUL, as U-Boot's `env export -t` writes it.
    (root / "boot" / "state.env").write_bytes(b"rk_active=A\nrk_tries=1\n\0")
    (root / "cmdline").write_text("console=ttyAMA0 rk.slot=A\n")
    (root / "version").write_text("4.0.0\n")
    # What the running image trusts: the suite's test dev key (the key make_image signs with).
    (root / "trusted").mkdir()
    shutil.copyfile(TEST_KEYS / "test-dev.pub", root / "trusted" / "dev.pub")
    env = {
        "PATH": os.environ["PATH"],
        "RK_LIB": str(ROOTFS / "lib/routerkit/common.sh"),
        "RK_CONF": str(root / "no-such.conf"),
        "RK_BOARD": "es-virt",
        "RK_DEV_A": str(root / "slotA"),
        "RK_DEV_B": str(root / "slotB"),
        "RK_BOOT_DIR": str(root / "boot"),
        "RK_CMDLINE": str(root / "cmdline"),
        "RK_VERSION_FILE": str(root / "version"),
        "RK_REBOOT": "echo REBOOTING",
        "RK_TRUSTED_KEYS": str(root / "trusted"),
        "RK_SIGNIFY": str(SIGNIFY),
    }
    return Device(root, env)


def test_sysupgrade_writes_only_the_inactive_slot_and_switches(
    device: Device, tmp_path: Path
) -> None:
    image = make_image(tmp_path)
    proc = device.run("sbin/sysupgrade", str(image), "-n")
    assert proc.returncode == 0, proc.stderr
    data = image.read_bytes()
    assert device.slot_b[: len(data)] == data
    assert device.slot_a == OLD_A
    assert device.state == "rk_active=B\nrk_tries=0\n"
    assert "REBOOTING" in proc.stdout
    assert "slot B written and verified" in proc.stdout


def test_sysupgrade_from_slot_b_writes_slot_a(device: Device, tmp_path: Path) -> None:
    (device.root / "cmdline").write_text("console=ttyAMA0 rk.slot=B\n")
    image = make_image(tmp_path)
    proc = device.run("sbin/sysupgrade", str(image))
    assert proc.returncode == 0, proc.stderr
    assert device.slot_a.startswith(image.read_bytes())
    assert device.slot_b == b"\0" * SLOT_BYTES
    assert device.state.startswith("rk_active=A\n")


def _assert_untouched(device: Device, proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode != 0
    assert "error:" in proc.stderr
    assert device.slot_a == OLD_A
    assert device.slot_b == b"\0" * SLOT_BYTES
    assert "rk_active=A" in device.state and "REBOOTING" not in proc.stdout


def test_sysupgrade_rejects_another_board(device: Device, tmp_path: Path) -> None:
    image = make_image(tmp_path, devices=("es-other", "routerkit,es-other"))
    proc = device.run("sbin/sysupgrade", str(image))
    _assert_untouched(device, proc)
    assert "not for this board" in proc.stderr


def test_sysupgrade_rejects_a_board_name_that_only_contains_ours(
    device: Device, tmp_path: Path
) -> None:
    image = make_image(tmp_path, devices=("es-virt2",))
    _assert_untouched(device, device.run("sbin/sysupgrade", str(image)))


def test_sysupgrade_rejects_a_bad_fit_hash(device: Device, tmp_path: Path) -> None:
    image = make_image(tmp_path)
    data = bytearray(image.read_bytes())
    data[3000] ^= 0xFF  # inside the kernel data of the FIT
    image.write_bytes(bytes(data))
    proc = device.run("sbin/sysupgrade", str(image))
    _assert_untouched(device, proc)
    assert "sha256 mismatch" in proc.stderr


@pytest.mark.parametrize("cut", [1, 33, 500, 20_000])
def test_sysupgrade_rejects_a_truncated_image(device: Device, tmp_path: Path, cut: int) -> None:
    image = make_image(tmp_path)
    image.write_bytes(image.read_bytes()[:-cut])
    proc = device.run("sbin/sysupgrade", str(image))
    _assert_untouched(device, proc)
    assert "truncated" in proc.stderr or "footer" in proc.stderr


def test_sysupgrade_rejects_an_image_larger_than_the_slot(device: Device, tmp_path: Path) -> None:
    image = make_image(tmp_path, payload=SLOT_BYTES)
    proc = device.run("sbin/sysupgrade", str(image))
    _assert_untouched(device, proc)
    assert "does not fit" in proc.stderr


def test_sysupgrade_rejects_a_missing_file_and_garbage(device: Device, tmp_path: Path) -> None:
    _assert_untouched(device, device.run("sbin/sysupgrade", str(tmp_path / "nope.img")))
    junk = tmp_path / "junk.img"
    junk.write_bytes(os.urandom(4096))
    _assert_untouched(device, device.run("sbin/sysupgrade", str(junk)))
    _assert_untouched(device, device.run("sbin/sysupgrade"))


def test_sysupgrade_test_mode_checks_and_writes_nothing(device: Device, tmp_path: Path) -> None:
    proc = device.run("sbin/sysupgrade", "-T", str(make_image(tmp_path)))
    assert proc.returncode == 0, proc.stderr
    assert "nothing written" in proc.stdout
    assert device.slot_b == b"\0" * SLOT_BYTES and "rk_active=A" in device.state


def test_fwinfo_reports_both_slots(device: Device, tmp_path: Path) -> None:
    (device.root / "slotA").write_bytes(b"\0" * SLOT_BYTES)
    old = make_image(tmp_path, version="4.0.0")
    with (device.root / "slotA").open("r+b") as f:
        f.write(old.read_bytes())
    new = make_image(tmp_path, version="5.0.0")
    assert device.run("sbin/sysupgrade", str(new)).returncode == 0
    info = json.loads(device.run("sbin/fwinfo").stdout)
    assert info["version"] == "4.0.0" and info["running_slot"] == "A"
    assert info["active_slot"] == "B" and info["rk_tries"] == 0
    assert info["slots"]["A"]["version"] == "4.0.0" and info["slots"]["A"]["ok"] is True
    assert info["slots"]["B"]["version"] == "5.0.0" and info["slots"]["B"]["ok"] is True


def test_fwinfo_flags_a_corrupt_and_an_empty_slot(device: Device, tmp_path: Path) -> None:
    data = bytearray(make_image(tmp_path).read_bytes())
    data[2000] ^= 0x01
    (device.root / "slotA").write_bytes(bytes(data) + b"\0" * 1000)
    info = json.loads(device.run("sbin/fwinfo").stdout)
    assert info["slots"]["A"]["ok"] is False and info["slots"]["A"]["version"] == "5.0.0"
    assert info["slots"]["B"] == {"empty": True}
    assert info["rk_tries"] == 1


def test_selftest_is_json_and_honest_about_absent_parts(device: Device) -> None:
    proc = device.run("usr/bin/selftest")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["board"] == "es-virt" and report["version"] == "4.0.0"
    for part in ("fan", "radio"):
        assert report[part] == {"status": "absent", "reason": "absent on the virtual sample"}
    assert "eth0" in report["ports"] and isinstance(report["uptime_s"], float)


def test_sysupgrade_keeps_the_running_slot_when_read_back_differs(
    device: Device, tmp_path: Path
) -> None:
    """A flash that silently corrupts what it stores: written, but never switched to."""
    lib = tmp_path / "flaky-flash.sh"
    lib.write_text(
        f'. "{ROOTFS}/lib/routerkit/common.sh"\n'
        "rk_write_slot() {\n"
        '\tdd if="$1" of="$2" bs=65536 conv=notrunc 2>/dev/null || return 1\n'
        '\tprintf X | dd of="$2" bs=1 seek=100 conv=notrunc 2>/dev/null\n'
        "}\n"
    )
    device.env["RK_LIB"] = str(lib)
    proc = device.run("sbin/sysupgrade", str(make_image(tmp_path)))
    assert proc.returncode != 0
    assert "read-back of slot B does not match" in proc.stderr
    assert device.state.startswith("rk_active=A") and "REBOOTING" not in proc.stdout
    assert device.slot_a == OLD_A


# --- the device checks signatures itself ------------------------------------------------------


def test_sysupgrade_rejects_a_valid_hash_with_a_signature_by_an_untrusted_key(
    device: Device, tmp_path: Path
) -> None:
    """A perfectly formed image (FIT sha256 in its metadata is right) signed by a key the
    device does not trust: nothing is written."""
    from toolkit.firmware.signify import SecretKey

    its = fitmod.its_source(description="evil", kernel="k.gz", initramfs="i.gz", load="0x40400000")
    fit = fitmod.make_fit(its, {"k.gz": os.urandom(20_000), "i.gz": b"x" * 100}, 1700000000)
    meta = {
        "board": "es-virt",
        "supported_devices": ["es-virt"],
        "version": "9.0.0",
        "compat_version": "1.0",
        "build_date": "2023-11-14T22:13:20Z",
    }
    image = tmp_path / "evil.img"
    image.write_bytes(seal(fit, meta, SecretKey.generate("attacker")))
    proc = device.run("sbin/sysupgrade", str(image))
    _assert_untouched(device, proc)
    assert "does not trust" in proc.stderr


def test_sysupgrade_rejects_metadata_changed_after_signing(device: Device, tmp_path: Path) -> None:
    """Same length, one field changed (the board list): the signature no longer matches."""
    image = make_image(tmp_path, devices=("es-other",))
    # Same total length: "es-other" (8) -> "es-virt" (7) plus one space, still valid JSON.
    data = image.read_bytes().replace(b'["es-other"]', b'["es-virt"] ', 1)
    assert len(data) == image.stat().st_size and b'["es-virt"] ' in data
    image.write_bytes(data)
    proc = device.run("sbin/sysupgrade", str(image))
    _assert_untouched(device, proc)
    assert "signature" in proc.stderr


def test_sysupgrade_refuses_everything_when_it_trusts_no_key(
    device: Device, tmp_path: Path
) -> None:
    for key in (device.root / "trusted").iterdir():
        key.unlink()
    proc = device.run("sbin/sysupgrade", str(make_image(tmp_path)))
    _assert_untouched(device, proc)
    assert "trusts no signing key" in proc.stderr


def test_sysupgrade_names_the_key_that_signed(device: Device, tmp_path: Path) -> None:
    proc = device.run("sbin/sysupgrade", str(make_image(tmp_path)), "-T")
    assert proc.returncode == 0, proc.stderr
    assert "signature ok (signed by dev)" in proc.stdout
