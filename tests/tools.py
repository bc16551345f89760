"""Tools the suite runs: ``make setup`` installs every one, so a missing one fails a test (with
what to do), never skips it — a skipped test would hide a broken set-up in CI."""

from __future__ import annotations

import shutil
from pathlib import Path


def require(*tools: str, files: tuple[Path, ...] = ()) -> None:
    """Fail when a program of ``tools`` is not on PATH or a file of ``files`` is missing."""
    missing = [t for t in tools if shutil.which(t) is None] + [
        str(f) for f in files if not f.exists()
    ]
    assert not missing, f"missing {', '.join(missing)}: `make setup` installs it"


#: Set by ``make test`` for its second pass: the tests marked ``every_board`` run again on each
#: shipped board besides the default one (``ROUTERKIT_TEST_BOARD=es-arm32 pytest -m every_board``).
BOARD_ENV = "ROUTERKIT_TEST_BOARD"


def board_under_test() -> str:
    """The board the ``every_board`` journeys run on: ``$ROUTERKIT_TEST_BOARD``, else the
    default board."""
    import os

    from toolkit.boards import DEFAULT_BOARD

    return os.environ.get(BOARD_ENV) or DEFAULT_BOARD
