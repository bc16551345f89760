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
from urllib.parse import urlsplit, urlunsplit

from toolkit import paths
from toolkit.errors import ConfigError

#: The destination of items for the embedded tracker (``roundup`` without ``roundup_url``):
#: this installation's own ``routerkit community serve``, whichever port it has today.
LOCAL_TRACKER = "local"

_DEFAULT_PORTS = {"http": 80, "https": 443}


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


def base_url(url: str) -> str:
    """``url`` spelled the one way routerkit compares and files it under: scheme and host in
    lower case, no default port, no user info, query or fragment, no trailing slash.

    >>> base_url("HTTPS://Forum.Example.org:443/community/")
    'https://forum.example.org/community'
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"not a usable server URL: {url!r}") from exc
    if not scheme or not host:
        raise ConfigError(f"not a usable server URL: {url!r}", hint="write it as https://host/path")
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), "", ""))


def destination(publisher: str) -> str:
    """Where ``publisher`` posts under today's configuration: the server's :func:`base_url`,
    :data:`LOCAL_TRACKER` for ``roundup`` without ``roundup_url``, or "" when none is set."""
    url = community_config().get(f"{publisher}_url")
    if url:
        return base_url(str(url))
    return LOCAL_TRACKER if publisher == "roundup" else ""


def describe_destination(where: str | None) -> str:
    """A destination as a person reads it."""
    if where == LOCAL_TRACKER:
        return "the local tracker (`routerkit community serve`)"
    return where or "no server (none was configured)"
