"""Verify what you send, over serial: the bytes checked before the flash are the bytes that
reach the sample, even when the image file is replaced right after the check."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from tests.journeys.flash_serial._hil import known_running, running, target_for
from tests.journeys.flash_serial.conftest import ensure_running
from toolkit.journeys.flash import FlashOptions, flash

pytestmark = pytest.mark.hil


def test_an_image_swapped_after_verification_never_reaches_the_sample(
    flash_sample, images, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from toolkit.firmware import verify as verifymod

    state = ensure_running(flash_sample)
    before_version, _ = known_running(flash_sample)
    wanted, swapped_in = [v for v in ("1.0.0", "1.1.0", "1.2.0") if v != before_version][:2]
    image = tmp_path / "fw.img"
    good = images[wanted].read_bytes()
    image.write_bytes(good)
    real = verifymod.verify_image
    swaps: list[str] = []

    def racing(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        # Another validly signed image: only the race decides which one is sent.
        tmp = image.with_suffix(".swap")
        tmp.write_bytes(images[swapped_in].read_bytes())
        tmp.replace(image)
        swaps.append(wanted)
        return result

    monkeypatch.setattr(verifymod, "verify_image", racing)
    result = flash(
        image, target_for(state, state.serial_url), FlashOptions(path="tftp", allow_downgrade=True)
    )
    flash_sample["known"] = None
    assert swaps == [wanted] and image.read_bytes() != good
    assert result.ok and result.version_after == wanted
    assert result.image_sha256 == hashlib.sha256(good).hexdigest()
    flash_sample["known"] = running(state)
    assert flash_sample["known"][0] == wanted
