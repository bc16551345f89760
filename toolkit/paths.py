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

#: Where this module's package sits; the source checkout only in an editable install. Tests and
#: developer tools may use it; the package itself reads what it ships through toolkit.resources.
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


#: Where a board profile or guide was found, in lookup order.
ORIGINS = ("env", "user", "bundled")


def _search(env: str, user: Path, bundled: Path) -> list[tuple[str, Path]]:
    dirs = [("env", Path(d)) for d in os.environ.get(env, "").split(os.pathsep) if d]
    return [*dirs, ("user", user), ("bundled", bundled)]


def board_dirs() -> list[tuple[str, Path]]:
    """Where board profiles (``<id>.toml``) are looked up, first match wins, as (origin, dir):
    each directory of ``ROUTERKIT_BOARDS`` (an os.pathsep-separated list), then the user's
    ``<config>/boards``, then the profiles routerkit ships. Directories need not exist."""
    from toolkit import resources

    return _search("ROUTERKIT_BOARDS", config_dir() / "boards", resources.bundled_boards_dir())


def guide_dirs() -> list[tuple[str, Path]]:
    """Where assembly guides (``<board>/guide.yaml``) are looked up, in the same order as
    :func:`board_dirs`: ``ROUTERKIT_GUIDES``, ``<config>/guides``, the shipped guides."""
    from toolkit import resources

    return _search("ROUTERKIT_GUIDES", config_dir() / "guides", resources.bundled_guides_dir())
