"""Boot the reference firmware in QEMU: A/B fallback; a host key made at first boot and kept
across upgrades; root login only for the owner's key; signatures checked on the device.

Each test boots its own copy of the factory disk (QEMU started here, killed by PID).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.firmware.build.qemu import Qemu, uboot
from tests.tools import board_under_test, require
from toolkit.boards import load_board
from toolkit.firmware.build import build_image, sample_client_key, test_client_public_key
from toolkit.firmware.disk import ensure_factory_disk

pytestmark = pytest.mark.hil


@pytest.fixture(autouse=True, scope="module")
def _tools() -> None:
    require(str(BOARD.require("qemu.binary")), files=(uboot(BOARD),))


BOARD = load_board(board_under_test())
FAT_OFFSET = BOARD.get("flash.bootstate.start_block") * BOARD.block_size


def _put_state(disk: Path, text: str, tmp: Path) -> None:
    state = tmp / "state.env"
    state.write_text(text)
    subprocess.run(
        ["mcopy", "-o", "-i", f"{disk}@@{FAT_OFFSET}", str(state), "::state.env"],
        env=dict(os.environ, MTOOLS_SKIP_CHECK="1"),
        check=True,
        capture_output=True,
    )


def _get_state(disk: Path) -> str:
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


@pytest.mark.every_board
def test_corrupt_active_slot_falls_back_to_the_other(tmp_path: Path) -> None:
    disk = ensure_factory_disk(BOARD, tmp_path / "disk.img", version="1.0.0")
    with disk.open("r+b") as f:  # flip bytes in the middle of slot A's kernel
        f.seek(BOARD.slot("A").start_block * BOARD.block_size + 2 * 1024 * 1024)
        chunk = f.read(64)
        f.seek(-64, 1)
        f.write(bytes(b ^ 0xFF for b in chunk))
    with Qemu(disk, tmp_path) as q:
        q.expect(r"routerkit: slot A is corrupt, falling back to slot B", 90)
        q.expect(r"routerkit: booted slot B version 1\.0\.0", 90)
        q.expect(r"# ", 30)
        info = json.loads(re.search(r"\{.*\}", q.run("fwinfo"))[0])  # type: ignore[index]
    assert info["running_slot"] == "B" and info["active_slot"] == "B"
    assert info["slots"]["A"]["ok"] is False and info["slots"]["B"]["ok"] is True
    assert "Bad hash value" in q.transcript or "bad hash" in q.transcript.lower()
    assert _get_state(disk) == "rk_active=B\nrk_tries=0\n"


@pytest.mark.every_board
def test_too_many_failed_boots_fall_back_to_the_other_slot(tmp_path: Path) -> None:
    disk = ensure_factory_disk(BOARD, tmp_path / "disk.img", version="1.0.0")
    tries = BOARD.get("flash.bootstate.max_tries")
    _put_state(disk, f"rk_active=A\nrk_tries={tries}\n", tmp_path)
    with Qemu(disk, tmp_path) as q:
        q.expect(rf"routerkit: slot A failed {tries} times, falling back to slot B", 90)
        q.expect(r"routerkit: booted slot B version 1\.0\.0", 90)
        q.expect(r"# ", 30)
        q.run("sync")
        # A factory disk nobody was given: console only, the committed test key gets nowhere.
        host_key = _host_key(q)
        denied = _ssh(q.ssh_port, tmp_path / "known_hosts", host_key, "true")
    assert denied.returncode != 0 and b"Permission denied" in denied.stderr
    assert _get_state(disk) == "rk_active=B\nrk_tries=0\n"


def _host_key(q: Qemu) -> str:
    """The device's host key as its console reports it (line + sha256 of the line)."""
    out = q.run("rk-settings hostkey")
    line = next(ln.strip() for ln in out.splitlines() if ln.strip().startswith("ssh-ed25519 "))
    assert f"sha256 {hashlib.sha256(line.encode()).hexdigest()}" in out
    return line


def _ssh(
    port: int,
    known: Path,
    host_key: str,
    command: str,
    stdin: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """OpenSSH with ONLY the expected host key trusted (StrictHostKeyChecking=yes)."""
    known.write_text(f"[127.0.0.1]:{port} {host_key}\n")
    cmd = [
        "ssh",
        "-i",
        str(sample_client_key()),
        "-p",
        str(port),
        "-o",
        f"UserKnownHostsFile={known}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=20",
        "root@127.0.0.1",
        command,
    ]
    return subprocess.run(cmd, input=stdin, capture_output=True, timeout=120)


def test_first_boot_host_key_owner_login_and_signed_sysupgrade_to_slot_b(tmp_path: Path) -> None:
    from toolkit.firmware import keys

    owner = test_client_public_key().decode().strip()
    disk = ensure_factory_disk(
        BOARD, tmp_path / "disk.img", version="1.0.0", authorized_keys=[owner]
    )
    new = build_image("1.0.1", BOARD, out=tmp_path / "out")
    keys.generate("stranger", trust=False)
    # Signed (by a key the device does not trust), hashes right: only the signature is wrong.
    foreign = build_image("1.0.2", BOARD, out=tmp_path / "foreign", key="stranger")
    known = tmp_path / "known_hosts"
    with Qemu(disk, tmp_path) as q:
        q.expect(r"routerkit: booted slot A version 1\.0\.0", 90)
        q.expect(r"generated this device's SSH host key \(first boot\)", 30)
        q.expect(r"# ", 30)
        host_key = _host_key(q)
        out = _ssh(q.ssh_port, known, host_key, "cat /etc/firmware-version; selftest")
        assert out.returncode == 0, out.stderr
        version, report = out.stdout.decode().split("\n", 1)
        assert version == "1.0.0"
        selftest = json.loads(report)
        assert selftest["slot"] == "A" and selftest["ports"]["eth0"]["ipv4"] == "10.0.2.15"
        assert selftest["storage"]["vda3"]["present"] is True

        # The device itself refuses an image whose signature it cannot check, hashes or not.
        upload = _ssh(
            q.ssh_port, known, host_key, "cat > /tmp/foreign.img", foreign.path.read_bytes()
        )
        assert upload.returncode == 0, upload.stderr
        refused = _ssh(q.ssh_port, known, host_key, "sysupgrade -n /tmp/foreign.img")
        assert refused.returncode != 0 and b"does not trust" in refused.stderr, refused.stderr
        assert b"written" not in refused.stdout

        # dropbear has no SFTP: upload with `cat >`, then the on-device sysupgrade.
        upload = _ssh(q.ssh_port, known, host_key, "cat > /tmp/fw.img", new.path.read_bytes())
        assert upload.returncode == 0, upload.stderr
        flash = _ssh(q.ssh_port, known, host_key, "sysupgrade -n /tmp/fw.img")
        assert b"signature ok" in flash.stdout, flash.stderr
        assert b"slot B written and verified" in flash.stdout, flash.stderr
        q.expect(r"routerkit: booted slot B version 1\.0\.1", 120)
        q.expect(r"# ", 30)
        # The device kept its host key (and its owner's login) across the upgrade.
        assert _host_key(q) == host_key
        info = _ssh(q.ssh_port, known, host_key, "fwinfo")
    assert info.returncode == 0, info.stderr
    assert q.transcript.count("generated this device's SSH host key") == 1
    fw = json.loads(info.stdout)
    assert fw["version"] == "1.0.1" and fw["running_slot"] == "B" and fw["active_slot"] == "B"
    assert fw["slots"]["A"]["version"] == "1.0.0" and fw["slots"]["B"]["ok"] is True
