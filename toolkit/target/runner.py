"""One command runner for every console dialogue (U-Boot, a Linux shell): typed, framed, checked.

A serial line can flip, drop or repeat any byte, in either direction. What that must never do
is run a command we did not mean, or hand back an answer the device did not give. So every
command goes through :meth:`Runner.execute`, which:

1. **types the line without Enter** and waits until its echo has come back exactly. A garbled
   echo means the device may hold a garbled line: Ctrl-C drops it (both U-Boot and ash discard
   the line being edited), the prompt is resynced and the line typed again. Enter is never
   pressed on a line whose echo differs from what we meant.
2. **frames the answer**: the line makes the device print a begin marker, the output and an end
   marker that carries the exit status (and, where the device can compute one, a checksum of
   the output). The markers carry a fresh random nonce, and the echoed line is written so that
   it can never be taken for either marker (``'rk''beg'`` is ``rkbeg`` only once the shell has
   run it; ``$?`` is a number only in the output).
   **Enter is checked too**: if no newline comes back within :data:`ENTER_ECHO` s, the Enter
   was lost or flipped into another character, so the line still sits in the device's editor
   and nothing runs. Ctrl-C drops it and the line is typed again (for an idempotent command;
   one that is not is left to its own timeout), instead of waiting out the whole timeout.
3. **checks the frame**: no begin marker, an end marker that does not parse, a checksum that
   does not match, or the prompt coming back without an end marker all mean the answer was
   damaged on its way. An idempotent command (the default: reads, ``setenv``, writing the same
   block again) is then run again; anything else raises. A damaged answer is never returned.

A prompt that is **believed** (:attr:`Runner.believed`: a driver the strategy handed out
without a round trip, because the console has been at this prompt since the last answer and
nobody typed since) is proven by the first command itself: its begin marker, carrying the
fresh nonce, can only come from the prompt that ran the line. When the marker does not come
within :data:`PROOF_TIMEOUT` s, the belief's owner checks and restores the state (Ctrl-C, a
check, a boot if need be) and the command is typed again. A command that is not idempotent is
never typed at a believed prompt: the state is proven first.

Prompt waits live here too (:func:`prompt_at_end`, :meth:`Runner.sync`). Two rules from the
field: a prompt is only the last thing on its line with nothing after it, and ``# `` right
after another ``#`` is U-Boot's ``## Loading kernel ...`` cut off by a read, not a shell.
busybox ash's ``ESC[6n`` after its prompt is dropped by the console's clean text view.

Subclasses (:class:`toolkit.target.uboot.UBoot`, :class:`toolkit.target.shell.LinuxShell`) say
only how a line is framed and how a framed answer is checked.
"""

from __future__ import annotations

import re
import secrets
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from toolkit.errors import DeviceCommandError, DeviceTimeout
from toolkit.protocol.console import CommandResult, Console

#: Tries of one command before giving up on a line that keeps garbling it ...
ATTEMPTS = 6
#: ... plus one for every this many characters of the typed line: a long line (a key to
#: authorize is ~200 characters) crosses a noisy cable twice, echo included, so at a bit-error
#: rate of 3e-4 fewer than half of its tries come back clean.
CHARS_PER_EXTRA_ATTEMPT = 40
#: Seconds an echo may stall (after it started) before it counts as garbled.
ECHO_QUIET = 0.3
#: Seconds of silence after a prompt before we believe the output really ended there.
PROMPT_QUIET = 0.3
#: Seconds the device may take to echo the Enter of a typed line before we take it as lost.
ENTER_ECHO = 2.0
#: Seconds a believed prompt may take to start a command's frame before the state is checked.
PROOF_TIMEOUT = 2.0
_NEVER = re.compile(r"(?!)")
#: Matches (empty, at the start, so nothing is consumed) once a newline is in the received text.
_NEWLINE_ARRIVED = re.compile(r"\A(?=[^\n]*\n)")


def prompt_at_end(prompt: str) -> re.Pattern[str]:
    """A prompt that is the last thing received, not preceded by ``#`` (``## `` is U-Boot's)."""
    return re.compile(r"(?<!#)" + re.escape(prompt) + r"\Z")


def echo_pattern(line: str) -> re.Pattern[str]:
    """``line`` as its echo appears in clean text: a terminal may break a long line anywhere
    (busybox's line editor wraps at 80 columns on a serial console that reports no size)."""
    return re.compile(r"\n?".join(re.escape(char) for char in line))


#: Per console: (its write count, the prompt) when a runner last saw that prompt come back to
#: what it typed. Equal write counts mean nobody has typed since (see :meth:`Runner.at_rest`).
_AT_REST: weakref.WeakKeyDictionary[Console, tuple[int, str]] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Frame:
    """What one framed command line looks like: the line to type, the begin marker's text
    (on a line of its own) and the end marker."""

    line: str
    begin: str
    end: re.Pattern[str]
    nonce: str


class Corrupted(Exception):
    """A framed answer that did not arrive intact (internal: leads to a re-run or an error).

    ``ran`` is False only when the command certainly did not run (the device said it does not
    know the line's first word), so even a command that is not idempotent may be typed again.
    """

    def __init__(self, problem: str, *, ran: bool = True) -> None:
        super().__init__(problem)
        self.ran = ran


class Runner:
    """Type, frame and check commands at ``prompt`` on ``console`` (see the module docstring).

    Subclasses implement :meth:`frame` and :meth:`parse`.
    """

    #: What a person would call the other end, for messages ("U-Boot", "the Linux shell").
    what = "the device"

    def __init__(self, console: Console, prompt: str, *, attempts: int = ATTEMPTS) -> None:
        self.console = console
        self.prompt = prompt
        self.attempts = attempts
        self.prompt_end = prompt_at_end(prompt)
        #: Set when the prompt is believed, not proven (see the module docstring): called to
        #: check and restore the state, it returns the console to use from then on.
        self.believed: Callable[[], Console] | None = None

    # --- what subclasses say ------------------------------------------------------------------

    def frame(self, cmd: str, nonce: str) -> Frame:
        """The line that runs ``cmd`` between markers carrying ``nonce``."""
        raise NotImplementedError

    def parse(self, frame: Frame, before: str, end: re.Match[str]) -> CommandResult:
        """The result from the text before the end marker; :class:`Corrupted` if damaged."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Called before each try of a command (a driver may set up its helper here)."""

    def did_not_run(self, text: str) -> bool:
        """True if ``text`` (what came back, no end marker) proves the line never ran."""
        return False

    # --- prompts ----------------------------------------------------------------------------

    def sync(self, timeout: float = 5.0, attempts: int = 3) -> None:
        """Drop any half-typed line and confirm the prompt answers a unique echo.

        Sends Ctrl-C, then ``echo rk-sync-N`` typed as ``rk-sy''nc-N`` on devices whose
        shell removes quotes, and waits for the word on a line of its own followed by the
        prompt. Raises :class:`~toolkit.errors.DeviceTimeout` when it never does.
        """
        last: DeviceTimeout | None = None
        for _ in range(attempts):
            marker = f"rk-sync-{secrets.token_hex(4)}"
            self.console.write(b"\x03")
            self.console.sendline(f"echo {marker}")
            answer = re.compile(r"\n" + re.escape(marker) + r"\n[^\n]*?" + re.escape(self.prompt))
            try:
                self.console.expect(answer, timeout=timeout / attempts)
                self.rested()
                return
            except DeviceTimeout as exc:
                last = exc
        assert last is not None
        raise DeviceTimeout(
            f"{self.console.name}: {self.what} does not answer a sync echo at its prompt",
            hint="line noise or a wrong baud rate?",
            last_output=last.last_output,
        )

    def recover(self) -> None:
        """Drop whatever half-typed line or garbage is there and get a synced prompt."""
        last: Exception | None = None
        for _ in range(4):
            try:
                self.console.write(b"\x03")
                self.console.flush_input(quiet=0.1, timeout=1.0)
                self.sync(timeout=6.0)
                return
            except DeviceTimeout as exc:
                last = exc
        raise DeviceTimeout(
            f"{self.what} stopped answering",
            hint="check the serial line",
            last_output=self.console.tail(),
        ) from last

    def rested(self) -> None:
        """Note that the prompt just came back to what we typed (see :meth:`at_rest`)."""
        _AT_REST[self.console] = (self.console.writes, self.prompt)

    def at_rest(self) -> bool:
        """True when the console has been at this prompt since a runner last saw it answer:
        nothing typed since (by anyone, through this console) and nothing received since.
        What a strategy needs to hand out a driver whose prompt is only believed."""
        last_answer = _AT_REST.get(self.console)
        return last_answer == (self.console.writes, self.prompt) and self.console.idle()

    def wait_prompt(self, timeout: float) -> str | None:
        """Wait for the prompt to come back at the end of the output; the text before it
        (``None`` if it did not come within ``timeout``)."""
        found = self.console.try_expect(self.prompt_end, timeout)
        return None if found is None else found.before

    def wait_quiet_prompt(self, timeout: float) -> bool:
        """Wait for the prompt as the last thing received, with nothing after it for a moment."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self.console.try_expect(self.prompt_end, left) is None:
                return False
            self.console.try_expect(_NEVER, PROMPT_QUIET)
            if not self.console.pending_text.strip():
                return True

    # --- typing -------------------------------------------------------------------------------

    def type_checked(self, line: str, quiet: float = ECHO_QUIET) -> bool:
        """Type ``line`` without Enter; True if its echo came back exactly (and is consumed).

        False as soon as an echo has started and then stops short of it for ``quiet`` s (a
        flipped or lost character never completes the match; no need to wait out the whole
        timeout). A slow link that has not echoed anything yet gets the whole timeout.
        """
        expected = echo_pattern(line)
        before = seen = len(self.console.pending_text)
        self.console.write(line.encode())
        deadline = time.monotonic() + 2.0 + len(line) / 200
        while time.monotonic() < deadline:
            if self.console.try_expect(expected, quiet) is not None:
                return True
            pending = len(self.console.pending_text)
            if pending == seen > before:
                return False  # an echo came, then nothing new for `quiet` s, and not the line
            seen = pending
        return False

    def enter(self, line: str) -> None:
        """Type ``line`` and press Enter once its echo came back exactly (else Ctrl-C and type
        it again): for lines that do not come back to the prompt (``boot``, ``reset``,
        ``reboot``), so they cannot be framed, but a garbled one must still never run."""
        self.prove()  # nothing frames this line's answer: it is typed at a proven prompt only
        tries = self.tries(line)
        for _ in range(tries):
            if self.type_checked(line):
                self.console.write(b"\n")
                if self.enter_taken():
                    return
            self.recover()
        raise DeviceTimeout(
            f"{self.what}: could not type {line!r} cleanly in {tries} tries (a noisy line?)",
            hint="check the serial cable and its baud rate",
            last_output=self.console.tail(),
        )

    def tries(self, line: str) -> int:
        """How many times a line this long is typed before giving up (see
        :data:`CHARS_PER_EXTRA_ATTEMPT`)."""
        return self.attempts + len(line) // CHARS_PER_EXTRA_ATTEMPT

    def enter_taken(self, wait: float = ENTER_ECHO) -> bool:
        """After Enter: True once a newline came back (the device took the line; nothing is
        consumed, the answer's parser needs it). False when none came within ``wait`` s: the
        Enter was lost or turned into another character and the line was not run."""
        # Returns the moment the newline arrives (polling with a pattern that never matches
        # waited out each 50 ms poll whole: 50 ms on every command of every test).
        return self.console.try_expect(_NEWLINE_ARRIVED, wait) is not None

    # --- running ------------------------------------------------------------------------------

    def execute(
        self,
        cmd: str,
        timeout: float = 30.0,
        *,
        idempotent: bool = True,
        tries: int | None = None,
    ) -> CommandResult:
        """Run ``cmd``; its exit status and output, exactly as the device gave them.

        A garbled echo is retyped (the command never ran). A damaged answer re-runs the
        command when ``idempotent`` (the default), at most ``tries`` times in all (default:
        :meth:`tries` of the line); otherwise it raises
        :class:`~toolkit.errors.DeviceCommandError` (the command ran, its result is unknown).
        Raises :class:`~toolkit.errors.DeviceTimeout` after ``tries`` tries.
        """
        problem = "its echo never came back intact"
        if tries is None:
            tries = self.tries(self.frame(cmd, "0" * 8).line)
        if not idempotent:
            self.prove()  # typed only at a prompt known to be there (once it ran, it ran)
        for _ in range(tries):
            self.prepare()
            frame = self.frame(cmd, secrets.token_hex(4))
            if not self.type_checked(frame.line):
                self._lost()
                continue
            self.console.write(b"\n")
            if idempotent and not self.enter_taken():
                problem = "the device did not take the Enter (lost on the line?)"
                self._lost()
                continue
            if self.believed is not None:
                if not self.started(frame):
                    problem = f"{self.what} was not at its prompt"
                    self.prove()
                    continue
                self.believed = None
            try:
                return self._answer(frame, timeout)
            except Corrupted as exc:
                problem = str(exc)
                self.recover()
                if exc.ran and not idempotent:
                    raise DeviceCommandError(
                        f"{self.what} ran {cmd!r} but its answer was damaged on the line "
                        f"({problem}); not running it again",
                        hint="a noisy serial line? check the device's state by hand",
                        last_output=self.console.tail(),
                    ) from None
        raise DeviceTimeout(
            f"{self.what} did not run {cmd!r} cleanly in {tries} tries "
            f"(last: {problem}; a noisy line?)",
            hint="check the serial cable and its baud rate",
            last_output=self.console.tail(),
        )

    def prove(self) -> None:
        """Make a believed prompt a proven one: its owner checks (and if need be restores)
        the state, and may hand over a new console (a power cycle reopens it)."""
        if self.believed is not None:
            restore, self.believed = self.believed, None
            self.console.write(b"\x03")  # whatever got the line typed so far drops it
            self.console = restore()

    def started(self, frame: Frame) -> bool:
        """True once the frame's begin marker (or the prompt, refusing the line) came back
        within :data:`PROOF_TIMEOUT` s; nothing is consumed (the answer's parser reads it)."""
        started = re.compile(r"\A(?=[\s\S]*?(?:" + re.escape(frame.begin) + "|"
                             + self.prompt_end.pattern + "))")  # fmt: skip
        return self.console.try_expect(started, PROOF_TIMEOUT) is not None

    def _lost(self) -> None:
        """A line's echo or Enter went astray: resync at a proven prompt, prove a believed one."""
        if self.believed is not None:
            self.prove()
        else:
            self.recover()

    def run_status(
        self, cmd: str, timeout: float = 30.0, *, idempotent: bool = True
    ) -> CommandResult:
        """Run ``cmd``; its exit status and output as the driver presents them."""
        return self.execute(cmd, timeout, idempotent=idempotent)

    def check(self, cmd: str, timeout: float = 30.0, *, idempotent: bool = True) -> str:
        """Run ``cmd``; its output, or :class:`~toolkit.errors.DeviceCommandError` on status != 0."""
        result = self.run_status(cmd, timeout, idempotent=idempotent)
        if not result.ok:
            raise DeviceCommandError(
                f"{self.what}: {cmd!r} failed (status {result.exit_status})",
                last_output=result.output,
            )
        return result.output

    def _answer(self, frame: Frame, timeout: float) -> CommandResult:
        """Collect text up to the end marker and parse it; Corrupted if it never comes whole."""
        deadline = time.monotonic() + timeout
        text = ""
        while True:
            left = deadline - time.monotonic()
            found = self.console.try_expect([frame.end, self.prompt_end], max(0.0, left))
            if found is None:
                if "syntax error" in self.console.pending_text:
                    raise DeviceCommandError(
                        f"{self.what}: syntax error in {frame.line!r}",
                        last_output=self.console.tail(),
                    )
                raise DeviceTimeout(
                    f"{self.what} did not finish a command within {timeout:g} s",
                    hint="a command that takes longer needs a longer timeout",
                    last_output=self.console.tail(),
                )
            text += found.before
            if found.index == 0:
                result = self.parse(frame, text, found.match)
                # Consume the prompt that follows, so the next line starts clean.
                if self.console.try_expect(self.prompt_end, 5.0) is not None:
                    self.rested()
                return result
            text += found.text
            # A prompt and then silence, and no end marker: the marker was damaged (or the
            # line never ran, e.g. a syntax error). Output that merely contains the prompt's
            # text goes on, and then we keep waiting for the marker.
            self.console.try_expect(_NEVER, PROMPT_QUIET)
            if not self.console.pending_text:
                if "syntax error" in text:
                    raise DeviceCommandError(
                        f"{self.what}: syntax error in {frame.line!r}", last_output=text
                    )
                raise Corrupted(
                    "the prompt came back without an intact end marker",
                    ran=not self.did_not_run(text),
                )
