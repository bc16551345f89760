"""The SSH identity routerkit logs in to devices with, and the key it authorizes on them.

Images carry no login key (every copy of an image is public). Root access to a device is given
by the person who flashes it: ``routerkit flash`` installs the public half of *their* identity
into the device's own settings (``rk-settings authorize``), or another key given with
``--authorized-key FILE``, or none (console only).

The identity is, in order: a target's ``identity`` (``--identity``, ``lab.toml``), the file named
by ``$ROUTERKIT_SSH_IDENTITY``, else ``<data dir>/ssh/id_ed25519``, generated on first use
(ed25519, OpenSSH format, mode 0600; OpenSSH's ``ssh -i`` reads it too).
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import tempfile
from pathlib import Path

from toolkit import paths
from toolkit.errors import ConfigError

IDENTITY_ENV = "ROUTERKIT_SSH_IDENTITY"
_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)
_B64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")
_COMMENT_UNSAFE = re.compile(r"[^A-Za-z0-9@._+-]")


def identity_path() -> Path:
    """The private key file routerkit logs in with (created on first use if it is ours)."""
    env = os.environ.get(IDENTITY_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise ConfigError(f"${IDENTITY_ENV} names {path}, which does not exist")
        return path
    path = paths.data_dir() / "ssh" / "id_ed25519"
    if not path.exists():
        _generate(path)
    return path


def _generate(path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    comment = _COMMENT_UNSAFE.sub("_", f"routerkit@{socket.gethostname()}")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    for target, data, mode in (
        (path.with_name(path.name + ".pub"), public + b" " + comment.encode() + b"\n", 0o644),
        (path, private, 0o600),
    ):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{target.name}.")
        try:
            os.fchmod(fd, mode)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def normalize_public_line(text: str, source: str = "public key") -> str:
    """One ``TYPE BASE64 [COMMENT]`` line, checked, with a comment safe to type on a console."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    if len(lines) != 1:
        raise ConfigError(f"{source}: expected exactly one SSH public key line, found {len(lines)}")
    parts = lines[0].split()
    if len(parts) < 2 or parts[0] not in _KEY_TYPES or not _B64.match(parts[1]):
        raise ConfigError(
            f"{source}: not an SSH public key line (want e.g. 'ssh-ed25519 AAAA... you@host')",
            hint="a private key or a fingerprint will not do: pass the .pub file",
        )
    import base64

    try:
        blob = base64.b64decode(parts[1], validate=True)
    except ValueError:
        raise ConfigError(f"{source}: the key's base64 is damaged") from None
    if not blob.startswith(len(parts[0]).to_bytes(4, "big") + parts[0].encode()):
        raise ConfigError(f"{source}: the key's type and its data disagree")
    comment = _COMMENT_UNSAFE.sub("_", " ".join(parts[2:]))[:64] or "routerkit"
    return f"{parts[0]} {parts[1]} {comment}"


def public_line(identity: Path | str | None = None) -> str:
    """The public key line of ``identity`` (default: routerkit's) for ``authorized_keys``."""
    path = Path(identity) if identity is not None else identity_path()
    pub = path.with_name(path.name + ".pub")
    if pub.is_file():
        return normalize_public_line(pub.read_text(errors="replace"), str(pub))
    import paramiko

    try:
        key = paramiko.PKey.from_path(str(path))
    except (OSError, paramiko.SSHException, ValueError) as exc:
        raise ConfigError(f"cannot read SSH identity {path}: {exc}") from None
    return normalize_public_line(f"{key.get_name()} {key.get_base64()} routerkit", str(path))


def read_authorized_key(path: Path | str) -> str:
    """``--authorized-key FILE``: the one public key line in it."""
    path = Path(path)
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise ConfigError(f"--authorized-key {path}: {exc.strerror or exc}") from None
    if "PRIVATE KEY" in text:
        raise ConfigError(f"--authorized-key {path} is a PRIVATE key: pass its .pub file")
    return normalize_public_line(text, str(path))


def line_sha256(line: str) -> str:
    """What ``rk-settings`` prints beside a key line (integrity over a noisy console)."""
    return hashlib.sha256(line.encode()).hexdigest()
