"""The FIT's layout does not move with the version: a nightly whose version string is longer
than the last one's keeps its kernel at the same offset, so a delta reflash finds it in place."""

from __future__ import annotations

import os

from toolkit.firmware import fit
from toolkit.firmware.fdt import parse_fdt


def _kernel_offset(version: str, kernel: bytes) -> tuple[int, bytes]:
    its = fit.its_source(
        description=f"routerkit es-virt {version}", kernel="k", initramfs="i", load="0x40400000"
    )
    blob = fit.make_fit(its, {"k": kernel, "i": os.urandom(1000)}, epoch=1_700_000_000)
    return blob.index(kernel), blob


def test_versions_of_different_lengths_leave_the_kernel_where_it_was() -> None:
    kernel = os.urandom(64 << 10)
    offsets = {v: _kernel_offset(v, kernel)[0] for v in ("1.2.0-nightly.9", "1.2.0-nightly.10",
                                                        "1.10.0", "2.0.0-rc.1+build.20261206")}  # fmt: skip
    assert len(set(offsets.values())) == 1, offsets


def test_the_description_reads_back_without_its_padding() -> None:
    from toolkit.firmware.image import read_fit

    _, blob = _kernel_offset("1.2.0-nightly.10", os.urandom(4096))
    stored = parse_fdt(blob).string("description") or ""
    assert len(stored) % fit.DESCRIPTION_STEP == 0 and stored.rstrip() == stored.strip()
    assert read_fit(blob).description == "routerkit es-virt 1.2.0-nightly.10"


def test_the_kernel_goes_in_as_the_board_declares() -> None:
    """``image``: the arm64 Image gzip'ed for U-Boot to unpack; ``zimage``: the 32-bit zImage as
    it is (it decompresses itself). A kernel of the wrong kind is refused, never packed."""
    import gzip
    import struct

    import pytest

    from toolkit.errors import BuildError

    arm64 = bytearray(4096)
    arm64[0x38:0x3C] = b"ARM\x64"
    zimage = bytearray(4096)
    struct.pack_into("<I", zimage, 0x24, 0x016F2818)
    assert fit.kernel_compression("image") == "gzip"
    assert gzip.decompress(fit.kernel_payload(bytes(arm64), "image")) == bytes(arm64)
    assert fit.kernel_compression("zimage") == "none"
    assert fit.kernel_payload(bytes(zimage), "zimage") == bytes(zimage)
    with pytest.raises(BuildError, match="not an ARM zImage"):
        fit.kernel_payload(bytes(arm64), "zimage")
    with pytest.raises(BuildError, match="not an arm64 Image"):
        fit.kernel_payload(bytes(zimage), "image")
    with pytest.raises(BuildError, match="unknown kernel_format 'uimage'"):
        fit.kernel_compression("uimage")
    its = fit.its_source(
        description="d",
        kernel="k",
        initramfs="r",
        load="0x42000000",
        arch="arm",
        compression="none",
    )
    assert 'arch = "arm";' in its and 'compression = "none";' in its


def test_partitions_are_named_as_the_board_s_linux_names_them() -> None:
    from toolkit.boards import load_board
    from toolkit.firmware.initramfs import linux_partition

    assert linux_partition(load_board("es-virt"), 2) == "/dev/vda2"
    assert linux_partition(load_board("es-arm32"), 2) == "/dev/nvme0n1p2"
