"""Layers point down only (DESIGN §3): no module of ``toolkit`` imports from a higher layer.

Every ``import toolkit...`` / ``from toolkit... import`` in the package is read with ``ast``,
at module level and inside functions alike (a deferred import is still a dependency); imports
under ``if TYPE_CHECKING:`` are only for annotations and are skipped. A lower layer that needs
something from above takes it by injection (a callable, a context object) instead.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from toolkit import paths

PACKAGE = paths.REPO_ROOT / "toolkit"

#: The layers, lowest first. ``core`` (errors, paths, the event interface) is usable by all.
LAYERS: dict[str, int] = {
    "core": 0,
    "transport": 1,
    "protocol": 2,
    "domain": 3,
    "journeys": 4,
    "cli": 5,
}

#: Which layer each top-level module or package of ``toolkit`` belongs to.
PLACES: dict[str, str] = {
    "__init__": "core", "errors": "core", "paths": "core", "events": "core", "resources": "core",
    "i18n": "core",
    "transport": "transport",
    "protocol": "protocol",
    # domain: the device model and everything a journey composes
    "firmware": "domain", "guide": "domain", "community": "domain", "record": "domain",
    "hostkeys": "domain", "boards": "domain", "boardkit": "domain", "target": "domain",
    "sample": "domain",
    "lab": "domain", "targets": "domain", "identity": "domain", "coordinator": "domain",
    # journeys, and what drives whole journeys: the HIL sessions and the shipped test doubles
    "journeys": "journeys", "hil": "journeys", "testing": "journeys",
    "cli": "cli", "pytest_plugin": "cli",
}  # fmt: skip

#: Known upward imports, each with the reason it stays for now: (importer, imported) → why.
KNOWN: dict[tuple[str, str], str] = {}


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> str:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    if top not in PLACES:
        raise AssertionError(
            f"{module}: no layer for toolkit.{top}; add it to PLACES in {__file__}"
        )
    return PLACES[top]


def _imports(path: Path) -> list[tuple[str, int]]:
    """Every toolkit module ``path`` imports (outside TYPE_CHECKING blocks), with its line."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(inner) for stmt in node.body for inner in ast.walk(stmt))
    here = _module(path)
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [
                (alias.name, node.lineno)
                for alias in node.names
                if alias.name.startswith("toolkit")
            ]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                package = here.split(".") if path.name == "__init__.py" else here.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            if base == "toolkit":  # `from toolkit import sample` names a module, `__version__` not
                found += [
                    (f"toolkit.{a.name}" if _is_module(a.name) else "toolkit", node.lineno)
                    for a in node.names
                ]
            elif base.startswith("toolkit."):
                found.append((base, node.lineno))
    return found


def _is_module(name: str) -> bool:
    return (PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").is_file()


def _violations() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = _module(path)
        mine = LAYERS[_layer(here)]
        for imported, line in _imports(path):
            theirs = LAYERS[_layer(imported)]
            if theirs <= mine or _known(here, imported):
                continue
            problems.append(
                f"{path.relative_to(PACKAGE.parent)}:{line}: {here} ({_layer(here)}) imports "
                f"{imported} ({_layer(imported)})"
            )
    return problems


def _known(importer: str, imported: str) -> bool:
    return any(importer == a and (imported == b or imported.startswith(b + ".")) for a, b in KNOWN)


def test_no_module_imports_from_a_higher_layer() -> None:
    problems = _violations()
    assert not problems, "upward imports (inject the dependency instead):\n" + "\n".join(problems)


def test_every_known_exception_is_still_needed() -> None:
    """An exception that no longer matches anything is removed, so the list only shrinks."""
    used = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        here = _module(path)
        for imported, _ in _imports(path):
            for a, b in KNOWN:
                if here == a and (imported == b or imported.startswith(b + ".")):
                    used.add((a, b))
    assert set(KNOWN) == used, f"stale entries in KNOWN: {sorted(set(KNOWN) - used)}"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from toolkit.journeys.verify import x\n", ["toolkit.journeys.verify"]),
        ("def f():\n    import toolkit.cli.sample\n", ["toolkit.cli.sample"]),
        (
            "from toolkit import sample, cli, __version__\n",
            ["toolkit.sample", "toolkit.cli", "toolkit"],
        ),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from toolkit.cli import x\n",
            [],
        ),
    ],
)
def test_the_scanner_sees_deferred_imports_and_skips_type_checking_ones(
    tmp_path: Path, source: str, expected: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "toolkit"
    (package / "transport").mkdir(parents=True)
    path = package / "transport" / "probe.py"
    path.write_text(source)
    (package / "sample.py").write_text("")
    (package / "cli").mkdir()
    monkeypatch.setattr(f"{__name__}.PACKAGE", package)
    assert [name for name, _ in _imports(path)] == expected
