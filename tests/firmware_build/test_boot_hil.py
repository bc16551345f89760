"""Boot the reference firmware in QEMU: A/B fallback, SSH with the host key from the metadata.

Each test boots its own copy of the factory disk (QEMU started here, killed by PID).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.firmware_build.qemu import UBOOT, Qemu
from toolkit.boards import load_board
from toolkit.firmware.build import build_image, sample_client_key
from toolkit.firmware.disk import ensure_factory_disk
from toolkit.firmware.image import parse

pytestmark = [
    pytest.mark.hil,
    pytest.mark.skipif(not shutil.which("qemu-system-aarch64") or not UBOOT.exists(),
                       reason="QEMU / u-boot-qemu missing (make setup)"),
]
BOARD = load_board("es-virt")
FAT_OFFSET = BOARD.get("flash.bootstate.start_block") * BOARD.block_size


def _put_state(disk: Path, text: str, tmp: Path) -> None:
    state = tmp / "state.env"
    state.write_text(text)
    subprocess.run(["mcopy", "-o", "-i", f"{disk}@@{FAT_OFFSET}", str(state), "::state.env"],
                   env=dict(os.environ, MTOOLS_SKIP_CHECK="1"), check=True, capture_output=True)


def _get_state(disk: Path) -> str:
    return subprocess.run(["mtype", "-i", f"{disk}@@{FAT_OFFSET}", "::state.env"],
                          env=dict(os.environ, MTOOLS_SKIP_CHECK="1"), check=True,
                          capture_output=True).stdout.decode().replace("\0", "")


def test_corrupt_active_slot_falls_back_to_the_other(tmp_path: Path) -> None:
    disk = ensure_factory_disk("es-virt", tmp_path / "disk.img", version="1.0.0")
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


def test_too_many_failed_boots_fall_back_to_the_other_slot(tmp_path: Path) -> None:
    disk = ensure_factory_disk("es-virt", tmp_path / "disk.img", version="1.0.0")
    tries = BOARD.get("flash.bootstate.max_tries")
    _put_state(disk, f"rk_active=A\nrk_tries={tries}\n", tmp_path)
    with Qemu(disk, tmp_path) as q:
        q.expect(rf"routerkit: slot A failed {tries} times, falling back to slot B", 90)
        q.expect(r"routerkit: booted slot B version 1\.0\.0", 90)
        q.expect(r"# ", 30)
        q.run("sync")
    assert _get_state(disk) == "rk_active=B\nrk_tries=0\n"


def _ssh(port: int, known: Path, host_key: str, command: str, stdin: bytes | None = None,
         ) -> subprocess.CompletedProcess[bytes]:
    """OpenSSH with ONLY the expected host key trusted (StrictHostKeyChecking=yes)."""
    known.write_text(f"[127.0.0.1]:{port} {host_key}\n")
    cmd = ["ssh", "-i", str(sample_client_key()), "-p", str(port),
           "-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes",
           "-o", "BatchMode=yes", "-o", "ConnectTimeout=20", "root@127.0.0.1", command]
    return subprocess.run(cmd, input=stdin, capture_output=True, timeout=120)


def test_ssh_with_metadata_host_key_then_sysupgrade_to_slot_b(tmp_path: Path) -> None:
    disk = ensure_factory_disk("es-virt", tmp_path / "disk.img", version="1.0.0")
    with disk.open("rb") as f:
        f.seek(BOARD.slot("A").start_block * BOARD.block_size)
        image = tmp_path / "slotA.img"
        image.write_bytes(f.read(BOARD.slot_size))
    meta = parse(_trim(image)).metadata
    new = build_image("1.0.1", out=tmp_path / "out")
    known = tmp_path / "known_hosts"
    with Qemu(disk, tmp_path) as q:
        q.expect(r"routerkit: booted slot A version 1\.0\.0", 90)
        q.expect(r"routerkit: ssh host key " + re.escape(meta["ssh_host_key_fingerprint"]), 30)
        q.expect(r"# ", 30)
        out = _ssh(q.ssh_port, known, meta["ssh_host_key"], "cat /etc/firmware-version; selftest")
        assert out.returncode == 0, out.stderr
        version, report = out.stdout.decode().split("\n", 1)
        assert version == "1.0.0"
        selftest = json.loads(report)
        assert selftest["slot"] == "A" and selftest["ports"]["eth0"]["ipv4"] == "10.0.2.15"
        assert selftest["storage"]["vda3"]["present"] is True

        # dropbear has no SFTP: upload with `cat >`, then the on-device sysupgrade.
        upload = _ssh(q.ssh_port, known, meta["ssh_host_key"], "cat > /tmp/fw.img",
                      new.path.read_bytes())
        assert upload.returncode == 0, upload.stderr
        flash = _ssh(q.ssh_port, known, meta["ssh_host_key"], "sysupgrade -n /tmp/fw.img")
        assert b"slot B written and verified" in flash.stdout, flash.stderr
        q.expect(r"routerkit: booted slot B version 1\.0\.1", 120)
        q.expect(r"# ", 30)
        # The new version has a new host key: the old one must now be refused...
        stale = _ssh(q.ssh_port, known, meta["ssh_host_key"], "true")
        assert stale.returncode != 0 and b"HOST IDENTIFICATION HAS CHANGED" in stale.stderr
        # ...and the one from the new image's metadata accepted.
        info = _ssh(q.ssh_port, known, new.ssh_host_key, "fwinfo")
    assert info.returncode == 0, info.stderr
    fw = json.loads(info.stdout)
    assert fw["version"] == "1.0.1" and fw["running_slot"] == "B" and fw["active_slot"] == "B"
    assert fw["slots"]["A"]["version"] == "1.0.0" and fw["slots"]["B"]["ok"] is True


def _trim(slot_dump: Path) -> Path:
    """Cut a slot dump down to the image: FIT totalsize, then the footer after the trailer."""
    data = slot_dump.read_bytes()
    fit_size = int.from_bytes(data[4:8], "big")
    match = re.compile(rb"RKFW1 \d{12} \d{8} \d{4}\n").search(data, fit_size)
    assert match
    slot_dump.write_bytes(data[: match.end()])
    return slot_dump
