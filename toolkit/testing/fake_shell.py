"""A fake busybox shell on a fake serial line, for testing console drivers without QEMU.

:class:`FakeShell` echoes what is typed (a long line wraps at ``width`` columns, as busybox's
line editor does on a console that reports no size), answers Enter with a prompt followed by
ash's ``ESC[6n``, drops the line on Ctrl-C, and understands two kinds of line:

- ``echo WORD`` (the prompt sync of :class:`toolkit.target.runner.Runner`), with shell quotes;
- the helper function of :class:`toolkit.target.shell.LinuxShell` and its calls
  ``rk_ N 'CMD'`` (begin marker, output, end marker with the status and the sha256 of the
  output), answered as a real shell would answer them (``rk_: not found`` before the helper
  was typed; :meth:`FakeShell.forget` is a reboot).

Commands are ``{command line: (output, status)}`` or a callable ``(cmd) -> (output, status)``.
Faults for the noisy-line tests, each a count of how many times it happens:
``garble_echo`` (one echoed character arrives flipped), ``garble_output`` (one character of a
command's output flips on the way back), ``garble_status`` (the end marker arrives damaged).
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from toolkit.target.shell import HELPER
from toolkit.testing.fake import FakeTransport

ShellCommand = Callable[[str], tuple[str, int]]
_CALL = re.compile(r"rk_ (?P<nonce>\w+) (?P<cmd>.*)")


def _flip(text: str, at: int) -> str:
    at = min(max(0, at), len(text) - 1)
    return text[:at] + chr(ord(text[at]) ^ 0x04) + text[at + 1 :]


@dataclass
class FakeShell(FakeTransport):
    """A tiny busybox ash at an idle prompt (see the module docstring)."""

    commands: Mapping[str, tuple[str, int]] | ShellCommand = field(default_factory=dict)
    prompt: str = "root@es-virt:/# "
    width: int = 80
    garble_echo: int = 0
    garble_output: int = 0
    garble_status: int = 0

    def __post_init__(self) -> None:
        super().__init__(echo=False)
        self.lines: list[str] = []  # every line executed (after Enter), for assertions
        self.ran: list[str] = []  # every framed command run, for assertions
        self._line = ""
        self.helper = False  # the helper function was defined in this shell

    def forget(self) -> None:
        """A new shell (a reboot): the helper function is gone."""
        self.helper = False

    def on_write(self, data: bytes) -> None:
        for char in data.decode("latin-1"):
            self._type(char)

    def _type(self, char: str) -> None:
        if char == "\x03":
            self._line = ""
            self._rx += b"^C\r\n" + self._prompt()
        elif char in "\r\n":
            line, self._line = self._line, ""
            self._rx += (
                b"\r\n" + self._execute(line).replace("\n", "\r\n").encode() + self._prompt()
            )
        else:
            echo = char
            if self.garble_echo and len(self._line) == 20:
                self.garble_echo -= 1
                echo = _flip(char, 0)  # the device got the right character; its echo flips
            self._line += char
            if (len(self.prompt) + len(self._line)) % self.width == 0:
                echo += "\r\n"
            self._rx += echo.encode("latin-1")

    def _prompt(self) -> bytes:
        return self.prompt.encode() + b"\x1b[6n"

    def _run(self, cmd: str) -> tuple[str, int]:
        if callable(self.commands):
            return self.commands(cmd)
        return self.commands.get(
            cmd, (f"sh: {cmd.split()[0] if cmd.split() else cmd}: not found\n", 127)
        )

    def _execute(self, line: str) -> str:
        if not line.strip():
            return ""
        self.lines.append(line)
        if line == HELPER:
            self.helper = True
            return ""
        framed = _CALL.fullmatch(line)
        if framed is not None:
            if not self.helper:
                return "sh: rk_: not found\n"
            cmd = shlex.split(framed.group("cmd"))[0]
            self.ran.append(cmd)
            output, status = self._run(cmd)
            digest = hashlib.sha256(output.encode()).hexdigest()
            shown = output
            if self.garble_output and output:
                self.garble_output -= 1
                shown = _flip(output, len(output) // 2)
            end = f"_rk_e_{framed.group('nonce')}_{status}_{status}_{digest}  -"
            if self.garble_status:
                self.garble_status -= 1
                end = _flip(end, 3)
            return f"_rkb_{framed.group('nonce')}\n{shown}\n{end}\n"
        argv = shlex.split(line)
        if argv and argv[0] == "echo":
            return " ".join(argv[1:]) + "\n"
        output, _ = self._run(line)
        return output
