"""Fleet flash: 8 light targets in parallel vs one, wall time, side by side in one run.

Light targets: dropbear on loopback running the firmware's real sysupgrade/fwinfo scripts
(they hash, write the inactive slot, read back, switch; the "reboot" restarts dropbear after
0.5 s). Same image (4 MiB), same journey (`flash_fleet` → the SSH flash), host keys trusted first.
Median of 3 interleaved pairs (one target, then eight). The light devices run on this machine:
their sysupgrade/fwinfo hashing competes with routerkit (and with anything else running) for
the same cores, so a second line reports where the CPU went during the eight-target runs.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

N = 8
PAIRS = 3


def _cpu() -> tuple[float, float, float]:
    """(this process's CPU s, reaped children's CPU s, whole machine's busy CPU s).

    A light device's dropbear is reaped when it "reboots": the children figure of a run is
    about one flash's worth of device work per device (shifted by one reboot).
    """
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime, busy


class _StepClock:
    """A Reporter that keeps the seconds of each step of one target's flash."""

    def __init__(self, into: list[dict[str, float]]) -> None:
        self.seconds: dict[str, float] = {}
        into.append(self.seconds)

    def step_started(self, name: str, detail: str = "") -> None:
        pass

    def step_finished(self, name: str, ok: bool, seconds: float, detail: str = "") -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def progress(self, name: str, done: int, total: int | None) -> None:
        pass

    def message(self, text: str, level: str = "info") -> None:
        pass


def _step_medians(runs: list[dict[str, float]]) -> dict[str, float]:
    names = dict.fromkeys(name for run in runs for name in run)
    return {name: statistics.median(run.get(name, 0.0) for run in runs) for name in names}


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="rk-fleet-bench-"))
    os.environ.setdefault("ROUTERKIT_CONFIG", str(tmp / "config"))
    os.environ.setdefault("ROUTERKIT_DATA", str(tmp / "data"))
    from toolkit.journeys.fleet import flash_fleet
    from toolkit.target.ssh import connect_target
    from toolkit.targets import Target
    from toolkit.testing.dropbear import LoopbackDevice, make_image

    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp / "id")], check=True
    )
    old = make_image("1.0.0", tmp / "img", payload_bytes=1 << 20)
    new = make_image("1.1.0", tmp / "img", payload_bytes=4 << 20)
    devices = []
    try:
        for i in range(N):
            dev = LoopbackDevice(tmp / f"d{i}", tmp / "id.pub")
            dev.start()
            dev.install(old, "A")
            connect_target(
                Target(
                    name=f"t{i}", ssh_host="127.0.0.1", ssh_port=dev.port, identity=str(tmp / "id")
                ),
                accept_new=True,
            ).close()
            devices.append(dev)

        def lab(names: range, path: Path) -> Path:
            path.write_text(
                "".join(
                    f'[targets.t{i}]\nboard = "es-virt"\nssh_host = "127.0.0.1"\nssh_port = {devices[i].port}\n'
                    f'identity = "{tmp / "id"}"\n'
                    for i in names
                )
            )
            return path

        one_lab, all_lab = lab(range(1), tmp / "one.toml"), lab(range(N), tmp / "all.toml")
        ones, eights, cpu, cpu1, idle = [], [], [], [], []
        steps1: list[dict[str, float]] = []
        steps8: list[dict[str, float]] = []
        for _ in range(PAIRS):
            # What the rest of the machine takes while we do nothing (one second).
            c0, t0 = _cpu(), time.monotonic()
            time.sleep(1.0)
            idle.append((_cpu()[2] - c0[2]) / (time.monotonic() - t0))
            c0 = _cpu()
            t0 = time.monotonic()
            r1 = flash_fleet(
                new, one_lab, parallel=1, force=True, reporter_for=lambda _: _StepClock(steps1)
            )
            ones.append(time.monotonic() - t0)
            c1 = _cpu()
            cpu1.append([b - a for a, b in zip(c0, c1, strict=True)] + [ones[-1]])
            c0 = _cpu()
            t0 = time.monotonic()
            r8 = flash_fleet(
                new, all_lab, parallel=N, force=True, reporter_for=lambda _: _StepClock(steps8)
            )
            eights.append(time.monotonic() - t0)
            c1 = _cpu()
            cpu.append([b - a for a, b in zip(c0, c1, strict=True)] + [eights[-1]])
            assert r1.ok and r8.ok, (r1.to_dict(), r8.to_dict())
        one, eight = statistics.median(ones), statistics.median(eights)
        print(
            f"fleet_{N}_vs_1: ours {eight:.2f} s, peer {one:.2f} s, ratio {eight / one:.2f} "
            f"(ours/peer, lower is better; ours: {N} targets in parallel, peer: one target; "
            f"median of {PAIRS} interleaved pairs)"
        )
        me, kids, busy, wall = (statistics.median(c[i] for c in cpu) for i in range(4))
        me1, kids1, busy1, wall1 = (statistics.median(c[i] for c in cpu1) for i in range(4))
        cores = os.cpu_count() or 1
        # The light devices run on this machine, so the eight flashes' own CPU (routerkit's and
        # the devices') must fit on its cores: that alone bounds the ratio from below.
        floor = (me + kids) / cores
        others = max(0.0, busy - me - kids)
        print(
            f"# fleet_{N}_vs_1_profile: one target: routerkit {me1:.2f} CPU-s, its device "
            f"~{kids1:.2f} CPU-s in {wall1:.2f} s; {N} targets: routerkit {me:.2f} CPU-s, the "
            f"devices ~{kids:.2f} CPU-s (reaped dropbears) -> at least {floor:.2f} s on "
            f"{cores} cores even with nothing else running (ratio >= {floor / one:.2f}); the "
            f"machine was busy {busy / wall:.2f} of {cores} cores for {wall:.2f} s, "
            f"{others:.2f} CPU-s of it other processes (the team's tests and QEMU; with routerkit "
            f"idle they kept {statistics.median(idle):.2f} of {cores} cores busy)"
        )
        # Everything the eight-target run made this machine do: its busy CPU minus what the
        # rest of the machine did when idle (the devices' unreaped dropbears, loopback TCP in
        # the kernel, the device supervisors are in it). It must fit on the cores too.
        caused = max(me + kids, busy - statistics.median(idle) * wall)
        print(
            f"# fleet_{N}_vs_1_floor: the {N}-target run cost this machine ~{caused:.2f} CPU-s "
            f"(busy minus the idle baseline) -> at least {caused / cores:.2f} s on {cores} cores, "
            f"ratio >= {caused / cores / one:.2f}; of it routerkit {me:.2f} CPU-s "
            f"({me / N:.3f} per target), the only part a real bench, where each device has its "
            f"own CPU, puts on the host"
        )
        one_steps, eight_steps = _step_medians(steps1), _step_medians(steps8)
        print(
            f"# fleet_{N}_vs_1_steps (s per target, medians, one target -> each of {N}): "
            + ", ".join(
                f"{name} {one_steps.get(name, 0.0):.2f}->{eight_steps.get(name, 0.0):.2f}"
                for name in eight_steps
            )
        )
    finally:
        for dev in devices:
            dev.stop()


if __name__ == "__main__":
    main()
