"""The U-Boot dialogue: stop autoboot, sync the prompt, run commands, read results.

Everything board-specific comes from the board profile (``[console]`` in
``firmware/boards/<board>.toml``): the prompt, the interrupt key, how often to send it, and how
long to try. Nothing here knows which board it talks to.

Why the interrupt does not wait for the banner: on real benches the banner is often late (the
adapter was plugged in after power-on), garbled (wrong baud for the first bytes, line noise) or
already gone (the board was powered before we opened the port). So we watch for it, but what
we actually do is keep sending the interrupt key (and now and then a newline) until the prompt
answers. The prompt is matched as ``"\\n" + prompt`` because ``crc32`` prints ``==> ``.
"""

from __future__ import annotations

import re
import secrets
import time

from toolkit.boards import Board
from toolkit.errors import DeviceCommandError, DeviceTimeout
from toolkit.protocol.console import CommandResult, Console

# Output that means U-Boot refused a command even when a status is not available.
_DEFAULT_ERRORS = ("Unknown command '", "syntax error")
_CRC32 = re.compile(r"crc32 for [0-9a-fA-F]+ \.\.\. [0-9a-fA-F]+ ==> ([0-9a-fA-F]{8})")
_ENV_LINE = re.compile(r"^([A-Za-z0-9_.:\-]+)=(.*)$")


def _strip_echo(text: str, command: str) -> str:
    """Remove the echoed command line (and anything typed before it) from ``text``."""
    first, sep, rest = text.partition("\n")
    if first.rstrip().endswith(command.strip()):
        return rest if sep else ""
    at = text.find(command)
    if at >= 0:
        newline = text.find("\n", at + len(command))
        return text[newline + 1 :] if newline >= 0 else ""
    return rest if sep else text


class UBoot:
    """Talk to U-Boot on ``console`` the way ``board``'s profile says."""

    def __init__(self, console: Console, board: Board) -> None:
        self.console = console
        self.board = board
        self.prompt: str = board.require("console.uboot_prompt")
        self.interrupt_key: str = board.require("console.interrupt")
        self.interrupt_interval = float(board.get("console.interrupt_interval", 0.1))
        self.interrupt_timeout = float(board.require("console.interrupt_timeout"))
        # A newline now and then makes an already-idle prompt answer with a fresh one.
        self.newline_interval = float(board.get("console.interrupt_newline_interval", 0.5))
        self.banners: list[str] = [
            b
            for b in (board.get("console.uboot_banner"), board.get("console.autoboot_banner"))
            if b
        ]
        self.error_texts: tuple[str, ...] = tuple(
            board.get("console.uboot_errors", list(_DEFAULT_ERRORS))
        )
        self.banner_seen = False
        self.boot_log = ""

    @property
    def prompt_pattern(self) -> str:
        """The prompt at the start of a line (``\\n=> ``), as matched in clean text."""
        return "\n" + self.prompt

    # --- getting to the prompt -------------------------------------------------------------

    def interrupt_autoboot(self, timeout: float | None = None) -> str:
        """Stop autoboot and leave U-Boot at a synced, empty prompt. Returns the boot log seen.

        Keeps sending the board's interrupt key every ``console.interrupt_interval`` s (and a
        newline every ``console.interrupt_newline_interval`` s) until the prompt answers,
        whether or not a banner was seen. Raises :class:`~toolkit.errors.DeviceTimeout` after
        ``timeout`` (default ``console.interrupt_timeout``) seconds.
        """
        limit = self.interrupt_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        key = self.interrupt_key.encode("utf-8")
        patterns = [self.prompt_pattern, *self.banners]
        seen: list[str] = []
        next_newline = time.monotonic() + self.newline_interval
        while True:
            now = time.monotonic()
            if now >= deadline:
                booted = "Starting kernel" in self.console.tail(200)
                raise DeviceTimeout(
                    f"{self.console.name}: U-Boot prompt {self.prompt!r} did not answer "
                    f"within {limit:g} s",
                    hint=(
                        "the board already booted past U-Boot: power-cycle it and try again"
                        if booted
                        else "check power, the serial port and the board profile's console keys"
                    ),
                    last_output=self.console.tail(),
                )
            if now >= next_newline:
                self.console.write(b"\n")
                next_newline = now + self.newline_interval
            else:
                self.console.write(key)
            found = self.console.try_expect(patterns, min(self.interrupt_interval, deadline - now))
            if found is None:
                continue
            seen.append(found.before + found.text)
            if found.index == 0:
                break
            self.banner_seen = True  # a banner: U-Boot is alive; keep pressing the key
        self.boot_log = "".join(seen)
        self.sync_prompt(timeout=max(1.0, min(10.0, deadline - time.monotonic())))
        return self.boot_log

    def sync_prompt(self, timeout: float = 5.0, attempts: int = 3) -> None:
        """Flush garbage and half-typed input, and confirm the prompt answers a unique echo.

        Sends Ctrl-C (U-Boot drops the current line), then ``echo rk-sync-<random>`` and waits
        for that word on a line of its own followed by the prompt.
        """
        last: DeviceTimeout | None = None
        for _ in range(attempts):
            marker = f"rk-sync-{secrets.token_hex(4)}"
            self.console.write(b"\x03")
            self.console.sendline(f"echo {marker}")
            try:
                self.console.expect(f"\n{marker}\n{self.prompt}", timeout=timeout / attempts)
                return
            except DeviceTimeout as exc:
                last = exc
        assert last is not None
        raise DeviceTimeout(
            f"{self.console.name}: U-Boot prompt does not answer a sync echo",
            hint="line noise or a wrong baud rate?",
            last_output=last.last_output,
        )

    # --- commands ------------------------------------------------------------------------

    def run(self, cmd: str, timeout: float = 10.0) -> str:
        """Run ``cmd`` at the prompt and return its output (no echo, no prompt).

        Raises :class:`~toolkit.errors.DeviceCommandError` when U-Boot says it refused the
        command ("Unknown command", "syntax error", a usage text) and
        :class:`~toolkit.errors.DeviceTimeout` when the prompt does not come back in time.
        """
        self.console.sendline(cmd)
        found = self.console.expect(self.prompt_pattern, timeout=timeout)
        output = _strip_echo(found.before, cmd)
        refused = [e for e in self.error_texts if e in output]
        if "\nUsage:\n" in f"\n{output}\n" and not cmd.lstrip().startswith(("help", "?")):
            refused.append("Usage:")
        if refused:
            raise DeviceCommandError(
                f"U-Boot refused {cmd!r}: {output.strip().splitlines()[0] if output.strip() else refused[0]}",
                last_output=output,
            )
        return output

    def run_status(self, cmd: str, timeout: float = 10.0) -> CommandResult:
        """Run ``cmd`` and capture its exit status with hush's ``$?``.

        The line sent is ``echo rk-b''eg.N; CMD; echo rk-rc=$?.N`` with a random ``N``: the
        quotes keep the begin marker in the echoed line different from the one printed, and
        ``$?`` is a number only in the output, so the echo can never be mistaken for either.
        """
        nonce = secrets.token_hex(4)
        line = f"echo rk-b''eg.{nonce}; {cmd}; echo rk-rc=$?.{nonce}"
        self.console.sendline(line)
        end = re.compile(rf"rk-rc=(\d+)\.{nonce}")
        found = self.console.expect([end, "syntax error"], timeout=timeout)
        if found.index == 1:
            self.console.expect(self.prompt_pattern, timeout=timeout)
            raise DeviceCommandError(
                f"U-Boot: syntax error in {cmd!r}", last_output=self.console.tail()
            )
        self.console.expect(self.prompt_pattern, timeout=timeout)
        text = found.before
        begin = f"rk-beg.{nonce}\n"
        at = text.find(begin)
        output = text[at + len(begin) :] if at >= 0 else _strip_echo(text, line)
        return CommandResult(
            exit_status=int(found.match.group(1)), output=output.removesuffix("\n")
        )

    def run_ok(self, cmd: str, timeout: float = 10.0) -> str:
        """Run ``cmd``; return its output if ``$?`` is 0, else raise DeviceCommandError."""
        result = self.run_status(cmd, timeout=timeout)
        if not result.ok:
            raise DeviceCommandError(
                f"U-Boot command {cmd!r} failed (status {result.exit_status})",
                last_output=result.output,
            )
        return result.output

    # --- typed helpers -----------------------------------------------------------------

    def version(self) -> str:
        """The ``version`` text (first line: ``U-Boot 2023.01...``)."""
        return self.run("version").strip()

    def env(self) -> dict[str, str]:
        """``printenv`` as a dict. Lines that do not start a new ``name=`` continue a value."""
        env: dict[str, str] = {}
        last: str | None = None
        for line in self.run("printenv", timeout=20.0).split("\n"):
            match = _ENV_LINE.match(line)
            if match:
                last = match.group(1)
                env[last] = match.group(2)
            elif line.startswith("Environment size:") or not line:
                last = None if line else last
            elif last is not None:
                env[last] += "\n" + line
        return env

    def crc32(self, addr: int | str, length: int, timeout: float = 60.0) -> int:
        """U-Boot's ``crc32 addr len`` of RAM, parsed (same value as ``zlib.crc32``)."""
        start = int(addr, 0) if isinstance(addr, str) else addr
        output = self.run_ok(f"crc32 {start:#x} {length:#x}", timeout=timeout)
        match = _CRC32.search(output)
        if match is None:
            raise DeviceCommandError(
                f"unexpected crc32 output for {start:#x}+{length:#x}", last_output=output
            )
        return int(match.group(1), 16)
