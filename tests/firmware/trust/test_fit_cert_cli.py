"""`keys export --fit` / `keys trust NAME.fit.crt`: handing a signer's FIT certificate to the
machines whose samples should boot that signer's images (U-Boot's verified boot)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from toolkit.cli import root as cli


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def test_export_then_trust_a_fit_certificate(tmp_path: Path) -> None:
    from toolkit.firmware.fitkeys import trusted_fit_keys

    code, out = _run("keys", "generate", "release-x", "--json")
    assert code == 0, out
    cert = tmp_path / "release-x.fit.crt"
    code, out = _run("keys", "export", "release-x", "--fit", "--out", str(cert))
    assert code == 0, out
    assert cert.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    # Trusted by file name, into the keyring directory (the one a U-Boot DTB is made from).
    code, out = _run("keys", "trust", str(cert), "--json")
    assert code == 0, out
    data = json.loads(out.strip().splitlines()[-1])
    assert data["fit_certificate"] is True and data["name"] == "release-x"
    assert Path(data["path"]).read_bytes() == cert.read_bytes()
    assert Path(data["path"]).parent.name == "trusted-keys"
    assert "release-x" in [k.name for k in trusted_fit_keys()]
    # The same certificate again is fine; a different one under that name is refused.
    assert _run("keys", "trust", str(cert))[0] == 0
    other = tmp_path / "other.fit.crt"
    _run("keys", "generate", "other-y")
    _run("keys", "export", "other-y", "--fit", "--out", str(other))
    code, out = _run("keys", "trust", str(other), "--name", "release-x")
    assert code != 0 and "already trusted" in out


def test_trust_refuses_a_certificate_u_boot_cannot_use(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ecdsa")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime(2000, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2100, 1, 1, tzinfo=UTC))
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "ecdsa.fit.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    code, out = _run("keys", "trust", str(path))
    assert code != 0 and "verifies" in out and "Traceback" not in out


def test_export_fit_of_an_unknown_key_is_a_clear_error() -> None:
    code, out = _run("keys", "export", "nope", "--fit")
    assert code != 0 and "Traceback" not in out
