"""The ``[community]`` table of ``config_dir()/config.toml``.

::

    [community]
    consent = true                 # what --yes relies on: sharing was agreed to here, once
    publisher = "roundup"          # default for --to
    roundup_url = "http://127.0.0.1:8917/routerkit/"   # default: the local tracker
    discourse_url = "https://forum.example.org"
    discourse_username = "tester"  # with an Api-Key; omit for a User-Api-Key
    discourse_category = 7
    discourse_tags = ["es-virt", "build-log"]
"""

from __future__ import annotations

import tomllib
from typing import Any

from toolkit import paths
from toolkit.errors import ConfigError


def community_config() -> dict[str, Any]:
    """The ``[community]`` table, or {} when there is no config file."""
    path = paths.config_dir() / "config.toml"
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    table = data.get("community", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [community] must be a table")
    return table


def consent_given() -> bool:
    """True only for an explicit ``consent = true`` (sharing is opt-in, always)."""
    return community_config().get("consent") is True
