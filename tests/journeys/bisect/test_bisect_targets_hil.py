"""routerkit bisect on the targets of a lab, not only on a virtual sample by name: the real
virtual sample with its console on a pty served by ser2net, reached

* through a lab file's target that describes it as a bench would (serial port over RFC 2217,
  SSH address, TFTP, a power script that resets it through QMP), flashed over the console;
* through a labgrid place (a real coordinator and exporter exporting the sample's pty),
  acquired for the bisect and released at its end, flashed over SSH.

The test is what a developer already has: a pytest file using routerkit's ``shell`` fixture,
run as plain ``pytest``; the plugin finds the bisect's target in ``ROUTERKIT_TARGET`` and
reads /etc/rk-feature over that target's serial console (through the lab's serial server, or
the labgrid place the bisect holds). Five nightlies, one break: two flashes name it. See
test_bisect_hil.py for the twelve-build bisect with a build that does not boot and a Ctrl-C.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.journeys.bisect.conftest import (
    MakeChannel,
    bisect_command,
    bisect_journal,
    nightlies,
    private_sample,
)
from tests.lab.conftest import LabgridLab, start_labgrid
from tests.tools import require
from toolkit.record import Journal

pytestmark = pytest.mark.hil

VERSIONS = nightlies(5)
BOUND = math.ceil(math.log2(len(VERSIONS))) + 1
PROBE = """
def test_rk_feature_is_ok(shell):
    answer = shell.run("cat /etc/rk-feature").output.strip()
    print("/etc/rk-feature says", repr(answer))
    assert answer == "ok"
"""


@pytest.fixture
def ser2net_sample() -> Iterator[Any]:
    """A private sample whose console is a pty served by ser2net (``rfc2217://``)."""
    with private_sample(serial="rfc2217") as state:
        yield state


@pytest.fixture
def labgrid_place(
    ser2net_sample: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LabgridLab]:
    """A labgrid coordinator and exporter on loopback, exporting the sample's pty; the place
    matches it and has no power resource."""
    from toolkit.sample.qmp import QMPClient

    with QMPClient(Path(ser2net_sample.qmp)) as client:
        pty = client.pty_path()
    assert pty is not None
    yield from start_labgrid(tmp_path_factory.mktemp("labgrid"), pty)


def _bisect(
    url: str, root: Path, target: list[str], *extra: str, workdir: Path, **env: str
) -> dict[str, Any]:
    """``routerkit bisect --json`` with the probe as its test, run in ``workdir``."""
    (workdir / "probe_rk_feature.py").write_text(PROBE)
    probe = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "probe_rk_feature.py"]
    cmd = bisect_command(
        url, root, VERSIONS[0], VERSIONS[-1], target, "--json", *extra, command=probe
    )
    result = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=workdir,
        env=dict(os.environ, **env),
        check=False,
    )
    assert result.returncode == 0, (result.stdout, result.stderr)
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def _assert_found(summary: dict[str, Any], journal: Journal | None, break_at: int) -> Journal:
    """The first bad build is named within the bound, and the session has every step: its
    start, its flash (which really put that build on the device) and its test's output."""
    assert summary["first_bad"] == VERSIONS[break_at], summary["steps"]
    assert summary["last_good"] == VERSIONS[break_at - 1] and summary["undecided"] == []
    assert summary["flashes"] <= BOUND, summary["steps"]
    assert journal is not None and journal.id == summary["session"]
    assert journal.last("bisect_done") is not None
    started = [s["version"] for s in journal.events("bisect_step_started")]
    steps = summary["steps"]
    assert [s["version"] for s in steps] == started and len(started) == summary["flashes"]
    flashes = journal.events("flash")
    assert [f["version_after"] for f in flashes if f["ok"]] == started, flashes
    for row in steps:
        expected = "bad" if VERSIONS.index(row["version"]) >= break_at else "good"
        assert row["result"] == expected, row
        assert row["flash_seconds"] > 0 and row["test_seconds"] > 0, row
        log = (journal.dir / row["log"]).read_text()  # the probe's pytest output
        assert ("1 passed" if expected == "good" else "1 failed") in log, log
    return journal


def test_bisect_through_a_lab_file_target_flashing_over_its_console(
    make_channel: MakeChannel, ser2net_sample: Any, tmp_path: Path
) -> None:
    require("socat")
    break_at = 3
    url, root = make_channel(VERSIONS, break_at)
    state = ser2net_sample
    # the bench's power switch: a script, here one that resets the sample through QMP
    qmp = "\n".join(['{"execute": "qmp_capabilities"}', '{"execute": "system_reset"}'])
    reset = f"printf '%s\\n' {shlex.quote(qmp)} | socat - UNIX-CONNECT:{state.qmp}"
    lab = tmp_path / "lab.toml"
    lab.write_text(
        f"""[lab]
name = "bisect-bench"

[targets.bench]
board = "{state.board}"
serial_url = "{state.serial_url}"
ssh_host = "{state.ssh_host}"
ssh_port = {state.ssh_port}
tftp_dir = "{state.tftp_dir}"
tftp_server_ip = "10.0.2.2"
device_ip = "10.0.2.15"
power = {{ kind = "command", reset = {json.dumps(reset)} }}
"""
    )
    assert state.serial_url.startswith("rfc2217://")
    summary = _bisect(
        url, root, ["--lab", str(lab), "--target", "bench"], "--via", "serial", workdir=tmp_path
    )
    assert summary["target"] == "bench"
    journal = _assert_found(summary, bisect_journal("bench"), break_at)
    # each flash went through the lab file's serial port and power script
    assert all(
        f["target"]["serial_url"] == state.serial_url for f in journal.events("flash_started")
    )
    powered = journal.events("power")
    assert len(powered) >= summary["flashes"] and all(p["kind"] == "command" for p in powered)


def test_bisect_through_a_labgrid_place_gives_it_back(
    make_channel: MakeChannel, ser2net_sample: Any, labgrid_place: LabgridLab, tmp_path: Path
) -> None:
    break_at = 2
    url, root = make_channel(VERSIONS, break_at)
    lab, state = labgrid_place, ser2net_sample
    target = f"labgrid:{lab.place}"
    summary = _bisect(
        url,
        root,
        ["--target", target, "--host", state.ssh_host, "--ssh-port", str(state.ssh_port)],
        workdir=tmp_path,
        LG_COORDINATOR=lab.coordinator,
    )
    assert summary["target"] == target
    journal = _assert_found(summary, bisect_journal(target), break_at)
    # the device was reached through the place's serial port, not the sample's own
    first = journal.events("flash_started")[0]["target"]
    assert first["labgrid_place"] == lab.place and first["serial_url"] != state.serial_url
    assert "acquired: None" in lab.client("show").stdout, "the bisect left the place acquired"
