"""Redaction canaries: secrets and identifiers planted in logs, journal records, attached
files and photo metadata. Zero may survive in any payload (body, attachments, HTML page,
the staged outbox files)."""

from __future__ import annotations

from pathlib import Path

from tests.community.fakes import assembly_session, jpeg
from toolkit.community.outbox import Outbox
from toolkit.journeys.bug import prepare_bug
from toolkit.journeys.share import prepare_share, submit

CANARIES = {
    "wifi key": ("\toption key 'CanaryWifiKey7781'", "CanaryWifiKey7781"),
    "psk": ("wpa_passphrase=CanaryPass5512", "CanaryPass5512"),
    "password": ("login password=CanaryPw9901 ok", "CanaryPw9901"),
    "bearer": ("Authorization: Bearer CanaryTok0abcdef123456", "CanaryTok0abcdef123456"),
    "jwt": ("eyJhbGciOiJIUzI1NiJ9.eyJjYW5hcnkiOjF9.Q2FuYXJ5U2ln", "eyJjYW5hcnkiOjF9"),
    "github": ("ghp_CanaryCanaryCanaryCanary1234", "ghp_CanaryCanaryCanaryCanary1234"),
    "pem": (
        "-----BEGIN PRIVATE KEY-----\nCanaryPemBody\n-----END PRIVATE KEY-----",
        "CanaryPemBody",
    ),
    "mac": ("eth0 52:54:00:ca:fe:01", "52:54:00:ca:fe:01"),
    "mac upper": ("wlan0 52:54:00:CA:FE:02", "52:54:00:CA:FE:02"),
    "serial": ("serial: ESCANARY0042", "ESCANARY0042"),
    "ipv4": ("gw 198.51.100.23", "198.51.100.23"),
    "lan ip": ("lease 192.168.77.5", "192.168.77.5"),
    "ipv6": ("inet6 2001:db8:cafe::42/64", "2001:db8:cafe::42"),
    "hostname": ("option hostname 'canary-bench'", "canary-bench"),
    "prompt": ("root@canaryhost:~# reboot", "canaryhost"),
    "home": ("/home/canaryuser/fw.img", "canaryuser"),
    "email": ("mail canary@example.org", "canary@example.org"),
}
PLANTED = "\n".join(line for line, _ in CANARIES.values())


def _planted_session(tmp: Path):
    from PIL import Image

    journal = assembly_session(photos=2, steps=2, console=PLANTED)
    journal.append("step_started", step="step-3", title="Wi-Fi: option key 'CanaryWifiKey7781'")
    exif = Image.Exif()
    exif[0x010E] = "serial: ESCANARY0042 52:54:00:ca:fe:01"
    exif.get_ifd(0x8825)[2] = (52.0, 31.0, 12.0)
    leaky = journal.store_bytes(
        "photos/leaky.jpg", jpeg(96, 64, seed=9, exif=exif, comment=b"CanaryPass5512")
    )
    journal.append("photo", step="step-3", path=journal.relpath(leaky), width=96, height=64)
    journal.append("check", step="step-3", name="uci", ok=False, detail=PLANTED)
    journal.append(
        "step_finished",
        step="step-3",
        ok=False,
        error="wpa_passphrase=CanaryPass5512 at 198.51.100.23",
        error_class="CheckFailed",
    )
    journal.store_bytes("console.log", PLANTED.encode())
    attached = tmp / "uci-wireless.txt"
    attached.write_text(PLANTED)
    photo = tmp / "bench.jpg"
    photo.write_bytes(jpeg(64, 64, seed=3, exif=exif))
    return journal, [attached, photo]


def _survivors(blobs: list[bytes]) -> list[str]:
    return [
        name for name, (_, secret) in CANARIES.items() if any(secret.encode() in b for b in blobs)
    ]


def test_no_canary_survives_in_share_or_bug_payloads(tmp_path: Path) -> None:
    journal, attach = _planted_session(tmp_path)
    share = prepare_share(journal.id)
    bug, _ = prepare_bug(
        f"Broken at 198.51.100.23 on canary-bench {PLANTED}",
        session_id=journal.id,
        attach=attach,
        remote=lambda cmd: PLANTED,
    )
    assert share.redactions and bug.redactions  # something was found and removed
    payloads: list[bytes] = []
    for plan in (share, bug):
        payloads += [
            plan.item.title.encode(),
            plan.item.body.encode(),
            *(b.data for b in plan.blobs),
        ]
        item = submit(plan, Outbox())
        payloads += [a.path.read_bytes() for a in item.attachments]
    assert (
        PLANTED.encode() in (journal.files_dir / "console.log").read_bytes()
    )  # the canaries were there
    assert _survivors(payloads) == []


def test_canary_check_would_notice_a_leak() -> None:
    assert _survivors([b"xx 52:54:00:ca:fe:01 xx"]) == ["mac"]
