"""``routerkit assemble`` as a process: the answers mode, bad input, and SIGKILL at any moment."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from tests.guide.scripted import assert_complete_and_unique, make_photos
from toolkit.cli import root
from toolkit.guide.loader import load_board_guide
from toolkit.record import Journal

GUIDE = load_board_guide("es-virt")
ROUTERKIT = str(Path(sys.executable).with_name("routerkit"))


def _answers(tmp_path: Path, steps: dict | None = None, **defaults: object) -> Path:  # type: ignore[type-arg]
    make_photos(GUIDE, tmp_path / "phone")
    data = {
        "defaults": {"confirm": True, "photos_from": "phone", **defaults},
        "steps": {"power-on": {"on_check_fail": "waive"}, **(steps or {})},
    }
    path = tmp_path / "answers.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_non_interactive_answers_walk_the_whole_guide(tmp_path: Path) -> None:
    answers = _answers(tmp_path, {"serial": {"skip": "adapter not delivered yet"}})
    result = CliRunner().invoke(
        root, ["assemble", "--non-interactive", "--answers", str(answers), "--json"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert payload["finished"] and payload["steps_skipped"] == ["serial"]
    assert payload["photos"] == sum(len(s.photos) for s in GUIDE.steps if s.id != "serial")
    # no sample runs in this test: the automatic checks failed, were waived and say why
    assert "power-on/uboot" in payload["waived_checks"] and payload["failed_checks"] == []
    journal = Journal.open(payload["session"])
    waived = journal.events("check_waived")
    assert {r["check"] for r in waived} == {"uboot", "selftest-storage", "selftest-fan"}
    assert_complete_and_unique(journal.events(), GUIDE)


def test_compact_answers_of_the_demo(tmp_path: Path) -> None:
    make_photos(GUIDE, tmp_path / "phone")
    photos = sorted(str(p) for p in (tmp_path / "phone").iterdir())
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps({"confirm_all": True, "photos": photos}))
    result = CliRunner().invoke(root, ["assemble", "--non-interactive", "--answers", str(answers)])
    # automatic checks fail without a sample and the default is to stop: exit 62, session kept
    assert result.exit_code == 62, result.output
    assert (
        "stopped after a failed check (power-on/uboot)" in result.output
        and "--resume" in result.output
    )


def test_failed_check_stop_then_resume_with_other_answers(tmp_path: Path) -> None:
    answers = _answers(tmp_path, {"power-on": {"on_check_fail": "stop"}})
    first = CliRunner().invoke(root, ["assemble", "--answers", str(answers)])
    assert first.exit_code == 62
    answers.write_text(answers.read_text().replace("on_check_fail: stop", "on_check_fail: waive"))
    second = CliRunner().invoke(root, ["assemble", "--answers", str(answers), "--resume", "--json"])
    assert second.exit_code == 0, second.output
    journal = Journal.latest(kind="assemble")
    assert journal is not None and journal.last("assembly_finished")
    assert_complete_and_unique(journal.events(), GUIDE)


def test_missing_answer_is_named_not_waited_for(tmp_path: Path) -> None:
    answers = tmp_path / "answers.yaml"
    answers.write_text("defaults: {confirm: true}\n")
    result = CliRunner().invoke(root, ["assemble", "--answers", str(answers)])
    assert result.exit_code == 6
    assert "steps.unbox.photos.parts-laid-out: no photo given" in result.output


def test_bad_answers_and_missing_photo_folder_are_clear(tmp_path: Path) -> None:
    bad = tmp_path / "a.yaml"
    bad.write_text("steps: [1, 2\n")
    result = CliRunner().invoke(root, ["assemble", "--answers", str(bad)])
    assert result.exit_code == 3 and "not valid YAML" in result.output
    good = _answers(tmp_path)
    result = CliRunner().invoke(
        root, ["assemble", "--answers", str(good), "--watch", str(tmp_path / "DCIM")]
    )
    assert (
        result.exit_code == 4
        and "photo folder" in result.output
        and "does not exist" in result.output
    )


def test_no_terminal_and_no_answers_refuses_to_hang(tmp_path: Path) -> None:
    result = CliRunner().invoke(root, ["assemble"])
    assert result.exit_code == 6 and "--non-interactive --answers" in result.output


def test_resume_of_another_boards_session_is_a_clear_error(tmp_path: Path) -> None:
    Journal.create("assemble", board="es-other")
    result = CliRunner().invoke(
        root, ["assemble", "--resume", "--answers", str(_answers(tmp_path))]
    )
    assert result.exit_code == 52
    assert "is for board 'es-other', not 'es-virt'" in result.output


def test_photo_from_stdin(tmp_path: Path) -> None:
    answers = _answers(tmp_path, {"unbox": {"photos": {"parts-laid-out": "-"}}})
    data = (tmp_path / "phone" / "parts-laid-out.jpg").read_bytes()
    proc = subprocess.run(
        [ROUTERKIT, "assemble", "--answers", str(answers), "--json"],
        input=data,
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    journal = Journal.latest(kind="assemble")
    assert journal is not None
    rec = [r for r in journal.events("photo") if r["photo"] == "parts-laid-out"][0]
    assert rec["source"] == "stdin" and (journal.dir / rec["original"]).read_bytes() == data


def _journal_records() -> list[dict]:  # type: ignore[type-arg]
    journal = Journal.latest(kind="assemble")
    return journal.events() if journal else []


def _wait_for(pred: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not pred():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.parametrize("kill_step", ["unbox", "fan", "disk", "label"])
def test_sigkill_while_waiting_at_a_step_then_resume(tmp_path: Path, kill_step: str) -> None:
    # The step's first photo is read from stdin, which we never write: the process sits at that
    # prompt, and we SIGKILL it there — no chance to write a `paused` record.
    first_photo = GUIDE.step(kill_step).photos[0].id
    blocked = _answers(tmp_path, {kill_step: {"photos": {first_photo: "-"}}})
    proc = subprocess.Popen(
        [ROUTERKIT, "assemble", "--answers", str(blocked)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(
            lambda: any(
                r["type"] == "step_started" and r["step"] == kill_step for r in _journal_records()
            )
        )
        time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    before = _journal_records()
    assert before[-1]["type"] == "step_started" and before[-1]["step"] == kill_step
    answers = _answers(tmp_path)
    done = subprocess.run(
        [ROUTERKIT, "assemble", "--answers", str(answers), "--resume", "--json"],
        capture_output=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr.decode()
    records = _journal_records()
    assert records[: len(before)] == before
    resumed = [r for r in records if r["type"] == "resumed"]
    assert [r["step"] for r in resumed] == [kill_step]
    assert_complete_and_unique(records, GUIDE)


def test_sigkill_at_random_moments_never_duplicates_or_loses(tmp_path: Path) -> None:
    answers = _answers(tmp_path)
    rng = random.Random(os.getpid())
    kills = 0
    for _ in range(5):  # killed at random moments: mid-photo, mid-append, mid-startup...
        before = len(_journal_records())
        args = [ROUTERKIT, "assemble", "--answers", str(answers)] + (["--resume"] if before else [])
        proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
        )
        # Kill once the run has made a random amount of progress (not after a fixed time, which
        # a fast machine can outrun), plus a random few milliseconds to land mid-work.
        want = before + rng.randint(1, 8)
        deadline = time.monotonic() + 60
        while (
            proc.poll() is None and len(_journal_records()) < want and time.monotonic() < deadline
        ):
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.05))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
        if any(r["type"] == "assembly_finished" for r in _journal_records()):
            break
    else:  # then one run left alone finishes the job
        done = subprocess.run(
            [ROUTERKIT, "assemble", "--answers", str(answers), "--resume"],
            capture_output=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 0, done.stderr.decode()
    assert kills >= 1
    assert_complete_and_unique(_journal_records(), GUIDE)
    # ...and nothing of the killed runs lives on (photo workers once waited forever)
    deadline = time.monotonic() + 10
    while _running_with(str(answers)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _running_with(str(answers)) == []


def _running_with(arg: str) -> list[int]:
    """PIDs of processes whose command line contains ``arg``."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if arg.encode() in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                continue
    return found
