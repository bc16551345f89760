"""Verified boot, the build half: FIT keys, signed configurations, the sample's control DTB."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

from tests.firmware.build.conftest import Built
from toolkit.boards import load_board
from toolkit.firmware import fit as fitmod
from toolkit.firmware import fitkeys, keys
from toolkit.firmware.fdt import FdtNode, parse_fdt
from toolkit.firmware.guest import need_tool
from toolkit.firmware.image import parse
from toolkit.sample import dtb as dtbmod
from toolkit.sample.qemu import machine_args

# mkimage, fdtput and QEMU come with `make setup`: a missing one fails these tests, never skips.
# PKCS#1 v1.5 DigestInfo prefix of a SHA-256 digest (RFC 8017, 9.2 note 1).
SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


def _node(tree: FdtNode, path: str) -> FdtNode:
    nodes = dict(tree.walk())
    assert path in nodes, f"{path} not in {sorted(nodes)}"
    return nodes[path]


def _made_by(key: fitkeys.FitKey, signature: bytes) -> bool:
    """True when ``signature`` is a PKCS#1 v1.5 SHA-256 signature by ``key`` (of some digest)."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    public = load_der_public_key(key.public_der())
    assert isinstance(public, rsa.RSAPublicKey)
    n, e = public.public_numbers().n, public.public_numbers().e
    em = pow(int.from_bytes(signature, "big"), e, n).to_bytes(public.key_size // 8, "big")
    pad = em.index(b"\0", 2) if em[:2] == b"\0\1" else -1
    return pad > 10 and set(em[2:pad]) == {0xFF} and em[pad + 1 : -32] == SHA256_DIGEST_INFO


def _small_fit(tmp_path: Path, key: fitkeys.FitKey | None, hint: str = "dev") -> bytes:
    its = fitmod.its_source(
        description="t",
        kernel="k.gz",
        initramfs="r.gz",
        load="0x40400000",
        signed_by=hint if key else None,
    )
    files = {"k.gz": b"kernel" * 100, "r.gz": b"ramdisk" * 100}
    return fitmod.make_fit(its, files, 1700000000, tmp_path, keys=[key] if key else [])


def test_fit_key_is_made_once_with_a_private_key_only_we_can_read() -> None:
    key = fitkeys.fit_key("rel")
    assert key.key is not None and stat.S_IMODE(key.key.stat().st_mode) == 0o600
    assert key.cert.name == "rel.fit.crt" and key.key.name == "rel.fit.key"
    fingerprint = key.fingerprint
    key.cert.unlink()  # a lost certificate is made again from the same private key
    assert fitkeys.fit_key("rel").fingerprint == fingerprint


def test_the_suite_uses_the_committed_test_fit_key() -> None:
    committed = Path(__file__).parents[2] / "keys" / "test-dev.fit.crt"
    assert fitkeys.fit_key().fingerprint == fitkeys.FitKey("x", committed).fingerprint


def test_the_signer_picks_the_fit_key_of_the_same_name() -> None:
    secret = keys.generate("release-x", trust=False)
    pub = secret.public_key().to_bytes()
    assert fitkeys.signer_fit_key([(secret.keyid, pub)]).name == "release-x"
    dev = keys.dev_key()
    assert fitkeys.signer_fit_key([(dev.keyid, dev.public_key().to_bytes())]).name == "dev"


def test_its_signs_conf_1_over_kernel_and_ramdisk_and_keeps_the_hash_nodes() -> None:
    signed = fitmod.its_source(
        description="d", kernel="k", initramfs="r", load="0x1", signed_by="dev"
    )
    assert 'algo = "sha256,rsa2048";' in signed and 'key-name-hint = "dev";' in signed
    assert 'sign-images = "kernel", "ramdisk";' in signed
    assert signed.count('algo = "sha256";') == 2
    unsigned = fitmod.its_source(description="d", kernel="k", initramfs="r", load="0x1")
    assert "signature-1" not in unsigned and unsigned.count('algo = "sha256";') == 2


def test_signing_is_deterministic_and_tied_to_the_key(tmp_path: Path) -> None:
    dev = fitkeys.fit_key()
    first, second = _small_fit(tmp_path, dev), _small_fit(tmp_path, dev)
    assert first == second  # PKCS#1 v1.5 + SOURCE_DATE_EPOCH: reproducible builds stay so
    other = fitkeys.fit_key("other")
    assert _small_fit(tmp_path, other) != first
    value = bytes(_node(parse_fdt(first), "/configurations/conf-1/signature-1").props["value"])
    assert _made_by(dev, value) and not _made_by(other, value)


def test_the_built_image_has_a_signed_configuration(built: Built) -> None:
    image = parse(built.path)
    tree = parse_fdt(built.path.read_bytes()[: image.fit_size])
    sig = _node(tree, "/configurations/conf-1/signature-1")
    assert sig.string("algo") == "sha256,rsa2048" and sig.string("key-name-hint") == "dev"
    assert sig.string("sign-images") == "kernel, ramdisk"
    assert len(sig.props["value"]) == 256
    assert _node(tree, "/images/kernel-1/hash-1").string("algo") == "sha256"
    assert _node(tree, "/images/ramdisk-1/hash-1").string("algo") == "sha256"
    # The image of the `built` fixture was signed in its own data dir, with its own dev key.
    cert = built.data_dir / "keys" / "dev.fit.crt"
    assert _made_by(fitkeys.FitKey("dev", cert), bytes(sig.props["value"]))
    listing = subprocess.run(["mkimage", "-l", str(built.path)], capture_output=True, text=True)
    assert "Sign algo:    sha256,rsa2048:dev" in listing.stdout


def test_control_dtb_requires_the_trusted_fit_key_as_mkimage_would_write_it(
    tmp_path: Path,
) -> None:
    (keys.trusted_dir() / "test-dev.fit.crt").unlink()  # tests/conftest.py trusts it by config
    assert [k.name for k in fitkeys.trusted_fit_keys()] == ["dev"]
    board = load_board("es-virt")
    path = dtbmod.control_dtb(board)
    assert dtbmod.control_dtb(board) == path  # cached
    data = path.read_bytes()
    assert len(data) < 64 * 1024  # packed: arm64 Linux refuses a tree over 2 MiB
    tree = parse_fdt(data)
    key = _node(tree, "/signature/key-dev")
    assert key.string("required") == "conf" and key.string("algo") == "sha256,rsa2048"
    assert "required-mode" not in _node(tree, "/signature").props
    chosen = _node(tree, "/chosen")
    assert "kaslr-seed" not in chosen.props and "rng-seed" in chosen.props
    assert not any(p.startswith("/pl061") for p, _ in tree.walk())  # the tree QEMU gives U-Boot

    # The same node from mkimage -K (which has to sign a FIT to write it).
    mkdtb = tmp_path / "mk.dtb"
    dtbmod.dump_machine_dtb(need_tool("qemu-system-aarch64"), machine_args(board), mkdtb)
    dev = fitkeys.fit_key()
    with fitkeys.mkimage_keydir([dev]) as keydir:
        fit = tmp_path / "t.fit"
        fit.write_bytes(_small_fit(tmp_path, dev))
        subprocess.run(
            ["mkimage", "-F", "-k", str(keydir), "-K", str(mkdtb), "-r", str(fit)],
            check=True,
            capture_output=True,
        )
    theirs = _node(parse_fdt(mkdtb.read_bytes()), "/signature/key-dev")
    assert set(theirs.props) == set(key.props)
    for prop in key.props:
        assert bytes(key.props[prop]) == bytes(theirs.props[prop]), prop


def test_a_trusted_certificate_adds_a_key_and_any_one_key_suffices() -> None:
    other = fitkeys.fit_key("elsewhere")
    trusted = keys.trusted_dir() / "release.fit.crt"
    shutil.copyfile(other.cert, trusted)
    other.cert.unlink()
    assert other.key is not None
    other.key.unlink()
    names = [k.name for k in fitkeys.trusted_fit_keys()]
    assert names == ["dev", "release", "test-dev"]
    tree = parse_fdt(dtbmod.control_dtb(load_board("es-virt")).read_bytes())
    assert _node(tree, "/signature").string("required-mode") == "any"
    release = _node(tree, "/signature/key-release")
    assert release.string("required") == "conf"
    cells = dtbmod.rsa_key_cells(fitkeys.FitKey("release", trusted))["rsa,modulus"]
    assert bytes(release.props["rsa,modulus"]) == b"".join(c.to_bytes(4, "big") for c in cells)
