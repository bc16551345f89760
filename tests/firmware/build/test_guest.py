"""Guest packages and the small binary readers the build relies on."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import pytest

from toolkit.errors import BuildError
from toolkit.firmware import guest as guestmod
from toolkit.firmware.fit import raw_arm64_image
from toolkit.firmware.guest import elf_needed, fetch_guest, modinfo


def _fake_image(size: int = 4096) -> bytes:
    data = bytearray(size)
    data[0x38:0x3C] = b"ARM\x64"
    return bytes(data)


def test_second_fetch_does_no_network_io(monkeypatch: pytest.MonkeyPatch) -> None:
    first = fetch_guest()

    def no_apt(*args: object, **kwargs: object) -> str:
        raise AssertionError("apt was called although the packages are cached")

    monkeypatch.setattr(guestmod._Apt, "run", no_apt)
    again = fetch_guest()
    assert again == first
    assert again.kernel.is_file() and again.modules_dir.is_dir()
    assert again.kernel_abi.endswith("-cloud-arm64")
    assert f"linux-image-{again.kernel_abi}" in again.packages
    assert {"busybox-static", "dropbear-bin", "libgmp10", "libc6"} <= set(again.packages)


def test_dropbear_needs_are_read_from_its_elf_header() -> None:
    guest = fetch_guest()
    needed = elf_needed(guest.root / "usr/sbin/dropbear")
    assert "libc.so.6" in needed and "libtomcrypt.so.1" in needed
    assert "libgmp.so.10" in elf_needed(guest.root / "usr/lib/aarch64-linux-gnu/libtomcrypt.so.1")


def test_module_dependencies_come_from_modinfo() -> None:
    guest = fetch_guest()
    blk = next(guest.modules_dir.glob("kernel/**/virtio_blk.ko"))
    info = modinfo(blk)
    assert info["name"] == "virtio_blk"
    assert "virtio" in info["depends"].split(",")


def test_elf_reader_refuses_non_elf(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(b"#!/bin/sh\n" * 10)
    with pytest.raises(BuildError):
        elf_needed(junk)


def test_kernel_unwrapping_accepts_raw_gzip_and_efi_zboot() -> None:
    raw = _fake_image()
    assert raw_arm64_image(raw) == raw
    assert raw_arm64_image(gzip.compress(raw)) == raw
    payload = gzip.compress(raw)
    header = bytearray(64)
    header[0:2] = b"MZ"
    header[4:8] = b"zimg"
    struct.pack_into("<II", header, 8, 64, len(payload))
    header[24:28] = b"gzip"
    assert raw_arm64_image(bytes(header) + payload + b"\0" * 100) == raw


def test_kernel_unwrapping_refuses_what_it_cannot_boot() -> None:
    with pytest.raises(BuildError, match="arm64"):
        raw_arm64_image(b"\0" * 4096)
    zstd = bytearray(64)
    zstd[0:2], zstd[4:8], zstd[24:28] = b"MZ", b"zimg", b"zstd"
    with pytest.raises(BuildError, match="zstd"):
        raw_arm64_image(bytes(zstd))


def test_a_32_bit_guest_is_read_like_a_64_bit_one() -> None:
    """es-arm32's armhf packages: 32-bit ELF files, its own triplet and program interpreter."""
    spec = guestmod.GuestSpec(arch="armhf", kernel_package="linux-image-armmp")
    guest = fetch_guest(spec=spec)
    assert guest.spec == spec and guest.kernel_abi.endswith("-armmp")
    dropbear = guest.root / "usr/sbin/dropbear"
    assert dropbear.read_bytes()[4] == 1  # ELFCLASS32
    assert "libc.so.6" in elf_needed(dropbear)
    assert (guest.root / "lib" / spec.debian.triplet / spec.debian.loader).exists()
    nvme = next(guest.modules_dir.glob("kernel/**/nvme.ko"))
    assert "nvme-core" in modinfo(nvme)["depends"].split(",")


def test_a_board_names_only_architectures_and_kernels_routerkit_builds(tmp_path: Path) -> None:
    from toolkit.boards import load_board

    assert guestmod.GuestSpec.of(load_board("es-arm32")).debian.uname == "armv7l"
    assert guestmod.GuestSpec.of(load_board("es-virt")).debian.fit_arch == "arm64"
    text = load_board("es-virt").path.read_text()
    for wrong, message in (("mips", "firmware.arch 'mips'"), ("arm64", None)):
        bad = tmp_path / "boards" / "odd.toml"
        bad.parent.mkdir(exist_ok=True)
        body = text.replace('id = "es-virt"', 'id = "odd"').replace(
            'arch = "arm64"', f'arch = "{wrong}"'
        )
        if message is None:
            body = body.replace(
                'kernel_package = "linux-image-cloud-arm64"', 'kernel_package = "busybox"'
            )
            message = r"not a linux-image-\* metapackage"
        bad.write_text(body)
        with pytest.raises(BuildError, match=message):
            guestmod.GuestSpec.of(load_board(str(bad)))
