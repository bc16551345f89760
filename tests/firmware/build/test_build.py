"""The reference build: reproducible, complete, and carrying no secret."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.firmware.build.conftest import EPOCH, Built
from toolkit.firmware.build import build_image
from toolkit.firmware.image import parse


def test_build_is_reproducible_without_any_cache(tmp_path: Path) -> None:
    first = build_image(
        "2.1.0", out=tmp_path / "a", epoch=EPOCH, source_revision="r", use_cache=False
    )
    second = build_image(
        "2.1.0", out=tmp_path / "b", epoch=EPOCH, source_revision="r", use_cache=False
    )
    cached = build_image("2.1.0", out=tmp_path / "c", epoch=EPOCH, source_revision="r")
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.sha256 == second.sha256 == cached.sha256
    assert hashlib.sha256(first.path.read_bytes()).hexdigest() == first.sha256


def test_another_version_gets_another_image(tmp_path: Path) -> None:
    one = build_image("3.0.0", out=tmp_path, epoch=EPOCH, source_revision="r")
    two = build_image("3.0.1", out=tmp_path, epoch=EPOCH, source_revision="r")
    assert one.sha256 != two.sha256
    assert one.path.name == "es-virt-3.0.0.img"


def test_metadata_carries_board_version_and_device_trust(built: Built) -> None:
    meta = parse(built.path).metadata
    result = built.result
    assert meta["version"] == "2.0.0"
    assert "es-virt" in meta["supported_devices"]
    assert meta["build_date"] == "2023-11-14T22:13:20Z"
    assert "ssh_host_key" not in meta and "ssh_host_key_fingerprint" not in meta
    assert meta["device_trusted_keys"] == [meta["signer"]]
    assert "development" not in meta and result.development is False  # type: ignore[attr-defined]
    assert meta["fit_sha256"] == result.fit_sha256  # type: ignore[attr-defined]
    assert meta["source_revision"] == "test"


def test_initramfs_has_the_firmware_files(built: Built) -> None:
    files = built.initramfs
    for name in (
        "init",
        "bin/busybox",
        "bin/sh",
        "sbin/init",
        "sbin/sysupgrade",
        "sbin/fwinfo",
        "usr/bin/selftest",
        "usr/sbin/dropbear",
        "lib/ld-linux-aarch64.so.1",
        "lib/aarch64-linux-gnu/libc.so.6",
        "lib/aarch64-linux-gnu/libgmp.so.10",
        "lib/aarch64-linux-gnu/libtomcrypt.so.1",
        "etc/inittab",
        "root/.ssh/authorized_keys",
        "sbin/rk-settings",
        "usr/bin/dropbearkey",
        "bin/signify-openbsd",
        "usr/share/udhcpc/default.script",
    ):
        assert name in files, name
    assert files["etc/firmware-version"][4] == b"2.0.0\n"
    board = json.loads(files["etc/board.json"][4])
    assert board["id"] == "es-virt" and "es-virt" in board["compatible"]
    # A link to the device's own list (laid out at boot from its settings), not a key.
    assert stat.S_ISLNK(files["root/.ssh/authorized_keys"][0])
    assert files["root/.ssh/authorized_keys"][4] == b"/run/routerkit/authorized_keys"
    trusted = [n for n in files if n.startswith("etc/routerkit/trusted-keys/")]
    signer = parse(built.path).metadata["signer"]
    assert trusted == [f"etc/routerkit/trusted-keys/{signer}.pub"]
    assert stat.S_ISLNK(files["bin/sh"][0]) and files["bin/sh"][4] == b"busybox"
    assert stat.S_IMODE(files["init"][0]) == 0o755
    for program in (
        "usr/sbin/dropbear",
        "usr/bin/dropbearkey",
        "bin/signify-openbsd",
        "sbin/rk-settings",
        "sbin/sysupgrade",
    ):
        assert stat.S_IMODE(files[program][0]) == 0o755, program


def test_initramfs_entries_are_root_owned_with_the_build_epoch(built: Built) -> None:
    for name, (_mode, uid, gid, mtime, _data) in built.initramfs.items():
        assert (uid, gid, mtime) == (0, 0, EPOCH), name


def test_modules_load_in_dependency_order(built: Built) -> None:
    load = [n for n in built.initramfs if n.endswith("/routerkit.load")]
    assert len(load) == 1
    order = [Path(line).stem for line in built.initramfs[load[0]][4].decode().split()]
    for module in ("virtio_blk", "virtio_net", "virtio_mmio", "vfat", "nls_cp437"):
        assert module in order
    assert order.index("virtio") < order.index("virtio_mmio") < order.index("virtio_blk")
    assert order.index("virtio_ring") < order.index("virtio")
    assert order.index("fat") < order.index("vfat")
    assert order.index("net_failover") < order.index("virtio_net")
    kdir = load[0].rsplit("/", 1)[0]
    for rel in built.initramfs[load[0]][4].decode().split():
        assert f"{kdir}/{rel}" in built.initramfs


def test_cli_build_reports_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from toolkit.cli import root as cli

    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(EPOCH))
    result = CliRunner().invoke(
        cli, ["firmware", "build", "--version", "2.0.0", "--out", str(tmp_path), "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["version"] == "2.0.0" and data["board"] == "es-virt"
    assert Path(data["path"]).is_file()
    assert hashlib.sha256(Path(data["path"]).read_bytes()).hexdigest() == data["sha256"]


def test_cli_build_refuses_a_bad_version(tmp_path: Path) -> None:
    from toolkit.cli import root as cli

    result = CliRunner().invoke(
        cli, ["firmware", "build", "--version", "1 0", "--out", str(tmp_path)]
    )
    assert result.exit_code == 18
    assert "invalid version" in result.output


def test_missing_tool_names_make_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    from toolkit.errors import ToolMissingError
    from toolkit.firmware.guest import need_tool

    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ToolMissingError, match="make setup"):
        need_tool("mkimage")


def test_build_signs_with_the_given_key(tmp_path: Path) -> None:
    from toolkit.firmware import keys

    key = keys.generate("fw-build-test", trust=False)
    result = build_image(
        "2.0.0", out=tmp_path, key="fw-build-test", epoch=EPOCH, source_revision="r"
    )
    assert result.signer == key.keyid
    assert parse(result.path).metadata["signer"] == key.keyid
