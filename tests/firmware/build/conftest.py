"""Shared fixtures: one reference build per test session (the cache is shared anyway)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import SHARED_CACHE

EPOCH = 1700000000


@dataclass(frozen=True)
class Built:
    result: object  # toolkit.firmware.build.BuildResult
    path: Path
    data_dir: Path
    initramfs: dict[str, tuple[int, int, int, int, bytes]]  # name -> (mode, uid, gid, mtime, data)


def read_newc(data: bytes) -> dict[str, tuple[int, int, int, int, bytes]]:
    """Parse a cpio newc archive (enough of it to check modes, owners, times and contents)."""
    entries: dict[str, tuple[int, int, int, int, bytes]] = {}
    pos = 0
    while True:
        assert data[pos : pos + 6] == b"070701", f"bad cpio magic at {pos}"
        fields = [int(data[pos + 6 + i * 8 : pos + 14 + i * 8], 16) for i in range(13)]
        mode, uid, gid, mtime, filesize, namesize = (
            fields[1],
            fields[2],
            fields[3],
            fields[5],
            fields[6],
            fields[11],
        )
        name_start = pos + 110
        name = data[name_start : name_start + namesize - 1].decode()
        body = (name_start + namesize + 3) & ~3
        if name == "TRAILER!!!":
            return entries
        entries[name] = (mode, uid, gid, mtime, data[body : body + filesize])
        pos = (body + filesize + 3) & ~3


def extract_initramfs(image: Path, workdir: Path) -> bytes:
    """The gzip'ed cpio inside an image's FIT (dumpimage reads the FIT part of the file)."""
    out = workdir / "initramfs.cpio.gz"
    subprocess.run(
        ["dumpimage", "-T", "flat_dt", "-p", "1", "-o", str(out), str(image)],
        check=True,
        capture_output=True,
    )
    return out.read_bytes()


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """Version 2.0.0 of the reference firmware, built with a fixed SOURCE_DATE_EPOCH."""
    import gzip

    if not shutil.which("mkimage"):
        pytest.skip("u-boot-tools missing (make setup)")
    home = tmp_path_factory.mktemp("fw-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ROUTERKIT_DATA", str(home / "data"))
        mp.setenv("ROUTERKIT_CACHE", str(SHARED_CACHE))
        from toolkit.firmware.build import build_image

        result = build_image("2.0.0", out=home / "out", epoch=EPOCH, source_revision="test")
        cpio = gzip.decompress(extract_initramfs(result.path, home))
        yield Built(result, result.path, home / "data", read_newc(cpio))
