"""The bisect planner and journey against a fake bench: the answer for every break point, the
flash bound, skips (a build that does not flash, a command that says 125), and resume after
Ctrl-C from the journal without repeating a finished step."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from toolkit.errors import ConfigError, DeviceTimeout
from toolkit.events import Reporter
from toolkit.journeys.bisect import BAD, GOOD, SKIP, Bisection, Build, bisect, summarize
from toolkit.record import Journal

VERSIONS = [f"1.2.0-nightly.{n}" for n in range(1, 13)]  # 12 nightlies


@dataclass
class FakeBench:
    """Builds from ``break_at`` on fail the test; ``unbootable`` ones fail to flash;
    ``interrupt_at``: the Nth install is cut by Ctrl-C."""

    break_at: int
    unbootable: set[int] = field(default_factory=set)
    says_skip: set[int] = field(default_factory=set)
    interrupt_at: int | None = None
    installed: list[str] = field(default_factory=list)
    tested: list[str] = field(default_factory=list)
    running: str | None = None

    def describe(self) -> dict[str, Any]:
        return {"channel": "nightly", "board": "es-virt", "target": "fake", "command": ["t"]}

    def builds(self) -> list[Build]:
        return [Build(v, {"summary": f"notes of {v}"}) for v in VERSIONS]

    def install(self, build: Build, journal: Journal, reporter: Reporter) -> None:
        self.installed.append(build.version)
        if self.interrupt_at is not None and len(self.installed) == self.interrupt_at:
            raise KeyboardInterrupt
        if VERSIONS.index(build.version) in self.unbootable:
            raise DeviceTimeout(f"{build.version} never reached a shell")
        self.running = build.version

    def test(self, build: Build, journal: Journal, log: Path) -> int:
        assert self.running == build.version, "a test must run on the build just flashed"
        self.tested.append(build.version)
        index = VERSIONS.index(build.version)
        if index in self.says_skip:
            return 125
        return 1 if index >= self.break_at else 0


BOUND = math.ceil(math.log2(12)) + 1


@pytest.mark.parametrize("break_at", range(1, 12))
def test_names_the_first_bad_build_within_the_bound(break_at: int) -> None:
    bench = FakeBench(break_at)
    summary = bisect(bench, VERSIONS[0], VERSIONS[-1])
    assert summary.first_bad == VERSIONS[break_at]
    assert summary.last_good == VERSIONS[break_at - 1]
    assert summary.undecided == [] and summary.exact
    assert summary.flashes == len(bench.installed) <= BOUND
    assert len(set(bench.installed)) == len(bench.installed), "no build flashed twice"
    assert summary.first_bad_notes == {"summary": f"notes of {VERSIONS[break_at]}"}
    assert summary.linear_flashes == min(break_at, 10)


def test_a_build_that_does_not_boot_is_skipped_not_bad() -> None:
    bench = FakeBench(break_at=8, unbootable={5})  # 5 is the first pick of 0..11
    summary = bisect(bench, VERSIONS[0], VERSIONS[-1])
    assert summary.first_bad == VERSIONS[8] and summary.exact
    skipped = [s for s in summary.steps if s["result"] == SKIP]
    assert [s["version"] for s in skipped] == [VERSIONS[5]]
    assert "could not flash or boot" in skipped[0]["reason"]
    assert VERSIONS[5] not in bench.tested
    assert summary.flashes <= BOUND + 1


def test_skips_next_to_the_break_leave_the_answer_open_and_say_so() -> None:
    bench = FakeBench(break_at=6, unbootable={5}, says_skip={4})
    summary = bisect(bench, VERSIONS[0], VERSIONS[-1])
    assert not summary.exact
    assert summary.first_bad == VERSIONS[6] and summary.last_good == VERSIONS[3]
    assert summary.undecided == [VERSIONS[4], VERSIONS[5]]


def test_ctrl_c_then_rerun_resumes_without_repeating_finished_steps() -> None:
    bench = FakeBench(break_at=3, interrupt_at=3)
    with pytest.raises(KeyboardInterrupt):
        bisect(bench, VERSIONS[0], VERSIONS[-1])
    finished = list(bench.tested)
    assert len(finished) == 2
    journal = Journal.latest(kind="bisect")
    assert journal is not None and journal.last("bisect_done") is None
    cut = bench.installed[-1]
    rerun = FakeBench(break_at=3)
    summary = bisect(rerun, VERSIONS[0], VERSIONS[-1])
    assert summary.session == journal.id and summary.runs == 2
    assert not set(finished) & set(rerun.tested), "a finished step was repeated"
    assert rerun.installed[0] == cut, "the cut step is redone first"
    assert summary.first_bad == VERSIONS[3]
    # the same answer as an uninterrupted bisect, with the same steps
    straight = bisect(FakeBench(break_at=3), VERSIONS[0], VERSIONS[-1], fresh=True)
    assert [s["version"] for s in straight.steps] == [s["version"] for s in summary.steps]
    # and a third run starts a new bisect: the old one is done
    assert bisect(FakeBench(break_at=3), VERSIONS[0], VERSIONS[-1]).session != summary.session


def test_summary_is_rebuilt_from_the_journal_alone() -> None:
    summary = bisect(FakeBench(break_at=9), VERSIONS[0], VERSIONS[-1])
    again = summarize(Journal.open(summary.session))
    assert again.to_dict() == summary.to_dict()


def test_a_different_bisect_does_not_resume_an_unfinished_one() -> None:
    with pytest.raises(KeyboardInterrupt):
        bisect(FakeBench(break_at=3, interrupt_at=1), VERSIONS[0], VERSIONS[-1])
    other = bisect(FakeBench(break_at=3), VERSIONS[1], VERSIONS[-1])
    assert other.runs == 1 and other.builds == VERSIONS[1:]


def test_good_and_bad_must_be_listed_and_in_order() -> None:
    with pytest.raises(ConfigError, match="not in the channel"):
        bisect(FakeBench(break_at=3), "1.2.0-nightly.99", VERSIONS[-1])
    with pytest.raises(ConfigError, match="older than"):
        bisect(FakeBench(break_at=3), VERSIONS[5], VERSIONS[2])


@pytest.mark.parametrize("results", [{}, {"b": GOOD}, {"c": BAD}, {"b": SKIP, "c": GOOD}])
def test_planner_picks_inside_the_open_range(results: dict[str, str]) -> None:
    plan = Bisection(list("abcdef"))
    verdict = plan.verdict(results)
    versions = plan.versions
    lo, hi = versions.index(verdict.last_good), versions.index(verdict.first_bad)
    assert verdict.next is not None and lo < versions.index(verdict.next) < hi
    assert verdict.next not in results


def test_bug_from_bisect_names_the_build_and_attaches_summary_log_and_recording() -> None:
    import json

    from click.testing import CliRunner

    from toolkit.cli import root
    from toolkit.protocol import Console
    from toolkit.testing.fake import FakeTransport

    class RecordingBench(FakeBench):
        def test(self, build: Build, journal: Journal, log: Path) -> int:
            code = super().test(build, journal, log)
            log.write_text(f"testing {build.version}: exit {code}\n")
            fake = FakeTransport()  # the step's console, recorded into the session
            console = Console(fake, transcript_path=journal.files_dir / "console.log")  # type: ignore[arg-type]
            fake.feed(f"routerkit: booted slot A version {build.version}\r\n~ # ".encode())
            console.flush_input(quiet=0.01, timeout=0.5)
            console.close()
            return code

    summary = bisect(RecordingBench(break_at=7), VERSIONS[0], VERSIONS[-1])
    result = CliRunner().invoke(
        root, ["--json", "bug", "--from-bisect", "--preview", "--no-device"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output.strip().splitlines()[-1])
    assert VERSIONS[7] in payload["title"] and VERSIONS[6] in payload["title"]
    names = [a["name"] for a in payload["attachments"]]
    assert "bisect-summary.json" in names and "console.cast" in names
    assert any(n.startswith("bisect-") and n.endswith(".log") for n in names), names
    assert summary.session in payload["body"]


def test_the_human_summary_names_the_answer_and_how_to_report_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from toolkit.cli._app import App
    from toolkit.cli.bisect import _human

    summary = bisect(FakeBench(break_at=6, unbootable={8}), VERSIONS[0], VERSIONS[-1])
    _human(App(), summary.to_dict())
    out = capsys.readouterr().out
    assert f"first bad build: {VERSIONS[6]}" in out and f"last good build: {VERSIONS[5]}" in out
    assert f"its release notes: notes of {VERSIONS[6]}" in out
    assert "skip" in out and f"bug --from-bisect {summary.session}" in out
    open_ended = bisect(
        FakeBench(break_at=6, unbootable={5}, says_skip={4}), VERSIONS[0], VERSIONS[-1]
    )
    _human(App(), open_ended.to_dict())
    assert f"one of {VERSIONS[4]}, {VERSIONS[5]}, {VERSIONS[6]}" in capsys.readouterr().out
