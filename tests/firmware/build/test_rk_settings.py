"""The on-device ``rk-settings`` script, run on the HOST with busybox sh against plain files.

It is what keeps secrets out of images: the SSH host key is made on the device at first boot
and kept in its settings, and root logins are granted by whoever flashes it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOTFS = Path(__file__).parents[3] / "firmware" / "rootfs"
REPO = Path(__file__).parents[3]
BUSYBOX = shutil.which("busybox") or "busybox"  # a missing tool fails the tests
DROPBEARKEY = shutil.which("dropbearkey") or "dropbearkey"


class Device:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "boot").mkdir(parents=True)
        self.env = {
            "PATH": os.environ["PATH"],
            "RK_LIB": str(ROOTFS / "lib/routerkit/common.sh"),
            "RK_CONF": str(root / "no-such.conf"),
            "RK_BOOT_DIR": str(root / "boot"),
            "RK_RUN_DIR": str(root / "run"),
            "RK_DEV_KEYS": str(root / "dev-keys"),
            "RK_DROPBEARKEY": DROPBEARKEY,
        }

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [BUSYBOX, "sh", str(ROOTFS / "sbin" / "rk-settings"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    @property
    def authorized(self) -> str:
        return (self.root / "run" / "authorized_keys").read_text()


@pytest.fixture
def device(tmp_path: Path) -> Device:
    return Device(tmp_path / "dev")


def _sha(line: str) -> str:
    return hashlib.sha256(line.encode()).hexdigest()


def test_first_boot_makes_a_host_key_and_later_boots_keep_it(device: Device) -> None:
    first = device.run("init")
    assert first.returncode == 0, first.stderr
    assert "generated this device's SSH host key" in first.stdout
    key = device.root / "boot" / "settings" / "dropbear_ed25519_host_key"
    assert key.stat().st_size > 0
    one = device.run("hostkey").stdout
    second = device.run("init")
    assert second.returncode == 0 and "generated" not in second.stdout
    assert device.run("hostkey").stdout == one  # kept across boots (and upgrades)


def test_hostkey_prints_the_line_and_its_sha256(device: Device) -> None:
    device.run("init")
    out = device.run("hostkey").stdout.splitlines()
    assert out[0].startswith("ssh-ed25519 AAAA")
    assert out[1] == f"sha256 {_sha(out[0])}"


def test_two_devices_never_share_a_host_key(tmp_path: Path) -> None:
    a, b = Device(tmp_path / "a"), Device(tmp_path / "b")
    a.run("init")
    b.run("init")
    assert a.run("hostkey").stdout != b.run("hostkey").stdout


def test_no_key_can_log_in_until_someone_is_authorized(device: Device) -> None:
    device.run("init")
    assert device.authorized == ""


def test_authorize_adds_a_key_once_and_refuses_a_garbled_line(device: Device) -> None:
    device.run("init")
    line = (
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB2c8ZyYkq1oa7b1Uu0xW7xqz4I0DqzC1cKkqkY7b2+x me@bench"
    )
    garbled = line.replace("me@", "mf@")
    bad = device.run("authorize", garbled, _sha(line))
    assert bad.returncode != 0 and "garbled" in bad.stderr
    assert device.authorized == ""
    for _ in range(2):
        ok = device.run("authorize", line, _sha(line))
        assert ok.returncode == 0, ok.stderr
        assert f"authorized {_sha(line)}" in ok.stdout
    assert device.authorized == line + "\n"
    stored = (device.root / "boot" / "settings" / "authorized_keys").read_text()
    assert stored == line + "\n"
    assert device.run("keys").stdout.splitlines() == [line, f"sha256 {_sha(line)}"]


def test_authorize_refuses_what_is_not_a_public_key(device: Device) -> None:
    device.run("init")
    text = 'command="rm -rf /" ssh-ed25519 AAAA'
    proc = device.run("authorize", text, _sha(text))
    assert proc.returncode != 0 and device.authorized == ""


def test_a_dev_image_adds_the_test_key_only_while_it_runs(device: Device) -> None:
    test_pub = (REPO / "firmware" / "keys" / "test_id_ed25519.pub").read_text()
    (device.root / "dev-keys").write_text(test_pub)
    device.run("init")
    assert device.authorized == test_pub
    # The device's own settings never receive it: a later (release) image does not carry it.
    assert not (device.root / "boot" / "settings" / "authorized_keys").exists()
    (device.root / "dev-keys").unlink()
    device.run("init")
    assert device.authorized == ""


def test_without_settings_storage_the_host_key_is_temporary(device: Device) -> None:
    device.env["RK_SETTINGS_DIR"] = "/proc/no-such-settings"
    proc = device.run("init")
    assert proc.returncode == 0, proc.stderr
    assert "temporary" in proc.stdout
    assert (device.root / "run" / "volatile" / "dropbear_ed25519_host_key").exists()


def test_on_the_device_an_unmounted_boot_partition_means_a_temporary_key(device: Device) -> None:
    """/boot exists (and is writable) in the initramfs itself: without the FAT mounted on it,
    a key kept there would be lost at every boot, so it is called temporary."""
    device.env["RK_SETTINGS_NEED_MOUNT"] = "1"  # as /etc/routerkit.conf sets it on the device
    proc = device.run("init")
    assert proc.returncode == 0, proc.stderr
    assert "temporary" in proc.stdout
    assert not (device.root / "boot" / "settings").exists()


def test_on_the_device_a_mounted_boot_partition_keeps_the_key(device: Device) -> None:
    """The same check passes for a directory /proc/mounts lists (here: the host's /proc)."""
    device.env["RK_SETTINGS_NEED_MOUNT"] = "1"
    device.env["RK_BOOT_DIR"] = "/proc"
    device.env["RK_SETTINGS_DIR"] = str(device.root / "persistent")
    proc = device.run("init")
    assert proc.returncode == 0, proc.stderr
    assert "temporary" not in proc.stdout
    assert (device.root / "persistent" / "dropbear_ed25519_host_key").exists()
