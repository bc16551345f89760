"""``routerkit sample``: start, inspect, stop and talk to the virtual engineering sample."""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

import click

from toolkit.boards import DEFAULT_BOARD
from toolkit.cli._app import App, emit, get_app, output_options

NAME_OPTION = click.option(
    "--name", default="default", show_default=True, help="Which sample (several can run at once)."
)


@click.group()
def sample() -> None:
    """Start, stop and talk to the virtual sample (QEMU + U-Boot + reference firmware).

    \b
    Examples:
      routerkit sample up                      boot it and wait until SSH answers
      routerkit sample up --wait uboot --json  stop at the U-Boot prompt, print the ports
      routerkit sample up --name b --serial rfc2217   a second one, console via ser2net
      routerkit sample console                 type at its serial console (Ctrl-] quits)
      routerkit sample status --all
      routerkit sample reset | power-cut | down
    """


def _describe(state: Any) -> list[str]:
    lines = [
        f"sample {state.name} ({state.board}): "
        + ("running" if state.running else "stopped (power cut); `up` powers it on again"),
        f"  pid:      {state.pid}",
        f"  console:  {state.serial_url}   (routerkit sample console --name {state.name})",
        f"  ssh:      ssh -p {state.ssh_port} root@{state.ssh_host}",
        f"  tftp dir: {state.tftp_dir}",
        f"  disk:     {state.disk}" + ("" if state.firmware else "  (blank: U-Boot only)"),
    ]
    if state.ser2net_pid:
        lines.append(f"  ser2net:  pid {state.ser2net_pid}")
    if state.boot_times:
        marks = ", ".join(f"{k} {v:.1f} s" for k, v in state.boot_times.items())
        lines.append(f"  boot:     {marks}")
    return lines


def _emit_state(state: Any, **extra: Any) -> None:
    result = {"ok": True, **state.to_dict(), **extra}

    def human(app: App) -> None:
        for line in _describe(state):
            click.echo(line)

    emit(result, human)


@sample.command("up")
@NAME_OPTION
@click.option(
    "--board",
    default=None,
    help=f"Board profile to emulate (default: the one the sample was made as, else {DEFAULT_BOARD}).",
)
@click.option(
    "--disk", type=click.Path(dir_okay=False, exists=True),
    help="Boot a copy of this disk image (the file is never modified).",
)  # fmt: skip
@click.option(
    "--serial", type=click.Choice(["socket", "rfc2217"]), default="socket", show_default=True,
    help="socket: QEMU's own TCP console. rfc2217: through ser2net, like a remote bench.",
)  # fmt: skip
@click.option(
    "--wait", type=click.Choice(["auto", "ssh", "linux", "uboot", "none"]), default="auto",
    show_default=True,
    help="Return once the sample reaches this state (auto: ssh with firmware, else uboot).",
)  # fmt: skip
@click.option(
    "--fresh", is_flag=True, help="Rewrite the factory disk first (forget flashed images)."
)
@click.option("--timeout", type=float, default=None, help="Seconds allowed for each boot stage.")
@output_options
def up(
    name: str, board: str | None, disk: str | None, serial: str, wait: str, fresh: bool,
    timeout: float | None,
) -> None:  # fmt: skip
    """Boot a virtual sample and wait until it is ready.

    A sample stays the board it was made as (`routerkit board list` shows the boards); powered
    on again, it boots the same disk.

    The boot transcript goes to the sample's boot.log and a `sample` session.

    \b
    Examples:
      routerkit sample up
      routerkit sample up --wait uboot --json
      routerkit sample up --name ci-1 --disk out/disk.img --serial rfc2217
    """
    from toolkit import sample as lib

    state = lib.up(
        name=name, board=board, disk=disk, serial=serial, wait=wait,
        reporter=get_app().reporter(), fresh=fresh, timeout=timeout,
    )  # fmt: skip
    _emit_state(state)


@sample.command("status")
@NAME_OPTION
@click.option("--all", "all_", is_flag=True, help="Every sample with a state file.")
@output_options
def status(name: str, all_: bool) -> None:
    """Show whether a sample runs, and how to reach it.

    \b
    Examples:
      routerkit sample status
      routerkit sample status --all --json
    """
    from toolkit import sample as lib
    from toolkit.errors import SampleError

    if all_:
        states = lib.list_samples()

        def human(app: App) -> None:
            if not states:
                click.echo("no samples")
            for state in states:
                for line in _describe(state):
                    click.echo(line)

        emit({"ok": True, "samples": [s.to_dict() for s in states]}, human)
        return
    state = lib.status(name)
    if state is None:
        raise SampleError(f"sample {name!r} is not running", hint="`routerkit sample up` starts it")
    _emit_state(state)


@sample.command("down")
@NAME_OPTION
@output_options
def down(name: str) -> None:
    """Stop a sample (QEMU and ser2net); its disk is kept for the next `up`.

    \b
    Examples:
      routerkit sample down
      routerkit sample down --name b
    """
    from toolkit import sample as lib

    state = lib.down(name)
    emit({"ok": True, "name": name, "stopped_pid": state.pid}, f"sample {name} stopped")


@sample.command("reset")
@NAME_OPTION
@click.option(
    "--target", "target_name", metavar="TARGET",
    help="Press the reset button TARGET's power entry describes instead (e.g. lab.toml:NAME "
    "whose power is a bench relay command).",
)  # fmt: skip
@output_options
def reset(name: str, target_name: str | None) -> None:
    """Press the sample's reset button (it reboots; the disk is untouched).

    With --target, the power switch of that target is used (QMP, a lab's power command,
    labgrid, or you); a power command's own output is captured into the result, never
    printed around it (--json prints exactly one JSON document).

    \b
    Examples:
      routerkit sample reset --name b
      routerkit sample reset --target lab.toml:es1 --json
    """
    from toolkit import sample as lib

    if target_name is None:
        lib.reset(name)
        emit({"ok": True, "name": name}, f"sample {name} reset")
        return
    from toolkit import targets
    from toolkit.target.power import from_target

    app = get_app()
    target = targets.resolve(target_name)

    def ask(text: str) -> None:
        click.pause(f"{text}, then press any key", err=True)

    may_ask = sys.stdin.isatty() and not app.yes and not app.json
    power = from_target(target, ask=ask if may_ask else None)
    power.cycle()
    run = power.last_run.to_dict() if power.last_run is not None else None
    emit(
        {"ok": True, "name": target.name, "power": power.kind, "run": run},
        f"{target.name}: reset ({power.description})",
    )


@sample.command("power-cut")
@NAME_OPTION
@output_options
def power_cut(name: str) -> None:
    """Cut the power (kill QEMU at once), as a tester pulling the plug mid-flash.

    `routerkit sample up` powers it on again with the same disk.

    \b
    Example:
      routerkit sample power-cut && routerkit sample up --wait linux
    """
    from toolkit import sample as lib

    state = lib.power_cut(name)
    emit({"ok": True, **state.to_dict()}, f"sample {name}: power cut (disk kept: {state.disk})")


@sample.command("console")
@NAME_OPTION
def console(name: str) -> None:
    """Type at the sample's serial console. Ctrl-] quits; the transcript is saved.

    \b
    Examples:
      routerkit sample console
      routerkit sample console --name b
    """
    from toolkit import sample as lib
    from toolkit.errors import SampleError
    from toolkit.record import Journal

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise click.UsageError(
            "console needs an interactive terminal; scripts can connect to the serial_url "
            "of `routerkit sample status --json` with pyserial instead"
        )
    state = lib.status(name)
    if state is None or not state.running:
        raise SampleError(f"sample {name!r} is not running", hint="`routerkit sample up` starts it")
    journal = Journal.create("console", board=state.board, sample=name)
    click.echo(f"connected to {state.serial_url} — Ctrl-] quits", err=True)
    transcript = _interactive(state.serial_url)
    stored = journal.store_bytes(f"console-{name}.log", transcript)
    journal.append(
        "console_transcript", sample=name, file=journal.relpath(stored), bytes=len(transcript)
    )
    click.echo(f"\r\nconsole closed; transcript in session {journal.id}", err=True)


def _interactive(url: str) -> bytes:
    """Relay a raw terminal to the serial port until Ctrl-] (0x1d); returns the transcript."""
    import select
    import termios
    import tty

    import serial

    from toolkit.errors import PortError

    try:
        port = serial.serial_for_url(url, timeout=0.05)
    except (serial.SerialException, OSError) as exc:
        raise PortError(f"cannot open the console {url}: {exc}") from None
    transcript = bytearray()
    stop = threading.Event()

    def pump() -> None:
        # The reader runs in a thread: rfc2217 ports have no file descriptor to select on.
        while not stop.is_set():
            try:
                data = port.read(max(1, port.in_waiting))
            except (serial.SerialException, OSError):
                stop.set()
                break
            if data:
                transcript.extend(data)
                os.write(sys.stdout.fileno(), data)

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    reader = threading.Thread(target=pump, daemon=True)
    try:
        tty.setraw(fd, termios.TCSANOW)  # TCSANOW: keep keys typed before the switch
        reader.start()
        while not stop.is_set():
            ready, _, _ = select.select([fd], [], [], 0.1)
            if not ready:
                continue
            key = os.read(fd, 1024)
            if not key or b"\x1d" in key:
                port.write(key.split(b"\x1d")[0])
                break
            port.write(key)
    finally:
        stop.set()
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        reader.join(timeout=1.0)
        port.close()
    return bytes(transcript)
