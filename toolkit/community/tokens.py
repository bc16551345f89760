"""Publisher tokens live in the system keyring — never in a file of ours.

One entry per publisher **and server**: service ``routerkit``, user name
``<publisher>:<base URL>`` (:func:`~toolkit.community.config.base_url`: lower-case host, no
default port, no trailing slash). A token is only ever looked up for the server it was stored
for, so switching ``roundup_url`` from tracker A to tracker B never sends A's token to B: B
simply has no token until you log in there.

Migration from older entries:

* ``<publisher>:<url as typed>`` (the same scheme before URLs were normalised): used only when
  asked for exactly that URL, and then moved to the normalised name;
* ``<publisher>`` alone (a token that does not say which server it is for): never used;
  :class:`~toolkit.errors.PublishAuthError` asks you to log in again, which replaces it.

``ROUTERKIT_TOKEN`` passes a token for one run without the keyring; it is used only for the
server named by ``ROUTERKIT_TOKEN_URL`` (and for any publisher at that URL), never for another.

With no usable keyring backend (a headless box without a Secret Service),
:class:`KeyringError` explains the alternatives instead of falling back to plaintext.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from toolkit.community.config import base_url
from toolkit.errors import KeyringError, PublishAuthError

SERVICE = "routerkit"

_HINT = (
    "start a Secret Service (gnome-keyring, KeePassXC) in your session, or install a file "
    "backend you trust (`pip install keyrings.alt` and set PYTHON_KEYRING_BACKEND), or pass the "
    "token for one run in ROUTERKIT_TOKEN together with the server's URL in ROUTERKIT_TOKEN_URL"
)


def _keyring() -> Any:
    import keyring
    from keyring.backends import fail

    backend = keyring.get_keyring()
    empty_chain = hasattr(backend, "backends") and not backend.backends
    if isinstance(backend, fail.Keyring) or empty_chain:
        raise KeyringError("no system keyring is available to keep the token", hint=_HINT)
    return keyring


def _user(publisher: str, url: str) -> str:
    return f"{publisher}:{base_url(url)}"


def _legacy_user(publisher: str, url: str) -> str:
    """The entry name before URLs were normalised (the URL as typed, minus a trailing slash)."""
    return f"{publisher}:{url.rstrip('/')}"


def store_token(publisher: str, url: str, token: str) -> None:
    """Save a token for ``publisher`` at ``url`` (and forget a token of an older routerkit
    that did not say which server it was for)."""
    kr = _keyring()
    try:
        kr.set_password(SERVICE, _user(publisher, url), token)
    except Exception as exc:  # noqa: BLE001 - every backend has its own errors
        raise KeyringError(f"the keyring refused to store the token: {exc}", hint=_HINT) from exc
    with contextlib.suppress(Exception):  # nothing to forget is fine
        kr.delete_password(SERVICE, publisher)


def get_token(publisher: str, url: str) -> str | None:
    """The token stored for ``publisher`` at ``url``, or None when there is none (or no keyring
    at all). Never a token stored for another server."""
    env = os.environ.get("ROUTERKIT_TOKEN")
    if env:
        scope = os.environ.get("ROUTERKIT_TOKEN_URL")
        if scope and base_url(scope) == base_url(url):
            return env
    try:
        kr = _keyring()
        token = kr.get_password(SERVICE, _user(publisher, url))
        if token is None:
            token = _migrate(kr, publisher, url)
        unbound = token is None and kr.get_password(SERVICE, publisher) is not None
    except Exception:  # noqa: BLE001 - no keyring, or a locked or broken one, is "no token"
        return None
    if unbound:
        raise PublishAuthError(
            f"the stored {publisher} token does not say which server it is for, so it is not "
            f"sent to {base_url(url)}",
            hint=f"log in again: `routerkit community login --to {publisher} --url {url}`",
        )
    return None if token is None else str(token)


def _migrate(kr: Any, publisher: str, url: str) -> str | None:
    """A token under the pre-normalisation name for exactly this URL, moved to the new name."""
    old = _legacy_user(publisher, url)
    if old == _user(publisher, url):
        return None
    token = kr.get_password(SERVICE, old)
    if token is None:
        return None
    with contextlib.suppress(Exception):  # the token still works if the move fails
        kr.set_password(SERVICE, _user(publisher, url), token)
        kr.delete_password(SERVICE, old)
    return str(token)


def delete_token(publisher: str, url: str) -> None:
    kr = _keyring()
    for user in (_user(publisher, url), _legacy_user(publisher, url)):
        with contextlib.suppress(Exception):  # deleting a missing token is fine
            kr.delete_password(SERVICE, user)
