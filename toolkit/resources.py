"""The files routerkit ships with: board profiles, assembly guides, the firmware recipe, test keys.

They are package data under ``toolkit/_data/`` and read only through this module. In the source
checkout ``toolkit/_data/firmware`` and ``toolkit/_data/assembly_guide`` are symlinks to the
top-level ``firmware/`` and ``assembly_guide/`` (the source of truth, edited there); building the
wheel copies what they point to, so an installed routerkit carries its own copy and the checkout
works unchanged.

Everything here returns real filesystem paths, because mkimage, cpio and ssh need files. When
the package is not on a filesystem (a zip import), the data is copied once into the cache dir.
"""

from __future__ import annotations

import os
import shutil
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from toolkit import paths
from toolkit.errors import NotFoundError

_PACKAGE = "toolkit"
_DATA = "_data"


def data_root() -> Path:
    """``toolkit/_data`` as a directory on disk."""
    root = resources.files(_PACKAGE).joinpath(_DATA)
    if isinstance(root, Path):
        # resolve(): in the checkout the data dirs are symlinks, and the files a developer
        # edits (and error messages should name) are the top-level firmware/ and assembly_guide/.
        return root.resolve()
    return _extracted(root)


def bundled(*parts: str) -> Path:
    """The shipped file or directory at ``_data/<parts>``; NotFoundError when it is missing."""
    path = data_root().joinpath(*parts).resolve()
    if not path.exists():
        raise NotFoundError(
            f"routerkit's package data has no {'/'.join(parts)} (looked in {data_root()}): "
            "the installation is incomplete; reinstall routerkit"
        )
    return path


def bundled_boards_dir() -> Path:
    """The board profiles that ship with routerkit (``firmware/boards`` in the checkout)."""
    return (data_root() / "firmware" / "boards").resolve()


def bundled_guides_dir() -> Path:
    """The assembly guides that ship with routerkit (``assembly_guide`` in the checkout)."""
    return (data_root() / "assembly_guide").resolve()


def rootfs_dir() -> Path:
    """The on-device files of the reference firmware (``firmware/rootfs``)."""
    return bundled("firmware", "rootfs")


def boot_script() -> Path:
    """The U-Boot boot script template of the reference firmware (``firmware/boot/boot.cmd``)."""
    return bundled("firmware", "boot", "boot.cmd")


def test_key(name: str) -> Path:
    """A committed TEST-ONLY key of ``firmware/keys`` (see its README), e.g. ``test_id_ed25519``."""
    return bundled("firmware", "keys", name)


test_key.__test__ = False  # type: ignore[attr-defined]


def checkout_root() -> Path | None:
    """The source checkout routerkit runs from (an editable install), or None when installed.

    Only for what a checkout adds on top of the package data, such as the git revision a
    firmware build records; never needed to find a file routerkit ships.
    """
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / "firmware").is_dir():
        return root
    return None


def _extracted(root: Traversable) -> Path:
    """Copy a non-filesystem package tree into the cache once per version, keeping modes simple:
    the on-device scripts are executable in the wheel, and the initramfs build sets modes itself."""
    from toolkit import __version__

    dest = paths.cache_dir() / "package-data" / __version__
    marker = dest / ".complete"
    if marker.exists():
        return dest
    tmp = dest.with_name(f"{dest.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    _copy_tree(root, tmp)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    marker.touch()
    return dest


def _copy_tree(node: Traversable, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for child in node.iterdir():
        target = dest / child.name
        if child.is_dir():
            _copy_tree(child, target)
        else:
            target.write_bytes(child.read_bytes())
