"""The one downgrade rule (``firmware.versions.check_downgrade``) that verify_image and both
flash paths use."""

from __future__ import annotations

import pytest

from toolkit.errors import DowngradeError
from toolkit.firmware.versions import InvalidVersion, check_downgrade
from toolkit.record import Journal


def test_an_older_image_is_refused_with_both_versions_named() -> None:
    with pytest.raises(DowngradeError) as info:
        check_downgrade("1.1.0", "1.2.0", allow=False)
    assert info.value.message == "downgrade refused: the image is 1.1.0, the device runs 1.2.0"
    assert info.value.exit_code == 15 and "--allow-downgrade" in (info.value.hint or "")


@pytest.mark.parametrize(
    ("image", "running"), [("1.2.0", "1.2.0"), ("v1.2", "1.2.0"), ("1.2.0+b7", "1.2.0")]
)
def test_the_same_version_is_allowed(image: str, running: str) -> None:
    assert check_downgrade(image, running, allow=False) is None


@pytest.mark.parametrize("running", [None, "", "1.1.9", "1.2.0-rc.1", "0.9.0"])
def test_a_newer_image_or_an_unknown_running_version_is_allowed(running: str | None) -> None:
    assert check_downgrade("1.2.0", running, allow=False) is None


@pytest.mark.parametrize(
    ("image", "running", "older"),
    [
        ("1.3.0-nightly.20261122", "1.3.0", True),  # a nightly comes before its release
        ("1.3.0", "1.3.0-nightly.20261122", False),
        ("1.3.0-nightly.20261122", "1.3.0-nightly.20261123", True),  # dates compare as numbers
        ("1.3.0-nightly.20261130", "1.3.0-nightly.9", False),
        ("1.3.0-nightly.20261122", "1.2.9", False),
        ("1.3.0-alpha", "1.3.0-alpha.1", True),  # a longer list wins a tie
    ],
)
def test_pre_releases_order_before_their_release(image: str, running: str, older: bool) -> None:
    if older:
        with pytest.raises(DowngradeError):
            check_downgrade(image, running, allow=False)
    else:
        assert check_downgrade(image, running, allow=False) is None


def test_an_allowed_downgrade_is_returned_and_recorded_as_an_override() -> None:
    journal = Journal.create("flash", board="es-virt", target="t")
    warning = check_downgrade("1.1.0", "1.2.0", allow=True, where="slot A holds", journal=journal)
    assert (
        warning == "DOWNGRADE ALLOWED (--allow-downgrade): the image is 1.1.0, slot A holds 1.2.0"
    )
    record = journal.last("override")
    assert (
        record is not None and record["flag"] == "allow_downgrade" and record["message"] == warning
    )
    assert check_downgrade("1.1.0", "1.2.0", allow=True) == warning.replace(
        "slot A holds", "the device runs"
    )


def test_a_version_that_is_not_one_is_the_callers_to_judge() -> None:
    with pytest.raises(InvalidVersion):
        check_downgrade("1.2.0", "garbled v%rsion", allow=False)
