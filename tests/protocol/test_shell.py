"""LinuxShell against a scripted busybox-like shell (prompt with ESC[6n, echo, markers)."""

from __future__ import annotations

import re
import shlex

import pytest

from toolkit.boards import Board, load_board
from toolkit.errors import DeviceCommandError, DeviceTimeout
from toolkit.protocol import Console, LinuxShell
from toolkit.testing.fake import FakeTransport

PROMPT = b"\r\n~ # \x1b[6n"

# What the fake "runs": command -> (output, status).
COMMANDS = {
    "true": (b"", 0),
    "cat /etc/firmware-version": (b"1.2.0\r\n", 0),
    "printf abc": (b"abc", 0),
    "ls /nope": (b"ls: /nope: No such file or directory\r\n", 1),
    "sha256sum /tmp/x  # checksum": (b"e3b0c442  /tmp/x\r\n", 0),
}


def fake_shell(*, wrap_echo: bool = False, lose_lines: int = 0) -> FakeTransport:
    """``lose_lines``: the first typed command lines vanish (typed before init gave the shell the tty)."""
    fake = FakeTransport()
    fake.respond(b"^\n", PROMPT)

    def run_line(match: re.Match[bytes]) -> bytes:
        line = match.group(0).decode()
        echo = line.rstrip("\n").encode()
        if wrap_echo:  # ash redraws long lines with CRs and spaces at the terminal width
            echo = b"\r\n".join(echo[i : i + 40] for i in range(0, len(echo), 40))
        parts = line.split("; ")
        begin = shlex.split(parts[0])[1]
        cmd = shlex.split(parts[1])[1]
        nonce = re.search(r"__rk_rc=\$\?__(\w+)", line).group(1)  # type: ignore[union-attr]
        output, status = COMMANDS.get(cmd, (f"sh: {cmd}: not found\r\n".encode(), 127))
        return (
            echo
            + b"\r\n"
            + begin.encode()
            + b"\r\n"
            + output
            + f"__rk_rc={status}__{nonce}".encode()
            + PROMPT
        )

    fake.respond(rb"echo [^\n]*\n", run_line, skip=lose_lines)
    return fake


@pytest.fixture
def board() -> Board:
    return load_board("es-virt")


def test_wait_for_shell_presses_enter_until_the_prompt_answers(board: Board) -> None:
    fake = fake_shell()
    fake.feed(b"[    3.141] Run /init as init process\r\n", delay=0.1)
    shell = LinuxShell(Console(fake), board)
    shell.wait_for_shell(timeout=10, poke_interval=0.1)
    assert fake.sent.startswith(b"\n")
    assert shell.run("cat /etc/firmware-version").output == "1.2.0"


def test_wait_for_shell_recovers_from_half_a_line_typed_during_the_boot(
    board: Board, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The start of the first sync line went to the kernel's tty; ash got the rest, with an odd
    quote, and waits at "> " for more. Ctrl-C drops it; the sync is typed again."""
    from toolkit.protocol import shell as shell_module

    monkeypatch.setattr(shell_module, "_SYNC_RETRY", 0.3)
    fake = fake_shell(lose_lines=1)
    fake.respond(rb"echo [^\n]*\n", b"g_1234__'; eval true\r\n> ", times=1)
    fake.respond(b"\x03", b"^C" + PROMPT)
    shell = LinuxShell(Console(fake), board)
    shell.wait_for_shell(timeout=10, poke_interval=0.1)  # before: waited out all 10 s, then failed
    assert fake.sent.count(b"eval true") == 2
    assert b"\x03" in fake.sent
    assert shell.run("cat /etc/firmware-version").output == "1.2.0"


def test_uboot_fit_messages_are_not_a_shell_prompt(board: Board) -> None:
    fake = FakeTransport()
    fake.feed(b"## Loading kernel from FIT Image at 50000000 ...\r\n## ")  # a read cut after "## "
    shell = LinuxShell(Console(fake), board)
    with pytest.raises(DeviceTimeout):
        shell.wait_for_shell(timeout=0.5, poke_interval=0.1)
    assert b"eval" not in fake.sent  # nothing typed into U-Boot's boot


def test_run_captures_exit_status_and_output(board: Board) -> None:
    shell = LinuxShell(Console(fake_shell()), board)
    failed = shell.run("ls /nope")
    assert failed.exit_status == 1
    assert failed.output == "ls: /nope: No such file or directory"
    assert shell.run("nosuch").exit_status == 127
    assert shell.run("printf abc").output == "abc"  # no trailing newline before the marker


def test_run_survives_a_wrapped_echo_and_comments(board: Board) -> None:
    shell = LinuxShell(Console(fake_shell(wrap_echo=True)), board)
    assert shell.check("sha256sum /tmp/x  # checksum") == "e3b0c442  /tmp/x"


def test_check_raises_with_output_on_failure(board: Board) -> None:
    shell = LinuxShell(Console(fake_shell()), board)
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
