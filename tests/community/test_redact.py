"""Every redaction rule has a test: the secret goes, the context stays, identifiers hash."""

from __future__ import annotations

import io

import pytest

from tests.community.fakes import jpeg
from toolkit.community.redact import RULES, Redactor, installation_salt, strip_image_metadata

SALT = b"s" * 32

# (rule, input, secret that must vanish, text that must survive)
CASES = [
    ("private_key", "-----BEGIN RSA PRIVATE KEY-----\nMIIEsecret\n-----END RSA PRIVATE KEY-----", "MIIEsecret", "private key"),
    ("wifi_key", "\toption key 'Wlan-Secret-1'\n\toption ssid 'lab'", "Wlan-Secret-1", "option ssid 'lab'"),
    ("wifi_key", '\toption sae_password "Sae-Secret"', "Sae-Secret", "option sae_password"),
    ("wifi_psk", "wpa_passphrase=HostapdSecret", "HostapdSecret", "wpa_passphrase="),
    ("wifi_psk", 'network={\n psk="SupplicantSecret"\n}', "SupplicantSecret", "network={"),
    ("url_credentials", "fetch https://bob:Hunter2@example.com/fw.img", "Hunter2", "example.com/fw.img"),
    ("bearer", "Authorization: Bearer abcDEF123456789xyz", "abcDEF123456789xyz", "Authorization: Bearer"),
    ("jwt", "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl here", "eyJzdWIiOiIxIn0", "here"),
    ("vendor_token", "GH ghp_abcdefghijklmnopqrstuvwxyz0123 ok", "ghp_abcdefghijklmnopqrstuvwxyz0123", " ok"),
    ("password_or_token", "login password=pa55word user=admin", "pa55word", "user=admin"),
    ("password_or_token", '{"api_key": "K3yK3yK3y", "fan": "ok"}', "K3yK3yK3y", '"fan": "ok"'),
    ("serial", "Serial Number: ES00012345", "ES00012345", "Serial Number: sn-"),
    ("serial", '{"serial": "ABC-98765"}', "ABC-98765", '"serial": "sn-'),
    ("mac", "eth0 HWaddr 52:54:00:12:34:56 up", "52:54:00:12:34:56", "mac-"),
    ("mac", "wlan AA-BB-CC-DD-EE-0F", "AA-BB-CC-DD-EE-0F", "mac-"),
    ("email", "reported by tester@example.org", "tester@example.org", "reported by email-"),
    ("hostname", "option hostname 'kitchen-router'", "kitchen-router", "option hostname"),
    ("shell_prompt_host", "root@benchpi:~# uname", "benchpi", "# uname"),
    ("lan_hostname", "ping nas.lan failed", "nas.lan", "failed"),
    ("home_path", "saved /home/alice/photos/1.jpg", "alice", "~/photos/1.jpg"),
    ("home_path", "key in /root/.ssh/id_ed25519", "/root/", "~/.ssh"),
    ("ipv4", "inet 192.168.1.20/24 brd", "192.168.1.20", "/24 brd"),
    ("ipv6", "inet6 2001:db8::42/64 scope global", "2001:db8::42", "scope global"),
    ("ipv6", "inet6 fe80::5054:ff:fe12:3456%eth0", "fe80::5054:ff:fe12:3456", "inet6"),
]


@pytest.mark.parametrize(("rule", "text", "secret", "kept"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_rule_removes_secret_and_keeps_context(rule: str, text: str, secret: str, kept: str) -> None:
    r = Redactor(SALT)
    out = r.text(text)
    assert secret not in out
    assert kept in out
    assert r.counts[rule] >= 1


def test_every_rule_has_a_case() -> None:
    assert {rule.name for rule in RULES} <= {c[0] for c in CASES}


def test_identifiers_hash_stably_per_installation_and_differ_between_installations() -> None:
    line = "MAC 52:54:00:12:34:56 serial: ES123456 ip 10.1.2.3"
    assert Redactor(SALT).text(line) == Redactor(SALT).text(line)
    assert Redactor(SALT).text(line) != Redactor(b"t" * 32).text(line)
    # the same MAC in another spelling is the same identifier
    assert Redactor(SALT).text("52-54-00-12-34-56") == Redactor(SALT).text("52:54:00:12:34:56")


def test_harmless_text_is_left_alone() -> None:
    text = "U-Boot 2023.01 booted at 12:34:56, version 1.2.3, loopback 127.0.0.1 and ::1, crc32 0xdeadbeef"
    assert Redactor(SALT).text(text) == text


def test_known_literal_values_are_redacted_on_word_boundaries() -> None:
    r = Redactor(SALT)
    r.add_known("benchbox", "host")
    out = r.text("benchbox says hi to benchboxes")
    assert out.startswith("host-") and "benchboxes" in out


def test_installation_salt_is_created_once_and_private(tmp_path) -> None:
    salt = installation_salt(tmp_path)
    assert salt == installation_salt(tmp_path) and len(salt) == 32
    assert (tmp_path / "salt").stat().st_mode & 0o077 == 0


def _exif_with_gps_and_serial():
    from PIL import Image

    exif = Image.Exif()
    exif[0x010E] = "serial ES-EXIF-0001"  # ImageDescription
    exif[0x0131] = "PhoneCam 52:54:00:aa:bb:cc"  # Software
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (52.0, 31.0, 12.0)
    return exif


def test_jpeg_exif_gps_and_comment_are_stripped_losslessly() -> None:
    from PIL import Image

    data = jpeg(64, 48, seed=1, exif=_exif_with_gps_and_serial(), comment=b"wpa_passphrase=InPhoto")
    clean, removed = strip_image_metadata(data)
    assert b"ES-EXIF-0001" not in clean and b"InPhoto" not in clean and b"52:54:00" not in clean
    assert "exif" in removed and "comment" in removed
    with Image.open(io.BytesIO(clean)) as im:
        assert not im.getexif() and im.size == (64, 48)
    # the image data itself is untouched: same pixels as the clean encode
    with Image.open(io.BytesIO(data)) as a, Image.open(io.BytesIO(clean)) as b:
        assert a.tobytes() == b.tobytes()


def test_png_text_chunks_are_stripped() -> None:
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "serial: PNG-SERIAL-9")
    out = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(out, "PNG", pnginfo=info)
    clean, removed = strip_image_metadata(out.getvalue())
    assert b"PNG-SERIAL-9" not in clean and removed == ["tEXt"]
    with Image.open(io.BytesIO(clean)) as im:
        assert im.size == (8, 8)


def test_rotated_photo_is_transposed_before_its_orientation_tag_goes() -> None:
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° CW to display
    clean, _ = strip_image_metadata(jpeg(64, 32, seed=2, exif=exif))
    with Image.open(io.BytesIO(clean)) as im:
        assert im.size == (32, 64) and not im.getexif()
