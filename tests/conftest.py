"""Test isolation: every test gets its own data and config dirs, no colour, fixed width.

The cache dir (guest packages, firmware builds) is shared across the whole run on purpose:
rebuilding the reference firmware per test would waste minutes and test nothing new.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.tools import BOARD_ENV

KEYS = Path(__file__).parent / "keys"
SHARED_CACHE = Path(
    os.environ.get("ROUTERKIT_TEST_CACHE", Path.home() / ".cache" / "routerkit-test")
)


def pytest_configure(config: pytest.Config) -> None:
    """``ROUTERKIT_TEST_BOARD`` (make test's pass over every shipped board) is the board of the
    plugin's virtual sample too, unless ``--routerkit-board`` names one."""
    board = os.environ.get(BOARD_ENV)
    if board and config.getoption("--routerkit-board", None) is None:
        config.option.routerkit_board = board


@pytest.fixture(autouse=True, scope="session")
def _ssh_identity(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The whole run logs in with the committed TEST client key (firmware/keys/README.md):
    samples started by module fixtures and by single tests must authorize the same key.
    Set for the process (and its children) before any module fixture starts a sample."""
    src = Path(__file__).resolve().parents[1] / "firmware" / "keys" / "test_id_ed25519"
    dest = tmp_path_factory.mktemp("ssh-identity") / "id_ed25519"
    shutil.copyfile(src, dest)
    os.chmod(dest, 0o600)
    shutil.copyfile(src.with_name(src.name + ".pub"), dest.with_name(dest.name + ".pub"))
    os.environ["ROUTERKIT_SSH_IDENTITY"] = str(dest)


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

    # One committed, test-only "development key" for the whole suite, so that images built
    # into the shared cache by one test verify in every other test's isolated data dir.
    keys = home / "data" / "keys"
    keys.mkdir(parents=True, mode=0o700)
    shutil.copyfile(KEYS / "test-dev.sec", keys / "dev.sec")
    os.chmod(keys / "dev.sec", 0o600)
    # Its RSA twin that signs FIT configurations for U-Boot (toolkit/firmware/fitkeys.py).
    for suffix in (".fit.key", ".fit.crt"):
        shutil.copyfile(KEYS / f"test-dev{suffix}", keys / f"dev{suffix}")
    os.chmod(keys / "dev.fit.key", 0o600)
    trusted = home / "config" / "trusted-keys"
    trusted.mkdir(parents=True)
    shutil.copyfile(KEYS / "test-dev.pub", trusted / "dev-44ad80aaac08709b.pub")
    # Samples whose data dir is not this one (the plugin's shared sample, private test homes)
    # must still boot FITs signed by the test FIT key: trusted by config, as a user would.
    shutil.copyfile(KEYS / "test-dev.fit.crt", trusted / "test-dev.fit.crt")
