"""The assembly journey with a scripted tester: records, skips, failures, interruption, resume."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from tests.guide.scripted import Scripted, assert_complete_and_unique, make_photos
from tests.guide.test_checks import BANNER, FakeLine
from toolkit.errors import SessionMismatch, SessionNotFound
from toolkit.events import RecordingReporter
from toolkit.guide.checks import Device
from toolkit.guide.loader import load_board_guide
from toolkit.guide.prompts import FailAction
from toolkit.journeys.assemble import Assembly, open_session, run_assembly
from toolkit.record import Journal

GUIDE = load_board_guide("es-virt")
SELFTEST = '{"status": "ok", "fan": {"status": "absent"}}'


def good_device() -> Device:
    line = FakeLine(after_reset=BANNER)
    return Device(open_console=lambda: line, reset=line.reset, shell=lambda c, t: (0, SELFTEST))


def dead_device() -> Device:
    return Device(unavailable="the virtual sample 'default' is not running")


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    make_photos(GUIDE, tmp_path / "phone")
    return tmp_path / "phone"


def test_full_assembly_records_every_step_photo_and_check(photos: Path) -> None:
    prompter = Scripted(photos)
    reporter = RecordingReporter()
    result = run_assembly("es-virt", GUIDE, prompter, device=good_device, reporter=reporter)
    assert result.finished and not result.stopped and result.failed_checks == []
    journal = Journal.open(result.session_id)
    records = journal.events()
    assert (
        records[0]["type"] == "session"
        and records[0]["kind"] == "assemble"
        and records[0]["board"] == "es-virt"
    )
    assert (
        records[0]["steps_total"] == len(GUIDE.steps) and records[0]["guide_sha256"] == GUIDE.sha256
    )
    assert_complete_and_unique(records, GUIDE)
    assert result.photos == sum(len(s.photos) for s in GUIDE.steps)
    for rec in journal.events("photo"):
        processed = journal.dir / rec["processed"]
        original = journal.dir / rec["original"]
        assert original.is_file() and processed.is_file()
        assert Image.open(processed).size == (rec["width"], rec["height"])
        assert processed.stat().st_size == rec["bytes"] and len(rec["sha256"]) == 64
    uboot = [r for r in journal.events("check") if r["check"] == "uboot"][0]
    assert (
        uboot["ok"]
        and uboot["automatic"]
        and uboot["detail"].startswith("serial console shows: U-Boot 2023.01")
    )
    assert all(isinstance(r["seconds"], float) for r in journal.events("step_finished"))
    assert [v.index for v in prompter.shown] == list(range(1, len(GUIDE.steps) + 1))
    assert any(e[0] == "started" and "step 8/10" in e[1] for e in reporter.events)


def test_step_skipped_with_reason(photos: Path) -> None:
    prompter = Scripted(photos, skip={"serial": "no USB-serial adapter yet"})
    result = run_assembly("es-virt", GUIDE, prompter, device=good_device)
    journal = Journal.open(result.session_id)
    skipped = journal.events("step_skipped")
    assert [(r["step"], r["reason"]) for r in skipped] == [("serial", "no USB-serial adapter yet")]
    assert not [r for r in journal.events("step_started") if r["step"] == "serial"]
    assert result.steps_skipped == ["serial"]
    assert_complete_and_unique(journal.events(), GUIDE)


def test_failed_check_offers_a_bug_and_retry_records_attempts(photos: Path) -> None:
    devices = iter([dead_device(), good_device()])
    prompter = Scripted(photos, on_fail=[FailAction.RETRY])
    assembly = Assembly(
        open_session("es-virt", GUIDE)[0], GUIDE, prompter, device=lambda: next(devices)
    )
    # The device is made once per run; make the first check see the dead one, then swap.
    assembly._device = dead_device()
    real_run = assembly.registry.run

    def flaky(name: str, device: Device, params: dict) -> object:  # type: ignore[type-arg]
        result = real_run(name, device, params)
        assembly._device = good_device()
        return result

    assembly.registry.run = flaky  # type: ignore[method-assign]
    result = assembly.run()
    assert result.finished
    checks = [r for r in assembly.journal.events("check") if r["check"] == "uboot"]
    assert [(r["attempt"], r["ok"]) for r in checks] == [(1, False), (2, True)]
    assert checks[0]["error_class"] == "CheckFailed" and "not running" in checks[0]["error"]
    assert prompter.bug_commands == [
        f"routerkit bug 'assembly check uboot failed' --session {assembly.journal.id} --step power-on"
    ]


def test_stop_after_failed_check_then_resume_reruns_only_that_check(photos: Path) -> None:
    prompter = Scripted(photos, on_fail=[FailAction.STOP])
    first = run_assembly("es-virt", GUIDE, prompter, device=dead_device)
    assert first.stopped and not first.finished and first.failed_checks == ["power-on/uboot"]
    journal = Journal.open(first.session_id)
    assert journal.last("paused")["step"] == "power-on"  # type: ignore[index]
    again = Scripted(photos)
    second = run_assembly("es-virt", GUIDE, again, resume=True, device=good_device)
    assert second.finished and second.session_id == first.session_id
    assert again.asked[0] == ("power-on", "start")  # continues at the exact step
    assert ("power-on", "photo:powered-on") not in again.asked  # taken before the stop
    assert_complete_and_unique(journal.events(), GUIDE)


@pytest.mark.parametrize(
    "stop_at",
    [
        ("unbox", "start"),
        ("fan", "photo:fan-fitted"),
        ("fan", "confirm:fan-screws"),
        ("antennas", "photo:antennas-fitted"),
        ("label", "confirm:label-on"),
    ],
)
def test_ctrl_c_anywhere_then_resume_loses_nothing_and_repeats_nothing(
    photos: Path, stop_at: tuple[str, str]
) -> None:
    prompter = Scripted(photos, interrupt_at=lambda step, what: (step, what) == stop_at)
    with pytest.raises(KeyboardInterrupt):
        run_assembly("es-virt", GUIDE, prompter, device=good_device)
    journal = Journal.latest(kind="assemble")
    assert journal is not None
    before = journal.events()
    assert before[-1]["type"] == "paused" and before[-1]["step"] == stop_at[0]
    again = Scripted(photos)
    result = run_assembly("es-virt", GUIDE, again, resume=True, device=good_device)
    assert result.finished
    assert again.asked[0] == (stop_at[0], "start")
    records = journal.events()
    assert records[: len(before)] == before  # nothing rewritten
    assert_complete_and_unique(records, GUIDE)
    assert journal.last("resumed")["step"] == stop_at[0]  # type: ignore[index]


def test_rejected_photo_is_asked_again_and_not_recorded(photos: Path) -> None:
    prompter = Scripted(photos, bad_photo_once={"pad-on-soc"})
    result = run_assembly("es-virt", GUIDE, prompter, device=good_device)
    journal = Journal.open(result.session_id)
    assert len(prompter.problems) == 1 and "not an image" in prompter.problems[0]
    pads = [r for r in journal.events("photo") if r["photo"] == "pad-on-soc"]
    assert len(pads) == 1 and pads[0]["original"].endswith("pad-on-soc.orig.jpg")
    assert not list((journal.files_dir / "photos" / "fan").glob("*.txt"))


def test_step_time_counts_only_active_time_across_a_resume(photos: Path) -> None:
    now = [1000.0]

    def clock() -> float:
        now[0] += 2.0  # every look at the clock is two seconds of work
        return now[0]

    prompter = Scripted(
        photos, interrupt_at=lambda step, what: (step, what) == ("esd", "confirm:strap-on")
    )
    journal, _ = open_session("es-virt", GUIDE)
    with pytest.raises(KeyboardInterrupt):
        Assembly(journal, GUIDE, prompter, device=good_device, clock=clock).run()
    Assembly(journal, GUIDE, Scripted(photos), device=good_device, clock=clock).run()
    esd = [r for r in journal.events("step_finished") if r["step"] == "esd"][0]
    assert 0 < esd["seconds"] < 60  # wall time between the runs (real seconds) is not counted


def test_resume_of_another_boards_session_is_refused(photos: Path) -> None:
    other = Journal.create("assemble", board="es-other")
    with pytest.raises(SessionMismatch, match="for board 'es-other', not 'es-virt'"):
        open_session("es-virt", GUIDE, resume=True)
    with pytest.raises(SessionMismatch, match="assembles board 'es-other'"):
        open_session("es-virt", GUIDE, session_id=other.id)
    flash = Journal.create("flash", board="es-virt")
    with pytest.raises(SessionMismatch, match="is a 'flash' session"):
        open_session("es-virt", GUIDE, session_id=flash.id)


def test_resume_with_nothing_to_resume(photos: Path) -> None:
    with pytest.raises(SessionNotFound):
        open_session("es-virt", GUIDE, resume=True)
    result = run_assembly("es-virt", GUIDE, Scripted(photos), device=good_device)
    with pytest.raises(SessionNotFound, match="already complete"):
        open_session("es-virt", GUIDE, resume=True)
    assert result.finished
