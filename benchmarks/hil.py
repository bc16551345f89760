"""Per-test overhead of the HIL fixtures once the sample is up: routerkit vs labgrid.

One virtual sample (QEMU, stock U-Boot, reference firmware), its console on a QEMU chardev
socket. Both sides drive that same console, one after the other, after a warm-up transition:

- ours: what the ``uboot``/``shell`` fixtures do per test (``HilSession.ensure().uboot()`` /
  ``.shell()``: U-Boot's state is re-checked with one sync round trip, because a test may have
  reset the board; a shell whose console sat at its prompt since the last answer is proven by
  the test's first command instead) and then the test's first command.
- peer: a labgrid ``Environment`` (``NetworkSerialPort`` protocol raw → the same chardev,
  ``SerialDriver``, ``UBootDriver``, ``ShellDriver``, ``ExternalPowerDriver`` whose
  ``cmd_cycle`` is ``routerkit sample reset``, ``UBootStrategy``) the way labgrid's docs write
  fixtures: ``strategy.transition("uboot")`` + ``target.get_driver(...)``, then the same
  command through the driver.

"Overhead" = fixture + first command (the time before a test holds a console proven to
answer); the fixture-only figures are printed too. Median of N rounds per case. The first
command is ``true`` (no output); ``_shell_output`` repeats the shell case with a command that
prints a line (``cat /etc/firmware-version``), which costs ours two process starts on the
device that ``true`` does not (see :mod:`toolkit.target.shell`).

    .venv/bin/python benchmarks/hil.py [--rounds 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from toolkit import sample  # noqa: E402
from toolkit.hil.session import HilSession, TargetSpec  # noqa: E402


def _rounds(fn: Callable[[], Any], rounds: int) -> tuple[list[float], list[float]]:
    """(ms of each run of ``fn``, ms of its fixture part): ``fn`` returns the fixture seconds."""
    totals, setups = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        setup = fn()
        totals.append((time.perf_counter() - t0) * 1000)
        setups.append(setup * 1000)
    return totals, setups


#: The runner's phases of one framed command, timed in ours (see :func:`instrument`).
PHASES = {
    "type_checked": "type + echo check",
    "enter_taken": "Enter echo",
    "started": "frame start (the proof)",
    "_answer": "answer",
}
#: (case, the state the fixture gives, the test's first command)
CASES = (
    ("uboot", "uboot", "true"),
    ("shell", "shell", "true"),
    ("shell_output", "shell", "cat /etc/firmware-version"),
)


def instrument() -> dict[str, list[float]]:
    """Time the phases of every command our runner runs in this process (ms per call)."""
    from toolkit.target.runner import Runner

    spent: dict[str, list[float]] = {}
    for method, label in PHASES.items():
        original = getattr(Runner, method)

        def timed(self: Any, *args: Any, _original: Any = original, _label: str = label) -> Any:
            t0 = time.perf_counter()
            try:
                return _original(self, *args)
            finally:
                spent.setdefault(_label, []).append((time.perf_counter() - t0) * 1000)

        setattr(Runner, method, timed)
    return spent


Runs = dict[str, tuple[list[float], list[float]]]
BARE = "bare line"


def ours(
    name: str,
    workdir: Path,
    rounds: int,
    spent: dict[str, list[float]],
    phases: dict[str, dict[str, list[float]]],
) -> Runs:
    """``spent``: what :func:`instrument` collects; each case's share goes to ``phases``."""
    hil = HilSession(TargetSpec("sample", name, name), workdir)
    runs: Runs = {}
    try:
        for case, state, command in CASES:

            def fixture(state: str = state) -> Any:
                """What the plugin's ``uboot``/``shell`` fixture does for each test."""
                strategy = hil.ensure()
                return strategy.uboot() if state == "uboot" else strategy.shell()

            fixture().run(command)  # warm-up: find the prompt (power-cycle, boot) untimed

            def test(fixture: Callable[[], Any] = fixture, command: str = command) -> float:
                t0 = time.perf_counter()
                driver = fixture()
                setup = time.perf_counter() - t0
                driver.run(command)
                return setup

            spent.clear()
            runs[case] = _rounds(test, rounds)
            for label, values in spent.items():
                phases.setdefault(case, {}).setdefault(label, []).extend(values)
        # The console's own floor, for the profile line: a bare `true` typed at the prompt and
        # the prompt back (no echo check, no framing, no checksum: what no fixture may skip).
        live = hil.ensure().shell()
        live.run("true")
        console, prompt = live.console, live.prompt_end
        for _ in range(rounds):
            console.flush_input()
            t0 = time.perf_counter()
            console.write(b"true\n")
            if console.try_expect(prompt, 2.0) is not None:
                phases.setdefault("shell", {}).setdefault(BARE, []).append(
                    (time.perf_counter() - t0) * 1000
                )
    finally:
        hil.close()
    return runs


LABGRID_ENV = """
targets:
  main:
    resources:
      NetworkSerialPort:
        host: 127.0.0.1
        port: {port}
        protocol: raw
    drivers:
      ExternalPowerDriver:
        cmd_on: "true"
        cmd_off: "true"
        cmd_cycle: "{routerkit} sample reset --name {name}"
      SerialDriver: {{}}
      UBootDriver:
        prompt: "=> "
        autoboot: "Hit any key to stop autoboot"
        interrupt: " "
        boot_command: "boot"
        bootstring: "Starting kernel"
      ShellDriver:
        prompt: "root@es-virt:[^ ]*# "
        login_prompt: " login: "
        username: "root"
      UBootStrategy: {{}}
"""


def peer(name: str, port: int, workdir: Path, rounds: int) -> Runs:
    from labgrid import Environment

    config = workdir / "labgrid-env.yaml"
    routerkit = Path(sys.executable).with_name("routerkit")
    config.write_text(LABGRID_ENV.format(port=port, name=name, routerkit=routerkit))
    env = Environment(str(config))
    target = env.get_target("main")
    strategy = target.get_driver("UBootStrategy")
    runs: Runs = {}
    try:
        for case, state, command in CASES:
            driver_name = "UBootDriver" if state == "uboot" else "ShellDriver"
            strategy.transition(state)  # warm-up: power-cycle through routerkit, boot
            target.get_driver(driver_name).run_check(command)

            def test(
                state: str = state, driver_name: str = driver_name, command: str = command
            ) -> float:
                t0 = time.perf_counter()
                strategy.transition(state)
                driver = target.get_driver(driver_name)
                setup = time.perf_counter() - t0
                driver.run_check(command)
                return setup

            runs[case] = _rounds(test, rounds)
    finally:
        target.deactivate_all_drivers()
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--blocks", type=int, default=3, help="ours/labgrid turns")
    args = parser.parse_args()
    per_block = max(1, args.rounds // args.blocks)
    mine: dict[str, tuple[list[float], list[float]]] = {}
    theirs: dict[str, tuple[list[float], list[float]]] = {}
    phases: dict[str, dict[str, list[float]]] = {}
    spent = instrument()
    with tempfile.TemporaryDirectory(prefix="rk-bench-hil-") as tmp:
        workdir = Path(tmp)
        os.environ["ROUTERKIT_DATA"] = str(workdir / "data")  # the sample's state stays here
        name = f"bench-hil-{os.getpid()}"
        state = sample.up(name=name, wait="uboot")
        try:
            # In turns (the console takes one client at a time, so each side holds it for a
            # block of rounds, after its own untimed warm-up): load drift hits both alike.
            for block in range(args.blocks):
                got = ours(name, workdir / f"ours{block}", per_block, spent, phases)
                for key, (totals, setups) in got.items():
                    mine.setdefault(key, ([], []))[0].extend(totals)
                    mine[key][1].extend(setups)
                got = peer(name, state.serial_port, workdir, per_block)
                for key, (totals, setups) in got.items():
                    theirs.setdefault(key, ([], []))[0].extend(totals)
                    theirs[key][1].extend(setups)
        finally:
            sample.down(name)
    n = per_block * args.blocks
    for case, _state, command in CASES:
        o_total, o_setup = (statistics.median(x) for x in mine[case])
        p_total, p_setup = (statistics.median(x) for x in theirs[case])
        suffix = "" if case == "uboot" else f"_{case}"
        print(
            f"hil_fixture_overhead{suffix}: ours {o_total:.1f} ms, peer(labgrid) {p_total:.1f} ms, "
            f"ratio {o_total / p_total:.2f} (ours/peer, lower is better; fixture + first command "
            f"`{command}`, median of {n} rounds each in {args.blocks} interleaved blocks)"
        )
        print(
            f"hil_fixture_setup_only{suffix}: ours {o_setup:.2f} ms, peer(labgrid) {p_setup:.3f} ms, "
            f"ratio {o_setup / max(p_setup, 1e-6):.0f} (ours/peer, lower is better; "
            + (
                "ours proves U-Boot's state with one round trip"
                if case == "uboot"
                else "ours hands out a shell whose console sat at its prompt and proves it with "
                "the first command"
            )
            + ", labgrid re-checks nothing when it believes the state)"
        )
        medians = {label: statistics.median(v) for label, v in phases.get(case, {}).items()}
        print(
            f"# hil_profile{suffix} (ms, medians): ours: fixture {o_setup:.1f}, "
            + ", ".join(
                f"{label} {medians[label]:.1f}" for label in PHASES.values() if label in medians
            )
            + f"; labgrid: {p_total - p_setup:.1f} for its command (one line, read to its marker), "
            f"{p_setup:.3f} for its fixture"
            + (
                f"; the console's floor: a bare `true` line to the next prompt "
                f"{medians[BARE]:.1f} (the goal 0.5 is {p_total / 2:.1f})"
                if BARE in medians
                else ""
            )
        )


if __name__ == "__main__":
    main()
