"""The one command runner on a noisy line (fake consoles): a garbled echo is retyped and never
run, a damaged status or output is asked again, ``## `` is not a prompt, and what comes back is
exactly what the device said."""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass

import pytest

from toolkit.boards import Board, load_board
from toolkit.errors import DeviceCommandError, VerifyError
from toolkit.protocol.console import Console
from toolkit.target.runner import prompt_at_end
from toolkit.target.shell import LinuxShell
from toolkit.target.uboot import UBoot
from toolkit.testing.fake import FakeTransport, FakeUBoot
from toolkit.testing.fake_shell import FakeShell

FWINFO = json.dumps({"board": "es-virt", "version": "1.2.0", "running_slot": "B"})


@pytest.fixture
def board() -> Board:
    return load_board("es-virt")


@dataclass
class NoisyUBoot(FakeUBoot):
    """Flips the echo of the typed character at ``bad_echo_at`` (once), damages the first
    ``bad_status`` status markers, and flips one output character of the first ``bad_output``
    answers to ``version``."""

    bad_echo_at: int = -1
    bad_status: int = 0
    bad_output: int = 0
    flipped_status: int = 0  # status digits that arrive with a bit flipped (0 reads as 1)
    lost_enters: int = 0  # Enters lost on the way to the device
    flipped_enters: int = 0  # Enters that arrive as another character ("\n" ^ 0x40 = "J")

    def _type(self, char: str) -> None:
        if char in "\r\n" and self.lost_enters:
            self.lost_enters -= 1
            return
        if char in "\r\n" and self.flipped_enters:
            self.flipped_enters -= 1
            char = "J"
        self.bad_echo_at -= 1
        if self.bad_echo_at == -1 and char not in "\r\n\x03":
            self._line += char  # U-Boot got the right character; the echo flips on the way back
            self._rx += b"X"
            return
        super()._type(char)

    def _command(self, argv: list[str]) -> tuple[str, int]:
        if (
            argv[0] == "echo"
            and argv[1:2]
            and argv[1].startswith("rk-rc=0")
            and self.flipped_status
        ):
            self.flipped_status -= 1
            return argv[1].replace("rk-rc=0", "rk-rc=1", 1) + "\r\n", 0  # '0' ^ 1 = '1'
        if argv[0] == "echo" and argv[1:2] and argv[1].startswith("rk-rc=") and self.bad_status:
            self.bad_status -= 1
            return argv[1].replace("rk-rc", "rk-rk", 1) + "\r\n", 0  # one flipped bit
        if argv[0] == "version" and self.bad_output:
            self.bad_output -= 1
            return self.version_text.replace("2023", "2o23") + "\r\n", 0
        return super()._command(argv)


def test_uboot_line_whose_echo_comes_back_wrong_is_retyped_never_run(board: Board) -> None:
    fake = NoisyUBoot(at_prompt=True, bad_echo_at=20)
    uboot = UBoot(Console(fake, name="fake"), board)
    assert uboot.run("setenv rk_x 1") == ""
    assert fake.env["rk_x"] == "1"
    assert sum("setenv rk_x 1" in line for line in fake.lines) == 1  # the garbled try: Ctrl-C


@pytest.mark.timeout(20)
@pytest.mark.parametrize("fault", ["lost_enters", "flipped_enters"])
def test_an_enter_lost_on_the_line_is_noticed_and_the_line_typed_again(
    board: Board, fault: str
) -> None:
    fake = NoisyUBoot(at_prompt=True, memory={0x50000000: b"routerkit"}, **{fault: 1})
    uboot = UBoot(Console(fake, name="fake"), board)
    # Without the Enter check this waits out the command's timeout and raises DeviceTimeout.
    assert uboot.crc32(0x50000000, 9) == zlib.crc32(b"routerkit")
    assert sum("crc32 0x50000000 0x9" in line for line in fake.lines) == 1  # ran once
    assert fake.sent.count(b"\x03") >= 1  # Ctrl-C dropped the line left in the editor


def test_boot_whose_enter_is_lost_is_entered_again(board: Board) -> None:
    fake = NoisyUBoot(at_prompt=True, lost_enters=1)
    uboot = UBoot(Console(fake, name="fake"), board)
    uboot.boot()
    uboot.wait_prompt(2.0)
    boot = str(board.get("console.boot_command", "boot"))
    assert [line.strip() for line in fake.lines].count(boot) == 1


@pytest.mark.timeout(20)
def test_a_status_digit_flipped_on_the_line_is_not_taken_for_a_failure(board: Board) -> None:
    """Issue 12: one flipped bit once turned a good ``virtio write`` into "failed (status 1)".
    The status comes twice; copies that differ are a damaged frame, and the command runs
    again."""
    fake = NoisyUBoot(at_prompt=True, flipped_status=1)
    uboot = UBoot(Console(fake, name="fake"), board)
    assert uboot.run("setenv rk_z 1") == ""  # would raise "failed (status 1)" if believed
    assert sum("setenv rk_z 1" in line for line in fake.lines) == 2


def test_a_shell_status_flipped_on_the_line_is_read_again(board: Board) -> None:
    class FlippedStatus(FakeShell):
        flips = 1

        def _execute(self, line: str) -> str:
            out = super()._execute(line)
            if self.flips and "_rk_e_" in out:
                self.flips -= 1
                out = out.replace("_0_0_", "_1_0_", 1)
            return out

    fake = FlippedStatus(commands={"true": ("", 0)})
    result = LinuxShell(Console(fake, name="fake"), board).run("true")
    assert result.ok and fake.ran == ["true", "true"]


@pytest.mark.timeout(20)
def test_uboot_garbled_status_reruns_the_idempotent_command(board: Board) -> None:
    fake = NoisyUBoot(at_prompt=True, bad_status=1, memory={0x50000000: b"routerkit"})
    uboot = UBoot(Console(fake, name="fake"), board)
    assert uboot.crc32(0x50000000, 9) == zlib.crc32(b"routerkit")
    assert sum("crc32 0x50000000 0x9" in line for line in fake.lines) == 2


@pytest.mark.timeout(20)
def test_uboot_garbled_status_of_a_non_idempotent_command_raises(board: Board) -> None:
    fake = NoisyUBoot(at_prompt=True, bad_status=1)
    uboot = UBoot(Console(fake, name="fake"), board)
    with pytest.raises(DeviceCommandError, match="damaged"):
        uboot.run("setenv rk_y 1", idempotent=False)
    assert sum("setenv rk_y 1" in line for line in fake.lines) == 1


def test_uboot_reads_of_state_are_asked_until_two_answers_agree(board: Board) -> None:
    fake = NoisyUBoot(at_prompt=True, bad_output=1)
    uboot = UBoot(Console(fake, name="fake"), board)
    assert uboot.version().startswith("U-Boot 2023.01")
    assert sum(line.count("; version;") for line in fake.lines) == 3


def test_uboot_status_and_output(board: Board) -> None:
    fake = FakeUBoot(at_prompt=True)
    uboot = UBoot(Console(fake, name="fake"), board)
    assert uboot.run_status("false").exit_status == 1
    assert uboot.run_status("echo fine").output == "fine"
    with pytest.raises(DeviceCommandError, match="status 1"):
        uboot.run("nosuchcommand")
    uboot.setenv("rk_z", "7")
    assert uboot.getenv("rk_z") == "7"
    assert uboot.getenv("rk_none") is None


def test_shell_run_returns_status_and_exact_output(board: Board) -> None:
    fake = FakeShell(commands={"cat /etc/firmware-version": ("1.2.0\n", 0), "false": ("", 1),
                               "printf abc": ("abc", 0)})  # fmt: skip
    shell = LinuxShell(Console(fake, name="fake"), board)
    assert shell.check("cat /etc/firmware-version") == "1.2.0"
    assert shell.read_file("/etc/firmware-version") == "1.2.0\n"
    assert shell.run("false").exit_status == 1
    assert shell.check("printf abc") == "abc"
    with pytest.raises(DeviceCommandError, match="status 127"):
        shell.check("nosuch")


def test_shell_garbled_echo_is_retyped_and_never_run(board: Board) -> None:
    fake = FakeShell(commands={"true": ("", 0)}, garble_echo=1)
    shell = LinuxShell(Console(fake, name="fake"), board)
    assert shell.run("true").ok
    assert fake.ran == ["true"]  # the garbled line was dropped with Ctrl-C, not run


def test_shell_garbled_status_frame_reruns(board: Board) -> None:
    fake = FakeShell(commands={"true": ("", 0)}, garble_status=1)
    shell = LinuxShell(Console(fake, name="fake"), board)
    assert shell.run("true").ok
    assert fake.ran == ["true", "true"]


def test_shell_output_that_fails_its_checksum_is_read_again(board: Board) -> None:
    fake = FakeShell(commands={"cat /etc/firmware-version": ("1.2.0\n", 0)}, garble_output=1)
    shell = LinuxShell(Console(fake, name="fake"), board)
    assert shell.read_file("/etc/firmware-version") == "1.2.0\n"
    assert len(fake.ran) == 2


def test_json_read_garbled_once_then_clean_gives_the_clean_value(board: Board) -> None:
    fake = FakeShell(commands={"/sbin/fwinfo": (FWINFO + "\n", 0)}, garble_output=1)
    shell = LinuxShell(Console(fake, name="fake"), board)
    assert shell.read_json("/sbin/fwinfo") == json.loads(FWINFO)
    assert fake.ran == ["/sbin/fwinfo", "/sbin/fwinfo"]


def test_json_read_of_a_device_that_prints_no_json_raises(board: Board) -> None:
    fake = FakeShell(commands={"/sbin/fwinfo": ("fwinfo: no slots\n", 0)})
    shell = LinuxShell(Console(fake, name="fake"), board)
    with pytest.raises(VerifyError, match="did not print JSON"):
        shell.read_json("/sbin/fwinfo")


def test_long_lines_that_wrap_at_the_terminal_width_still_pass_the_echo_check(board: Board) -> None:
    fake = FakeShell(commands={"echo " + "x" * 150: ("x" * 150 + "\n", 0)}, width=40)
    shell = LinuxShell(Console(fake, name="fake"), board)
    assert shell.check("echo " + "x" * 150) == "x" * 150


def test_a_noisy_line_that_never_clears_gives_up_with_a_typed_error(board: Board) -> None:
    from toolkit.errors import DeviceTimeout

    fake = FakeShell(commands={"true": ("", 0)}, garble_status=99)
    shell = LinuxShell(Console(fake, name="fake"), board, attempts=3)
    with pytest.raises(DeviceTimeout, match="cleanly in 3 tries"):
        shell.run("true")


def test_uboot_fit_messages_are_not_a_prompt() -> None:
    console = Console(FakeTransport())
    console.transport.feed(b"## Loading kernel from FIT Image at 40400000 ...\r\n## ")  # type: ignore[attr-defined]
    assert console.try_expect(prompt_at_end("# "), 0.2) is None
    console.transport.feed(b"\r\nroot@es-virt:/# ")  # type: ignore[attr-defined]
    assert console.try_expect(prompt_at_end("# "), 0.5) is not None


def test_wait_boot_does_not_take_hash_hash_for_the_shell(board: Board) -> None:
    fake = FakeShell(commands={"echo done": ("done\n", 0)})
    fake.feed(b"Starting kernel ...\r\n## Loading ...\r\n## ")
    fake.feed(b"\r\n[    1.0] init\r\nroot@es-virt:/# \x1b[6n", delay=0.8)
    shell = LinuxShell(Console(fake, name="fake"), board)
    shell.wait_boot(timeout=5)
    assert fake.sent.startswith(b"\x03")  # nothing was typed before the prompt (Ctrl-C: the sync)
    assert "[    1.0] init" in shell.console.transcript_text()
    assert shell.check("echo done") == "done"


def test_boot_is_typed_echo_checked_and_entered_once(board: Board) -> None:
    fake = NoisyUBoot(at_prompt=True, bad_echo_at=2)
    uboot = UBoot(Console(fake, name="fake"), board)
    uboot.boot()
    uboot.wait_prompt(2.0)
    boots = [
        line
        for line in fake.lines
        if line.strip() == str(board.get("console.boot_command", "boot"))
    ]
    assert len(boots) == 1  # the garbled first try got Ctrl-C, never Enter
    assert fake.sent.count(b"\x03") >= 1


def test_the_shell_helper_is_typed_once_and_again_after_a_reboot(board: Board) -> None:
    from toolkit.target.shell import HELPER

    fake = FakeShell(commands={"true": ("", 0), "touch /tmp/x": ("", 0)})
    shell = LinuxShell(Console(fake, name="fake"), board)
    assert shell.run("true").ok and shell.run("true").ok
    assert fake.lines.count(HELPER) == 1
    assert all(len(line) < 60 for line in fake.lines if line != HELPER)  # short lines
    fake.forget()  # the device rebooted: a new shell without the helper
    assert shell.run("touch /tmp/x", idempotent=False).ok  # it never ran, so it may be typed again
    assert fake.lines.count(HELPER) == 2
    assert fake.ran == ["true", "true", "touch /tmp/x"]


def test_enter_taken_sees_the_newline_and_consumes_nothing(board: Board) -> None:
    transport = FakeTransport()
    uboot = UBoot(Console(transport, name="fake"), board)
    assert not uboot.enter_taken(wait=0.1)  # nothing came back: the Enter was lost
    transport.feed(b"version")
    assert not uboot.enter_taken(wait=0.1)  # an echo, but no newline yet
    transport.feed(b"\r\nU-Boot 2023.01", delay=0.05)
    assert uboot.enter_taken(wait=5.0)
    assert uboot.console.pending_text.startswith("version\n")  # left for the answer's parser


def test_the_helper_stays_with_the_shell_not_with_each_shell_object(board: Board) -> None:
    from toolkit.target.shell import HELPER

    fake = FakeShell(commands={"true": ("", 0)})
    console = Console(fake, name="fake")
    # The strategy hands out a new LinuxShell per request (every HIL test's fixture).
    for _ in range(3):
        assert LinuxShell(console, board).run("true").ok
    assert fake.lines.count(HELPER) == 1
    fake.forget()  # the device rebooted behind our back: its new shell has no helper
    assert LinuxShell(console, board).run("true").ok
    assert fake.lines.count(HELPER) == 2
    assert fake.ran == ["true"] * 4
    other = Console(FakeShell(commands={"true": ("", 0)}), name="another")
    assert LinuxShell(other, board).run("true").ok  # another console types its own
