"""``tests/`` mirrors ``toolkit/`` (DESIGN §3): a test lives under the path of what it tests.

Every directory of tests directly under ``tests/`` is named after a package or module of
``toolkit`` (``tests/journeys/flash_serial`` tests ``toolkit/journeys/flash_serial.py``), except
``core`` (the small modules every layer uses: errors, paths, record, targets, ...), ``packaging``
(the wheel, which is no module) and ``keys`` (committed test keys, data); and every package of
``toolkit`` has its directory of tests. Directories nested deeper group the tests of one package
and are named after one of its modules or subpackages where one exists.
"""

from __future__ import annotations

from pathlib import Path

from toolkit import paths

TOOLKIT = paths.REPO_ROOT / "toolkit"
TESTS = paths.REPO_ROOT / "tests"
#: Top-level test directories that are not named after a toolkit module, and why.
OUTSIDE = {
    "core": "the core modules (errors, paths, events, record, targets, hostkeys, ...)",
    "packaging": "the wheel, built and installed outside the checkout",
    "keys": "committed test keys (data, no tests)",
}


def _dirs(root: Path) -> list[Path]:
    return sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith((".", "_")))


def _names(package: Path) -> set[str]:
    """Modules and subpackages of ``package``."""
    return {p.stem for p in package.glob("*.py")} | {d.name for d in _dirs(package)}


def test_every_test_directory_is_named_after_what_it_tests() -> None:
    stray = [
        d.name for d in _dirs(TESTS) if d.name not in _names(TOOLKIT) and d.name not in OUTSIDE
    ]
    assert not stray, f"tests/{stray}: name each after the toolkit module or package it tests"


def test_every_toolkit_package_has_its_tests() -> None:
    packages = [d.name for d in _dirs(TOOLKIT) if (d / "__init__.py").exists()]
    missing = [name for name in packages if not (TESTS / name).is_dir()]
    assert not missing, f"toolkit packages without tests/<name>/: {missing}"
