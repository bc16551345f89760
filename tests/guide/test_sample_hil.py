"""Automatic checks against the REAL virtual sample (QEMU + stock U-Boot): pass when it runs,
fail with a clear reason when it is down. Uses the ``routerkit_sample`` fixture of
``toolkit.pytest_plugin`` (one sample shared by the test session, of the board under test:
``make test`` walks every shipped board's own guide on its own sample), and shares the build
log to the real Roundup tracker the community tests start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.community.conftest import roundup, tracker  # noqa: F401 - fixtures
from tests.guide.scripted import assert_complete_and_unique, make_photos
from tests.tools import board_under_test
from toolkit.guide.answers import AnswersPrompter
from toolkit.guide.checks import default_registry
from toolkit.guide.device import sample_device
from toolkit.guide.loader import load_board_guide
from toolkit.journeys.assemble import run_assembly
from toolkit.record import Journal

pytestmark = pytest.mark.hil
BOARD = board_under_test()
GUIDE = load_board_guide(BOARD)


@pytest.mark.every_board
def test_assembly_checks_pass_against_the_running_sample_and_the_build_log_is_shared(
    routerkit_sample: Any,
    tmp_path: Path,
    roundup: Any,  # noqa: F811 - the fixture imported above
) -> None:
    from toolkit.community.outbox import Outbox
    from toolkit.community.publishers import PublisherCache
    from toolkit.journeys.share import deliver, prepare_share, submit

    assert routerkit_sample.board == BOARD
    make_photos(GUIDE, tmp_path / "phone")
    answers = tmp_path / "answers.yaml"
    power_on: dict[str, Any] = {"on_check_fail": "stop"}
    if not routerkit_sample.firmware:
        # A blank disk boots no Linux: the selftest checks cannot run; only U-Boot is checked.
        power_on = {"on_check_fail": "waive"}
    answers.write_text(
        yaml.safe_dump(
            {"defaults": {"confirm": True, "photos_from": "phone"}, "steps": {"power-on": power_on}}
        )
    )
    result = run_assembly(
        BOARD,
        GUIDE,
        AnswersPrompter(answers, board=BOARD),
        device=lambda: sample_device(routerkit_sample),
    )
    journal = Journal.open(result.session_id)
    assert result.finished, [
        (r["check"], r["detail"]) for r in journal.events("check") if not r["ok"]
    ]
    checks = {r["check"]: r for r in journal.events("check")}
    assert checks["uboot"]["ok"], checks["uboot"]["detail"]
    assert checks["uboot"]["detail"].startswith("serial console shows: U-Boot 20")
    if routerkit_sample.firmware:
        live = [c.id for step in GUIDE.steps for c in step.checks if c.kind == "selftest"]
        assert live and all(checks[c]["ok"] for c in live), [checks[c] for c in live]
        assert checks["selftest-fan"]["data"]["value"] == "absent"  # honest on the virtual sample
    assert_complete_and_unique(journal.events(), GUIDE)

    # Shown off: the build log of this board's assembly reaches the tracker, photos and all.
    plan = prepare_share(result.session_id, "roundup")
    item = submit(plan, Outbox())
    sent = deliver(PublisherCache({"roundup": roundup}), Outbox(), keys=[item.key])
    assert [i.key for i in sent.sent] == [item.key], [
        i.last_error for i in sent.pending + sent.failed
    ]
    remote = sent.sent[0].remote
    assert remote is not None
    issue = roundup.get("issue", remote["id"])["attributes"]
    assert issue["kind"] == "buildlog" and issue["board"] == BOARD
    photos = [b for b in plan.blobs if b.mime.startswith("image/")]
    assert len(photos) == sum(len(step.photos) for step in GUIDE.steps)


def test_uboot_check_fails_when_the_sample_is_down(routerkit_sample: Any) -> None:
    from toolkit import sample

    device = sample_device(routerkit_sample)  # made while it runs...
    sample.power_cut(routerkit_sample)  # ...then the plug is pulled (the next test boots it again)
    stale = default_registry().run("uboot_banner", device, {"timeout": 5})
    assert not stale.ok and stale.detail  # connection refused, or a reset QEMU cannot do
    fresh = default_registry().run("uboot_banner", sample_device(routerkit_sample), {"timeout": 5})
    assert (
        not fresh.ok and "is not running" in fresh.detail and "routerkit sample up" in fresh.detail
    )
