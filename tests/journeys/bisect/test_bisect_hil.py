"""routerkit bisect against the real virtual sample: 12 signed nightlies in a TUF channel
served on loopback, a behaviour (/etc/rk-feature, read over SSH by an ordinary command)
broken from a chosen build on, full SSH flashes.

`make test` runs one whole bisect through the CLI, with everything the issue asks of it: a
build in the middle that never boots (its /init reboots: the A/B fallback brings the sample
back on the previous build) is skipped, and a Ctrl-C half-way, then the same command again,
continues without repeating a finished step. More break points run with
ROUTERKIT_RELIABILITY=1 (`make reliability`).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.journeys.bisect.conftest import bisect_command, bisect_journal, nightlies

pytestmark = pytest.mark.hil

N = 12
VERSIONS = nightlies(N)
BOUND = math.ceil(math.log2(N)) + 1
RELIABILITY = os.environ.get("ROUTERKIT_RELIABILITY") == "1"


def _cli(url: str, root: Path, target: str, *extra: str) -> list[str]:
    return bisect_command(url, root, VERSIONS[0], VERSIONS[-1], ["--target", target], *extra)


def test_bisect_names_the_build_past_a_non_booting_one_and_resumes_after_ctrl_c(
    make_channel, bench_sample: str
) -> None:
    break_at, unbootable = 8, 5  # 5 is the first build a bisect of 12 picks
    url, root = make_channel(VERSIONS, break_at, unbootable)
    cmd = _cli(url, root, bench_sample, "--json")
    start = time.monotonic()
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Ctrl-C once two steps are finished and the third has started flashing.
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline and first.poll() is None:
        journal = bisect_journal(bench_sample)
        if (
            journal is not None
            and len(journal.events("bisect_step")) >= 2
            and len(journal.events("bisect_step_started")) >= 3
        ):
            time.sleep(2.0)  # in the middle of the third flash
            first.send_signal(signal.SIGINT)
            break
        time.sleep(0.2)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 130, (first.returncode, out, err)
    journal = bisect_journal(bench_sample)
    assert journal is not None and journal.last("bisect_done") is None
    finished = [s["version"] for s in journal.events("bisect_step")]
    assert len(finished) == 2
    assert finished[0] == VERSIONS[unbootable]
    assert journal.events("bisect_step")[0]["result"] == "skip", journal.events("bisect_step")[0]

    second = subprocess.run(cmd, capture_output=True, timeout=1800, check=False)
    wall = time.monotonic() - start
    assert second.returncode == 0, (second.stdout, second.stderr)
    summary = json.loads(second.stdout)
    assert summary["session"] == journal.id and summary["runs"] == 2
    assert summary["first_bad"] == VERSIONS[break_at]
    assert summary["last_good"] == VERSIONS[break_at - 1] and summary["undecided"] == []
    assert summary["first_bad_notes"]["summary"] == f"nightly {break_at + 1}"  # signed notes
    started = [r["version"] for r in journal.events("bisect_step_started")]
    tested = [s["version"] for s in summary["steps"]]
    assert len(tested) == len(set(tested)), "a finished step was repeated"
    assert started[:2] == finished  # the first run's steps, then the cut one redone, ...
    # every flash past the first run is a new build or the one Ctrl-C cut
    assert len(started) - len(set(started)) <= 1
    # the skip costs at most one flash beyond the bound; the cut flash one more
    assert len(set(started)) <= BOUND + 1
    # the answer is the build the behaviour broke in: each step's own verdict agrees
    for step in summary["steps"]:
        if step["result"] != "skip":
            expected = "bad" if VERSIONS.index(step["version"]) >= break_at else "good"
            assert step["result"] == expected, step
    # console recordings of the flashes are in the session (serial first contact at least
    # records the host-key read); the summary JSON is what `bug --from-bisect` attaches
    print(
        f"\nbisect figures: {summary['flashes']} flashes ({len(set(started))} builds), "
        f"{wall:.0f} s wall incl. one Ctrl-C; one by one from the good end: "
        f"{summary['linear_flashes']} flashes; steps: "
        + ", ".join(
            f"{s['version'].rsplit('.', 1)[1]}={s['result']}"
            f"({(s['flash_seconds'] or 0) + (s['test_seconds'] or 0):.0f}s)"
            for s in summary["steps"]
        )
    )


@pytest.mark.reliability
@pytest.mark.skipif(not RELIABILITY, reason="more break points: ROUTERKIT_RELIABILITY=1")
@pytest.mark.parametrize("break_at", [1, 4, 11])
def test_bisect_names_the_first_bad_build_for_other_break_points(
    make_channel, bench_sample: str, break_at: int
) -> None:
    url, root = make_channel(VERSIONS, break_at)
    result = subprocess.run(
        _cli(url, root, bench_sample, "--json", "--fresh"),
        capture_output=True,
        timeout=1800,
        check=False,
    )
    assert result.returncode == 0, (result.stdout, result.stderr)
    summary = json.loads(result.stdout)
    assert summary["first_bad"] == VERSIONS[break_at]
    assert summary["flashes"] <= BOUND and summary["undecided"] == []
    print(
        f"\nbisect figures (break at {VERSIONS[break_at]}): {summary['flashes']} flashes, "
        f"{summary['seconds']:.0f} s; one by one: {summary['linear_flashes']} flashes"
    )
