"""Signing keys and the keyring of trusted public keys.

* Private keys: ``paths.data_dir()/keys/<name>.sec`` (mode 0600) with ``<name>.pub`` beside it.
* Trusted public keys: every ``*.pub`` in ``paths.config_dir()/trusted-keys/`` (this user) and
  in ``toolkit/data/trusted-keys/`` (shipped with routerkit). An image verifies only if its
  signer's keynum is one of them.
* The **development key** ``dev`` is created on first use when something must be signed and
  no key was given. Its public half is added to this machine's keyring only, under the name
  ``dev-<keyid>.pub``, so images signed with it verify here and nowhere else — and
  ``firmware inspect`` says so loudly.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

from toolkit import paths
from toolkit.errors import ConfigError, NotFoundError
from toolkit.firmware.signify import PublicKey, SecretKey

DEV_KEY = "dev"
BUNDLED_DIR = Path(__file__).resolve().parent.parent / "data" / "trusted-keys"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def keys_dir() -> Path:
    path = paths.data_dir() / "keys"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def trusted_dir() -> Path:
    path = paths.config_dir() / "trusted-keys"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(frozen=True)
class TrustedKey:
    """A public key from a keyring directory."""

    public: PublicKey
    path: Path
    source: str  # "user" or "bundled"

    @property
    def keyid(self) -> str:
        return self.public.keyid

    @property
    def is_dev(self) -> bool:
        """True for a machine-local development key (never for a bundled one)."""
        return self.source == "user" and self.path.name.startswith(f"{DEV_KEY}-")


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise ConfigError(
            f"invalid key name {name!r}: use letters, digits, '.', '_' or '-' (max 64)"
        )


def _write_exclusive(path: Path, data: bytes, mode: int) -> bool:
    """Create ``path`` with ``data`` atomically; False if it already exists (no overwrite).

    A temp file plus ``os.link`` gives create-if-absent without a window where another
    process could read a half-written key.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def generate(name: str, *, comment: str | None = None, trust: bool = True) -> SecretKey:
    """Create key pair ``name`` (refuses to overwrite); optionally trust its public half."""
    _check_name(name)
    if name == DEV_KEY:
        raise ConfigError(f"{DEV_KEY!r} is reserved for the local development key")
    key = SecretKey.generate(comment or f"routerkit secret key {name}")
    if not _write_exclusive(keys_dir() / f"{name}.sec", key.to_bytes(), 0o600):
        raise ConfigError(
            f"a key named {name!r} already exists in {keys_dir()}",
            hint="pick another name; routerkit never overwrites a private key",
        )
    public = key.public_key(f"routerkit public key {name} ({key.keyid})")
    _write_exclusive(keys_dir() / f"{name}.pub", public.to_bytes(), 0o644)
    if trust:
        trust_key(public, name=name)
    return key


def load_secret(name_or_path: str | Path) -> SecretKey:
    """A private key by name (in ``keys_dir()``) or by path to a ``.sec`` file."""
    path = Path(name_or_path)
    if not path.exists() and isinstance(name_or_path, str) and _NAME.match(name_or_path):
        path = keys_dir() / f"{name_or_path}.sec"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(
            f"no secret key {name_or_path!r}", hint="`routerkit keys list` shows your keys"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read secret key {path}: {exc.strerror}") from None
    return SecretKey.from_bytes(data, source=str(path))


def dev_key() -> SecretKey:
    """The local development key: created on first use, trusted on this machine only."""
    path = keys_dir() / f"{DEV_KEY}.sec"
    if not path.exists():
        host = socket.gethostname() or "this machine"
        key = SecretKey.generate(f"routerkit DEVELOPMENT key of {host}, trusted there only")
        _write_exclusive(path, key.to_bytes(), 0o600)  # a racing process may have won
    key = load_secret(path)
    public = key.public_key(f"routerkit DEVELOPMENT key {key.keyid} (this machine only)")
    _write_exclusive(keys_dir() / f"{DEV_KEY}.pub", public.to_bytes(), 0o644)
    trust_key(public, name=f"{DEV_KEY}-{key.keyid}")
    return key


def local_dev_keyid() -> str | None:
    """The keyid of this machine's development key, if one was ever created."""
    path = keys_dir() / f"{DEV_KEY}.sec"
    if not path.exists():
        return None
    try:
        return load_secret(path).keyid
    except ConfigError:
        return None


def trust_key(public: PublicKey, *, name: str | None = None) -> Path:
    """Add a public key to this user's keyring (idempotent by keyid)."""
    for existing in trusted_keys().values():
        if existing.keyid == public.keyid and existing.source == "user":
            return existing.path
    filename = f"{name or public.keyid}.pub"
    _check_name(filename)
    path = trusted_dir() / filename
    if not _write_exclusive(path, public.to_bytes(), 0o644):
        path = trusted_dir() / f"{public.keyid}.pub"
        _write_exclusive(path, public.to_bytes(), 0o644)
    return path


def _read_dir(directory: Path, source: str) -> list[TrustedKey]:
    found: list[TrustedKey] = []
    if not directory.is_dir():
        return found
    for path in sorted(directory.glob("*.pub")):
        try:
            found.append(
                TrustedKey(PublicKey.from_bytes(path.read_bytes(), str(path)), path, source)
            )
        except (ConfigError, OSError):
            continue  # one broken file must not make every other key unusable
    return found


def trusted_keys() -> dict[str, TrustedKey]:
    """keyid -> trusted key; the user's keyring wins over bundled keys with the same id."""
    keys: dict[str, TrustedKey] = {}
    for key in _read_dir(BUNDLED_DIR, "bundled") + _read_dir(trusted_dir(), "user"):
        keys[key.keyid] = key
    return keys


def secret_keys() -> list[tuple[str, SecretKey | None, Path]]:
    """(name, key or None if unreadable, path) for every private key of this user."""
    result: list[tuple[str, SecretKey | None, Path]] = []
    for path in sorted(keys_dir().glob("*.sec")):
        try:
            key: SecretKey | None = SecretKey.from_bytes(path.read_bytes(), str(path))
        except (ConfigError, OSError):
            key = None
        result.append((path.stem, key, path))
    return result


def export_public(name: str) -> PublicKey:
    """The public half of private key ``name``, or a trusted key by keyid or file stem."""
    for stem, key, _ in secret_keys():
        if stem == name and key is not None:
            pub_path = keys_dir() / f"{stem}.pub"
            if pub_path.exists():
                return PublicKey.from_bytes(pub_path.read_bytes(), str(pub_path))
            return key.public_key()
    for key_id, trusted in trusted_keys().items():
        if name in (key_id, trusted.path.stem):
            return trusted.public
    raise NotFoundError(f"no key {name!r}", hint="`routerkit keys list` shows your keys")
