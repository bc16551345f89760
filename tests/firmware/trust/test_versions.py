"""Firmware version ordering, nightlies included."""

from __future__ import annotations

import pytest

from toolkit.firmware.versions import InvalidVersion, compare, parse_version

ORDERED = [
    "0.9.9",
    "1.2.0",
    "1.3.0-nightly.20261121",
    "1.3.0-nightly.20261122",
    "1.3.0-nightly.20261122.1",
    "1.3.0-rc.1",
    "1.3.0-rc.2",
    "1.3.0-rc.10",
    "1.3.0",
    "1.3.1",
    "1.10.0",
    "2.0.0",
]


def test_versions_sort_with_nightlies_before_their_release() -> None:
    shuffled = list(reversed(ORDERED))
    assert sorted(shuffled, key=parse_version) == ORDERED


def test_build_metadata_and_v_prefix_do_not_change_order() -> None:
    assert compare("v1.2.0", "1.2.0+build.7") == 0
    assert compare("1.2", "1.2.0") == 0
    assert compare("1.3.0-nightly.20261122", "1.3.0") == -1


@pytest.mark.parametrize("text", ["", "latest", "1..2", "1.2.3-", "1.2.3.4", "-1.0"])
def test_garbage_is_an_invalid_version(text: str) -> None:
    with pytest.raises(InvalidVersion):
        parse_version(text)
