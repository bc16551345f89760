"""Where routerkit keeps its files.

Defaults come from platformdirs; each can be overridden by an environment variable, which is
how the tests isolate themselves (``ROUTERKIT_DATA``, ``ROUTERKIT_CONFIG``, ``ROUTERKIT_CACHE``).
The cache (downloaded guest packages, built firmware) is deliberately separate from the data
(journals, outbox, sample state) so tests can share one cache and still isolate their data.
"""

from __future__ import annotations

import os
from pathlib import Path

APP = "routerkit"

#: The source checkout (``pip install -e``) that holds firmware/ and assembly_guide/.
REPO_ROOT = Path(__file__).resolve().parent.parent


def _dir(env: str, kind: str) -> Path:
    value = os.environ.get(env)
    if value:
        path = Path(value)
    else:
        import platformdirs

        path = Path(getattr(platformdirs, f"user_{kind}_dir")(APP))
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    """Journals, outbox, sample state, keys: things a user must never lose."""
    return _dir("ROUTERKIT_DATA", "data")


def config_dir() -> Path:
    """config.toml, trusted keys, known_hosts, lab files."""
    return _dir("ROUTERKIT_CONFIG", "config")


def cache_dir() -> Path:
    """Guest packages, firmware builds, pulled images: can be deleted at any time."""
    return _dir("ROUTERKIT_CACHE", "cache")


def sessions_dir() -> Path:
    path = data_dir() / "sessions"
    path.mkdir(parents=True, exist_ok=True)
    return path


def boards_dir() -> Path:
    """Board profiles (TOML). ``ROUTERKIT_BOARDS`` overrides the checkout's firmware/boards."""
    return Path(os.environ.get("ROUTERKIT_BOARDS", REPO_ROOT / "firmware" / "boards"))


def guides_dir() -> Path:
    return Path(os.environ.get("ROUTERKIT_GUIDES", REPO_ROOT / "assembly_guide"))
