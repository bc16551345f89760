"""Test isolation: every test gets its own data and config dirs, no colour, fixed width.

The cache dir (guest packages, firmware builds) is shared across the whole run on purpose:
rebuilding the reference firmware per test would waste minutes and test nothing new.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_CACHE = Path(os.environ.get("ROUTERKIT_TEST_CACHE", Path.home() / ".cache" / "routerkit-test"))


@pytest.fixture(autouse=True)
def _isolate(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path_factory.mktemp("rk-home")
    monkeypatch.setenv("ROUTERKIT_DATA", str(home / "data"))
    monkeypatch.setenv("ROUTERKIT_CONFIG", str(home / "config"))
    monkeypatch.setenv("ROUTERKIT_CACHE", str(SHARED_CACHE))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "xdg-data"))
