"""Overhead of an end-to-end SSH flash of the virtual sample: total minus reboot and transfer.

ours: ``toolkit.journeys.flash.flash(..., via="ssh")`` (check image, connect, check device,
upload, sha256 on the device, sysupgrade, wait for the reboot, verify); the step times come
from ``FlashResult.steps``. overhead = total − ``reboot`` − ``upload``.

peer: the same flash by hand with OpenSSH, one ``ssh`` per step, each timed the same way:
check the device (boot id, sysupgrade, free space, version), ``ssh host 'cat > /tmp/f' < img``
(transfer), ``sha256sum``, ``sysupgrade``, reconnect until a new boot id answers (reboot, with
our back-off), ``fwinfo; selftest`` (verify). overhead = total − reboot − transfer.

Both sides run the same on-device commands for the slot work (sysupgrade hashes the image,
writes the inactive slot and reads it back; fwinfo hashes both slots): that device time is
part of both overheads, and in QEMU it is most of them. So a second line subtracts each
side's device time: every command (ours through ``SSHConnection.run``, the peer's ``ssh``)
is wrapped between two marker lines, and the time between their arrivals is the device's.
One private sample, flashed twice (ours, then the peer, each to a newer version), in one run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BOOT_ID = "/proc/sys/kernel/random/boot_id"


MARK = "@@rk-device-"


class PeerFailed(RuntimeError):
    """The hand flash could not do a step (its message says which and why)."""


def _wrap(command: str) -> str:
    """``command`` between two marker lines: their arrival times bound its device-side run.

    A command that reboots the device (sysupgrade) never prints the end mark; its last line
    ("rebooting") ends it instead.
    """
    return f"echo {MARK}start >&2; {{ {command}\n}}; rk_s=$?; echo {MARK}end >&2; exit $rk_s"


class DeviceClock:
    """Seconds the device spent running commands, per step, from marker-line arrival times."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.step = "-"
        self._start: float | None = None
        self._last: float | None = None

    def line(self, text: str) -> bool:
        """Feed one output line; True when it was a marker (to be hidden)."""
        now = time.monotonic()
        if text == f"{MARK}start":
            self._start, self._last = now, None
            return True
        self._last = now
        return text == f"{MARK}end"

    def close(self) -> None:
        if self._start is not None and self._last is not None:
            self.seconds[self.step] = self.seconds.get(self.step, 0.0) + self._last - self._start
        self._start = self._last = None

    def total(self, steps: tuple[str, ...]) -> float:
        return sum(self.seconds.get(s, 0.0) for s in steps)


#: The steps both overheads consist of (everything but the upload and the reboot).
OVERHEAD_STEPS = ("check image", "connect", "check device", "check upload", "sysupgrade", "verify")


def _ssh(
    state: object,
    identity: Path,
    command: str,
    clock: DeviceClock | None = None,
    *,
    stdin: Any = None,
    timeout: float = 600,
) -> tuple[int, str]:
    # A hand flash: no routerkit host-key store, and the reflash changes the host key.
    cmd = [
        "ssh",
        "-p",
        str(state.ssh_port),
        "-i",
        str(identity),
        "-o",
        "BatchMode=yes",  # type: ignore[attr-defined]
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "ConnectTimeout=5",
        "root@127.0.0.1",
        "exec 2>&1; " + _wrap(command) if clock else command,
    ]
    # ssh's own complaints (refused key, closed port) go to a file: shown when a step fails.
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            cmd, stdin=stdin or subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors
        )
        assert proc.stdout is not None
        out = []
        deadline = time.monotonic() + timeout
        for raw in proc.stdout:
            text = raw.decode(errors="replace").rstrip("\n")
            if clock is None or not clock.line(text):
                out.append(text)
            if time.monotonic() > deadline:
                proc.kill()
        status = proc.wait()
        if clock:
            clock.close()
        if status == 255:  # ssh itself failed (not the command): say why
            errors.seek(0)
            out.append(errors.read().decode(errors="replace").strip())
    return status, "\n".join(out)


def peer(state: object, identity: Path, image: Path) -> tuple[float, dict[str, float], DeviceClock]:
    """The hand flash; returns (total, step seconds, device clock)."""
    steps: dict[str, float] = {}
    clock = DeviceClock()
    t_all = time.monotonic()

    def run(step: str, command: str, **kw: object) -> tuple[int, str]:
        clock.step = step
        t = time.monotonic()
        res = _ssh(state, identity, command, clock, **kw)  # type: ignore[arg-type]
        steps[step] = steps.get(step, 0.0) + time.monotonic() - t
        return res

    status, out = run(
        "check device",
        f"cat {BOOT_ID}; command -v sysupgrade; df -Pk /tmp | tail -n 1; cat /etc/firmware-version",
    )
    if status != 0 or not out.split():
        raise PeerFailed(f"check device: ssh exited {status}: {out.strip()[-300:] or 'no output'}")
    old_boot = out.split()[0]
    t = time.monotonic()
    with open(image, "rb") as fh:
        status, out = _ssh(state, identity, "cat > /tmp/f.img", stdin=fh)
    steps["upload"] = time.monotonic() - t
    if status != 0:
        raise PeerFailed(f"upload: ssh exited {status}: {out.strip()[-300:]}")
    status, out = run("check upload", "sha256sum /tmp/f.img")
    if status != 0:
        raise PeerFailed(f"check upload: exited {status}: {out.strip()[-300:]}")
    run("sysupgrade", "sysupgrade -n /tmp/f.img")

    t = time.monotonic()
    delay = 0.25
    time.sleep(0.3)  # as ours: let the device go down first
    while True:
        try:
            status, boot = _ssh(state, identity, f"cat {BOOT_ID}", timeout=15)
            if status == 0 and boot.strip() and boot.strip() != old_boot:
                break
        except subprocess.TimeoutExpired:
            pass
        if time.monotonic() - t > 300:
            raise SystemExit("peer: the sample did not come back within 300 s")
        time.sleep(delay)
        delay = min(delay * 1.6, 3.0)
    steps["reboot"] = time.monotonic() - t
    run("verify", "fwinfo; echo; selftest")
    return time.monotonic() - t_all, steps, clock


class StepReporter:
    """A Reporter that tells the device clock which step runs (flash's steps nest verify's)."""

    def __init__(self, clock: DeviceClock) -> None:
        self.clock = clock
        self.stack: list[str] = []

    def step_started(self, name: str, detail: str = "") -> None:
        self.stack.append(name)
        self.clock.step = name

    def step_finished(self, name: str, ok: bool, seconds: float, detail: str = "") -> None:
        if self.stack:
            self.stack.pop()
        self.clock.step = self.stack[-1] if self.stack else "-"

    def progress(self, name: str, done: int, total: int | None) -> None:
        pass

    def message(self, text: str, level: str = "info") -> None:
        pass


def timed_runs(clock: DeviceClock) -> None:
    """Make every ``SSHConnection.run`` of this process report its device-side time."""
    from toolkit.transport.ssh import SSHConnection

    original = SSHConnection.run

    def run(self: SSHConnection, command: str, **kw: object) -> object:
        user = kw.pop("on_line", None)

        def on_line(text: str) -> None:
            if not clock.line(text) and callable(user):
                user(text)

        try:
            result = original(self, _wrap(command), on_line=on_line, **kw)  # type: ignore[arg-type]
        finally:
            clock.close()
        result.command = command
        result.stderr = "".join(
            ln for ln in result.stderr.splitlines(True) if not ln.startswith(MARK)
        )
        return result

    SSHConnection.run = run  # type: ignore[assignment,method-assign]


def _fmt(steps: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in steps.items())


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="rk-flash-bench-"))
    os.environ.setdefault("ROUTERKIT_CONFIG", str(tmp / "config"))
    os.environ.setdefault("ROUTERKIT_DATA", str(tmp / "data"))
    from toolkit import sample
    from toolkit.firmware.build import build_image
    from toolkit.identity import identity_path
    from toolkit.journeys.flash import FlashOptions, flash
    from toolkit.target.ssh import connect_target
    from toolkit.targets import from_sample

    name = f"bench-flash-{os.getpid()}"
    try:
        state = sample.up(name=name, wait="ssh", fresh=True)
    except Exception as exc:  # no firmware/QEMU here
        print(f"ssh_flash_overhead: not measured: the sample did not start ({exc})")
        raise SystemExit(1) from exc
    try:
        target = from_sample(name)
        with connect_target(target, accept_new=True) as conn:
            version = conn.run("cat /etc/firmware-version", check=True).stdout.strip()
        major, minor = (int(x) for x in version.split(".")[:2])
        ours_image = build_image(f"{major}.{minor + 1}.0", target.board, out=tmp).path
        peer_image = build_image(f"{major}.{minor + 2}.0", target.board, out=tmp).path

        ours_clock = DeviceClock()
        timed_runs(ours_clock)
        result = flash(
            ours_image,
            target,
            # The whole image, like the peer: delta reflash changes the transfer, which this
            # figure leaves out (benchmarks/delta_reflash.py measures it).
            FlashOptions(via="ssh", timeout=300, delta=False),
            reporter=StepReporter(ours_clock),
        )
        assert result.ok, result
        s = result.steps
        ours = result.seconds - s.get("reboot", 0.0) - s.get("upload", 0.0)

        # The peer logs in with the key routerkit logged in with (the one the sample's
        # authorized_keys holds): a sample target names no key file of its own.
        key = Path(target.identity) if target.identity else identity_path()
        try:
            total, steps, peer_clock = peer(state, key, peer_image)
        except PeerFailed as exc:
            print(f"ssh_flash_overhead: not measured: the peer's hand flash failed ({exc})")
            raise SystemExit(1) from exc
        theirs = total - steps["reboot"] - steps["upload"]
        print(
            f"ssh_flash_overhead: ours {ours:.2f} s, peer {theirs:.2f} s, ratio {ours / theirs:.2f} "
            "(ours/peer, lower is better; one flash each of a whole image, ours first, both from "
            "the version before)"
        )
        dev_ours, dev_peer = ours_clock.total(OVERHEAD_STEPS), peer_clock.total(OVERHEAD_STEPS)
        host_ours, host_peer = ours - dev_ours, theirs - dev_peer
        print(
            f"ssh_flash_host_overhead: ours {host_ours:.2f} s, peer {host_peer:.2f} s, "
            f"ratio {host_ours / host_peer:.2f} (ours/peer, lower is better; overhead minus "
            f"the device's own run time of the same commands: ours {dev_ours:.2f} s, peer "
            f"{dev_peer:.2f} s)"
        )
        print(f"  ours  total {result.seconds:.2f} s: {_fmt(s)}")
        print(f"        device: {_fmt(ours_clock.seconds)}")
        print(f"  peer  total {total:.2f} s: {_fmt(steps)}")
        print(f"        device: {_fmt(peer_clock.seconds)}")
    finally:
        current = sample.status(name)
        sample.down(current or state)


if __name__ == "__main__":
    main()
