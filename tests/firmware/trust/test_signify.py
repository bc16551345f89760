"""signify/usign compatibility, checked against the real ``signify-openbsd`` both ways."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from toolkit.errors import ConfigError, ImageFormatError, SignatureError
from toolkit.firmware import keys
from toolkit.firmware.image import parse
from toolkit.firmware.signify import PublicKey, SecretKey, Signature
from toolkit.firmware.verify import verify_image

SIGNIFY = shutil.which("signify-openbsd")


def _signify(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert SIGNIFY is not None
    return subprocess.run([SIGNIFY, *args], cwd=cwd, capture_output=True, text=True, timeout=30)


def test_routerkit_image_signature_verifies_with_signify_openbsd(
    tmp_path: Path, make_image, signing_key: SecretKey
) -> None:
    image = parse(make_image())
    (tmp_path / "meta.json").write_bytes(image.meta_bytes)
    assert image.signature is not None
    (tmp_path / "meta.json.sig").write_bytes(image.signature.to_bytes())
    (tmp_path / "key.pub").write_bytes(signing_key.public_key().to_bytes())
    ok = _signify("-V", "-p", "key.pub", "-x", "meta.json.sig", "-m", "meta.json", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    # and signify notices tampering, so the check above can fail
    (tmp_path / "meta.json").write_bytes(image.meta_bytes.replace(b"1.1.0", b"1.1.1"))
    bad = _signify("-V", "-p", "key.pub", "-x", "meta.json.sig", "-m", "meta.json", cwd=tmp_path)
    assert bad.returncode != 0


def test_signify_openbsd_key_and_signature_verify_in_routerkit(tmp_path: Path) -> None:
    gen = _signify("-G", "-n", "-p", "peer.pub", "-s", "peer.sec", "-c", "peer", cwd=tmp_path)
    assert gen.returncode == 0, gen.stderr
    (tmp_path / "msg").write_bytes(b'{"version":"1.2.3"}')
    sign = _signify("-S", "-s", "peer.sec", "-m", "msg", "-x", "msg.sig", cwd=tmp_path)
    assert sign.returncode == 0, sign.stderr
    public = PublicKey.from_bytes((tmp_path / "peer.pub").read_bytes())
    signature = Signature.from_bytes((tmp_path / "msg.sig").read_bytes())
    public.verify(signature, b'{"version":"1.2.3"}')
    with pytest.raises(SignatureError, match="bad signature"):
        public.verify(signature, b'{"version":"1.2.4"}')
    # signify's unencrypted secret key loads and signs what signify verifies
    secret = SecretKey.from_bytes((tmp_path / "peer.sec").read_bytes())
    assert secret.keyid == public.keyid
    (tmp_path / "mine.sig").write_bytes(secret.sign(b"x").to_bytes())
    (tmp_path / "x").write_bytes(b"x")
    assert (
        _signify("-V", "-p", "peer.pub", "-x", "mine.sig", "-m", "x", cwd=tmp_path).returncode == 0
    )


def test_image_sealed_with_a_signify_generated_key_verifies(tmp_path: Path, make_image) -> None:
    assert _signify("-G", "-n", "-p", "ci.pub", "-s", "ci.sec", cwd=tmp_path).returncode == 0
    keys.trust_key(PublicKey.from_bytes((tmp_path / "ci.pub").read_bytes()), name="ci")
    path = make_image(signer=keys.load_secret(tmp_path / "ci.sec"))
    assert verify_image(path, "es-virt").signer == keys.load_secret(tmp_path / "ci.sec").keyid


def test_passphrase_protected_signify_key_is_refused_clearly() -> None:
    # signify without -n prompts on a terminal; the header is built by hand: 42 kdf rounds.
    import base64

    key = SecretKey.generate()

    blob = bytearray(base64.b64decode(key.to_bytes().splitlines()[1]))
    blob[4:8] = (42).to_bytes(4, "big")
    text = b"untrusted comment: x\n" + base64.b64encode(bytes(blob)) + b"\n"
    with pytest.raises(ConfigError, match="passphrase-protected"):
        SecretKey.from_bytes(text)


def test_signature_file_garbage_is_a_format_error() -> None:
    for text in (
        b"",
        b"untrusted comment: x\n",
        b"untrusted comment: x\n!!!\n",
        b"untrusted comment: x\nRWQ=\n",
        b"hello\nRWQ=\n",
    ):
        with pytest.raises(ImageFormatError):
            Signature.from_bytes(text)
