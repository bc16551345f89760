"""The target's state machine: OFF → UBOOT → LINUX (→ SSH ready), with explicit transitions.

Every caller that needs the device in a state asks the strategy: the serial flash (power-cycle
to U-Boot, then a fresh boot into the new slot), ``verify`` over the console, the guide's live
checks, ``routerkit sample up`` (which watches the boot from power-on and times each milestone)
and the HIL fixtures. It decides how to get there from where the board is, using only the
target's drivers (:mod:`toolkit.target.uboot`, :mod:`toolkit.target.shell`) and its
:mod:`power <toolkit.target.power>` switch:

================  ===========================================================================
to UBOOT          already there and the prompt answers a sync echo → nothing to do;
                  otherwise power-cycle and interrupt autoboot (keys until the prompt answers).
                  Without power control: ``reboot`` from a Linux shell, then interrupt.
to LINUX          already there and the shell answers → nothing; from U-Boot → the board's
                  ``boot_command``; from anywhere else → through UBOOT (skips the countdown).
to SSH            LINUX, then an SSH server's banner on the target's SSH port.
to OFF            the power switch's ``off``.
fresh LINUX       a new boot even from LINUX: ``reset`` at U-Boot (``reboot`` at a shell, a
                  power cycle otherwise), interrupt, ``boot_command``, the shell.
================  ===========================================================================

A boot is watched from the start: nothing is typed between the kernel's banner and the
shell's first quiet prompt (keys would land in the shell's first line); only a shell that stays
silent is then poked with Enter. Milestones (``uboot_banner``, ``uboot_prompt``,
``kernel_start``, ``linux_shell``, ``ssh_ready``) go to ``on_mark`` as they happen.

The state is *believed*, not assumed: every request re-checks it with one cheap round trip
(a test may have typed ``reset`` or ``reboot`` itself), and a stale belief costs a transition,
never a wrong answer. A shell whose console has sat at its prompt since our last answer
(nobody typed, nothing came) is the exception: its first command is the check
(:meth:`Strategy.shell`). Once a transition fails, the strategy is BROKEN: it refuses every
later transition with the original reason (labgrid's rule: never keep driving
half-configured hardware), so the tests after the failure say why they cannot run instead of
timing out.
"""

from __future__ import annotations

import enum
import socket
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


Mark = Callable[[str], None]


class Strategy:
    """Drive one target between states over its console and power switch.

    ``connect(url)`` opens a transport to ``url()`` (the console URL can change when a virtual
    sample is powered on again); the console transcript of every connection is appended to
    ``transcript_path``. ``ssh_address`` (host, port) enables the SSH state. A caller that
    already holds the console (a flash journey, ``sample up``) uses :meth:`attached`.
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
        on_mark: Mark | None = None,
    ) -> None:
        self.board = board
        self.power = power
        self.name = name
        self.status = status
        self.broken_reason: str | None = None
        self.history: list[Transition] = []
        self.transcript_path = transcript_path
        self.on_mark = on_mark
        self._url = url
        self._connect = connect
        self._ssh_address = ssh_address
        self._console: Console | None = None
        self._console_url: str | None = None
        self._owns_console = True
        self._timeout: float | None = None

    @classmethod
    def attached(
        cls,
        console: Console,
        board: Board,
        power: Power,
        *,
        ssh_address: tuple[str, int] | None = None,
        name: str = "target",
        status: Status = Status.UNKNOWN,
        on_mark: Mark | None = None,
    ) -> Strategy:
        """A strategy on a console its caller opened and will close (never reopened here)."""

        def _no_reconnect(_url: str) -> object:
            raise DeviceError(f"{name}: the console was closed")

        strategy = cls(
            board, power, url=lambda: "attached", connect=_no_reconnect,
            ssh_address=(lambda: ssh_address), name=name, status=status, on_mark=on_mark,
        )  # fmt: skip
        strategy._console, strategy._console_url = console, "attached"
        strategy._owns_console = False
        return strategy

    # --- the console ----------------------------------------------------------------------

    @property
    def console(self) -> Console:
        """The console, opened on first use (and reopened if the target's URL changed)."""
        url = self._url()
        if self._console is not None and self._console_url != url and self._owns_console:
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
        be re-checked on the next request. An attached console stays its caller's."""
        if not self._owns_console:
            return
        if self._console is not None:
            self._console.close()
        self._console = None
        self._console_url = None

    # --- public transitions ---------------------------------------------------------------

    def transition(
        self, wanted: Status, *, timeout: float | None = None, fresh: bool = False
    ) -> None:
        """Bring the target to ``wanted`` or raise; a failure makes the strategy BROKEN.

        ``timeout`` caps the wait for U-Boot's prompt and for the boot (default: the board
        profile's ``console.interrupt_timeout`` / ``console.linux_boot_timeout``); ``fresh``
        boots Linux anew even if it already runs (after a flash switched the slot).
        """
        if self.status is Status.BROKEN:
            raise TargetBrokenError(
                f"{self.name} is unusable since an earlier transition failed: {self.broken_reason}",
                hint="the first failing test's report has the console log; later tests were not run",
            )
        if wanted in (Status.BROKEN, Status.UNKNOWN, Status.POWERED):
            raise ValueError(f"cannot transition to {wanted.value}")
        source = self.status
        start = time.monotonic()
        self._timeout = timeout
        try:
            how = self._restart(wanted) if fresh and wanted is not Status.OFF else self._go(wanted)
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

    def mark(self, name: str) -> None:
        """Report a milestone of the boot to ``on_mark``."""
        if self.on_mark is not None:
            self.on_mark(name)

    def uboot(self) -> UBoot:
        """The U-Boot dialogue at a synced prompt (transitions to UBOOT first)."""
        self.transition(Status.UBOOT)
        return UBoot(self.console, self.board)

    def shell(self) -> LinuxShell:
        """A root shell on the serial console (transitions to LINUX first).

        When the shell is believed and the console has been at its prompt since the last
        answer (nothing typed or received since, the helper in place), the shell is handed out
        without a round trip: its first command proves the state (see
        :mod:`toolkit.target.runner`), and a shell that is not there after all costs this
        transition then, never a wrong answer.
        """
        wanted = Status.SSH if self.status is Status.SSH else Status.LINUX
        if self.status in (Status.LINUX, Status.SSH):
            shell = LinuxShell(self.console, self.board)
            if shell.has_helper and shell.at_rest():

                def restore() -> Console:
                    self.transition(wanted)
                    return self.console

                shell.believed = restore
                self.history.append(Transition(wanted, wanted, "believed", 0.0, True))
                return shell
        self.transition(wanted)
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
            self.power_cycle()
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
        address = self._ssh_address() if self._ssh_address else None
        if address is None:
            raise DeviceError(f"{self.name} has no SSH address, so it has no SSH state")
        how = self._to_linux()
        self.status = Status.LINUX
        limit = float(self.board.get("ssh.reboot_timeout", 120.0))
        wait_ssh_banner(address[0], address[1], time.monotonic() + limit)
        self.mark("ssh_ready")
        return how

    def _restart(self, wanted: Status) -> str:
        """A fresh boot up to ``wanted``, whatever runs now (``fresh=True``)."""
        if self.status is Status.UBOOT and self._uboot_answers():
            UBoot(self.console, self.board).reset()
            how = "reset"
        elif self.status in (Status.LINUX, Status.SSH) and self._shell_answers():
            LinuxShell(self.console, self.board).reboot()
            how = "reboot"
        else:
            self.power_cycle()
            how = "power-cycle"
        self.status = Status.POWERED
        self._interrupt()
        if wanted is not Status.UBOOT:
            self._boot()
        if wanted is Status.SSH:
            self._to_ssh()
        return how

    # --- building blocks ---------------------------------------------------------------------

    def power_cycle(self) -> None:
        """Power-cycle the board: it comes up POWERED, its console attached from power-on
        (the next transition to UBOOT interrupts this very boot)."""
        if self.status is Status.BROKEN:
            self.transition(Status.OFF)  # raises with the original reason
        # Drop what the board said before the reset: a stale "=> " must not pass for the new one.
        if self._console is not None:
            self._console.flush_input()
        self.power.cycle()
        self.console.flush_input()
        self.status = Status.POWERED

    def _interrupt(self) -> None:
        uboot = UBoot(self.console, self.board)
        uboot.interrupt_autoboot(timeout=self._timeout, on_banner=lambda: self.mark("uboot_banner"))
        self.mark("uboot_prompt")
        self.status = Status.UBOOT

    def _boot(self) -> None:
        """``boot_command`` at a synced U-Boot prompt, then the shell of the booted kernel."""
        console = self.console
        shell = LinuxShell(console, self.board)
        deadline = time.monotonic() + (self._timeout or shell.boot_timeout)
        UBoot(console, self.board).boot()
        started: list[bool] = []

        def kernel_started() -> None:
            started.append(True)
            self.mark("kernel_start")

        try:
            # U-Boot's own FIT messages ("## Loading kernel ...") end in "# " too: a prompt
            # seen before the kernel starts is not a shell (wait_boot waits for the hand-over).
            shell.wait_boot(max(0.1, deadline - time.monotonic()), on_kernel=kernel_started)
        except DeviceTimeout:
            # A "# " in late kernel output, or a sync line typed before init read the tty:
            # poke until the real shell answers or the boot deadline passes. A kernel that
            # never started is not waited for again.
            if time.monotonic() >= deadline or not started:
                raise
            shell.wait_for_shell(timeout=max(1.0, deadline - time.monotonic()))
        self.mark("linux_shell")
        self.status = Status.LINUX

    def _uboot_answers(self) -> bool:
        return UBoot(self.console, self.board).answers(CHECK_TIMEOUT)

    def _shell_answers(self) -> bool:
        return LinuxShell(self.console, self.board).answers(CHECK_TIMEOUT)

    def locate(self, limit: float | None = None) -> Status:
        """Where the board is (UBOOT, LINUX or UNKNOWN), found by pressing Enter for at most
        ``limit`` s; nothing else is typed and nothing is booted. The belief is updated."""
        where = self._probe(limit)
        if self.status is not Status.BROKEN:
            self.status = where
        return where

    def _probe(self, limit: float | None = None) -> Status:
        """Press Enter until a U-Boot or Linux prompt answers; UNKNOWN if none does in time.

        Enter also stops a U-Boot countdown (any key does), which is what we want here.
        """
        uboot_prompt = UBoot(self.console, self.board).prompt_pattern
        linux_prompt = LinuxShell(self.console, self.board).prompt_end
        if limit is None:
            limit = min(10.0, float(self.board.get("console.interrupt_timeout", 10.0)))
            if self._timeout is not None:
                limit = min(limit, self._timeout)
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


def wait_ssh_banner(host: str, port: int, deadline: float) -> str:
    """Poll ``host:port`` until an SSH server greets us; returns its banner line.

    QEMU's user-mode forward accepts the TCP connection even when nothing listens in the guest
    (and then closes it), so a successful connect proves nothing; only the banner does.
    """
    while True:
        try:
            with socket.create_connection((host, port), timeout=2.0) as sock:
                sock.settimeout(2.0)
                data = sock.recv(256)
                if data.startswith(b"SSH-"):
                    return data.split(b"\r\n")[0].decode("ascii", "replace")
        except OSError:
            pass
        if time.monotonic() >= deadline:
            raise DeviceTimeout(f"no SSH server answered on {host}:{port} in time")
        time.sleep(0.2)
