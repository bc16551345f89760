"""The Linux shell driver: a root shell on the serial console, every answer checksummed.

Commands run through the one :class:`~toolkit.target.runner.Runner` (echo checked before
Enter). Each shell first gets a small helper function, typed (echo-checked) once::

    rk_(){ echo "_rkb_$1";f_=/tmp/.rk$1;{ eval "$2";}>$f_ 2>&1;r_=$?;e_="_rk_e_$1_${r_}_${r_}_";
    if [ -s $f_ ];then cat $f_;echo;printf %s $e_;sha256sum<$f_;else echo;echo "${e_}e3b0...  -";
    fi;k_=$((k_+1));[ $k_ -lt 16 ]||{ k_=0;rm -f /tmp/.rk[0-9a-f]*;};}

and every command is then the short line ``rk_ N 'CMD'`` (``N`` a fresh random nonce): fewer
bytes on the line, fewer garbled tries. The helper runs the command in the shell itself (``cd``
and variables persist), keeps its output (stdout and stderr, as the console showed them before)
in a file of its own, prints it, and then an end marker with the exit status (twice: it is not
in the checksum) and the sha256 of the output
**as the device computed it**. The host hashes what it received; any flipped, lost or doubled
byte in the output, or in the marker, means the answer is read again (every read is
idempotent), never believed. ``eval`` keeps a trailing ``# comment``, a ``&`` or a syntax error
in ``CMD`` from swallowing the end marker. A shell that lost the helper (a reboot, another
shell) answers ``rk_: not found``: the helper is typed again and the command, which never ran,
with it. Needs ``sha256sum`` and a writable ``/tmp`` on the device (busybox and OpenWrt have
both).

Every program the helper starts costs a process start on the device (~4.5 ms each on the
virtual sample, about a fifth of a whole exchange), so it starts as few as it can: none for a
command without output (the sha256 of nothing is a constant; the host still checks that
nothing came), ``cat`` and ``sha256sum`` otherwise, and ``rm`` once every 16 commands for the
files of those 16 (each command's file is its own: a background job the command started may go
on writing to it).

Reads of device state go through here: :meth:`LinuxShell.read_json` (fwinfo, selftest, slots),
:meth:`LinuxShell.read_file` (``/etc/firmware-version``), :meth:`LinuxShell.check`. The prompt
comes from the board profile (``console.linux_prompt``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import secrets
import shlex
import time
import weakref
from collections.abc import Callable
from typing import Any

from toolkit.boards import Board
from toolkit.errors import DeviceCommandError, DeviceTimeout, VerifyError
from toolkit.protocol.console import CommandResult, Console
from toolkit.target.runner import Corrupted, Frame, Runner

#: The kernel's own first words on the console (besides the board's ``kernel_banner``).
_KERNEL_MESSAGES = ("Booting Linux on physical CPU", "Linux version ")
_SYNC_RETRY = 5.0  # seconds a sync line may take before it is typed again during a boot
#: Consoles whose running shell has the helper. The strategy hands out a new LinuxShell for
#: every request (each HIL test's fixture), and typing the helper again each time cost ~50 ms a
#: test; it is the shell on the console that holds it. A boot watched here forgets it, and a
#: shell that lost it anyway answers "rk_: not found" and gets it again (see did_not_run).
_HELPER_TYPED: weakref.WeakKeyDictionary[Console, bool] = weakref.WeakKeyDictionary()
_JSON_READS = 3
#: A long answer that does not come through whole in this many tries is read in pieces ...
_WHOLE_TRIES = 3
#: ... of this many bytes, each checksummed and re-read on its own: on a line noisy enough
#: to garble most 700-byte answers (fwinfo at a bit-error rate of 3e-4), most 128-byte ones
#: come through.
PIECE = 128
#: The sha256 of no bytes: the helper prints it for a command without output (no sha256sum).
_EMPTY = hashlib.sha256(b"").hexdigest()
#: The helper every command runs through (see the module docstring); its echo cannot be taken
#: for a marker (``$1`` is a nonce only once it runs).
HELPER = (
    'rk_(){ echo "_rkb_$1";f_=/tmp/.rk$1;{ eval "$2";}>$f_ 2>&1;r_=$?;e_="_rk_e_$1_${r_}_${r_}_";'
    "if [ -s $f_ ];then cat $f_;echo;printf %s $e_;sha256sum<$f_;"
    f'else echo;echo "${{e_}}{_EMPTY}  -";fi;'
    "k_=$((k_+1));[ $k_ -lt 16 ]||{ k_=0;rm -f /tmp/.rk[0-9a-f]*;};}"
)


class LinuxShell(Runner):
    """Run commands in a root shell on ``console`` (prompt from ``board``'s profile)."""

    what = "the Linux shell"

    def __init__(self, console: Console, board: Board, *, attempts: int | None = None) -> None:
        super().__init__(console, str(board.require("console.linux_prompt")))
        if attempts is not None:
            self.attempts = attempts
        self.board = board
        self.boot_timeout = float(board.get("console.linux_boot_timeout", 90.0))
        self.kernel_banner = str(board.get("console.kernel_banner", "Starting kernel"))
        # Any of these says the kernel took over: one flipped bit in U-Boot's single "Starting
        # kernel" line must not cost the whole boot timeout.
        self.kernel_started = re.compile(
            "|".join(re.escape(m) for m in (self.kernel_banner, *_KERNEL_MESSAGES))
        )

    # --- getting to the shell -------------------------------------------------------------

    def wait_boot(
        self, timeout: float | None = None, on_kernel: Callable[[], None] | None = None
    ) -> None:
        """Wait for the shell's first prompt during a boot watched from the start, then sync.

        A prompt is only believed after the kernel started, at the end of the output, and when
        nothing follows it for a moment: boot output such as U-Boot's ``virtio read: ... block
        # `` ends in ``# `` whenever a read happens to stop right there. Nothing is typed before
        the prompt: keys pressed during the boot would be echoed into the shell's first line.
        """
        self._forget_helper()  # a new shell is coming
        deadline = time.monotonic() + (self.boot_timeout if timeout is None else timeout)
        self.console.expect(self.kernel_started, timeout=max(0.1, deadline - time.monotonic()))
        if on_kernel is not None:
            on_kernel()
        if not self.wait_quiet_prompt(max(0.1, deadline - time.monotonic())):
            raise DeviceTimeout(
                f"{self.console.name}: no Linux shell prompt {self.prompt!r} after the kernel started",
                hint="did the kernel boot? the console tail shows how far it got",
                last_output=self.console.tail(),
            )
        self.sync(timeout=max(2.0, min(10.0, deadline - time.monotonic())))

    def wait_for_shell(self, timeout: float | None = None, poke_interval: float = 1.0) -> None:
        """Press Enter every ``poke_interval`` s until a shell prompt answers, then sync.

        Raises :class:`~toolkit.errors.DeviceTimeout` (with the console tail) after ``timeout``
        (default ``console.linux_boot_timeout``) seconds.
        """
        limit = self.boot_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        patience = _SYNC_RETRY
        self._forget_helper()  # perhaps a new shell
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DeviceTimeout(
                    f"{self.console.name}: no Linux shell prompt {self.prompt!r} within {limit:g} s",
                    hint="did the kernel boot? the console tail shows how far it got",
                    last_output=self.console.tail(),
                )
            self.console.sendline()
            if not self.console.try_expect(self.prompt_end, min(poke_interval, left)):
                continue
            # A "# " late in the boot log is not always the shell, and a line typed before
            # init hands the tty to the shell can be half lost. So a sync that does not answer
            # in a while is typed again (with a new marker) until the deadline, never waited
            # on forever; each wait twice the one before, for a shell that is merely slow.
            try:
                self.sync(timeout=max(1.0, min(patience, deadline - time.monotonic())), attempts=1)
                return
            except DeviceTimeout:
                if time.monotonic() >= deadline:
                    raise
                # Ctrl-C (sent by the next sync) also drops a half line ash holds at "> ".
                patience *= 2

    def answers(self, timeout: float = 2.0) -> bool:
        """Ctrl-C at a shell gives a fresh prompt (and stops anything a test left running).

        A third of the cost of a marker-echo command: busybox ash on this console takes
        ~100 ms to echo and run a marker line, ~35 ms to answer Ctrl-C with a prompt.
        """
        self.console.flush_input()
        self.console.write(b"\x03")
        if self.console.try_expect(self.prompt_end, timeout) is None:
            return False
        self.rested()
        return True

    def interrupt(self) -> None:
        """Send Ctrl-C (stop a running command) and resync the prompt."""
        self.console.write(b"\x03")
        self.sync()

    def reboot(self) -> None:
        """``reboot``, echo-checked; returns as soon as Enter is pressed."""
        self.enter("reboot")
        self._forget_helper()

    # --- the runner's framing ------------------------------------------------------------------

    @property
    def has_helper(self) -> bool:
        """True when the shell on this console was given the helper (and no boot was seen)."""
        return _HELPER_TYPED.get(self.console, False)

    def prepare(self) -> None:
        """Type the helper into the shell, once (and again when the shell lost it)."""
        if self.has_helper:
            return
        for _ in range(self.attempts):
            self.enter(HELPER)
            if self.wait_prompt(3.0) is not None:
                _HELPER_TYPED[self.console] = True
                self.rested()
                return
            self.recover()
        raise DeviceTimeout(
            f"{self.console.name}: the shell did not take routerkit's helper function",
            hint="a noisy line, or not a POSIX shell?",
            last_output=self.console.tail(),
        )

    def did_not_run(self, text: str) -> bool:
        if "rk_: not found" in text:
            self._forget_helper()  # a new shell since: type the helper again, then the command
            return True
        return False

    def _forget_helper(self) -> None:
        _HELPER_TYPED.pop(self.console, None)

    def frame(self, cmd: str, nonce: str) -> Frame:
        line = f"rk_ {nonce} {shlex.quote(cmd)}"
        end = re.compile(rf"_rk_e_{nonce}_(\d+)_(\d+)_([0-9a-f]{{64}})  -(?=\n)")
        return Frame(line, f"\n_rkb_{nonce}\n", end, nonce)

    def parse(self, frame: Frame, before: str, end: re.Match[str]) -> CommandResult:
        begin = frame.begin
        at = before.find(begin)
        if at < 0 or not before.endswith("\n"):
            raise Corrupted("no intact begin marker")
        output = before[at + len(begin) : -1]  # the shell's own `echo` added the last newline
        if hashlib.sha256(output.encode("utf-8", "surrogateescape")).hexdigest() != end.group(3):
            raise Corrupted("the output does not match the checksum the device computed")
        if end.group(1) != end.group(2):  # the status is not in the checksum: it comes twice
            raise Corrupted("the two copies of the status differ")
        return CommandResult(int(end.group(1)), output)

    # --- commands ------------------------------------------------------------------------

    def run_status(
        self,
        cmd: str,
        timeout: float = 30.0,
        *,
        idempotent: bool = True,
        tries: int | None = None,
    ) -> CommandResult:
        """Run ``cmd``; its exit status and output (echo, markers, prompt and the output's
        last newline removed), checksummed (see the module docstring)."""
        result = self.execute(cmd, timeout, idempotent=idempotent, tries=tries)
        return CommandResult(result.exit_status, result.output.removesuffix("\n"))

    run = run_status

    def read_file(self, path: str, timeout: float = 30.0) -> str:
        """The exact text of ``path`` on the device (checksummed; newlines kept)."""
        result = self.execute(f"cat {shlex.quote(path)}", timeout)
        if not result.ok:
            raise VerifyError(f"cannot read {path} on the device", last_output=result.output)
        return result.output

    def read_long(self, cmd: str, timeout: float = 30.0) -> CommandResult:
        """Status and output of a command that reads device state, however noisy the line.

        Asked whole first (a few tries); if no answer comes through intact, the command runs
        once more with its output kept in a file on the device, which is then read in
        :data:`PIECE`-byte pieces, each checksummed by the helper and re-read on its own.
        """
        try:
            return self.run_status(cmd, timeout, tries=_WHOLE_TRIES)
        except DeviceTimeout:
            pass
        name = f"/tmp/.rkl{secrets.token_hex(4)}"
        head = self.check(f"( {cmd} ) >{name} 2>&1; echo $?; wc -c <{name}", timeout)
        try:
            status, size = (int(x) for x in head.split())
        except ValueError:
            raise VerifyError(f"{cmd!r}: unexpected status line", last_output=head) from None
        data = ""
        try:
            for index in range(-(-size // PIECE)):
                piece = self.execute(
                    f"dd if={name} bs={PIECE} skip={index} count=1 2>/dev/null", timeout
                )
                data += piece.output
        finally:
            with contextlib.suppress(DeviceTimeout, VerifyError):
                self.run_status(f"rm -f {name}", 10.0)
        return CommandResult(status, data.removesuffix("\n"))

    def read_json(self, cmd: str, timeout: float = 30.0) -> Any:
        """The JSON document ``cmd`` prints (the text from its first ``{``/``[`` to the last
        ``}``/``]``), from checksummed answers (:meth:`read_long`). Raises
        :class:`~toolkit.errors.VerifyError` when the device's answer is not JSON.
        """
        output = ""
        for _ in range(_JSON_READS):
            result = self.read_long(cmd, timeout)
            output = result.output
            if not result.ok:
                raise DeviceCommandError(
                    f"{self.what}: {cmd!r} failed (status {result.exit_status})",
                    last_output=output,
                )
            starts = [i for i in (output.find("{"), output.find("[")) if i >= 0]
            stop = max(output.rfind("}"), output.rfind("]"))
            if starts and stop > min(starts):
                try:
                    return json.loads(output[min(starts) : stop + 1])
                except ValueError:
                    continue
        raise VerifyError(f"{cmd!r} did not print JSON", last_output=output)
