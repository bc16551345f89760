"""The package data routerkit ships (toolkit/_data) and the one module that reads it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from toolkit import paths, resources
from toolkit.errors import NotFoundError

CHECKOUT = Path(__file__).resolve().parents[2]
ON_DEVICE_PROGRAMS = (
    "init",
    "sbin/fwinfo",
    "sbin/rk-settings",
    "sbin/sysupgrade",
    "usr/bin/selftest",
)


def test_in_the_checkout_the_data_is_the_top_level_source_of_truth() -> None:
    # toolkit/_data/* are symlinks: editing firmware/ or assembly_guide/ is editing what ships.
    assert os.readlink(CHECKOUT / "toolkit" / "_data" / "firmware") == "../../firmware"
    assert os.readlink(CHECKOUT / "toolkit" / "_data" / "assembly_guide") == "../../assembly_guide"
    assert resources.bundled_boards_dir() == CHECKOUT / "firmware" / "boards"
    assert resources.bundled_guides_dir() == CHECKOUT / "assembly_guide"
    assert resources.rootfs_dir() == CHECKOUT / "firmware" / "rootfs"
    assert resources.boot_script() == CHECKOUT / "firmware" / "boot" / "boot.cmd"
    assert resources.test_key("test_id_ed25519.pub").read_text().startswith("ssh-ed25519 ")
    assert resources.checkout_root() == CHECKOUT


def test_on_device_programs_are_executable() -> None:
    # The initramfs keeps the executable bit of each file; the wheel keeps the source's.
    for rel in ON_DEVICE_PROGRAMS:
        assert os.access(resources.rootfs_dir() / rel, os.X_OK), rel


def test_missing_package_data_names_what_and_where() -> None:
    with pytest.raises(NotFoundError, match=r"no firmware/nothing-here .*reinstall routerkit"):
        resources.bundled("firmware", "nothing-here")


def test_the_package_never_reaches_into_the_checkout() -> None:
    # REPO_ROOT is where the package sits, which is site-packages once installed: what the
    # package needs comes through toolkit.resources.
    users = [
        str(path.relative_to(CHECKOUT))
        for path in sorted((CHECKOUT / "toolkit").rglob("*.py"))
        if "REPO_ROOT" in path.read_text() and path != Path(paths.__file__)
    ]
    assert users == []
