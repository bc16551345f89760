"""Both flash paths record their steps the same way (``journeys.steps.Steps``): the SSH path
journals every step with its duration, as the serial path always did."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolkit.errors import DowngradeError
from toolkit.journeys.flash import FlashOptions, flash
from toolkit.record import Journal
from toolkit.target.ssh import connect_target

from .conftest import target_for


def test_an_ssh_flash_journals_its_steps_with_durations(
    make_device, images, client_key: Path
) -> None:
    dev = make_device()
    dev.install(images("1.0.0"), "A")
    target = target_for(dev, client_key)
    connect_target(target, accept_new=True).close()
    result = flash(images("1.1.0"), target, FlashOptions(via="ssh"))
    records = Journal.open(result.session).events("step")
    names = [r["name"] for r in records]
    for name in (
        "check image",
        "connect",
        "check device",
        "upload",
        "check upload",
        "sysupgrade",
        "reboot",
    ):
        assert name in names, f"no step record for {name!r}: {names}"
    assert all(
        r["ok"] is True and isinstance(r["seconds"], float) and r["seconds"] >= 0 for r in records
    )
    for name, seconds in result.steps.items():
        assert seconds == pytest.approx(
            sum(r["seconds"] for r in records if r["name"] == name), abs=0.01
        )


def test_a_refused_step_is_journaled_as_failed(make_device, images, client_key: Path) -> None:
    dev = make_device()
    dev.install(images("1.2.0"), "A")
    target = target_for(dev, client_key)
    connect_target(target, accept_new=True).close()
    journal = Journal.create("flash", board="es-virt", target="dev")
    with pytest.raises(DowngradeError):
        flash(images("1.1.0"), target, FlashOptions(via="ssh"), journal=journal)
    steps = {r["name"]: r for r in journal.events("step")}
    assert steps["check device"]["ok"] is True and "upload" not in steps
