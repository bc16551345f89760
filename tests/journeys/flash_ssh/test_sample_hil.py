"""End-to-end SSH flash of the real virtual sample (QEMU) of the board under test: version
before/after, slot switched, the host key (read over the serial console at first contact) kept
across the flash, verify ok over SSH and serial, and a bug report from the flash session filed
on the real Roundup tracker."""

from __future__ import annotations

import os
import secrets

import pytest

from tests.community.conftest import roundup, tracker  # noqa: F401 - fixtures
from tests.tools import board_under_test
from toolkit.hostkeys import HostKeyStore, identity_of
from toolkit.journeys.flash import FlashOptions, flash
from toolkit.journeys.verify import verify
from toolkit.record import Journal


@pytest.mark.hil
@pytest.mark.every_board
def test_ssh_flash_of_the_virtual_sample_end_to_end(tmp_path, roundup) -> None:  # noqa: F811
    from toolkit import sample
    from toolkit.community.outbox import Outbox
    from toolkit.community.publishers import PublisherCache
    from toolkit.firmware.build import build_image
    from toolkit.journeys.bug import prepare_bug
    from toolkit.journeys.share import deliver, submit
    from toolkit.targets import from_sample

    name = f"ssh-e2e-{os.getpid()}-{secrets.token_hex(2)}"
    state = sample.up(
        name=name, board=board_under_test(), wait="ssh", fresh=True
    )  # a private sample: others keep theirs
    try:
        target = from_sample(name)
        before = verify(target, via="ssh")  # first contact: the serial console vouches
        assert before["ok"], before["problems"]
        first = HostKeyStore().get(identity_of(target.board, name))
        assert first is not None and first.source == "serial-console"
        major, minor, _ = (before["version"] + ".0.0").split(".")[:3]
        new_version = f"{major}.{int(minor) + 1}.0"
        image = build_image(new_version, target.board, out=tmp_path)
        result = flash(image.path, target, FlashOptions(via="ssh", timeout=180, delta=True))
        assert result.ok
        assert (result.version_before, result.version_after) == (before["version"], new_version)
        assert result.slot != before["running_slot"]
        # the new build shares its kernel with the running one: only the rest was uploaded
        assert result.path.endswith("+delta") and 0 < result.reused_bytes < result.image_size
        assert result.bytes < result.image_size - result.reused_bytes + (1 << 20)
        assert result.verify["slots"]["A"]["ok"] and result.verify["slots"]["B"]["ok"]
        stored = HostKeyStore().get(identity_of(target.board, name))
        assert stored is not None and stored.fingerprint == first.fingerprint  # kept
        over_serial = verify(target, via="serial")
        assert over_serial["version"] == new_version and over_serial["ok"], over_serial["problems"]
        # the console session is recorded with its timing (asciicast) in the verify's journal
        recorded = Journal.latest(kind="verify")
        assert recorded is not None and (recorded.files_dir / "console.cast").stat().st_size > 0
        # ...and a bug report from the flash session reaches the tracker, naming this board
        plan, _ = prepare_bug("after the flash: LED blinks twice", session_id=result.session)
        item = submit(plan, Outbox())
        sent = deliver(PublisherCache({"roundup": roundup}), Outbox(), keys=[item.key])
        assert [i.key for i in sent.sent] == [item.key], [i.last_error for i in sent.failed]
        remote = sent.sent[0].remote
        assert remote is not None
        issue = roundup.get("issue", remote["id"])["attributes"]
        assert issue["kind"] == "bug" and issue["board"] == target.board == board_under_test()
        assert issue["firmware"] == new_version
    finally:
        sample.down(state)
