"""Per-test overhead of the HIL fixtures once the sample is up: routerkit vs labgrid.

One virtual sample (QEMU, stock U-Boot, reference firmware), its console on a QEMU chardev
socket. Both sides drive that same console, one after the other, after a warm-up transition:

- ours: what the ``uboot``/``shell`` fixtures do per test (``HilSession.ensure().uboot()`` /
  ``.shell()``: the state is re-checked with one sync round trip, because a test may have
  reset or rebooted the board) and then the test's first trivial command.
- peer: a labgrid ``Environment`` (``NetworkSerialPort`` protocol raw → the same chardev,
  ``SerialDriver``, ``UBootDriver``, ``ShellDriver``, ``ExternalPowerDriver`` whose
  ``cmd_cycle`` is ``routerkit sample reset``, ``UBootStrategy``) the way labgrid's docs write
  fixtures: ``strategy.transition("uboot")`` + ``target.get_driver(...)``, then the same
  command through the driver.

"Overhead" = fixture + first command (the time before a test holds a console proven to
answer); the fixture-only figures are printed too. Median of N rounds per state.

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


def _median_ms(fn: Callable[[], Any], rounds: int) -> tuple[float, float]:
    """(median ms of ``fn``, median ms of its fixture part) — ``fn`` returns the fixture time."""
    totals, setups = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        setup = fn()
        totals.append((time.perf_counter() - t0) * 1000)
        setups.append(setup * 1000)
    return statistics.median(totals), statistics.median(setups)


def ours(name: str, workdir: Path, rounds: int) -> dict[str, tuple[float, float]]:
    hil = HilSession(TargetSpec("sample", name, name), workdir)
    try:
        hil.ensure().uboot()  # warm-up: find the prompt (or power-cycle to it)

        def uboot_test() -> float:
            t0 = time.perf_counter()
            uboot = hil.ensure().uboot()
            setup = time.perf_counter() - t0
            uboot.run("true")
            return setup

        uboot = _median_ms(uboot_test, rounds)
        hil.ensure().shell()  # warm-up: boot Linux

        def shell_test() -> float:
            t0 = time.perf_counter()
            shell = hil.ensure().shell()
            setup = time.perf_counter() - t0
            shell.run("true")
            return setup

        shell = _median_ms(shell_test, rounds)
    finally:
        hil.close()
    return {"uboot": uboot, "shell": shell}


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


def peer(name: str, port: int, workdir: Path, rounds: int) -> dict[str, tuple[float, float]]:
    from labgrid import Environment

    config = workdir / "labgrid-env.yaml"
    routerkit = Path(sys.executable).with_name("routerkit")
    config.write_text(LABGRID_ENV.format(port=port, name=name, routerkit=routerkit))
    env = Environment(str(config))
    target = env.get_target("main")
    strategy = target.get_driver("UBootStrategy")
    try:
        strategy.transition("uboot")  # warm-up: power-cycle through routerkit, interrupt

        def uboot_test() -> float:
            t0 = time.perf_counter()
            strategy.transition("uboot")
            driver = target.get_driver("UBootDriver")
            setup = time.perf_counter() - t0
            driver.run_check("true")
            return setup

        uboot = _median_ms(uboot_test, rounds)
        strategy.transition("shell")  # warm-up: boot Linux

        def shell_test() -> float:
            t0 = time.perf_counter()
            strategy.transition("shell")
            driver = target.get_driver("ShellDriver")
            setup = time.perf_counter() - t0
            driver.run_check("true")
            return setup

        shell = _median_ms(shell_test, rounds)
    finally:
        target.deactivate_all_drivers()
    return {"uboot": uboot, "shell": shell}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rk-bench-hil-") as tmp:
        workdir = Path(tmp)
        os.environ["ROUTERKIT_DATA"] = str(workdir / "data")  # the sample's state stays here
        name = f"bench-hil-{os.getpid()}"
        state = sample.up(name=name, wait="uboot")
        try:
            mine = ours(name, workdir / "ours", args.rounds)
            theirs = peer(name, state.serial_port, workdir, args.rounds)
        finally:
            sample.down(name)
    for state_name in ("uboot", "shell"):
        (o_total, o_setup), (p_total, p_setup) = mine[state_name], theirs[state_name]
        suffix = "" if state_name == "uboot" else "_shell"
        print(
            f"hil_fixture_overhead{suffix}: ours {o_total:.1f} ms, peer(labgrid) {p_total:.1f} ms, "
            f"ratio {o_total / p_total:.2f} (ours/peer, lower is better; fixture + first command, "
            f"median of {args.rounds} rounds each)"
        )
        print(
            f"hil_fixture_setup_only{suffix}: ours {o_setup:.2f} ms, peer(labgrid) {p_setup:.3f} ms, "
            f"ratio {o_setup / max(p_setup, 1e-6):.0f} (ours/peer, lower is better; ours proves the state "
            "with one round trip, labgrid re-checks nothing when it believes the state)"
        )


if __name__ == "__main__":
    main()
