"""build_image(files=...): extra files laid over the image's root filesystem (OpenWrt's
``files/`` overlay), part of the build's identity, and kept inside the image."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from tests.firmware.build.conftest import extract_initramfs, read_newc
from toolkit.errors import BuildError
from toolkit.firmware.build import build_image


def test_extra_files_land_in_the_initramfs_and_change_the_image(tmp_path: Path) -> None:
    plain = build_image("1.2.0-nightly.1", out=tmp_path / "plain.img")
    extra = build_image(
        "1.2.0-nightly.1",
        out=tmp_path / "extra.img",
        files={"etc/rk-feature": b"broken\n", "usr/bin/rk-hello": b"#!/bin/sh\necho hi\n"},
    )
    assert extra.fit_sha256 != plain.fit_sha256  # another input, another build
    entries = read_newc(gzip.decompress(extract_initramfs(extra.path, tmp_path)))
    assert entries["etc/rk-feature"][4] == b"broken\n"
    assert entries["etc/rk-feature"][0] & 0o777 == 0o644
    assert entries["usr/bin/rk-hello"][0] & 0o777 == 0o755
    assert entries["etc/firmware-version"][4] == b"1.2.0-nightly.1\n"  # the rest as always
    again = build_image("1.2.0-nightly.1", out=tmp_path / "again.img", files={
        "etc/rk-feature": b"broken\n", "usr/bin/rk-hello": b"#!/bin/sh\necho hi\n",
    })  # fmt: skip
    assert again.sha256 == extra.sha256  # reproducible with the same files


@pytest.mark.parametrize("name", ["../escape", "/etc/passwd", "etc/../../x"])
def test_extra_files_must_stay_inside_the_image(tmp_path: Path, name: str) -> None:
    with pytest.raises(BuildError, match="not a path inside the image"):
        build_image("1.2.0-nightly.2", out=tmp_path / "x.img", files={name: b"x"}, use_cache=True)
