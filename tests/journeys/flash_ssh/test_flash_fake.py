"""The whole SSH flash journey against the in-memory device (toolkit.testing.fake_ssh): no
network, no dropbear, milliseconds — the journey's plan, retries and refusals in unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolkit.errors import DeviceCommandError, DowngradeError, HostKeyError
from toolkit.events import RecordingReporter
from toolkit.journeys import flash_ssh
from toolkit.journeys.flash import FlashOptions
from toolkit.record import Journal
from toolkit.targets import Target
from toolkit.testing.fake_ssh import FakeSSHDevice, ed25519_host_key

TARGET = Target(name="dev", ssh_host="fake-dev", ssh_port=22)


def _trusted(version: str = "1.0.0") -> FakeSSHDevice:
    device = FakeSSHDevice(version=version, reboot_seconds=0.05)
    device.connect(TARGET, accept_new=True).close()  # first contact, as `hosts trust` would
    return device


def _flash(device: FakeSSHDevice, image: Path, **options: object) -> flash_ssh.FlashResult:
    journal = Journal.create("flash", board=TARGET.board, target=TARGET.name)
    return flash_ssh.flash(
        image,
        TARGET,
        FlashOptions(via="ssh", **options),  # type: ignore[arg-type]
        RecordingReporter(),
        journal,
        connect=device.connect,
    )


def test_flash_over_fake_ssh_writes_the_inactive_slot_reboots_and_verifies(images) -> None:
    device = _trusted()
    image = images("1.1.0")
    reporter = RecordingReporter()
    journal = Journal.create("flash", board=TARGET.board, target=TARGET.name)
    result = flash_ssh.flash(
        image, TARGET, FlashOptions(via="ssh"), reporter, journal, connect=device.connect
    )

    assert (result.ok, result.version_before, result.version_after, result.slot) == (
        True,
        "1.0.0",
        "1.1.0",
        "B",
    )
    assert result.verify is not None and result.verify["ok"], result.verify
    assert device.running_slot == device.active_slot == "B" and device.boots == 2
    assert (
        device.slots["A"] is not None and device.slots["A"].version == "1.0.0"
    )  # the old slot is kept
    assert reporter.steps()[:9] == [
        "check image",
        "connect",
        "check device",
        "authorize key",
        "upload",
        "check upload",
        "sysupgrade",
        "reboot",
        "verify",
    ]
    assert len(device.authorized_keys) == 1
    assert not [p for p in device.files if p.startswith("/tmp/")]  # the reboot cleared /tmp
    assert journal.last("hostkey")["how"] == "known" and journal.last("rebooted")


def test_a_dropped_upload_and_a_corrupted_one_are_retried(images) -> None:
    device = _trusted()
    device.drop_uploads = 1
    device.corrupt_uploads = 1
    result = _flash(device, images("1.1.0"))
    assert result.ok and device.running_version == "1.1.0"
    uploads = [c for c in device.commands if c.startswith("sha256sum ")]
    assert len(uploads) == 2  # the corrupted copy was caught on the device, then sent again


def test_a_failing_sysupgrade_leaves_the_device_on_its_slot(images) -> None:
    device = _trusted()
    device.programs["sysupgrade"] = lambda dev, argv, stdin: (
        1,
        "",
        "sysupgrade: signature refused\n",
    )
    with pytest.raises(DeviceCommandError, match="signature refused"):
        _flash(device, images("1.1.0"))
    assert (device.running_slot, device.boots, device.slots["B"]) == ("A", 1, None)


def test_downgrade_and_unknown_host_key_are_refused_before_any_upload(images) -> None:
    device = _trusted(version="2.0.0")
    with pytest.raises(DowngradeError):
        _flash(device, images("1.1.0"))
    stranger = FakeSSHDevice(host_key=ed25519_host_key(0x17))
    with pytest.raises(HostKeyError):
        _flash(stranger, images("1.1.0"))
    assert not [p for p in device.files | stranger.files if p.startswith("/tmp/")]
