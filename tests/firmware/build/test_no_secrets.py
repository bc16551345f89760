"""No secret in an image: every copy of an image is public (channels, caches, bug reports).

Each image built here is opened the way an attacker would open a downloaded one: the FIT's
ramdisk is extracted and every file in it is searched for private key material and for login
keys. Only a ``--dev`` build may authorize the committed test key, and it says so.
"""

from __future__ import annotations

import base64
import gzip
import stat
from pathlib import Path

import pytest

from tests.firmware.build.conftest import EPOCH, extract_initramfs, read_newc
from toolkit.firmware.build import build_image
from toolkit.firmware.image import parse

REPO = Path(__file__).parents[3]
PRIVATE_MARKERS = (
    b"PRIVATE KEY",
    b"openssh-key-v1",
    b"untrusted comment: signify secret",
    b"BEGIN RSA",
    b"BEGIN EC ",
)
TEST_PUB = (REPO / "firmware" / "keys" / "test_id_ed25519.pub").read_text().split()[1]


def _dropbear_private(data: bytes) -> bool:
    """dropbear's own private key format: a length-prefixed key type then the key material
    (what the old builds put in /etc/dropbear)."""
    for kind in (b"ssh-ed25519", b"ecdsa-sha2-nistp256", b"ssh-rsa"):
        if data.startswith(len(kind).to_bytes(4, "big") + kind):
            return True
    return False


def _scan(
    image: Path, workdir: Path
) -> tuple[dict[str, tuple[int, int, int, int, bytes]], list[str]]:
    files = read_newc(gzip.decompress(extract_initramfs(image, workdir)))
    problems = []
    test_blob = base64.b64decode(TEST_PUB)
    for name, (mode, *_rest, data) in files.items():
        if not stat.S_ISREG(mode):
            continue
        for marker in PRIVATE_MARKERS:
            if marker in data:
                problems.append(f"{name}: contains {marker.decode()}")
        if _dropbear_private(data):
            problems.append(f"{name}: a dropbear private key")
        if TEST_PUB.encode() in data or test_blob in data:
            problems.append(f"{name}: authorizes the committed test key")
        if name.endswith("authorized_keys") and data.strip():
            problems.append(f"{name}: authorizes a key")
    return files, problems


@pytest.mark.parametrize("version", ["7.0.0", "7.0.1"])
def test_a_built_image_holds_no_private_key_and_no_login_key(version: str, tmp_path: Path) -> None:
    result = build_image(version, out=tmp_path, epoch=EPOCH, source_revision="r")
    files, problems = _scan(result.path, tmp_path)
    assert len(files) > 100  # the scan really looked at the whole tree
    assert problems == []
    assert "etc/dropbear/dropbear_ed25519_host_key" not in files


def test_a_dev_build_authorizes_the_test_key_and_says_so(tmp_path: Path) -> None:
    result = build_image("7.1.0", out=tmp_path, epoch=EPOCH, source_revision="r", dev=True)
    files, problems = _scan(result.path, tmp_path)
    assert result.development is True
    assert parse(result.path).metadata["development"] is True
    assert files["etc/routerkit/dev-authorized-keys"][4].split()[1].decode() == TEST_PUB
    # ... and nothing else: still no private key anywhere.
    assert [p for p in problems if "test key" not in p] == []


def test_dev_builds_are_refused_with_a_named_key(tmp_path: Path) -> None:
    from toolkit.errors import BuildError
    from toolkit.firmware import keys

    keys.generate("release-test", trust=False)
    with pytest.raises(BuildError, match="development key only"):
        build_image("7.2.0", out=tmp_path, epoch=EPOCH, key="release-test", dev=True)


def test_a_dev_image_signed_by_a_release_key_is_refused_before_flashing(tmp_path: Path) -> None:
    """A crafted image: development metadata, signed by a trusted non-development key."""
    from toolkit.errors import SignatureError
    from toolkit.firmware import keys
    from toolkit.firmware.image import seal
    from toolkit.firmware.verify import verify_image

    honest = build_image("7.3.0", out=tmp_path, epoch=EPOCH, source_revision="r", dev=True)
    parsed = parse(honest.path)
    with parsed.fit() as view:
        fit = bytes(view)
    release = keys.generate("release-signer")  # trusted on this machine, not a dev key
    meta = {
        k: v
        for k, v in parsed.metadata.items()
        if k not in ("format", "fit_size", "fit_sha256", "signer")
    }
    crafted = tmp_path / "crafted.img"
    crafted.write_bytes(seal(fit, meta, release))
    with pytest.raises(SignatureError, match="DEVELOPMENT image"):
        verify_image(crafted, "es-virt")
    assert verify_image(honest.path, "es-virt").metadata["development"] is True


def test_firmware_inspect_shows_a_dev_image_loudly(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from toolkit.cli import root as cli

    result = build_image("7.4.0", out=tmp_path, epoch=EPOCH, source_revision="r", dev=True)
    out = CliRunner().invoke(cli, ["firmware", "inspect", str(result.path)])
    assert "DEVELOPMENT IMAGE" in out.output


def test_device_trust_adds_a_key_the_device_accepts(tmp_path: Path) -> None:
    """Key rotation: an image signed by the old key can make the device trust the new one."""
    from toolkit.firmware import keys

    new = keys.generate("next-release", trust=False)
    pub = tmp_path / "next.pub"
    pub.write_bytes(new.public_key().to_bytes())
    result = build_image(
        "7.5.0", out=tmp_path, epoch=EPOCH, source_revision="r", device_trust=(pub,)
    )
    files, problems = _scan(result.path, tmp_path)
    meta = parse(result.path).metadata
    assert problems == []
    assert meta["device_trusted_keys"] == [meta["signer"], new.keyid]
    assert f"etc/routerkit/trusted-keys/{new.keyid}.pub" in files
    assert files[f"etc/routerkit/trusted-keys/{new.keyid}.pub"][4] == pub.read_bytes()
