"""A Linux shell over the serial console, with exit-status capture.

``run(cmd)`` sends one line::

    echo '__rk''_beg_N__'; eval 'CMD'; echo "__rk_rc=$?__N"

with a random ``N``. The quotes make the begin marker in the *echoed* line differ from the one
the shell prints, and ``$?`` is a number only in the output, so a garbled or wrapped echo can
never be mistaken for either marker. ``eval`` keeps a trailing ``# comment``, a ``&`` or a syntax
error in ``CMD`` from swallowing the end marker (a syntax error is just status 2).

busybox ash sends ``ESC[6n`` (cursor position query) with its prompt; the console's clean text
view drops it, so prompts are matched as plain text. The prompt itself comes from the board
profile (``console.linux_prompt``).
"""

from __future__ import annotations

import re
import secrets
import shlex
import time

from toolkit.boards import Board
from toolkit.errors import DeviceCommandError, DeviceTimeout
from toolkit.protocol.console import CommandResult, Console

_SYNC_RETRY = 5.0  # seconds a sync line may take before it is typed again during a boot


class LinuxShell:
    """Run commands in a root shell on ``console`` (prompt from ``board``'s profile)."""

    def __init__(self, console: Console, board: Board) -> None:
        self.console = console
        self.board = board
        self.prompt: str = board.require("console.linux_prompt")
        self.boot_timeout = float(board.get("console.linux_boot_timeout", 90.0))
        # A prompt is the last thing on its line and nothing follows it (yet); U-Boot's
        # "## Loading kernel ..." cut off after "## " by a read is not one.
        self._prompt_at_end = re.compile(r"(?<!#)" + re.escape(self.prompt) + r"\Z")

    def wait_for_shell(self, timeout: float | None = None, poke_interval: float = 1.0) -> None:
        """Press Enter every ``poke_interval`` s until a shell prompt answers, then sync.

        Raises :class:`~toolkit.errors.DeviceTimeout` (with the console tail) after ``timeout``
        (default ``console.linux_boot_timeout``) seconds.
        """
        limit = self.boot_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        patience = _SYNC_RETRY
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DeviceTimeout(
                    f"{self.console.name}: no Linux shell prompt {self.prompt!r} within {limit:g} s",
                    hint="did the kernel boot? the console tail shows how far it got",
                    last_output=self.console.tail(),
                )
            self.console.sendline()
            if not self.console.try_expect(self._prompt_at_end, min(poke_interval, left)):
                continue
            # A "# " late in the boot log is not always the shell, and a line typed before
            # init hands the tty to the shell can be half lost. So a sync that does not answer
            # in a while is typed again (with a new marker) until the deadline, never waited
            # on forever; each wait twice the one before, for a shell that is merely slow.
            try:
                self.sync(timeout=max(1.0, min(patience, deadline - time.monotonic())))
                return
            except DeviceTimeout:
                if time.monotonic() >= deadline:
                    raise
                # Half a line may have reached the shell (its start went to the kernel's tty
                # before the shell took it over), and ash waits at "> " for a closing quote:
                # Ctrl-C drops that line and brings a fresh prompt.
                self.console.write(b"\x03")
                patience *= 2

    def sync(self, timeout: float = 5.0) -> None:
        """Make sure the shell answers and nothing is left over from earlier output."""
        self.run("true", timeout=timeout)

    def run(self, cmd: str, timeout: float = 30.0) -> CommandResult:
        """Run ``cmd``; return its exit status and output (echo, markers and prompt removed)."""
        nonce = secrets.token_hex(4)
        begin = f"__rk_beg_{nonce}__"
        line = f"echo '__rk''_beg_{nonce}__'; eval {shlex.quote(cmd)}; echo \"__rk_rc=$?__{nonce}\""
        self.console.sendline(line)
        found = self.console.expect(re.compile(rf"__rk_rc=(\d+)__{nonce}"), timeout=timeout)
        # Consume the prompt that follows, so the next command starts clean.
        self.console.expect(self.prompt, timeout=timeout)
        text = found.before
        at = text.find(begin + "\n")
        output = text[at + len(begin) + 1 :] if at >= 0 else text
        return CommandResult(
            exit_status=int(found.match.group(1)), output=output.removesuffix("\n")
        )

    def check(self, cmd: str, timeout: float = 30.0) -> str:
        """Run ``cmd`` and return its output; non-zero status raises DeviceCommandError."""
        result = self.run(cmd, timeout=timeout)
        if not result.ok:
            raise DeviceCommandError(
                f"{cmd!r} exited with status {result.exit_status}",
                last_output=result.output,
            )
        return result.output

    def interrupt(self) -> None:
        """Send Ctrl-C (stop a running command) and resync the prompt."""
        self.console.write(b"\x03")
        self.sync()
