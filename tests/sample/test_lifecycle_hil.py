"""The virtual sample for real: QEMU, stock U-Boot, QMP, ser2net. Marked hil (boots QEMU).

These boot to the U-Boot prompt only (about a second each), so they need no firmware build.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.tools import board_under_test
from toolkit import sample
from toolkit.boards import available_boards
from toolkit.cli import root
from toolkit.errors import SampleError
from toolkit.events import RecordingReporter
from toolkit.record import Journal
from toolkit.transport import open_serial

pytestmark = pytest.mark.hil
BOARD = board_under_test()


def _alive(pid: int | None) -> bool:
    """The process exists in the process table at all (zombies included)."""
    return bool(pid) and Path(f"/proc/{pid}").exists()


def _uboot_says(url: str, command: str, expect: str, limit: float = 10.0) -> str:
    """Type ``command`` at the U-Boot prompt over ``url`` and return the output up to the prompt."""
    with open_serial(url) as port:
        port.write(command.encode() + b"\n")
        out = b""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            out += port.read(4096, 0.2)
            if expect.encode() in out and out.rstrip().endswith(b"=>"):
                break
        return out.decode(errors="replace")


@pytest.mark.every_board
def test_up_reaches_uboot_prompt_records_the_boot_and_down_leaves_no_process() -> None:
    state = sample.up(name="hil-a", board=BOARD, wait="uboot")
    try:
        assert state.running and _alive(state.pid)
        assert re.fullmatch(r"socket://127\.0\.0\.1:\d+", state.serial_url)
        assert state.boot_times["uboot_prompt"] >= state.boot_times["uboot_banner"] > 0
        # The transcript is in the sample dir and in a `sample` session.
        assert "Hit any key to stop autoboot" in Path(state.boot_log).read_text(errors="replace")
        journal = Journal.latest(kind="sample", board=BOARD)
        assert journal is not None
        event = journal.last("sample_up")
        assert event is not None and event["pid"] == state.pid
        assert b"U-Boot" in (journal.dir / event["transcript"]).read_bytes()
        # The console is free again: a new client gets the prompt that U-Boot is sitting at.
        assert "U-Boot 20" in _uboot_says(state.serial_url, "version", "U-Boot")
        found = sample.status("hil-a")
        assert found is not None and found.running and found.pid == state.pid
        with pytest.raises(SampleError, match="already running"):
            sample.up(name="hil-a", board=BOARD, wait="uboot")
    finally:
        sample.down("hil-a")
    assert not _alive(state.pid)
    assert not Path(state.qmp).exists()
    assert sample.status("hil-a") is None
    with pytest.raises(SampleError, match="not running"):
        sample.down("hil-a")


def test_two_samples_run_at_once_under_different_names() -> None:
    runner = CliRunner()
    states = []
    try:
        for name in ("one", "two"):
            result = runner.invoke(
                root, ["sample", "up", "--name", name, "--wait", "uboot", "--json"]
            )
            assert result.exit_code == 0, result.output
            payload = json.loads(result.stdout)
            for key in ("serial_url", "ssh_host", "ssh_port", "board", "pid"):
                assert key in payload
            states.append(payload)
        assert states[0]["pid"] != states[1]["pid"]
        assert states[0]["serial_url"] != states[1]["serial_url"]
        assert states[0]["ssh_port"] != states[1]["ssh_port"]
        listed = json.loads(runner.invoke(root, ["sample", "status", "--all", "--json"]).stdout)
        assert sorted(s["name"] for s in listed["samples"] if s["running"]) == ["one", "two"]
        again = runner.invoke(root, ["sample", "up", "--name", "one", "--wait", "uboot"])
        assert again.exit_code == SampleError.exit_code and "already running" in again.output
    finally:
        for name in ("one", "two"):
            runner.invoke(root, ["sample", "down", "--name", name])
    for payload in states:
        assert not _alive(payload["pid"])


def test_rfc2217_console_through_ser2net() -> None:
    state = sample.up(name="bench", serial="rfc2217", wait="uboot")
    try:
        assert state.serial_url.startswith("rfc2217://127.0.0.1:")
        assert state.serial_url.endswith("?ign_set_control")
        assert _alive(state.ser2net_pid)
        cmdline = Path(f"/proc/{state.ser2net_pid}/cmdline").read_bytes()
        assert b"ser2net" in cmdline
        assert "Hit any key to stop autoboot" in Path(state.boot_log).read_text(errors="replace")
        assert "U-Boot 20" in _uboot_says(state.serial_url, "version", "U-Boot")
    finally:
        sample.down("bench")
    assert not _alive(state.pid) and not _alive(state.ser2net_pid)


@pytest.mark.every_board
def test_reset_reboots_and_power_cut_keeps_the_disk_for_the_next_up() -> None:
    state = sample.up(name="power", board=BOARD, wait="uboot")
    try:
        with open_serial(state.serial_url) as port:
            sample.reset("power")
            seen = b""
            deadline = time.monotonic() + 20
            while b"Hit any key" not in seen and time.monotonic() < deadline:
                seen += port.read(4096, 0.2)
        assert b"U-Boot" in seen and b"Hit any key" in seen
        # Mark the disk, cut the power: the mark survives and `up` boots the same disk again.
        with open(state.disk, "r+b") as fh:
            fh.seek(4096)
            fh.write(b"routerkit-was-here")
        cut = sample.power_cut("power")
        assert cut.running is False and not _alive(state.pid)
        after = sample.status("power")
        assert after is not None and after.running is False
        with pytest.raises(SampleError, match="not running"):
            sample.reset("power")
        # Powered on again it is the same board (a disk of another board's firmware is refused).
        other = next(b for b in available_boards() if b != BOARD)
        with pytest.raises(SampleError, match=f"was made as {BOARD}"):
            sample.up(name="power", board=other, wait="uboot")
        again = sample.up(name="power", wait="uboot")
        assert again.pid != state.pid and again.disk == state.disk and again.board == BOARD
        with open(again.disk, "rb") as fh:
            fh.seek(4096)
            assert fh.read(18) == b"routerkit-was-here"
    finally:
        sample.down("power")
    assert not _alive(again.pid)


def test_up_boots_a_copy_of_a_given_disk(tmp_path: Path) -> None:
    given = tmp_path / "given.img"
    with open(given, "wb") as fh:
        fh.truncate(16 * 1024 * 1024)
    before = given.read_bytes()
    state = sample.up(name="copy", disk=given, wait="uboot")
    try:
        assert Path(state.disk) != given and Path(state.disk).stat().st_size == given.stat().st_size
    finally:
        sample.down("copy")
    assert given.read_bytes() == before


def test_wait_none_leaves_the_guest_waiting_for_its_first_console_client() -> None:
    state = sample.up(name="lazy", wait="none")
    try:
        # Nothing has connected, so nothing was lost: the first client sees U-Boot's banner.
        with open_serial(state.serial_url) as port:
            seen = b""
            deadline = time.monotonic() + 20
            while b"U-Boot 20" not in seen and time.monotonic() < deadline:
                seen += port.read(4096, 0.2)
        assert b"U-Boot 20" in seen
    finally:
        sample.down("lazy")
    assert not _alive(state.pid)


def test_down_of_a_sample_nobody_connected_to_still_stops_it() -> None:
    state = sample.up(name="blocked", wait="none")
    sample.down("blocked")
    assert not _alive(state.pid)
    assert os.path.exists(state.disk)


def test_busy_ports_are_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from toolkit.sample import qemu

    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen(1)
    busy = squatter.getsockname()[1]
    real = qemu.free_port
    handed = iter([busy, busy])  # the first try gets a taken port for serial and SSH

    def flaky_free_port() -> int:
        return next(handed, None) or real()

    monkeypatch.setattr(qemu, "free_port", flaky_free_port)
    reporter = RecordingReporter()
    try:
        state = sample.up(name="ports", wait="uboot", reporter=reporter)
        try:
            assert state.ssh_port != busy and str(busy) not in state.serial_url
            assert any("port taken" in e[2] for e in reporter.events if e[0] == "message")
        finally:
            sample.down("ports")
    finally:
        squatter.close()
    assert not _alive(state.pid)


def test_a_boot_that_times_out_leaves_no_process_and_no_state() -> None:
    from toolkit.errors import DeviceTimeout

    # A Linux shell within 0.5 s is impossible (the kernel alone starts ~0.7 s after power-on),
    # whereas U-Boot's banner can beat even 0.05 s on an idle machine (the old form of this
    # test then passed its U-Boot wait and leaked the sample).
    with pytest.raises(DeviceTimeout) as info:
        sample.up(name="slow", wait="linux", timeout=0.5)
    assert sample.status("slow") is None
    leftovers = [
        p for p in Path("/proc").iterdir()
        if p.name.isdigit() and b"routerkit-slow\0" in _cmdline(p)
    ]  # fmt: skip
    assert leftovers == []
    journal = Journal.latest(kind="sample")
    assert journal is not None and journal.last("sample_up_failed") is not None
    assert info.value.last_output is not None


def _cmdline(proc_dir: Path) -> bytes:
    try:
        return (proc_dir / "cmdline").read_bytes()
    except OSError:
        return b""
