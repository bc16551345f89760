"""Where routerkit keeps its files.

Defaults come from platformdirs; each can be overridden by an environment variable, which is
how the tests isolate themselves (``ROUTERKIT_DATA``, ``ROUTERKIT_CONFIG``, ``ROUTERKIT_CACHE``).
The cache (downloaded guest packages, built firmware) is deliberately separate from the data
(journals, outbox, sample state) so tests can share one cache and still isolate their data.

The data dir holds console transcripts, journals, the outbox and keys: it is created 0700
whatever the umask (:func:`private_dir`), and so is every directory routerkit makes in it.
"""

from __future__ import annotations

import os
from pathlib import Path

APP = "routerkit"

#: The source checkout (``pip install -e``) that holds firmware/ and assembly_guide/.
REPO_ROOT = Path(__file__).resolve().parent.parent


def _dir(env: str, kind: str, *, private: bool = False) -> Path:
    value = os.environ.get(env)
    if value:
        path = Path(value)
    else:
        import platformdirs

        path = Path(getattr(platformdirs, f"user_{kind}_dir")(APP))
    if private:
        return private_dir(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def private_dir(path: Path) -> Path:
    """Create ``path`` (with its parents) and make it 0700, whatever the process umask: the
    things in it (journals, transcripts, tokens, the outbox) are for its owner only."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o777 != 0o700:
        os.chmod(path, 0o700)
    return path


def data_dir() -> Path:
    """Journals, outbox, sample state, keys: things a user must never lose. Mode 0700."""
    return _dir("ROUTERKIT_DATA", "data", private=True)


def config_dir() -> Path:
    """config.toml, trusted keys, known_hosts, lab files."""
    return _dir("ROUTERKIT_CONFIG", "config")


def cache_dir() -> Path:
    """Guest packages, firmware builds, pulled images: can be deleted at any time."""
    return _dir("ROUTERKIT_CACHE", "cache")


def sessions_dir() -> Path:
    return private_dir(data_dir() / "sessions")


def boards_dir() -> Path:
    """Board profiles (TOML). ``ROUTERKIT_BOARDS`` overrides the checkout's firmware/boards."""
    return Path(os.environ.get("ROUTERKIT_BOARDS", REPO_ROOT / "firmware" / "boards"))


def guides_dir() -> Path:
    return Path(os.environ.get("ROUTERKIT_GUIDES", REPO_ROOT / "assembly_guide"))
