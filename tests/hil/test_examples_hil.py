"""The example suite against real virtual samples (QEMU), as a user runs it.

- ``examples/`` copied into a fresh directory and run with ONE command, default target (a
  virtual sample started for the session) and ``--routerkit-image``: the image is flashed over
  SSH once, every example passes, a deliberately failing test carries its console transcript
  and the flash record in JUnit XML.
- Ctrl-C in the middle of a session stops the sample it started.
- ``lab.toml:NAME`` naming the session's shared sample (QMP power through the lab entry).
"""

from __future__ import annotations

import os
import shutil
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.hil._proc import inner_pytest, press_ctrl_c
from tests.tools import board_under_test
from toolkit import paths
from toolkit.protocol import asciicast

pytestmark = pytest.mark.hil
pytest_plugins = ["pytester"]

EXAMPLES = paths.REPO_ROOT / "examples"

FAILING = """
def test_fails_after_a_uboot_command(uboot):
    uboot.run("echo marker-of-the-failing-test")
    assert False, "failing on purpose"
"""


def _props(case: ET.Element) -> dict[str, str]:
    return {p.get("name", ""): p.get("value", "") for p in case.iter("property")}


def _copy_examples(dest: Path) -> None:
    for src in EXAMPLES.iterdir():
        if src.is_file():
            shutil.copy(src, dest / src.name)


# Not every_board: the wheel test runs these examples on each shipped board, and the flash
# behind flash_once is the serial/SSH journey every board runs (tests/journeys/).
def test_examples_flash_once_pass_and_a_failure_carries_console_and_flash_record(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    from toolkit.firmware.build import build_image

    board = board_under_test()
    image = build_image("1.0.1", board, out=tmp_path / f"{board}-1.0.1.img").path
    ours = _children_qemus()  # this session's own sample, if a test before this one started it
    _copy_examples(pytester.path)
    pytester.makepyfile(test_zz_failing=FAILING)
    xml = tmp_path / "junit.xml"
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--routerkit-image={image}", f"--junitxml={xml}", "-rA",
        f"--routerkit-board={board}", timeout=400,
    )  # fmt: skip
    text = result.stdout.str()
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed") == 1 and "error" not in outcomes and "errors" not in outcomes, (
        text
    )
    assert outcomes.get("passed", 0) >= 5, text  # the examples, incl. the flashed one
    cases = {c.get("name"): c for c in ET.parse(xml).getroot().iter("testcase")}
    props = _props(cases["test_fails_after_a_uboot_command"])
    assert b"marker-of-the-failing-test" in Path(props["routerkit_console_log"]).read_bytes()
    recording = asciicast.parse(props["routerkit_console_cast_data"].encode())  # its recording
    assert "marker-of-the-failing-test" in recording.output()
    assert '"version_after": "1.0.1"' in props["routerkit_flash_record"], props
    failure = cases["test_fails_after_a_uboot_command"].find("failure")
    assert failure is not None and "routerkit flash record" in (failure.text or "")
    # And it stopped the sample it started.
    assert _children_qemus() <= ours


def _children_qemus() -> set[int]:
    """PIDs of the QEMUs whose parent is this test process (samples started in it)."""
    me = str(os.getpid())
    found = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "stat").read_text().rsplit(")", 1)[1].split()[1] == me and (
                    b"qemu-system" in (proc / "cmdline").read_bytes()
                ):
                    found.add(int(proc.name))
            except (OSError, IndexError):
                continue
    return found


def test_ctrl_c_during_a_session_stops_the_sample(pytester: pytest.Pytester) -> None:
    pidfile = pytester.path / "qemu.pid"
    pytester.makepyfile(
        f"""
import time
from pathlib import Path

def test_waits(uboot, sample):
    Path({str(pidfile)!r}).write_text(str(sample.sample_state.pid))
    time.sleep(120)
"""
    )
    with inner_pytest(pytester, "-q") as proc:
        deadline = time.monotonic() + 120
        while not pidfile.exists() or not pidfile.read_text():
            assert proc.poll() is None, (pytester.path / "out.txt").read_text()
            assert time.monotonic() < deadline, "the sample never reached U-Boot"
            time.sleep(0.2)
        qemu_pid = int(pidfile.read_text())
        assert Path(f"/proc/{qemu_pid}").exists()
        press_ctrl_c(proc)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{qemu_pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{qemu_pid}").exists(), "Ctrl-C left the session's sample running"
    assert "KeyboardInterrupt" in (pytester.path / "out.txt").read_text()


def test_lab_toml_target_drives_a_named_sample_with_qmp_power(
    pytester: pytest.Pytester, routerkit_shared_sample, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = routerkit_shared_sample.ensure()
    # The shared sample lives in its own data dir; the inner session finds it by name there.
    monkeypatch.setenv("ROUTERKIT_DATA", str(routerkit_shared_sample.data_dir))
    lab = pytester.path / "lab.toml"
    lab.write_text(
        f'[lab]\nname = "t"\n\n[targets.es1]\nboard = "es-virt"\nsample = "{state.name}"\n'
    )
    pytester.makepyfile(
        """
def test_power_is_qmp(sample):
    assert sample.target.power["kind"] == "qmp"
    assert sample.target.name == "es1"

def test_uboot(uboot):
    assert uboot.version().startswith("U-Boot")

def test_back_to_linux(shell):
    assert shell.check("cat /etc/board.json")
"""
    )
    result = pytester.runpytest_subprocess(
        "--routerkit-target", f"{lab}:es1", "-p", "no:labgrid", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=3)
    transitions = result.stdout.str()
    assert "error" not in transitions.lower(), transitions
