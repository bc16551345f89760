"""The target's state machine: OFF → UBOOT → LINUX (→ SSH ready), with explicit transitions.

Tests ask for a state (``transition(Status.UBOOT)``); the strategy decides how to get there
from where the board is, using only the target's drivers (:mod:`toolkit.target.uboot`,
:mod:`toolkit.target.shell`) and its :mod:`power <toolkit.target.power>` switch:

================  ===========================================================================
to UBOOT          already there and the prompt answers a sync echo → nothing to do;
                  otherwise power-cycle and interrupt autoboot (keys until the prompt answers).
                  Without power control: ``reboot`` from a Linux shell, then interrupt.
to LINUX          already there and the shell answers → nothing; from U-Boot → the board's
                  ``boot_command``; from anywhere else → through UBOOT (skips the countdown).
to SSH            LINUX, then an SSH server's banner on the target's SSH port.
to OFF            the power switch's ``off``.
================  ===========================================================================

The state is *believed*, not assumed: every request re-checks it with one cheap round trip
(a test may have typed ``reset`` or ``reboot`` itself), and a stale belief costs a transition,
never a wrong answer. Once a transition fails, the strategy is BROKEN: it refuses every later
transition with the original reason (labgrid's rule: never keep driving half-configured
hardware), so the tests after the failure say why they cannot run instead of timing out.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from toolkit.boards import Board
from toolkit.errors import DeviceError, DeviceTimeout, TargetBrokenError
from toolkit.protocol.console import Console
from toolkit.target.power import Power
from toolkit.target.shell import LinuxShell
from toolkit.target.uboot import UBoot


class Status(enum.Enum):
    UNKNOWN = "unknown"  # connected to a board in an unknown state (a shared or lab target)
    POWERED = "powered"  # just powered on; the console has been attached since power-on
    OFF = "off"
    UBOOT = "uboot"
    LINUX = "linux"
    SSH = "ssh"  # Linux, and its SSH server answers
    BROKEN = "broken"


@dataclass(frozen=True)
class Transition:
    """One transition, as the session's report shows it."""

    source: Status
    dest: Status
    how: str  # "checked", "power-cycle", "boot", "soft-reboot", "power-on", ...
    seconds: float
    ok: bool
    error: str | None = None


#: How long a "does it still answer?" check may take before we stop believing the state.
CHECK_TIMEOUT = 2.0
_PROBE_INTERVAL = 0.5
#: A board we know nothing about may already sit at the prompt: ask before power-cycling it.
_QUICK_PROBE = 1.5


class Strategy:
    """Drive one target between states over its console and power switch.

    ``connect(url)`` opens a transport to ``url()`` (the console URL can change when a virtual
    sample is powered on again); the console transcript of every connection is appended to
    ``transcript_path``. ``ssh_address`` (host, port) enables the SSH state.
    """

    def __init__(
        self,
        board: Board,
        power: Power,
        url: Callable[[], str],
        connect: Callable[[str], object],
        *,
        transcript_path: Path | None = None,
        ssh_address: Callable[[], tuple[str, int] | None] | None = None,
        name: str = "target",
        status: Status = Status.UNKNOWN,
    ) -> None:
        self.board = board
        self.power = power
        self.name = name
        self.status = status
        self.broken_reason: str | None = None
        self.history: list[Transition] = []
        self.transcript_path = transcript_path
        self._url = url
        self._connect = connect
        self._ssh_address = ssh_address
        self._console: Console | None = None
        self._console_url: str | None = None

    # --- the console ----------------------------------------------------------------------

    @property
    def console(self) -> Console:
        """The console, opened on first use (and reopened if the target's URL changed)."""
        url = self._url()
        if self._console is not None and self._console_url != url:
            self.release()
        if self._console is None:
            transport = self._connect(url)
            self._console = Console(
                transport,  # type: ignore[arg-type]
                transcript_path=self.transcript_path,
                name=f"{self.name} console",
            )
            self._console_url = url
        return self._console

    def release(self) -> None:
        """Close the console so another program may use the port; the state is kept but will
        be re-checked on the next request."""
        if self._console is not None:
            self._console.close()
        self._console = None
        self._console_url = None

    # --- public transitions ---------------------------------------------------------------

    def transition(self, wanted: Status) -> None:
        """Bring the target to ``wanted`` or raise; a failure makes the strategy BROKEN."""
        if self.status is Status.BROKEN:
            raise TargetBrokenError(
                f"{self.name} is unusable since an earlier transition failed: {self.broken_reason}",
                hint="the first failing test's report has the console log; later tests were not run",
            )
        if wanted in (Status.BROKEN, Status.UNKNOWN, Status.POWERED):
            raise ValueError(f"cannot transition to {wanted.value}")
        source = self.status
        start = time.monotonic()
        try:
            how = self._go(wanted)
        except BaseException as exc:
            reason = f"{source.value} → {wanted.value} failed: {exc}"
            if isinstance(exc, KeyboardInterrupt):
                reason = f"{source.value} → {wanted.value} interrupted (Ctrl-C)"
            self.history.append(
                Transition(
                    source, wanted, "failed", round(time.monotonic() - start, 3), False, str(exc)
                )
            )
            self.mark_broken(reason)
            raise
        self.status = wanted
        self.history.append(
            Transition(source, wanted, how, round(time.monotonic() - start, 3), True)
        )

    def uboot(self) -> UBoot:
        """The U-Boot dialogue at a synced prompt (transitions to UBOOT first)."""
        self.transition(Status.UBOOT)
        return UBoot(self.console, self.board)

    def shell(self) -> LinuxShell:
        """A root shell on the serial console (transitions to LINUX first)."""
        if self.status is not Status.SSH:
            self.transition(Status.LINUX)
        else:
            self.transition(Status.SSH)
        return LinuxShell(self.console, self.board)

    def mark_broken(self, reason: str) -> None:
        """Refuse every later transition with ``reason`` (e.g. a failed flash)."""
        if self.status is not Status.BROKEN:
            self.status = Status.BROKEN
            self.broken_reason = reason

    def forget(self, status: Status = Status.UNKNOWN) -> None:
        """Someone else drove the board (a flash journey, a test): re-probe next time."""
        if self.status is not Status.BROKEN:
            self.status = status

    # --- how each state is reached ----------------------------------------------------------

    def _go(self, wanted: Status) -> str:
        if wanted is Status.OFF:
            self.power.off()
            self.release()
            return "power-off"
        if wanted is Status.UBOOT:
            return self._to_uboot()
        if wanted is Status.LINUX:
            return self._to_linux()
        return self._to_ssh()

    def _to_uboot(self) -> str:
        if self.status is Status.UBOOT and self._uboot_answers():
            return "checked"
        if self.status is Status.POWERED:
            self._interrupt()
            return "interrupt"
        if self.status is Status.UNKNOWN and self._probe(limit=_QUICK_PROBE) is Status.UBOOT:
            return "found"  # a shared or lab board already sitting at the prompt
        if self.status is Status.OFF or self.power.can_cycle:
            self._power_cycle()
            self._interrupt()
            return "power-cycle"
        # No power control: find out where it is, and reboot it from Linux if need be.
        where = self._probe()
        if where is Status.UBOOT:
            return "found"
        if where is Status.LINUX:
            LinuxShell(self.console, self.board).reboot()
        self._interrupt()
        return "soft-reboot" if where is Status.LINUX else "interrupt"

    def _to_linux(self) -> str:
        if self.status in (Status.LINUX, Status.SSH) and self._shell_answers():
            return "checked"
        if self.status is Status.UNKNOWN:
            where = self._probe()
            if where is Status.LINUX:
                return "found"
            if where is Status.UBOOT:
                self.status = Status.UBOOT
        if self.status is not Status.UBOOT or not self._uboot_answers():
            self._to_uboot()
        self._boot()
        return "boot"

    def _to_ssh(self) -> str:
        from toolkit.sample.watch import wait_ssh_banner

        address = self._ssh_address() if self._ssh_address else None
        if address is None:
            raise DeviceError(f"{self.name} has no SSH address, so it has no SSH state")
        how = self._to_linux()
        self.status = Status.LINUX
        limit = float(self.board.get("ssh.reboot_timeout", 120.0))
        wait_ssh_banner(address[0], address[1], time.monotonic() + limit)
        return how

    # --- building blocks ---------------------------------------------------------------------

    def _power_cycle(self) -> None:
        # Drop what the board said before the reset: a stale "=> " must not pass for the new one.
        if self._console is not None:
            self._console.flush_input()
        self.power.cycle()
        self.console.flush_input()

    def _interrupt(self) -> None:
        UBoot(self.console, self.board).interrupt_autoboot()
        self.status = Status.UBOOT

    def _boot(self) -> None:
        console = self.console
        shell = LinuxShell(console, self.board)
        deadline = time.monotonic() + shell.boot_timeout
        UBoot(console, self.board).boot()
        # U-Boot's own FIT messages ("## Loading kernel ...") end in "# " too: a prompt
        # seen before the kernel starts is not a shell. Wait for the hand-over first.
        console.expect(shell.kernel_banner, timeout=shell.boot_timeout)
        while True:
            try:
                shell.wait_for_shell(timeout=max(1.0, deadline - time.monotonic()))
                break
            except DeviceTimeout:
                # A "# " in late kernel output, or a sync line typed before init read the
                # tty: keep poking until the real shell answers or the boot deadline passes.
                if time.monotonic() >= deadline:
                    raise
        self.status = Status.LINUX

    def _uboot_answers(self) -> bool:
        return UBoot(self.console, self.board).answers(CHECK_TIMEOUT)

    def _shell_answers(self) -> bool:
        return LinuxShell(self.console, self.board).answers(CHECK_TIMEOUT)

    def _probe(self, limit: float | None = None) -> Status:
        """Press Enter until a U-Boot or Linux prompt answers; UNKNOWN if none does in time.

        Enter also stops a U-Boot countdown (any key does), which is what we want here.
        """
        uboot_prompt = UBoot(self.console, self.board).prompt_pattern
        linux_prompt = LinuxShell(self.console, self.board).prompt_end
        if limit is None:
            limit = min(10.0, float(self.board.get("console.interrupt_timeout", 10.0)))
        console = self.console
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            console.flush_input()
            console.sendline()
            found = console.try_expect([uboot_prompt, linux_prompt], _PROBE_INTERVAL)
            if found is None:
                continue
            if found.index == 0 and self._uboot_answers():
                return Status.UBOOT
            if found.index == 1 and self._shell_answers():
                return Status.LINUX
        return Status.UNKNOWN
