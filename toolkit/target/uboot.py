"""The U-Boot driver: stop autoboot, sync the prompt, run commands, read device state.

Everything board-specific comes from the board profile (``[console]`` in
``firmware/boards/<board>.toml``): the prompt, the interrupt key, how often to send it, and how
long to try. Nothing here knows which board it talks to.

Why the interrupt does not wait for the banner: on real benches the banner is often late (the
adapter was plugged in after power-on), garbled (wrong baud for the first bytes, line noise) or
already gone (the board was powered before we opened the port). So we watch for it, but what
we actually do is keep sending the interrupt key (and now and then a newline) until the prompt
answers. The prompt is matched at the start of a line because ``crc32`` prints ``==> ``.

Commands run through the one :class:`~toolkit.target.runner.Runner`: the line
``echo rk-b''eg.N; CMD; echo rk-rc=$?-$?.N`` is typed and its echo checked before Enter; the
quotes keep the begin marker in the echoed line different from the one printed, and ``$?`` is
a number only in the output. U-Boot cannot checksum a command's output, so the markers and the
status are what is checked, and every *read* of device state (``version``, ``printenv``,
``md.b``) is asked twice and believed only when both answers agree (:meth:`UBoot.read`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from toolkit.boards import Board
from toolkit.errors import DeviceCommandError, DeviceError, DeviceTimeout
from toolkit.protocol.console import CommandResult, Console
from toolkit.target.runner import Corrupted, Frame, Runner

_CRC32 = re.compile(r"crc32 for [0-9a-fA-F]+ \.\.\. [0-9a-fA-F]+ ==> ([0-9a-fA-F]{8})")
_CRC32_RANGE = re.compile(
    r"^crc32 for ([0-9a-fA-F]+) \.\.\. ([0-9a-fA-F]+) ==> ([0-9a-fA-F]{8})$", re.M
)
#: ``crc32`` commands typed on one line by :meth:`UBoot.crc32_many` (short enough for a noisy
#: line, long enough to save most round trips).
CRC32_PER_LINE = 4
_ENV_LINE = re.compile(r"^([A-Za-z0-9_.:\-]+)=(.*)$")
#: Reads of device state: how many answers to collect before two agree.
READS = 4


class UBoot(Runner):
    """U-Boot on ``console``, the way ``board``'s profile says."""

    what = "U-Boot"

    def __init__(self, console: Console, board: Board, *, attempts: int | None = None) -> None:
        super().__init__(console, str(board.require("console.uboot_prompt")))
        if attempts is not None:
            self.attempts = attempts
        self.board = board
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
        self.banner_seen = False
        self.boot_log = ""

    @property
    def prompt_pattern(self) -> str:
        """The prompt at the start of a line (``\\n=> ``), as matched in clean text."""
        return "\n" + self.prompt

    # --- getting to the prompt -------------------------------------------------------------

    def interrupt_autoboot(
        self, timeout: float | None = None, on_banner: Callable[[], None] | None = None
    ) -> str:
        """Stop autoboot and leave U-Boot at a synced, empty prompt. Returns the boot log seen.

        Keeps sending the board's interrupt key every ``console.interrupt_interval`` s (and a
        newline every ``console.interrupt_newline_interval`` s) until the prompt answers,
        whether or not a banner was seen (``on_banner`` is called when the first one is).
        Raises :class:`~toolkit.errors.DeviceTimeout` after
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
            if not self.banner_seen and on_banner is not None:
                on_banner()
            self.banner_seen = True  # a banner: U-Boot is alive; keep pressing the key
        self.boot_log = "".join(seen)
        self.sync(timeout=max(1.0, min(10.0, deadline - time.monotonic())))
        return self.boot_log

    def sync_prompt(self, timeout: float = 5.0, attempts: int = 3) -> None:
        """Flush garbage and half-typed input, and confirm the prompt answers a unique echo."""
        self.sync(timeout=timeout, attempts=attempts)

    def answers(self, timeout: float = 2.0) -> bool:
        """True if U-Boot's prompt answers one sync echo within ``timeout``."""
        try:
            self.sync(timeout=timeout, attempts=1)
        except DeviceTimeout:
            return False
        return True

    def boot(self) -> None:
        """Type the board's ``console.boot_command`` (the same ``bootcmd`` autoboot runs),
        echo-checked; returns as soon as Enter is pressed (U-Boot hands over to Linux)."""
        self.enter(str(self.board.get("console.boot_command", "boot")))

    def reset(self) -> None:
        """``reset``, echo-checked: the board restarts from its first stage."""
        self.enter("reset")

    # --- the runner's framing ------------------------------------------------------------------

    def frame(self, cmd: str, nonce: str) -> Frame:
        # The status is printed twice: one flipped bit must not turn "0" into "1" (a good
        # write reported as failed) unseen; two copies that differ are a damaged frame.
        line = f"echo rk-b''eg.{nonce}; {cmd}; echo rk-rc=$?-$?.{nonce}"
        end = re.compile(rf"rk-rc=(\d+)-(\d+)\.{nonce}(?=\n)")
        return Frame(line, f"\nrk-beg.{nonce}\n", end, nonce)

    def parse(self, frame: Frame, before: str, end: re.Match[str]) -> CommandResult:
        begin = frame.begin
        at = before.find(begin)
        if at < 0 or before.find(begin, at + 1) >= 0:
            raise Corrupted("no intact begin marker")
        if end.group(1) != end.group(2):
            raise Corrupted("the two copies of the status differ")
        # The output's last newline is the one before the end marker's line.
        return CommandResult(int(end.group(1)), before[at + len(begin) :].removesuffix("\n"))

    # --- commands ------------------------------------------------------------------------

    def run_status(
        self, cmd: str, timeout: float = 10.0, *, idempotent: bool = True
    ) -> CommandResult:
        """Run ``cmd``; its exit status (hush's ``$?``) and output (see :meth:`Runner.execute`)."""
        return self.execute(cmd, timeout, idempotent=idempotent)

    def run(self, cmd: str, timeout: float = 10.0, *, idempotent: bool = True) -> str:
        """Run ``cmd``; its output if ``$?`` is 0, else :class:`~toolkit.errors.DeviceCommandError`
        (an unknown command, a usage text and a failing command all have status 1)."""
        return self.check(cmd, timeout, idempotent=idempotent)

    run_ok = run

    def read_status(self, cmd: str, timeout: float = 10.0) -> CommandResult:
        """Status and output of a command that reads device state, believed when two answers
        agree.

        U-Boot cannot checksum what it prints, so a flipped bit inside the output would pass
        the markers; asking again and comparing catches it (the same flip twice is
        vanishingly unlikely). Raises :class:`~toolkit.errors.DeviceCommandError` when no two
        of :data:`READS` answers agree.
        """
        answers: list[CommandResult] = []
        for _ in range(READS):
            result = self.execute(cmd, timeout)
            if result in answers:
                return result
            answers.append(result)
        raise DeviceCommandError(
            f"U-Boot answered {cmd!r} differently {READS} times (a noisy line?)",
            last_output=answers[-1].output,
        )

    def read(self, cmd: str, timeout: float = 10.0) -> str:
        """:meth:`read_status`'s output; :class:`~toolkit.errors.DeviceCommandError` on status != 0."""
        result = self.read_status(cmd, timeout)
        if not result.ok:
            raise DeviceCommandError(
                f"U-Boot: {cmd!r} failed (status {result.exit_status})", last_output=result.output
            )
        return result.output

    # --- typed helpers -----------------------------------------------------------------

    def version(self) -> str:
        """The ``version`` text (first line: ``U-Boot 2023.01...``)."""
        return self.read("version").strip()

    def env(self) -> dict[str, str]:
        """``printenv`` as a dict. Lines that do not start a new ``name=`` continue a value."""
        env: dict[str, str] = {}
        last: str | None = None
        for line in self.read("printenv", timeout=20.0).split("\n"):
            match = _ENV_LINE.match(line)
            if match:
                last = match.group(1)
                env[last] = match.group(2)
            elif line.startswith("Environment size:") or not line:
                last = None if line else last
            elif last is not None:
                env[last] += "\n" + line
        return env

    def getenv(self, name: str) -> str | None:
        """One variable, read twice (``None`` when it is not set)."""
        result = self.read_status(f"printenv {name}")
        for line in result.output.split("\n") if result.ok else []:
            match = _ENV_LINE.match(line)
            if match and match.group(1) == name:
                return match.group(2)
        return None

    def setenv(self, name: str, value: str | None = None) -> None:
        """``setenv name value`` (no value: delete it); in RAM, not saved."""
        self.check(f"setenv {name}" + (f" {value}" if value is not None else ""), 10.0)

    def crc32(self, addr: int | str, length: int, timeout: float = 60.0) -> int:
        """U-Boot's ``crc32 addr len`` of RAM, parsed (same value as ``zlib.crc32``)."""
        start = int(addr, 0) if isinstance(addr, str) else addr
        output = self.check(f"crc32 {start:#x} {length:#x}", timeout=timeout)
        match = _CRC32.search(output)
        if match is None:
            raise DeviceCommandError(
                f"unexpected crc32 output for {start:#x}+{length:#x}", last_output=output
            )
        return int(match.group(1), 16)

    def crc32_many(
        self, ranges: list[tuple[int, int]], timeout: float = 60.0
    ) -> dict[tuple[int, int], int]:
        """``crc32`` of many RAM ranges ``(addr, length)``, a few per typed line; each answer
        is matched to its range by the addresses U-Boot prints with it. A range whose answer
        did not come back legibly is left out (U-Boot cannot checksum what it prints: callers
        use these sums to *skip* work, and check what they wrote anyway)."""
        sums: dict[tuple[int, int], int] = {}
        wanted = {(a, a + n - 1): (a, n) for a, n in ranges if n > 0}
        for at in range(0, len(ranges), CRC32_PER_LINE):
            batch = [(a, n) for a, n in ranges[at : at + CRC32_PER_LINE] if n > 0]
            if not batch:
                continue
            line = "; ".join(f"crc32 {a:#x} {n:#x}" for a, n in batch)
            try:
                output = self.check(line, timeout=timeout * len(batch))
            except DeviceError:
                continue
            for match in _CRC32_RANGE.finditer(output):
                key = wanted.get((int(match.group(1), 16), int(match.group(2), 16)))
                if key is not None:
                    sums[key] = int(match.group(3), 16)
        return sums

    def crc32_is(self, addr: int, length: int, expected: int, timeout: float = 60.0) -> bool:
        """True if RAM holds ``expected``; a mismatch is asked again (noise on the answer)."""
        for _ in range(2):
            try:
                if self.crc32(addr, length, timeout=timeout) == expected:
                    return True
            except DeviceCommandError:
                continue
        return False
