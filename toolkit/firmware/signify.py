"""signify / usign files, byte for byte, with ed25519 from ``cryptography``.

OpenBSD's signify and OpenWrt's usign share one format, so keys and signatures written here
work with ``signify-openbsd`` (Debian) and ``usign`` (on a router) and the other way round.
Every file is two lines::

    untrusted comment: <free text, NOT covered by any signature>
    <base64 of a fixed binary layout>

Binary layouts (all ``pkalg`` = ``b"Ed"``; ``keynum`` is 8 random bytes naming the key pair):

* public key  (42 bytes):  pkalg | keynum | ed25519 public key (32)
* secret key (104 bytes):  pkalg | kdfalg ``b"BK"`` | kdfrounds (u32 BE) | salt (16) |
  checksum (8, first bytes of sha512(seckey)) | keynum | seckey (64 = seed | public key)
* signature   (74 bytes):  pkalg | keynum | ed25519 signature (64)

Only unencrypted secret keys (``kdfrounds == 0``, what ``signify -G -n`` writes) are supported:
routerkit keeps them in 0600 files, and a passphrase prompt would break CI signing.

Parsing raises :class:`~toolkit.errors.ImageFormatError` for signatures (they live inside
images) and :class:`~toolkit.errors.ConfigError` for key files, never anything else.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import os
from dataclasses import dataclass

from toolkit.errors import ConfigError, ImageFormatError, RouterkitError, SignatureError

COMMENT_PREFIX = b"untrusted comment: "
PKALG = b"Ed"
KDFALG = b"BK"
KEYNUM_LEN = 8
PUBKEY_LEN = 2 + KEYNUM_LEN + 32
SECKEY_LEN = 2 + 2 + 4 + 16 + 8 + KEYNUM_LEN + 64
SIG_LEN = 2 + KEYNUM_LEN + 64
# signify refuses comments longer than this (COMMENTMAXLEN 1024 minus the prefix).
MAX_COMMENT = 1024 - len(COMMENT_PREFIX) - 1


def _decode_file(
    text: bytes, expected_len: int, what: str, error: type[RouterkitError]
) -> tuple[str, bytes]:
    """Split a signify file into (comment, binary blob); exact-length base64 only."""
    if not text.startswith(COMMENT_PREFIX):
        raise error(f"{what}: does not start with 'untrusted comment: '")
    end = text.find(b"\n")
    if end < 0:
        raise error(f"{what}: no newline after the comment")
    comment_raw = text[len(COMMENT_PREFIX) : end]
    rest = text[end + 1 :]
    b64_end = rest.find(b"\n")
    if b64_end < 0:
        raise error(f"{what}: the base64 line is not terminated by a newline")
    if rest[b64_end + 1 :]:
        raise error(f"{what}: unexpected data after the base64 line")
    try:
        comment = comment_raw.decode("utf-8")
        blob = binascii.a2b_base64(rest[:b64_end], strict_mode=True)
    except (UnicodeDecodeError, binascii.Error, ValueError) as exc:
        raise error(f"{what}: malformed ({exc})") from None
    if len(blob) != expected_len:
        raise error(f"{what}: {len(blob)} bytes of key material, expected {expected_len}")
    if blob[:2] != PKALG:
        raise error(f"{what}: unsupported algorithm {blob[:2]!r} (only Ed25519 'Ed')")
    return comment, blob


def _encode_file(comment: str, blob: bytes) -> bytes:
    line = comment.replace("\n", " ").replace("\r", " ")
    encoded = line.encode("utf-8")[:MAX_COMMENT]
    # Cutting UTF-8 mid-character would make the file unreadable for us; trim cleanly.
    encoded = encoded.decode("utf-8", errors="ignore").encode("utf-8")
    return COMMENT_PREFIX + encoded + b"\n" + binascii.b2a_base64(blob, newline=True)


@dataclass(frozen=True)
class Signature:
    """A detached signature made by the key named ``keynum``."""

    keynum: bytes
    sig: bytes
    comment: str = "signature from routerkit"

    @property
    def keyid(self) -> str:
        return self.keynum.hex()

    @classmethod
    def from_bytes(cls, text: bytes) -> Signature:
        """Parse a ``.sig`` file (raises ImageFormatError)."""
        comment, blob = _decode_file(text, SIG_LEN, "signature", ImageFormatError)
        return cls(keynum=blob[2:10], sig=blob[10:], comment=comment)

    def to_bytes(self) -> bytes:
        return _encode_file(self.comment, PKALG + self.keynum + self.sig)


@dataclass(frozen=True)
class PublicKey:
    keynum: bytes
    key: bytes
    comment: str = "routerkit public key"

    @property
    def keyid(self) -> str:
        """The key's id as routerkit shows it (and as ``signer`` in image metadata)."""
        return self.keynum.hex()

    @classmethod
    def from_bytes(cls, text: bytes, source: str = "public key") -> PublicKey:
        """Parse a ``.pub`` file (raises ConfigError naming ``source``)."""
        comment, blob = _decode_file(text, PUBKEY_LEN, source, ConfigError)
        return cls(keynum=blob[2:10], key=blob[10:], comment=comment)

    def to_bytes(self) -> bytes:
        return _encode_file(self.comment, PKALG + self.keynum + self.key)

    def verify(self, signature: Signature, message: bytes) -> None:
        """Raise SignatureError unless ``signature`` is this key's signature of ``message``."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        if not hmac.compare_digest(signature.keynum, self.keynum):
            raise SignatureError(
                f"signature was made by key {signature.keyid}, not by {self.keyid}"
            )
        try:
            Ed25519PublicKey.from_public_bytes(self.key).verify(signature.sig, message)
        except (InvalidSignature, ValueError):
            raise SignatureError(
                f"bad signature: the metadata was not signed by key {self.keyid} "
                "(the image was modified after signing, or the signature is forged)"
            ) from None


@dataclass(frozen=True)
class SecretKey:
    keynum: bytes
    seed: bytes
    public: bytes
    comment: str = "routerkit secret key"

    @property
    def keyid(self) -> str:
        return self.keynum.hex()

    @classmethod
    def generate(cls, comment: str = "routerkit secret key") -> SecretKey:
        """A fresh ed25519 key pair with a random keynum."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        seed = os.urandom(32)
        public = (
            Ed25519PrivateKey.from_private_bytes(seed)
            .public_key()
            .public_bytes(Encoding.Raw, PublicFormat.Raw)
        )
        return cls(keynum=os.urandom(KEYNUM_LEN), seed=seed, public=public, comment=comment)

    @classmethod
    def from_bytes(cls, text: bytes, source: str = "secret key") -> SecretKey:
        """Parse a ``.sec`` file written by routerkit or ``signify -G -n`` (raises ConfigError)."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        comment, blob = _decode_file(text, SECKEY_LEN, source, ConfigError)
        if blob[2:4] != KDFALG:
            raise ConfigError(f"{source}: unsupported kdf {blob[2:4]!r}")
        rounds = int.from_bytes(blob[4:8], "big")
        if rounds != 0:
            raise ConfigError(
                f"{source}: the key is passphrase-protected ({rounds} kdf rounds)",
                hint="routerkit signs unattended; create keys with `signify -G -n` or `routerkit keys generate`",
            )
        checksum, keynum, seckey = blob[24:32], blob[32:40], blob[40:104]
        if not hmac.compare_digest(hashlib.sha512(seckey).digest()[:8], checksum):
            raise ConfigError(f"{source}: checksum mismatch (the key file is corrupt)")
        seed, public = seckey[:32], seckey[32:]
        derived = (
            Ed25519PrivateKey.from_private_bytes(seed)
            .public_key()
            .public_bytes(Encoding.Raw, PublicFormat.Raw)
        )
        if not hmac.compare_digest(derived, public):
            raise ConfigError(f"{source}: the public half does not match the private half")
        return cls(keynum=keynum, seed=seed, public=public, comment=comment)

    def to_bytes(self) -> bytes:
        seckey = self.seed + self.public
        checksum = hashlib.sha512(seckey).digest()[:8]
        salt = os.urandom(16)  # unused with 0 kdf rounds, random like signify writes it
        blob = PKALG + KDFALG + (0).to_bytes(4, "big") + salt + checksum + self.keynum + seckey
        return _encode_file(self.comment, blob)

    def public_key(self, comment: str | None = None) -> PublicKey:
        return PublicKey(self.keynum, self.public, comment or f"public key {self.keyid}")

    def sign(self, message: bytes, comment: str | None = None) -> Signature:
        """Sign ``message`` (ed25519, deterministic)."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        sig = Ed25519PrivateKey.from_private_bytes(self.seed).sign(message)
        return Signature(self.keynum, sig, comment or f"verify with key {self.keyid}")
