"""The SSH flash journey against light loopback devices: every bad input gets a clear error
and leaves the device untouched; a device keeps its host key across a flash, and a changed one
is accepted only when the person accepts it for that flash."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from toolkit.errors import (
    DeviceCommandError,
    DeviceTimeout,
    DowngradeError,
    HostKeyError,
    NoSpaceError,
    TransferError,
    VerifyError,
)
from toolkit.events import RecordingReporter
from toolkit.hostkeys import HostKeyStore, identity_of
from toolkit.journeys.flash import FlashOptions, flash
from toolkit.record import Journal
from toolkit.target.ssh import connect_target

from .conftest import CuttingProxy, target_for


def _ready(dev, images, key: Path, version: str = "1.0.0"):
    dev.install(images(version), "A")
    target = target_for(dev, key)
    connect_target(target, accept_new=True).close()  # first contact, as `hosts trust` would
    return target


def _slot_b_empty(dev) -> bool:
    return dev.fwinfo()["slots"]["B"].get("empty") is True


def test_flash_upgrades_switches_slot_and_verifies(make_device, images, client_key: Path) -> None:
    dev = make_device()
    target = _ready(dev, images, client_key)
    reporter = RecordingReporter()
    result = flash(images("1.1.0", size=2 << 20), target, FlashOptions(via="ssh"), reporter)
    assert (result.ok, result.version_before, result.version_after, result.slot) == (
        True,
        "1.0.0",
        "1.1.0",
        "B",
    )
    assert result.path == "cat" and result.verify and result.verify["ok"]
    assert result.verify["slots"]["A"]["ok"] and result.verify["slots"]["B"]["ok"]
    assert (
        reporter.steps()
        == [
            "check image",
            "connect",
            "check device",
            "authorize key",
            "upload",
            "check upload",
            "sysupgrade",
            "reboot",
            "verify",
            "verify",
        ][: len(reporter.steps())]
    )
    assert result.reused_bytes == 0 and result.bytes >= result.image_size
    assert any(e[0] == "progress" and e[1] == "upload" for e in reporter.events)
    journal = Journal.open(result.session)
    assert journal.last("verify")["version"] == "1.1.0"
    assert journal.last("flash")["ok"] is True


def test_a_nightly_sharing_most_of_the_running_image_uploads_only_the_rest(
    make_device, images, client_key: Path
) -> None:
    """Delta over SSH: the device hashes its running slot in pieces, only the pieces that
    differ cross the link, and the image put together on the device is checked like a full
    upload before sysupgrade sees it."""
    dev = make_device()
    size = 2 << 20
    dev.install(images("1.0.0", size=size, seed="kernel"), "A")
    target = target_for(dev, client_key)
    connect_target(target, accept_new=True).close()
    new = images("1.1.0", size=size, seed="kernel")
    reporter = RecordingReporter()
    result = flash(new, target, FlashOptions(via="ssh", delta=True), reporter)

    assert result.ok and result.version_after == "1.1.0" and result.slot == "B"
    assert result.path.endswith("+delta") and result.image_size == new.stat().st_size
    journal = Journal.open(result.session)
    (delta,) = journal.events("delta")
    assert result.reused_bytes == delta["copy_bytes"] > new.stat().st_size // 2
    assert delta["send_bytes"] <= result.bytes < new.stat().st_size // 2
    assert "assemble (delta)" in reporter.steps()
    with open(dev.dir / "slotB.img", "rb") as slot_b:  # the slot holds exactly the image
        assert slot_b.read(result.image_size) == new.read_bytes()
    # ...and by default (a fast link) the whole image goes, as before
    again = images("1.2.0", size=size, seed="kernel")
    full = flash(again, target, FlashOptions(via="ssh"), RecordingReporter())
    assert full.reused_bytes == 0 and full.bytes >= again.stat().st_size


def test_host_key_survives_a_flash_and_a_changed_one_needs_the_persons_yes(
    make_device, images, client_key: Path
) -> None:
    dev = make_device()
    target = _ready(dev, images, client_key)
    ident = identity_of("es-virt", "dev")
    first = HostKeyStore().get(ident)
    assert first is not None
    # Devices keep their host key across upgrades: nothing to decide.
    flash(images("1.1.0"), target, FlashOptions(via="ssh"))
    assert HostKeyStore().get(ident).key == first.key

    # A device that comes back with another key passes only with --accept-new-hostkey ...
    dev.next_host_key()
    result = flash(
        images("1.2.0"), target, FlashOptions(via="ssh", accept_new_hostkey=True, timeout=20)
    )
    assert result.version_after == "1.2.0"
    accepted = HostKeyStore().get(ident)
    assert accepted is not None and accepted.source.startswith("accept-new-hostkey")
    assert accepted.key != first.key and first.fingerprint in accepted.replaced
    # ... and is refused without it (the device runs the new image, but we do not talk to it)
    dev.next_host_key()
    with pytest.raises(HostKeyError, match="no serial console confirmed"):
        flash(images("1.3.0"), target, FlashOptions(via="ssh", timeout=20))
    assert HostKeyStore().get(ident).key == accepted.key
    # --accept-new-hostkey means "after this flash" only: it never covers the device we are
    # about to flash, whose key changed behind our back.
    with pytest.raises(HostKeyError, match="CHANGED"):
        flash(images("1.4.0"), target, FlashOptions(via="ssh", accept_new_hostkey=True, timeout=20))
    assert HostKeyStore().get(ident).key == accepted.key


def test_device_without_sysupgrade_is_refused_before_upload(
    make_device, images, client_key: Path
) -> None:
    dev = make_device(sysupgrade=False)
    target = _ready(dev, images, client_key)
    with pytest.raises(DeviceCommandError, match="device has no sysupgrade"):
        flash(images("1.1.0"), target, FlashOptions(via="ssh"))
    assert list((dev.dir / "tmp").glob("routerkit-*")) == []
    assert _slot_b_empty(dev)


def test_too_little_space_in_tmp_is_refused_before_upload(
    make_device, images, client_key: Path
) -> None:
    dev = make_device(tmp_kib=512)
    target = _ready(dev, images, client_key)
    with pytest.raises(NoSpaceError, match=r"too little space in /tmp.*KiB free"):
        flash(images("1.1.0", size=1 << 20), target, FlashOptions(via="ssh"))
    assert _slot_b_empty(dev)


def test_sha256_mismatch_is_retried_once(make_device, images, client_key: Path) -> None:
    dev = make_device(bad_sha256=1)
    target = _ready(dev, images, client_key)
    result = flash(images("1.1.0"), target, FlashOptions(via="ssh"))
    assert result.ok
    assert len(Journal.open(result.session).events("upload_mismatch")) == 1


def test_sha256_mismatch_twice_stops_with_the_device_untouched(
    make_device, images, client_key: Path
) -> None:
    dev = make_device(bad_sha256=2)
    target = _ready(dev, images, client_key)
    with pytest.raises(VerifyError, match="nothing was written to flash"):
        flash(images("1.1.0"), target, FlashOptions(via="ssh"))
    assert _slot_b_empty(dev)
    assert list((dev.dir / "tmp").glob("routerkit-*")) == []  # the bad upload was removed
    assert dev.fwinfo()["version"] == "1.0.0"


def test_link_cut_mid_upload_retries_and_writes_nothing_before_a_full_copy(
    make_device, images, client_key: Path
) -> None:
    dev = make_device()
    _ready(dev, images, client_key)
    proxy = CuttingProxy(dev.port, after=300_000, cuts=1)
    try:
        target = target_for(dev, client_key, port=proxy.port)
        result = flash(images("1.1.0", size=1 << 20), target, FlashOptions(via="ssh", timeout=20))
    finally:
        proxy.close()
    assert proxy.cut_count == 1 and result.ok and result.version_after == "1.1.0"
    journal = Journal.open(result.session)
    failed = journal.events("upload_failed")
    assert len(failed) == 1
    # sysupgrade (the only writer of a slot) started only after the verified upload
    seqs = {r["type"]: r["seq"] for r in journal.events()}
    assert failed[0]["seq"] < seqs["upload_verified"] < seqs["sysupgrade_started"]


def test_a_slow_device_gets_more_attempts_while_the_patience_lasts(
    make_device, images, client_key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five drops in a row (one more than LINK_ATTEMPTS) within the patience: the sixth
    upload goes through; nothing is written before it."""
    from toolkit.journeys import flash_ssh

    monkeypatch.setattr(flash_ssh, "LINK_BACKOFF_MAX", 0.05)
    dev = make_device()
    _ready(dev, images, client_key)
    proxy = CuttingProxy(dev.port, after=300_000, cuts=flash_ssh.LINK_ATTEMPTS + 1)
    try:
        target = target_for(dev, client_key, port=proxy.port)
        result = flash(images("1.1.0", size=1 << 20), target, FlashOptions(via="ssh", timeout=20))
    finally:
        proxy.close()
    assert result.ok and result.version_after == "1.1.0"
    failed = Journal.open(result.session).events("upload_failed")
    assert len(failed) == flash_ssh.LINK_ATTEMPTS + 1


def test_link_that_keeps_dropping_fails_with_the_slot_untouched(
    make_device, images, client_key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from toolkit.journeys import flash_ssh

    monkeypatch.setattr(flash_ssh, "LINK_PATIENCE", 3.0)  # past it after the 4 attempts
    dev = make_device()
    _ready(dev, images, client_key)
    proxy = CuttingProxy(dev.port, after=300_000, cuts=99)
    try:
        with pytest.raises(TransferError, match="nothing was written to flash"):
            flash(
                images("1.1.0", size=1 << 20),
                target_for(dev, client_key, port=proxy.port),
                FlashOptions(via="ssh"),
            )
    finally:
        proxy.close()
    assert _slot_b_empty(dev)


def test_device_not_back_after_reboot_says_what_still_answers(
    make_device, images, client_key: Path
) -> None:
    dev = make_device(reboot_delay=30)
    target = _ready(dev, images, client_key)
    with pytest.raises(
        DeviceTimeout,
        match=r"did not come back within 3 s.*TCP port .* unreachable.*no serial console",
    ):
        flash(images("1.1.0"), target, FlashOptions(via="ssh", timeout=3))


def test_downgrade_against_the_running_version_is_refused(
    make_device, images, client_key: Path
) -> None:
    dev = make_device()
    target = _ready(dev, images, client_key, version="2.0.0")
    with pytest.raises(DowngradeError, match="device runs 2.0.0"):
        flash(images("1.1.0"), target, FlashOptions(via="ssh"))
    assert _slot_b_empty(dev)


# --- verify what you send: the bytes checked are the bytes that reach the device --------------


def _swap_after_verify(
    monkeypatch: pytest.MonkeyPatch, image: Path, replacement: bytes
) -> list[str]:
    """Replace ``image`` on disk right after it passed verification (an attacker or a sync
    tool racing the flash). Returns the log of swaps."""
    from toolkit.firmware import verify as verifymod

    real = verifymod.verify_image
    swaps: list[str] = []

    def racing(*args, **kwargs):
        result = real(*args, **kwargs)
        tmp = image.with_suffix(".swap")
        tmp.write_bytes(replacement)
        tmp.replace(image)
        swaps.append(str(image))
        return result

    monkeypatch.setattr(verifymod, "verify_image", racing)
    return swaps


def test_a_file_swapped_after_verification_never_reaches_the_device(
    make_device, images, client_key: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dev = make_device()
    target = _ready(dev, images, client_key)
    image = tmp_path / "fw.img"
    good = images("1.1.0").read_bytes()
    image.write_bytes(good)
    # The swap is a validly signed image too (so only the race decides), of another version.
    swaps = _swap_after_verify(monkeypatch, image, images("1.2.0").read_bytes())
    result = flash(image, target, FlashOptions(via="ssh"))
    assert swaps == [str(image)]
    assert image.read_bytes() != good  # the file really was swapped
    assert (
        result.version_after == "1.1.0" and result.image_sha256 == hashlib.sha256(good).hexdigest()
    )
    assert dev.fwinfo()["version"] == "1.1.0"
    assert (dev.dir / "slotB.img").read_bytes()[: len(good)] == good


def test_a_fleet_reads_the_image_once_for_every_target(
    make_device, images, client_key: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from toolkit.firmware import verify as verifymod
    from toolkit.journeys.fleet import flash_fleet

    from .test_fleet import _fleet, _lab

    devices = _fleet(make_device, images, client_key, 2)
    lab = _lab(tmp_path / "lab.toml", devices, client_key)
    image = tmp_path / "fw.img"
    good = images("1.1.0").read_bytes()
    image.write_bytes(good)
    real = verifymod.read_image

    def read_then_swap(path):
        data = real(path)
        Path(path).write_bytes(b"garbage that would fail every check" * 100)
        return data

    monkeypatch.setattr(verifymod, "read_image", read_then_swap)
    result = flash_fleet(image, lab, parallel=2)
    assert result.ok, [t.error for t in result.targets]
    for dev in devices.values():
        assert dev.fwinfo()["version"] == "1.1.0"
