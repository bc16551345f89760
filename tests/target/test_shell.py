"""The Linux shell driver against a fake busybox shell: getting to the shell during a boot,
exit status and exact output, and what is not a prompt."""

from __future__ import annotations

import pytest

from toolkit.boards import Board, load_board
from toolkit.errors import DeviceCommandError, DeviceTimeout
from toolkit.protocol.console import Console
from toolkit.target.shell import LinuxShell
from toolkit.testing.fake import FakeTransport
from toolkit.testing.fake_shell import FakeShell

COMMANDS = {
    "true": ("", 0),
    "cat /etc/firmware-version": ("1.2.0\n", 0),
    "printf abc": ("abc", 0),
    "ls /nope": ("ls: /nope: No such file or directory\n", 1),
    "sha256sum /tmp/x  # checksum": ("e3b0c442  /tmp/x\n", 0),
}


@pytest.fixture
def board() -> Board:
    return load_board("es-virt")


class BootingShell(FakeShell):
    """Ignores keys until ``ready`` lines were typed (init has not handed the tty over yet)."""

    def __init__(self, ready: int = 0, **kw: object) -> None:
        super().__init__(commands=COMMANDS, **kw)  # type: ignore[arg-type]
        self.ignored = ready

    def _type(self, char: str) -> None:
        if self.ignored:
            if char == "\n":
                self.ignored -= 1
            return
        super()._type(char)


def test_wait_for_shell_presses_enter_until_the_prompt_answers(board: Board) -> None:
    fake = BootingShell(ready=3)
    fake.feed(b"[    3.141] Run /init as init process\r\n", delay=0.1)
    shell = LinuxShell(Console(fake), board)
    shell.wait_for_shell(timeout=10, poke_interval=0.1)
    assert fake.sent.startswith(b"\n")
    assert shell.run("cat /etc/firmware-version").output == "1.2.0"


def test_wait_for_shell_recovers_from_a_sync_line_that_got_lost(
    board: Board, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first sync line went to the kernel's tty, not the shell: it is typed again (with
    Ctrl-C first, which also drops half a line ash may hold at "> ")."""
    from toolkit.target import shell as shell_module

    monkeypatch.setattr(shell_module, "_SYNC_RETRY", 0.3)
    fake = BootingShell()
    lost = {"left": 1}
    original = fake._execute

    def execute(line: str) -> str:
        if line.startswith("echo rk-sync") and lost["left"]:
            lost["left"] -= 1
            return ""
        return original(line)

    fake._execute = execute  # type: ignore[method-assign]
    shell = LinuxShell(Console(fake), board)
    shell.wait_for_shell(timeout=10, poke_interval=0.1)
    assert fake.sent.count(b"echo rk-sync") >= 2
    assert shell.run("cat /etc/firmware-version").output == "1.2.0"


def test_uboot_fit_messages_are_not_a_shell_prompt(board: Board) -> None:
    fake = FakeTransport()
    fake.feed(b"## Loading kernel from FIT Image at 50000000 ...\r\n## ")  # a read cut after "## "
    shell = LinuxShell(Console(fake), board)
    with pytest.raises(DeviceTimeout):
        shell.wait_for_shell(timeout=0.5, poke_interval=0.1)
    assert b"echo" not in fake.sent  # nothing typed into U-Boot's boot


def test_run_captures_exit_status_and_output(board: Board) -> None:
    shell = LinuxShell(Console(FakeShell(commands=COMMANDS)), board)
    failed = shell.run("ls /nope")
    assert failed.exit_status == 1
    assert failed.output == "ls: /nope: No such file or directory"
    assert shell.run("nosuch").exit_status == 127
    assert shell.run("printf abc").output == "abc"  # no trailing newline before the marker


def test_run_survives_a_wrapped_echo_and_comments(board: Board) -> None:
    shell = LinuxShell(Console(FakeShell(commands=COMMANDS, width=40)), board)
    assert shell.check("sha256sum /tmp/x  # checksum") == "e3b0c442  /tmp/x"


def test_check_raises_with_output_on_failure(board: Board) -> None:
    shell = LinuxShell(Console(FakeShell(commands=COMMANDS)), board)
    with pytest.raises(DeviceCommandError) as info:
        shell.check("ls /nope")
    assert "status 1" in str(info.value)
    assert "No such file" in (info.value.last_output or "")


def test_wait_for_shell_times_out_with_the_boot_log(board: Board) -> None:
    fake = FakeTransport()
    fake.feed(b"[    1.0] Kernel panic - not syncing: VFS\r\n")
    shell = LinuxShell(Console(fake), board)
    with pytest.raises(DeviceTimeout) as info:
        shell.wait_for_shell(timeout=0.3, poke_interval=0.1)
    assert "Kernel panic" in (info.value.last_output or "")


class _Device:
    """fwinfo, and the file commands LinuxShell.read_long uses to read an answer in pieces."""

    def __init__(self, fwinfo: str) -> None:
        self.fwinfo = fwinfo
        self.files: dict[str, str] = {}

    def __call__(self, cmd: str) -> tuple[str, int]:
        import re

        if cmd == "/sbin/fwinfo":
            return self.fwinfo, 0
        if m := re.fullmatch(r"\( (.+) \) >(\S+) 2>&1; echo \$\?; wc -c <\S+", cmd):
            output, status = self(m.group(1))
            self.files[m.group(2)] = output
            return f"{status}\n{len(output.encode())}\n", 0
        if m := re.fullmatch(r"dd if=(\S+) bs=(\d+) skip=(\d+) count=1 2>/dev/null", cmd):
            size, skip = int(m.group(2)), int(m.group(3))
            return self.files[m.group(1)][skip * size : (skip + 1) * size], 0
        if m := re.fullmatch(r"rm -f (\S+)", cmd):
            self.files.pop(m.group(1), None)
            return "", 0
        return f"sh: {cmd}: not found\n", 127


class _ShortAnswersOnly(FakeShell):
    """A line so noisy that no answer longer than ``limit`` characters comes through whole."""

    limit: int = 200

    def _run(self, cmd: str) -> tuple[str, int]:
        output, status = super()._run(cmd)
        if len(output) > self.limit:
            self.garble_output += 1
        return output, status


def test_a_long_answer_that_never_comes_through_whole_is_read_in_checksummed_pieces(
    board: Board,
) -> None:
    import json

    from toolkit.target import shell as shell_module

    info = {"board": "es-virt", "slots": {n: {"ok": True, "sha256": "ab" * 32} for n in "AB"}}
    text = json.dumps(info, indent=1) + "\n"
    assert len(text) > 2 * shell_module.PIECE
    device = _Device(text)
    fake = _ShortAnswersOnly(commands=device)
    shell = LinuxShell(Console(fake, name="fake"), board)
    assert shell.read_json("/sbin/fwinfo") == info
    pieces = [c for c in fake.ran if c.startswith("dd ")]
    assert len(pieces) == -(-len(text.encode()) // shell_module.PIECE)
    assert device.files == {}  # the kept answer was removed afterwards


def test_a_boot_whose_starting_kernel_line_was_garbled_is_still_followed(board: Board) -> None:
    fake = FakeShell(commands={"echo done": ("done\n", 0)})
    fake.feed(b"## Loading kernel ...\r\nStarting kerne\xec ...\r\n\r\n")  # one flipped bit
    fake.feed(b"[    0.000000] Booting Linux on physical CPU 0x0\r\n", delay=0.3)
    fake.feed(b"[    1.0] Run /init\r\nroot@es-virt:/# \x1b[6n", delay=0.6)
    shell = LinuxShell(Console(fake, name="fake"), board)
    shell.wait_boot(timeout=10)
    assert shell.check("echo done") == "done"
