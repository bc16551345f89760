"""``verify``: a health check of a sample at any time, over SSH or the serial console.

It asks the device itself (the firmware's ``fwinfo`` and ``selftest``, which print JSON) for:
the running version and slot, the integrity of **both** slots (each slot's FIT hashed on the
device against the ``fit_sha256`` of its own metadata), the boot counter, and the selftest.
The report is one dict, recorded in the journal as a ``verify`` record (and a
``running_version`` record that later downgrade checks use). The flash journeys end with it.

Also here: the serial-console helpers the SSH path uses — reading the device's host key
over the console (to check a first-contact fingerprint) and "does the console answer?"
(to explain a device that did not come back after a reboot).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.errors import ConfigError, DeviceError, DeviceTimeout, VerifyError
from toolkit.events import NullReporter, Reporter, step
from toolkit.record import Journal
from toolkit.targets import Target

if TYPE_CHECKING:
    from toolkit.hostkeys import HostKeyContext
    from toolkit.target.shell import LinuxShell
    from toolkit.transport.ssh import SSHConnection

#: One round trip: fwinfo, a separator, selftest. ``command -v`` first tries the profile's
#: absolute paths, then the device's PATH (the loopback stand-in device keeps them there).
MARK = "@@routerkit-selftest@@"


FWINFO = "f=$(command -v /sbin/fwinfo || command -v fwinfo) && $f"
SELFTEST = "s=$(command -v /usr/bin/selftest || command -v selftest) && $s"


def _probe_command() -> str:
    return f"{FWINFO}; echo {MARK}; {SELFTEST}"


def verify(
    target: Target,
    via: str = "ssh",
    reporter: Reporter | None = None,
    journal: Journal | None = None,
    *,
    ssh: SSHConnection | None = None,
    accept_new_hostkey: bool = False,
) -> dict[str, Any]:
    """Check ``target`` over ``via`` ("ssh" or "serial"); return and record the report.

    ``ssh`` reuses an open connection (the flash journeys pass theirs). A report with problems
    is returned (``ok: False``), not raised: a health check's job is to say what is wrong.
    """
    reporter = reporter or NullReporter()
    journal = journal or Journal.create("verify", board=target.board, target=target.name)
    start = time.monotonic()
    if via not in ("ssh", "serial"):
        raise ConfigError(f"unknown verify path --via {via!r} (ssh or serial)")
    with step(reporter, "verify", f"{target.name} over {via}"):
        if via == "ssh":
            output, status = _over_ssh(target, ssh, accept_new_hostkey, reporter)
        else:
            output, status = _over_serial(target, journal.files_dir / "console.log")
        report = build_report(target, via, output, status)
    report["seconds"] = round(time.monotonic() - start, 3)
    journal.append("verify", **report)
    if report.get("version"):
        journal.append(
            "running_version",
            version=report["version"],
            slot=report.get("running_slot"),
            target=target.name,
        )
    for problem in report["problems"]:
        reporter.message(f"verify: {problem}", level="warning")
    return report


def _over_ssh(
    target: Target, ssh: SSHConnection | None, accept_new: bool, reporter: Reporter
) -> tuple[str, int]:
    from toolkit.target.ssh import connect_target

    own = ssh is None
    conn = ssh or connect_target(
        target, context=host_key_context(target, accept_new=accept_new), reporter=reporter
    )
    try:
        result = conn.run(_probe_command(), timeout=120, what="fwinfo/selftest")
    finally:
        if own:
            conn.close()
    return result.stdout + (
        "\n" + result.stderr if result.stderr and not result.ok else ""
    ), result.exit_status


def _over_serial(target: Target, transcript: Path | None = None) -> tuple[str, int]:
    """fwinfo and selftest, each read as JSON through the shell driver: its answers carry a
    checksum the device computed, so a flipped bit is read again, never reported (a garbled
    answer once made the board look like another one). What is not JSON is passed on as the
    device printed it, for the report to say so."""
    with open_shell(target, transcript=transcript) as shell:
        fw, fw_ok = _json_answer(shell, FWINFO)
        selftest, selftest_ok = _json_answer(shell, SELFTEST)
    return f"{fw}\n{MARK}\n{selftest}", 0 if fw_ok and selftest_ok else 1


def _json_answer(shell: LinuxShell, cmd: str) -> tuple[str, bool]:
    """``cmd``'s JSON as one line (True), or its output as printed (False)."""
    from toolkit.errors import DeviceCommandError

    try:
        value = shell.read_json(cmd, timeout=120)
    except (DeviceCommandError, VerifyError) as exc:
        return exc.last_output or "", False
    return json.dumps(value), True


def build_report(target: Target, via: str, output: str, status: int) -> dict[str, Any]:
    """Turn fwinfo + selftest output into the verify report (pure: tested without a device)."""
    from toolkit.boards import load_board

    board = load_board(target.board)
    head, _, tail = output.partition(MARK)
    fw = _json_object(head)
    selftest = _json_object(tail)
    problems: list[str] = []
    if fw is None:
        problems.append(
            f"fwinfo gave no JSON (exit {status}): {head.strip()[-200:] or 'no output'}"
        )
        fw = {}
    if selftest is None:
        problems.append("selftest gave no JSON")
        selftest = {}
    slots: dict[str, Any] = fw.get("slots") or {}
    running = fw.get("running_slot") or None
    active = fw.get("active_slot") or None
    for name in board.slots:
        info = slots.get(name)
        if not isinstance(info, dict):
            problems.append(f"slot {name}: not reported")
        elif info.get("empty"):
            if name == running:
                problems.append(f"slot {name} is running but reads as empty")
        elif info.get("ok") is not True:
            problems.append(
                f"slot {name}: integrity check FAILED ({info.get('error') or 'FIT sha256 does not match its metadata'})"
            )
    if running and active and running != active:
        problems.append(
            f"running slot {running} is not the active slot {active}: the sample fell back after failed boots"
        )
    tries = fw.get("rk_tries")
    max_tries = board.get("flash.bootstate.max_tries")
    if isinstance(tries, int) and tries > 0:
        problems.append(f"boot counter is {tries}: this boot was not marked good")
    if selftest and selftest.get("status") not in (None, "ok"):
        problems.append(f"selftest status {selftest.get('status')!r}")
    version = fw.get("version") or selftest.get("version") or None
    return {
        "ok": not problems,
        "target": target.name,
        "board": fw.get("board") or target.board,
        "via": via,
        "version": version,
        "running_slot": running,
        "active_slot": active,
        "slots": slots,
        "boot_counter": {"rk_tries": tries, "max_tries": max_tries, "active_slot": active},
        "selftest": selftest,
        "problems": problems,
    }


def _json_object(text: str) -> dict[str, Any] | None:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None


# --- the serial console ------------------------------------------------------------------


@contextlib.contextmanager
def open_shell(
    target: Target,
    timeout: float = 20.0,
    *,
    boot: bool = True,
    transcript: Path | None = None,
) -> Iterator[LinuxShell]:
    """A root shell on ``target``'s serial console, reached through the target's strategy
    (:mod:`toolkit.target.strategy`): a shell that answers is used as it is; a board found
    sitting in U-Boot is booted when ``boot`` (never power-cycled: verify has no business
    pressing the button). ``transcript``: where the console's transcript (and its asciicast
    recording beside it) is kept, e.g. the session journal's ``console.log``."""
    from toolkit.boards import load_board
    from toolkit.protocol.console import Console
    from toolkit.target.power import ManualPower
    from toolkit.target.strategy import Status, Strategy
    from toolkit.transport.serial import SerialTransport

    if not target.serial_url:
        raise ConfigError(f"target {target.name} has no serial console (serial_url)")
    transport = SerialTransport(target.serial_url)
    console = Console(transport, transcript_path=transcript, name=f"{target.name} console")
    try:
        board = load_board(target.board)
        strategy = Strategy.attached(
            console, board, ManualPower(name=target.name), name=target.name
        )
        if boot:
            try:
                strategy.transition(Status.LINUX, timeout=timeout)
            except DeviceTimeout as exc:
                raise DeviceTimeout(
                    f"{target.name}: no Linux shell on the serial console within {timeout:g} s",
                    hint="is the device powered and booted? the console tail shows where it is",
                    last_output=exc.last_output,
                ) from None
        elif strategy.locate(timeout) is not Status.LINUX:
            raise DeviceTimeout(
                f"{target.name}: no Linux shell answers on the serial console",
                last_output=console.tail(),
            )
        yield strategy.shell()
    finally:
        console.close()


def host_key_context(target: Target, *, accept_new: bool = False) -> HostKeyContext:
    """The host-key context of a connection to ``target``: with a serial console attached, a
    first-contact key is compared with the one the console reports (read only when needed)."""
    from toolkit.hostkeys import HostKeyContext

    serial = (lambda: serial_host_keys(target)) if target.serial_url else None
    return HostKeyContext(accept_new=accept_new, serial_keys=serial)


def serial_host_keys(target: Target) -> list[str]:
    """The device's SSH host public keys as its serial console reports them (integrity-checked)."""
    from toolkit.hostkeys import read_console_host_keys

    with open_shell(target) as shell:
        return read_console_host_keys(shell)


def serial_answers(target: Target, timeout: float = 5.0) -> str:
    """One line for a diagnosis: does the serial console answer, and with what?"""
    if not target.serial_url:
        return "no serial console is attached"
    try:
        with open_shell(target, timeout=timeout, boot=False) as shell:
            out = shell.run(
                "cat /etc/firmware-version 2>/dev/null; cat /proc/cmdline", timeout=timeout
            )
        return f"the serial console answers (a Linux shell: {' '.join(out.output.split())[:120]})"
    except DeviceError as exc:
        tail = (exc.last_output or "").strip().splitlines()[-1:] or ["nothing"]
        return f"the serial console gives no shell (last output: {tail[0][:120]!r})"
    except Exception as exc:  # a diagnosis must never hide the original failure
        return f"the serial console could not be checked ({exc})"


def require_ok(report: dict[str, Any]) -> None:
    """Raise :class:`VerifyError` listing the report's problems, if any."""
    if not report["ok"]:
        raise VerifyError("verify: " + "; ".join(report["problems"]))
