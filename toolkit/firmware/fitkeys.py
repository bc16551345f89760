"""RSA keys that sign FIT configurations, so that U-Boot can verify a slot before booting it.

The image signature (ed25519, signify format, :mod:`toolkit.firmware.keys`) is checked by
routerkit and by ``sysupgrade``; U-Boot cannot check it. What U-Boot can check is a signature
node in the FIT's configuration, with a public key from its control DTB. Debian's qemu_arm64
U-Boot verifies RSA in software (``CONFIG_RSA_SOFTWARE_EXP=y``) while its ECDSA needs a
hardware driver (``# CONFIG_ECDSA is not set``), so every routerkit signing key ``<name>`` has
an RSA-2048 twin for the FIT:

* ``$DATA/keys/<name>.fit.key`` (PEM, PKCS#8, mode 0600) and ``<name>.fit.crt`` (a self-signed
  X.509 certificate: ``mkimage -K`` reads the public key from a certificate), created with the
  ``cryptography`` package on first use. The name is also the signature's ``key-name-hint``
  and the DTB node ``/signature/key-<name>``.
* **Trusted FIT keys** (those a sample's U-Boot accepts, :func:`trusted_fit_keys`): the
  certificate of every FIT key in ``$DATA/keys/`` (the keys this user signs with, at least
  ``dev``) plus every ``<name>.fit.crt`` in ``$CONFIG/trusted-keys/`` (other signers, e.g. a
  release key's certificate copied there).

PKCS#1 v1.5 signatures are deterministic, so a FIT signed twice is byte-identical.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from toolkit.errors import ConfigError
from toolkit.firmware import keys as keysmod

FIT_ALGO = "sha256,rsa2048"
KEY_BITS = 2048
KEY_SUFFIX = ".fit.key"
CERT_SUFFIX = ".fit.crt"


@dataclass(frozen=True)
class FitKey:
    """One FIT signing key: ``name`` is the key-name-hint; ``key`` is None for a key we only
    trust (a certificate in the keyring)."""

    name: str
    cert: Path
    key: Path | None = None

    def public_der(self) -> bytes:
        """The public key as DER SubjectPublicKeyInfo: its identity (not the certificate's
        dates or serial)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        try:
            cert = x509.load_pem_x509_certificate(self.cert.read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read FIT key certificate {self.cert}: {exc}") from None
        return cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def fingerprint(self) -> str:
        """sha256 of :meth:`public_der`, hex: what cache keys and reports name the key by."""
        return hashlib.sha256(self.public_der()).hexdigest()


def _certificate(private_pem: bytes, name: str) -> bytes:
    """A self-signed certificate for ``private_pem``; fixed dates and serial, since only its
    public key matters to mkimage."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = serialization.load_pem_private_key(private_pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(f"FIT key {name!r} is not an RSA key")
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"routerkit FIT key {name}")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime(2000, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(9999, 12, 31, tzinfo=UTC))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def fit_key(name: str = keysmod.DEV_KEY) -> FitKey:
    """The FIT key of signing key ``name`` (default: the development key), created on first use.

    A certificate lost or deleted is made again from the private key; the private key is never
    overwritten (two processes racing to create it agree on the winner's file).
    """
    directory = keysmod.keys_dir()
    key_path, cert_path = directory / f"{name}{KEY_SUFFIX}", directory / f"{name}{CERT_SUFFIX}"
    if not key_path.exists():
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        private = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )  # fmt: skip
        keysmod._write_exclusive(key_path, pem, 0o600)
    if not cert_path.exists():
        try:
            pem = key_path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read FIT key {key_path}: {exc.strerror}") from None
        keysmod._write_exclusive(cert_path, _certificate(pem, name), 0o644)
    return FitKey(name, cert_path, key_path)


def signer_fit_key(signing_keys: Sequence[tuple[str, bytes]]) -> FitKey:
    """The FIT key of the image signer, the first of ``signing_keys`` ((name, signify public
    key file bytes), as in ``DeviceTrust``): the FIT key of this user's secret key with the
    same keyid, so ``--key release`` signs the FIT with ``release.fit.key``. A signer that is
    not in ``$DATA/keys/`` (a ``.sec`` given by path) gets a FIT key named after its keyid."""
    from toolkit.firmware.signify import PublicKey

    if not signing_keys:
        raise ConfigError("no signing key: cannot choose the key that signs the FIT")
    keyid = PublicKey.from_bytes(signing_keys[0][1], "signing key").keyid
    for name, secret, _ in keysmod.secret_keys():
        if secret is not None and secret.keyid == keyid:
            return fit_key(name)
    return fit_key(f"signer-{keyid}")


def trusted_fit_keys() -> list[FitKey]:
    """The FIT keys a sample's U-Boot accepts, sorted by name. The FIT key of every signing
    key of this user (the development key at least) is made if missing, so a machine trusts
    what it builds. A name in both places: ours wins."""
    fit_key()
    for name, secret, _ in keysmod.secret_keys():
        if secret is not None and name != keysmod.DEV_KEY:
            fit_key(name)
    found: dict[str, FitKey] = {}
    for directory, own in ((keysmod.trusted_dir(), False), (keysmod.keys_dir(), True)):
        for cert in sorted(directory.glob(f"*{CERT_SUFFIX}")):
            name = cert.name[: -len(CERT_SUFFIX)]
            key = directory / f"{name}{KEY_SUFFIX}"
            found[name] = FitKey(name, cert, key if own and key.exists() else None)
    return [found[name] for name in sorted(found)]


def trust_fit_certificate(pem: bytes, name: str, source: str = "certificate") -> Path:
    """Trust another signer's FIT certificate (``keys trust NAME.fit.crt``): the samples this
    machine starts will boot FITs that key signed. ``name`` must be the signer's FIT key name
    (the ``key-name-hint`` in their FITs: the name of their signing key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa

    keysmod._check_name(name)
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise ConfigError(f"{source}: not a PEM X.509 certificate") from None
    public = cert.public_key()
    if not isinstance(public, rsa.RSAPublicKey) or public.key_size != KEY_BITS:
        raise ConfigError(
            f"{source}: U-Boot here verifies {FIT_ALGO} only; this certificate holds another key"
        )
    dest = keysmod.trusted_dir() / f"{name}{CERT_SUFFIX}"
    if dest.exists() and dest.read_bytes() != pem:
        raise ConfigError(
            f"a different FIT certificate named {name!r} is already trusted ({dest})",
            hint="pass --name to store it under another name, or remove the old file",
        )
    from toolkit.record import atomic_write

    atomic_write(dest, pem)
    return dest


@contextlib.contextmanager
def mkimage_keydir(keys: Iterable[FitKey]) -> Iterator[Path]:
    """A private temp dir laid out as ``mkimage -k`` wants it: ``<name>.key`` + ``<name>.crt``."""
    with tempfile.TemporaryDirectory(prefix="rk-fitkeys-") as tmp:
        directory = Path(tmp)
        os.chmod(directory, 0o700)
        for key in keys:
            shutil.copyfile(key.cert, directory / f"{key.name}.crt")
            if key.key is not None:
                shutil.copyfile(key.key, directory / f"{key.name}.key")
                os.chmod(directory / f"{key.name}.key", 0o600)
        yield directory
