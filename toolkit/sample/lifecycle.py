"""Start, watch, reset, power-cut and stop virtual samples (see ``toolkit.sample``)."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from toolkit.boards import DEFAULT_BOARD, Board, load_board
from toolkit.errors import DeviceError, RouterkitError, SampleError
from toolkit.events import NullReporter, Reporter, step
from toolkit.record import Journal, atomic_write, utcnow
from toolkit.sample import disk as disk_mod
from toolkit.sample import procs, qemu, ser2net
from toolkit.sample.qmp import QMPClient, QMPError
from toolkit.sample.state import (
    SampleState,
    check_name,
    load_state,
    pid_alive,
    sample_dir,
    save_state,
)
from toolkit.sample.watch import connect, watch_boot

SERIAL_MODES = ("socket", "rfc2217")
WAIT_STATES = ("ssh", "linux", "uboot", "none", "auto")
_START_ATTEMPTS = 4


#: The board a sample's disk was made for, kept beside the disk (the state file goes at `down`).
BOARD_FILE = "board"


def up(
    name: str = "default",
    board: str | None = None,
    disk: str | Path | None = None,
    serial: str = "socket",
    wait: str = "ssh",
    reporter: Reporter | None = None,
    *,
    fresh: bool = False,
    timeout: float | None = None,
) -> SampleState:
    """Boot a virtual sample and wait until it reaches ``wait``.

    ``disk``: boot a copy of this disk image (the file itself is never modified). Otherwise the
    sample's own ``disk.img`` is reused across power cycles like a real flash chip, and created
    from the factory image when missing (or when ``fresh``). ``serial="rfc2217"`` exposes the
    console through ser2net. ``wait="auto"`` means ``ssh`` when the disk holds firmware and
    ``uboot`` otherwise. ``wait="none"`` returns as soon as QEMU runs; with
    ``serial="socket"`` the guest then waits for the first console client (nothing is lost).

    ``board``: default the board the sample's disk was made for (a sample powered on again after
    a power cut or a ``down`` is the same board), else the default board. Another board than
    the disk's is refused unless ``fresh`` or ``disk`` gives it a disk of its own.
    """
    reporter = reporter or NullReporter()
    check_name(name)
    made_as = _made_as(name)
    if board is None:
        board = made_as or DEFAULT_BOARD
    elif made_as not in (None, board) and not fresh and disk is None:
        raise SampleError(
            f"sample {name!r} was made as {made_as}: its disk holds {made_as} firmware, "
            f"not {board}'s",
            hint=f"--fresh remakes it as {board}, rewriting its disk; or pick another --name",
        )
    if serial not in SERIAL_MODES:
        raise SampleError(f"unknown serial mode {serial!r} (choose {', '.join(SERIAL_MODES)})")
    if wait not in WAIT_STATES:
        raise SampleError(f"unknown wait state {wait!r} (choose {', '.join(WAIT_STATES)})")
    profile = load_board(board)
    directory = sample_dir(name)
    directory.mkdir(parents=True, exist_ok=True)
    from filelock import FileLock, Timeout

    # Two `up`s of one name at once would start two QEMUs on one disk; the second one fails.
    lock = FileLock(str(directory / ".up.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise SampleError(
            f"sample {name!r} is being started by another process",
            hint="wait for it, or pick another --name",
        ) from None
    try:
        return _up_locked(profile, name, directory, disk, serial, wait, reporter, fresh, timeout)
    finally:
        lock.release()


def _up_locked(
    profile: Board, name: str, directory: Path, disk: str | Path | None, serial: str, wait: str,
    reporter: Reporter, fresh: bool, timeout: float | None,
) -> SampleState:  # fmt: skip
    previous = load_state(name)
    if previous is not None and _qemu_alive(previous):
        raise SampleError(
            f"sample {name!r} is already running (pid {previous.pid}, console {previous.serial_url})",
            hint=f"`routerkit sample down --name {name}` stops it, or pick another --name",
        )
    if previous is not None:
        _stop_ser2net(previous)
    qemu.find_qemu(profile)
    qemu.uboot_pflash(profile)
    with step(reporter, "prepare disk"):
        disk_path, firmware = disk_mod.prepare(profile, directory, disk, fresh, reporter)
    if disk is None:
        atomic_write(directory / BOARD_FILE, f"{profile.id}\n".encode())
    if wait == "auto":  # as far as the disk allows: SSH with firmware, else U-Boot
        wait = "ssh" if firmware else "uboot"
    if wait in ("linux", "ssh") and not firmware:
        raise SampleError(
            f"the disk of sample {name!r} holds no firmware, so it can only reach U-Boot",
            hint="use --wait uboot, or build the firmware (`routerkit firmware disk`)",
        )
    state, proc, t0 = _start_qemu(profile, name, directory, disk_path, serial, firmware, reporter)
    try:
        if serial == "rfc2217":
            _start_ser2net(state, reporter)
        save_state(state)
        if wait != "none":
            _watch(state, profile, wait, t0, timeout, reporter)
        elif serial == "rfc2217":
            _qmp(state, "cont")
    except BaseException:
        # A boot that failed leaves nothing running and no state behind (the journal and
        # boot.log keep the transcript).
        _stop(state)
        (state.directory / "state.json").unlink(missing_ok=True)
        raise
    save_state(state)
    return state


def _made_as(name: str) -> str | None:
    """The board the sample's own disk was made for, or None (no such sample yet)."""
    directory = sample_dir(name)
    try:
        return (directory / BOARD_FILE).read_text().strip() or None
    except FileNotFoundError:
        previous = load_state(name)  # a sample made before the board was kept beside its disk
        return (
            previous.board if previous is not None and (directory / "disk.img").exists() else None
        )


def status(name: str | SampleState) -> SampleState | None:
    """The sample's recorded state with ``running`` checked against its PID, or None."""
    state = _load(name)
    if state is None:
        return None
    state.running = _qemu_alive(state)
    if state.ser2net_pid and not pid_alive(state.ser2net_pid):
        state.ser2net_pid = None
    return state


def list_samples() -> list[SampleState]:
    """Every sample with a state file (running or power-cut)."""
    from toolkit.sample.state import all_names

    found = [status(n) for n in all_names()]
    return [s for s in found if s is not None]


def reset(name: str | SampleState) -> None:
    """Press the reset button (QMP ``system_reset``); the console connection survives."""
    from toolkit.target.power import QMPPower

    state = _require_running(name)
    QMPPower(state.qmp, name=state.name).cycle()


def power_cut(name: str | SampleState) -> SampleState:
    """Pull the plug: SIGKILL QEMU mid-whatever. The disk keeps what was written so far."""
    state = _require_running(name)
    procs.kill(state.pid, signal.SIGKILL, 5.0)
    _stop_ser2net(state)
    state.running = False
    state.pid = None
    save_state(state)
    return state


def down(name: str | SampleState) -> SampleState:
    """Stop the sample (QMP quit, then SIGTERM/SIGKILL), stop ser2net, remove the state file.

    The disk image stays (the next ``up`` boots what was flashed); no process is left behind.
    """
    state = _load(name)
    if state is None:
        shown = name.name if isinstance(name, SampleState) else name
        raise SampleError(
            f"sample {shown!r} is not running", hint="`routerkit sample up` starts it"
        )
    _stop(state)
    (state.directory / "state.json").unlink(missing_ok=True)
    state.running = False
    return state


# --- internals -------------------------------------------------------------------------


def _load(name: str | SampleState) -> SampleState | None:
    if isinstance(name, SampleState):
        path = name.directory / "state.json"
        if not path.is_file():
            return None
        import json

        return SampleState.from_dict(json.loads(path.read_text()))
    return load_state(name)


def _require_running(name: str | SampleState) -> SampleState:
    state = status(name)
    shown = name.name if isinstance(name, SampleState) else name
    if state is None or not state.running:
        raise SampleError(
            f"sample {shown!r} is not running", hint="`routerkit sample up` starts it"
        )
    return state


def _qemu_alive(state: SampleState) -> bool:
    return bool(state.pid) and qemu.is_qemu_process(int(state.pid or 0), Path(state.qmp))


def _qmp_path(directory: Path) -> Path:
    """Unix socket paths are limited to 108 bytes; deep data dirs get a short private dir."""
    path = directory / "qmp.sock"
    if len(str(path)) < 100:
        return path
    return Path(tempfile.mkdtemp(prefix="rk-qmp-")) / "qmp.sock"


def _start_qemu(
    profile: Board,
    name: str,
    directory: Path,
    disk_path: Path,
    serial: str,
    firmware: bool,
    reporter: Reporter,
) -> tuple[SampleState, subprocess.Popen[bytes], float]:
    """Start QEMU, retrying with new ports when one was taken between probing and binding."""
    tftp_dir = directory / "tftp"
    tftp_dir.mkdir(exist_ok=True)
    qmp_path = _qmp_path(directory)
    log_path = directory / "qemu.log"
    with step(reporter, "start QEMU"):
        for attempt in range(_START_ATTEMPTS):
            qmp_path.unlink(missing_ok=True)
            ssh_port = qemu.free_port()
            serial_port = qemu.free_port() if serial == "socket" else None
            spec = qemu.QemuSpec(
                disk=disk_path, qmp=qmp_path, tftp_dir=tftp_dir, ssh_port=ssh_port,
                serial=serial, serial_port=serial_port, paused=serial == "rfc2217",
            )  # fmt: skip
            cmd = qemu.build_command(profile, spec)
            with open(log_path, "wb") as log:
                t0 = time.monotonic()
                # A new session: Ctrl-C in the shell that ran `up` must not kill the sample.
                proc = subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )  # fmt: skip
            procs.children[proc.pid] = proc
            if _wait_started(proc, qmp_path, log_path, serial):
                break
            output = log_path.read_text(errors="replace")
            procs.children.pop(proc.pid, None)
            busy = "in use" in output or "host forwarding" in output or "bind" in output
            if not busy or attempt == _START_ATTEMPTS - 1:
                raise SampleError(
                    f"QEMU failed to start: {output.strip()[-400:]}", last_output=output
                )
            reporter.message(f"port taken, retrying ({output.strip().splitlines()[-1:]})", "debug")
    serial_url = f"socket://127.0.0.1:{serial_port}" if serial == "socket" else ""
    state = SampleState(
        name=name, board=profile.id, pid=proc.pid, qmp=str(qmp_path), serial_url=serial_url,
        serial_mode=serial, ssh_host="127.0.0.1", ssh_port=ssh_port, tftp_dir=str(tftp_dir),
        disk=str(disk_path), started=utcnow(), ser2net_pid=None,
        boot_log=str(directory / "boot.log"), running=True, firmware=firmware,
        dir=str(directory),
    )  # fmt: skip
    return state, proc, t0


def _wait_started(
    proc: subprocess.Popen[bytes], qmp_path: Path, log_path: Path, serial: str, limit: float = 15.0
) -> bool:
    """True once QEMU listens (QMP socket + chardev); False if it exited (e.g. port taken)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        ready = qmp_path.exists()
        if ready and serial == "socket":
            # QEMU says so on stderr once its chardev server socket is bound (wait=on).
            ready = b"waiting for connection" in log_path.read_bytes()
        if ready:
            return True
        time.sleep(0.01)
    procs.kill(proc.pid, signal.SIGKILL, 5.0)
    raise SampleError(f"QEMU did not come up within {limit:.0f} s (see {log_path})")


def _start_ser2net(state: SampleState, reporter: Reporter) -> None:
    with step(reporter, "start ser2net"):
        with QMPClient(Path(state.qmp)) as client:
            pty = client.pty_path()
        if pty is None:
            raise SampleError("QEMU did not report the pty of its serial port (query-chardev)")
        for attempt in range(_START_ATTEMPTS):
            port = qemu.free_port()
            try:
                proc = ser2net.start(state.directory, pty, port)
            except SampleError:
                if attempt == _START_ATTEMPTS - 1:
                    raise
                continue
            break
        procs.children[proc.pid] = proc
        state.ser2net_pid = proc.pid
        state.serial_url = f"rfc2217://127.0.0.1:{port}?ign_set_control"


def _watch(
    state: SampleState,
    profile: Board,
    wait: str,
    t0: float,
    timeout: float | None,
    reporter: Reporter,
) -> None:
    """Connect to the console, record the boot, stop at ``wait``, disconnect."""
    from toolkit.protocol.console import Console

    journal = Journal.create("sample", board=profile.id, sample=state.name)
    state.journal = journal.id
    boot_log = Path(state.boot_log)
    boot_log.unlink(missing_ok=True)  # the Console appends; one file per boot
    console: Console | None = None
    ok = False
    error: str | None = None
    try:
        with step(reporter, f"boot to {wait}"):
            transport = connect(state.serial_url, time.monotonic() + 10.0)
            console = Console(transport, transcript_path=boot_log, name=f"sample {state.name}")
            if state.serial_mode == "rfc2217":
                _qmp(state, "cont")  # started paused (-S) so the console misses nothing
            state.boot_times = watch_boot(
                console, profile, wait, t0, state.ssh_port, timeout,
                on_mark=lambda n, s: reporter.message(f"{n} after {s:.2f} s", "debug"),
            )  # fmt: skip
        ok = True
    except RouterkitError as exc:
        error = str(exc)
        raise
    finally:
        transcript = b""
        if console is not None:
            transcript = console.transcript_bytes()
            console.close()
        stored = journal.store_bytes(f"boot-{state.name}.log", transcript)
        journal.append(
            "sample_up" if ok else "sample_up_failed",
            name=state.name, pid=state.pid, serial_url=state.serial_url,
            ssh_host=state.ssh_host, ssh_port=state.ssh_port, wait=wait,
            firmware=state.firmware, boot_times=state.boot_times,
            transcript=journal.relpath(stored), error=error,
        )  # fmt: skip


def _qmp(state: SampleState, command: str, timeout: float = 5.0) -> None:
    try:
        with QMPClient(Path(state.qmp), timeout=timeout) as client:
            client.execute(command)
    except QMPError as exc:
        raise SampleError(
            f"sample {state.name!r} did not accept {command}: {exc.message}",
            hint="with --serial socket the sample waits for its first console client",
        ) from None


def _stop(state: SampleState) -> None:
    """Stop QEMU and ser2net of ``state``, gently first; never leave a process."""
    if _qemu_alive(state):
        pid = int(state.pid or 0)
        asked = False
        # QMP does not answer while a socket-serial sample waits for its first console
        # client (wait=on blocks QEMU before its main loop); then signals do the job.
        with (
            contextlib.suppress(QMPError, DeviceError, OSError),
            QMPClient(Path(state.qmp), timeout=1.0) as client,
        ):
            client.quit()
            asked = True
        if not (asked and procs.wait_gone(pid, 5.0)):
            # A QEMU blocked in its chardev wait ignores SIGTERM: do not wait long for it.
            procs.kill(pid, signal.SIGTERM, 0.5)
            procs.kill(pid, signal.SIGKILL, 5.0)
    _stop_ser2net(state)
    if state.pid:
        procs.gone(state.pid)
    qmp_path = Path(state.qmp)
    qmp_path.unlink(missing_ok=True)
    if qmp_path.parent.name.startswith("rk-qmp-"):
        shutil.rmtree(qmp_path.parent, ignore_errors=True)


def _stop_ser2net(state: SampleState) -> None:
    pid = state.ser2net_pid
    if pid and pid_alive(pid) and procs.cmdline_has(pid, "ser2net"):
        procs.kill(pid, signal.SIGTERM, 2.0)
        procs.kill(pid, signal.SIGKILL, 5.0)
    state.ser2net_pid = None
