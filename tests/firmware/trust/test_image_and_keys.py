"""Image format v1 round trip, inspect, verify overrides and the keys commands."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from toolkit.cli import root
from toolkit.errors import ImageFormatError, SignatureError
from toolkit.firmware import keys
from toolkit.firmware.image import FOOTER_SIZE, parse, read_fit, seal
from toolkit.firmware.signify import SecretKey
from toolkit.firmware.verify import verify_image
from toolkit.record import Journal


def test_sealed_image_matches_the_documented_layout(
    tiny_fit: bytes, signing_key: SecretKey
) -> None:
    data = seal(
        tiny_fit,
        {"supported_devices": ["es-virt"], "version": "1.0.0", "compat_version": "1.0"},
        signing_key,
    )
    footer = data[-FOOTER_SIZE:]
    assert footer.startswith(b"RKFW1 ") and footer.endswith(b"\n")
    fit_size, meta_size, sig_size = (int(x) for x in footer.split()[1:])
    assert fit_size == len(tiny_fit) and data[:fit_size] == tiny_fit
    meta = json.loads(data[fit_size : fit_size + meta_size])
    assert meta["signer"] == signing_key.keyid and meta["format"] == 1
    sig = data[fit_size + meta_size : fit_size + meta_size + sig_size]
    assert sig.startswith(b"untrusted comment: ") and sig.count(b"\n") == 2
    parsed = parse(data)
    assert parsed.metadata == meta and parsed.size == len(data)


def test_parse_from_path_and_bytes_agree(make_image) -> None:
    path = make_image()
    a, b = parse(path), parse(path.read_bytes())
    assert a.metadata == b.metadata and a.footer == b.footer
    with a.fit() as view:
        names = [i.name for i in read_fit(view).images]
    assert names == ["kernel-1", "ramdisk-1"]


def test_seal_refuses_something_that_is_not_a_fit(signing_key: SecretKey) -> None:
    with pytest.raises(ImageFormatError, match="device-tree"):
        seal(b"\x00" * 100, {}, signing_key)


def test_dev_key_is_created_once_private_and_trusted_here(tiny_fit: bytes) -> None:
    data = seal(
        tiny_fit, {"supported_devices": ["es-virt"], "version": "1.0.0", "compat_version": "1.0"}
    )
    sec = keys.keys_dir() / "dev.sec"
    assert stat.S_IMODE(sec.stat().st_mode) == 0o600
    keyid = parse(data).metadata["signer"]
    assert keys.trusted_keys()[keyid].is_dev
    again = seal(
        tiny_fit, {"supported_devices": ["es-virt"], "version": "1.0.1", "compat_version": "1.0"}
    )
    assert parse(again).metadata["signer"] == keyid  # reused, not regenerated


def test_inspect_says_loudly_when_signed_with_the_dev_key(tmp_path: Path, tiny_fit: bytes) -> None:
    path = tmp_path / "dev.img"
    path.write_bytes(
        seal(
            tiny_fit,
            {"supported_devices": ["es-virt"], "version": "1.0.0", "compat_version": "1.0"},
        )
    )
    result = CliRunner().invoke(root, ["firmware", "inspect", str(path)])
    assert result.exit_code == 0, result.output
    assert "LOCAL DEVELOPMENT KEY" in result.output and "THIS machine only" in result.output
    assert "kernel-1" in result.output and "ramdisk-1" in result.output
    js = CliRunner().invoke(root, ["firmware", "inspect", str(path), "--json"])
    payload = json.loads(js.stdout)
    assert payload["signature"]["dev_key"] is True and payload["warnings"]
    assert payload["fit"]["sha256_matches_metadata"] is True


def test_inspect_of_a_release_signed_image_has_no_dev_warning(make_image) -> None:
    result = CliRunner().invoke(root, ["firmware", "inspect", str(make_image()), "--json"])
    payload = json.loads(result.stdout)
    assert payload["signature"]["status"] == "trusted" and payload["signature"]["dev_key"] is False
    assert payload["warnings"] == [] and "DEVELOPMENT" not in result.output


def test_inspect_reports_a_stranger_signature_without_failing(make_image) -> None:
    path = make_image(signer=SecretKey.generate())
    payload = json.loads(
        CliRunner().invoke(root, ["firmware", "inspect", str(path), "--json"]).stdout
    )
    assert payload["signature"]["status"] == "unknown signer"


def test_allow_downgrade_is_loud_and_recorded_in_a_journal(make_image) -> None:
    path = make_image(version="1.0.0")
    result = CliRunner().invoke(
        root,
        [
            "firmware",
            "verify",
            str(path),
            "--board",
            "es-virt",
            "--running-version",
            "1.2.0",
            "--allow-downgrade",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "DOWNGRADE ALLOWED" in result.output
    journal = Journal.latest(kind="verify", board="es-virt")
    assert journal is not None
    override = journal.last("override")
    assert override is not None and override["flag"] == "allow_downgrade"
    assert journal.last("image_verified") is not None


def test_force_board_is_loud_and_recorded(make_image) -> None:
    path = make_image(board="es-other", supported_devices=["es-other"])
    refused = CliRunner().invoke(root, ["firmware", "verify", str(path), "--board", "es-virt"])
    assert refused.exit_code == 13
    forced = CliRunner().invoke(
        root, ["firmware", "verify", str(path), "--board", "es-virt", "--force-board"]
    )
    assert forced.exit_code == 0 and "BOARD CHECK FORCED" in forced.output
    journal = Journal.latest(kind="verify")
    assert journal is not None and journal.last("override")["flag"] == "force_board"


def test_force_board_never_skips_the_signature(make_image) -> None:
    path = make_image(signer=SecretKey.generate(), supported_devices=["es-other"])
    with pytest.raises(SignatureError, match="unknown signer"):
        verify_image(path, "es-virt", force_board=True, allow_downgrade=True)


def test_downgrade_uses_the_recorded_running_version(make_image) -> None:
    journal = Journal.create("flash", board="es-virt")
    journal.append("running_version", version="2.0.0")
    result = CliRunner().invoke(
        root, ["firmware", "verify", str(make_image()), "--board", "es-virt"]
    )
    assert result.exit_code == 15 and "the device runs 2.0.0" in result.output


def test_keys_generate_list_export_trust(tmp_path: Path) -> None:
    # Start from an empty keyring (the suite pre-installs its test dev key everywhere).
    (keys.keys_dir() / "dev.sec").unlink(missing_ok=True)
    for pub in keys.trusted_dir().glob("dev-*.pub"):
        pub.unlink()
    runner = CliRunner()
    gen = runner.invoke(root, ["keys", "generate", "release", "--json"])
    assert gen.exit_code == 0, gen.output
    info = json.loads(gen.stdout)
    assert stat.S_IMODE(Path(info["secret_key"]).stat().st_mode) == 0o600
    again = runner.invoke(root, ["keys", "generate", "release"])
    assert again.exit_code == 3 and "already exists" in again.output
    listed = json.loads(runner.invoke(root, ["keys", "list", "--json"]).stdout)
    assert [s["name"] for s in listed["secret_keys"]] == ["release"]
    assert [t["keyid"] for t in listed["trusted_keys"]] == [info["keyid"]]
    out = tmp_path / "release.pub"
    assert runner.invoke(root, ["keys", "export", "release", "--out", str(out)]).exit_code == 0
    assert out.read_bytes().startswith(b"untrusted comment: ")
    other = SecretKey.generate()
    (tmp_path / "other.pub").write_bytes(other.public_key().to_bytes())
    assert runner.invoke(root, ["keys", "trust", str(tmp_path / "other.pub")]).exit_code == 0
    assert other.keyid in keys.trusted_keys()


def test_secret_key_file_with_bad_checksum_is_refused(tmp_path: Path) -> None:
    key = keys.generate("k")
    path = keys.keys_dir() / "k.sec"
    import base64

    lines = path.read_bytes().splitlines()
    blob = bytearray(base64.b64decode(lines[1]))
    blob[-1] ^= 1
    path.write_bytes(lines[0] + b"\n" + base64.b64encode(bytes(blob)) + b"\n")
    from toolkit.errors import ConfigError

    with pytest.raises(ConfigError):
        keys.load_secret("k")
    assert key.keyid
