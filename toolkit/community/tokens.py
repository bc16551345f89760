"""Publisher tokens live in the system keyring — never in a file of ours.

Service name ``routerkit``, user name ``<publisher>:<server url>``. With no usable keyring
backend (a headless box without a Secret Service), :class:`KeyringError` explains the
alternatives instead of falling back to plaintext.
"""

from __future__ import annotations

import contextlib

from toolkit.errors import KeyringError

SERVICE = "routerkit"

_HINT = (
    "start a Secret Service (gnome-keyring, KeePassXC) in your session, or install a file "
    "backend you trust (`pip install keyrings.alt` and set PYTHON_KEYRING_BACKEND), or pass the "
    "token for one run in the ROUTERKIT_TOKEN environment variable"
)


def _keyring():  # type: ignore[no-untyped-def]
    import keyring
    from keyring.backends import fail

    backend = keyring.get_keyring()
    empty_chain = hasattr(backend, "backends") and not backend.backends
    if isinstance(backend, fail.Keyring) or empty_chain:
        raise KeyringError("no system keyring is available to keep the token", hint=_HINT)
    return keyring


def _user(publisher: str, url: str) -> str:
    return f"{publisher}:{url.rstrip('/')}"


def store_token(publisher: str, url: str, token: str) -> None:
    """Save a token for ``publisher`` at ``url``."""
    kr = _keyring()
    try:
        kr.set_password(SERVICE, _user(publisher, url), token)
    except Exception as exc:  # noqa: BLE001 - every backend has its own errors
        raise KeyringError(f"the keyring refused to store the token: {exc}", hint=_HINT) from exc


def get_token(publisher: str, url: str) -> str | None:
    """The stored token, or None when there is none (or no keyring at all)."""
    import os

    env = os.environ.get("ROUTERKIT_TOKEN")
    if env:
        return env
    try:
        kr = _keyring()
        return kr.get_password(SERVICE, _user(publisher, url))  # type: ignore[no-any-return]
    except KeyringError:
        return None
    except Exception:  # noqa: BLE001 - a locked or broken keyring is "no token"
        return None


def delete_token(publisher: str, url: str) -> None:
    kr = _keyring()
    with contextlib.suppress(Exception):  # deleting a missing token is fine
        kr.delete_password(SERVICE, _user(publisher, url))
