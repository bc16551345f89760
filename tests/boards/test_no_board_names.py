"""No code names a board (issue 13): what differs between boards lives in their profiles, and the
one default board is ``toolkit.boards.DEFAULT_BOARD``. Every string constant of the package is
read with ``ast``; one that *is* the id of a bundled board, anywhere but that constant, fails.
(Docstrings and messages that mention a board in a sentence are not ids and pass.)"""

from __future__ import annotations

import ast
import tomllib

from toolkit import paths, resources

PACKAGE = paths.REPO_ROOT / "toolkit"


def _board_ids() -> set[str]:
    return {
        str(tomllib.loads(p.read_text())["board"]["id"])
        for p in resources.bundled_boards_dir().glob("*.toml")
    }


def test_no_module_names_a_board_but_the_default_board_constant() -> None:
    ids = _board_ids()
    assert ids, "no bundled board profiles found"
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Constant) and node.value in ids:
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {node.value!r}")
    elsewhere = [f for f in found if not f.startswith("toolkit/boards.py:")]
    assert not elsewhere, "board ids in code (put it in the profile, or use " + (
        "boards.DEFAULT_BOARD):\n" + "\n".join(elsewhere)
    )
    assert len(found) == 1, f"toolkit/boards.py names one board, DEFAULT_BOARD: {found}"
