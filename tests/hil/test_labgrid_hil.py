"""``--routerkit-target labgrid:PLACE`` against a real labgrid coordinator and exporter on
loopback, the exporter exporting a virtual sample's pty (QEMU ``-serial pty``) through its
ser2net. The place has no power resource, so the strategy finds the board at its prompt.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.hil._proc import inner_pytest, press_ctrl_c
from tests.lab.conftest import LabgridLab, start_labgrid
from toolkit.boards import load_board
from toolkit.sample import qemu

pytestmark = pytest.mark.hil
pytest_plugins = ["pytester"]


@pytest.fixture(scope="module")
def pty_sample(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """QEMU with stock U-Boot on a blank disk and its console on a pty; yields the pty."""
    tmp = tmp_path_factory.mktemp("pty-sample")
    disk = tmp / "disk.img"
    with open(disk, "wb") as fh:
        fh.truncate(80 * 1024 * 1024)
    spec = qemu.QemuSpec(
        disk=disk, qmp=tmp / "qmp.sock", tftp_dir=tmp, ssh_port=qemu.free_port(), serial="rfc2217"
    )
    log = open(tmp / "qemu.log", "wb")  # noqa: SIM115 - lives as long as QEMU
    proc = subprocess.Popen(
        qemu.build_command(load_board("es-virt"), spec),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not (
            found := re.search(rb"redirected to (/dev/pts/\d+)", (tmp / "qemu.log").read_bytes())
        ):
            assert proc.poll() is None and time.monotonic() < deadline, (
                tmp / "qemu.log"
            ).read_text()
            time.sleep(0.05)
        yield found.group(1).decode()
    finally:
        proc.kill()
        proc.wait()
        log.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, pty_sample: str) -> Iterator[LabgridLab]:
    gen = start_labgrid(tmp_path_factory.mktemp("labgrid"), pty_sample)
    lab = next(gen)
    try:
        yield lab
    finally:
        gen.close()


def test_uboot_through_a_labgrid_place_and_ctrl_c_releases_it(
    pytester: pytest.Pytester, lab: LabgridLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LG_COORDINATOR", lab.coordinator)
    marker = pytester.path / "holding"
    pytester.makepyfile(
        f'''
import time
from pathlib import Path

def test_place_is_leased(sample):
    assert sample.lease.place == "{lab.place}"
    assert sample.target.serial_url.startswith("rfc2217://127.0.0.1:")

def test_uboot_answers(uboot):
    assert uboot.version().startswith("U-Boot 20")

def test_holds_the_place(uboot):
    Path({str(marker)!r}).write_text("holding")
    time.sleep(120)
'''
    )
    with inner_pytest(pytester, "-v", f"--routerkit-target=labgrid:{lab.place}") as proc:
        deadline = time.monotonic() + 90
        while not marker.exists():
            assert proc.poll() is None, (pytester.path / "out.txt").read_text()
            assert time.monotonic() < deadline, (pytester.path / "out.txt").read_text()
            time.sleep(0.2)
        shown = lab.client("show").stdout
        assert re.search(r"acquired: \S+/\S+", shown), shown
        press_ctrl_c(proc)
    text = (pytester.path / "out.txt").read_text()
    assert "test_place_is_leased PASSED" in text and "test_uboot_answers PASSED" in text, text
    assert "acquired: None" in lab.client("show").stdout, "Ctrl-C left the place acquired"


def test_place_acquired_by_someone_else_says_by_whom(
    pytester: pytest.Pytester, lab: LabgridLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LG_COORDINATOR", lab.coordinator)
    assert lab.client("acquire", user="alice").returncode == 0
    try:
        pytester.makepyfile("def test_a(uboot): pass\ndef test_b(uboot): pass\n")
        result = pytester.runpytest_subprocess(
            f"--routerkit-target=labgrid:{lab.place}", "-p", "no:labgrid", "-p", "no:cacheprovider"
        )
    finally:
        lab.client("release", user="alice")
    result.assert_outcomes(errors=2)
    text = result.stdout.str()
    assert re.search(rf"labgrid place {lab.place} is already acquired by \S+/alice", text), text
    assert text.count("setting it up failed earlier") == 1


def test_routerkit_commands_take_a_labgrid_place_and_give_it_back(
    lab: LabgridLab, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """``--target labgrid:PLACE`` (flash, verify, bisect share it): a place someone else holds
    is refused naming who; otherwise it is acquired, the board is reached through the place's
    serial port, and the place is released when the command ends, even when it fails (here:
    the board has U-Boot and a blank disk, so verify finds no Linux to boot)."""
    import json
    import os
    import sys
    from pathlib import Path

    routerkit = str(Path(sys.executable).with_name("routerkit"))
    env = dict(os.environ, LG_COORDINATOR=lab.coordinator)
    env["ROUTERKIT_DATA"] = str(tmp_path_factory.mktemp("rk-data"))
    command = [routerkit, "verify", "--via", "serial", "--target", f"labgrid:{lab.place}"]

    assert lab.client("acquire", user="alice").returncode == 0
    try:
        taken = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    finally:
        lab.client("release", user="alice")
    assert taken.returncode != 0 and "Traceback" not in taken.stderr
    assert re.search(rf"{lab.place} is already acquired by \S+/alice", taken.stderr), taken.stderr

    failed = subprocess.run(
        [*command, "--json"], capture_output=True, text=True, env=env, timeout=120
    )
    assert failed.returncode != 0 and "Traceback" not in failed.stderr, failed.stderr
    report = json.loads(failed.stdout)  # one JSON document, the error
    assert report["ok"] is False and "Linux shell" in json.dumps(report), report
    assert "acquired: None" in lab.client("show").stdout, "the command left the place acquired"
