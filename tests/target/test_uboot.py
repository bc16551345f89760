"""The U-Boot driver against the simulated U-Boot shipped in toolkit.testing.fake."""

from __future__ import annotations

import copy
import zlib

import pytest

from toolkit.boards import Board, load_board
from toolkit.errors import DeviceCommandError, DeviceTimeout
from toolkit.protocol.console import Console
from toolkit.target.uboot import UBoot
from toolkit.testing.fake import FakeTransport, FakeUBoot


@pytest.fixture
def board() -> Board:
    return load_board("es-virt")


def with_console(board: Board, **changes: object) -> Board:
    data = copy.deepcopy(board.data)
    data["console"].update(changes)
    return Board(id=board.id, path=board.path, data=data)


def test_interrupt_with_a_late_banner(board: Board) -> None:
    fake = FakeUBoot(boot_delay=0.4)
    uboot = UBoot(Console(fake), board)
    log = uboot.interrupt_autoboot(timeout=10)
    assert uboot.banner_seen
    assert "U-Boot 2023.01" in log
    assert fake.state == "prompt"
    assert "Starting kernel" not in uboot.console.transcript_text()
    # Keys sent while the board was still "booting" were lost; we kept sending anyway.
    assert fake.sent.count(b" ") > 1


def test_interrupt_with_a_garbled_banner(board: Board) -> None:
    noise = "\r\n\x00\xfe#@U-B\x07ot 2\x1b[0;3\r\nD\x15RAM:\r\nHit any k"
    fake = FakeUBoot(banner=noise, boot_delay=0.1)
    uboot = UBoot(Console(fake), board)
    uboot.interrupt_autoboot(timeout=10)
    assert fake.state == "prompt"
    assert uboot.version().startswith("U-Boot 2023.01")


def test_interrupt_with_no_banner_at_an_idle_prompt(board: Board) -> None:
    fake = FakeUBoot(at_prompt=True)
    uboot = UBoot(Console(fake), board)
    log = uboot.interrupt_autoboot(timeout=10)
    assert not uboot.banner_seen
    assert "U-Boot" not in log
    assert b"\n" in fake.sent  # only a newline can make an idle prompt answer


def test_interrupt_uses_the_board_interrupt_key(board: Board) -> None:
    fake = FakeUBoot(boot_delay=0.1)
    uboot = UBoot(Console(fake), with_console(board, interrupt="\x03", interrupt_interval=0.02))
    uboot.interrupt_autoboot(timeout=10)
    assert b"\x03" in fake.sent
    assert b" " not in fake.sent.replace(b"echo ", b"")


def test_interrupt_times_out_with_last_output_when_linux_boots(board: Board) -> None:
    fake = FakeUBoot(boot_delay=0.0, bootdelay=0.0)  # autoboot already over
    uboot = UBoot(Console(fake), board)
    with pytest.raises(DeviceTimeout) as info:
        uboot.interrupt_autoboot(timeout=0.6)
    assert "Starting kernel" in (info.value.last_output or "")
    assert "power-cycle" in str(info.value)


def test_interrupt_times_out_on_a_silent_line(board: Board) -> None:
    uboot = UBoot(Console(FakeTransport()), board)
    with pytest.raises(DeviceTimeout) as info:
        uboot.interrupt_autoboot(timeout=0.3)
    assert info.value.last_output == ""


@pytest.fixture
def at_prompt(board: Board) -> tuple[UBoot, FakeUBoot]:
    fake = FakeUBoot(at_prompt=True, memory={0x50000000: b"routerkit" * 100})
    uboot = UBoot(Console(fake), board)
    uboot.sync_prompt()
    return uboot, fake


def test_run_returns_output_without_echo_or_prompt(at_prompt: tuple[UBoot, FakeUBoot]) -> None:
    uboot, _ = at_prompt
    assert uboot.run("echo hello world") == "hello world"
    assert uboot.run("setenv x 1") == ""


def test_run_unknown_command_raises(at_prompt: tuple[UBoot, FakeUBoot]) -> None:
    uboot, _ = at_prompt
    with pytest.raises(DeviceCommandError, match="status 1") as info:
        uboot.run("sha256sum 0x50000000 0x10")
    assert "Unknown command 'sha256sum'" in (info.value.last_output or "")


def test_run_status_and_run_ok(at_prompt: tuple[UBoot, FakeUBoot]) -> None:
    uboot, _ = at_prompt
    assert uboot.run_status("false").exit_status == 1
    result = uboot.run_status("echo fine")
    assert (result.exit_status, result.output) == (0, "fine")
    assert uboot.run_ok("true") == ""
    with pytest.raises(DeviceCommandError, match="status 1"):
        uboot.run_ok("false")


def test_crc32_is_parsed_and_matches_zlib(at_prompt: tuple[UBoot, FakeUBoot]) -> None:
    uboot, _ = at_prompt
    assert uboot.crc32("0x50000000", 900) == zlib.crc32(b"routerkit" * 100)
    assert uboot.crc32(0x50000000, 9) == zlib.crc32(b"routerkit")


def test_env_parses_printenv(at_prompt: tuple[UBoot, FakeUBoot]) -> None:
    uboot, _ = at_prompt
    uboot.run("setenv bootcmd run distro_bootcmd; echo two")
    env = uboot.env()
    assert env["arch"] == "arm"
    assert env["bootdelay"] == "2"
    assert env["bootcmd"] == "run distro_bootcmd"
    assert "Environment size" not in "".join(env)


def test_sync_prompt_survives_half_typed_garbage(at_prompt: tuple[UBoot, FakeUBoot]) -> None:
    uboot, fake = at_prompt
    fake.write(b"garbage-no-newline")  # as if line noise had been typed into the prompt
    uboot.sync_prompt()
    assert uboot.run("echo clean") == "clean"
