"""Automatic checks against the REAL virtual sample (QEMU + stock U-Boot): pass when it runs,
fail with a clear reason when it is down. Uses the ``routerkit_sample`` fixture of
``toolkit.pytest_plugin`` (one sample shared by the test session)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.guide.scripted import assert_complete_and_unique, make_photos
from toolkit.guide.answers import AnswersPrompter
from toolkit.guide.checks import default_registry
from toolkit.guide.device import sample_device
from toolkit.guide.loader import load_board_guide
from toolkit.journeys.assemble import run_assembly
from toolkit.record import Journal

pytestmark = pytest.mark.hil
GUIDE = load_board_guide("es-virt")


def test_assembly_checks_pass_against_the_running_sample(
    routerkit_sample: Any, tmp_path: Path
) -> None:
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
        "es-virt",
        GUIDE,
        AnswersPrompter(answers, board="es-virt"),
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
        assert checks["selftest-storage"]["ok"], checks["selftest-storage"]["detail"]
        assert checks["selftest-fan"]["data"]["value"] == "absent"  # honest on the virtual sample
    assert_complete_and_unique(journal.events(), GUIDE)


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
