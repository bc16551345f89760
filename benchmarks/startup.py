"""Start-up time of `routerkit --help` against peers' CLIs, measured side by side.

Peers (from the `bench` extra, installed in the same venv): `labgrid-client --help` (the HIL
lab tool) and `esptool version` (the serial flasher). Runs are interleaved round by round so
machine load hits every tool alike; the median of N runs is reported.

    .venv/bin/python benchmarks/startup.py [--runs 21]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def _tool(name: str) -> str | None:
    local = BIN / name
    return str(local) if local.exists() else shutil.which(name)


def _once(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    ours = _tool("routerkit")
    if ours is None:
        print("startup_help: routerkit is not installed (make setup)", file=sys.stderr)
        return 1
    commands = {"routerkit": [ours, "--help"]}
    peers = {"labgrid-client": ["--help"], "esptool": ["version"]}
    for name, rest in peers.items():
        path = _tool(name)
        if path is None:
            print(f"startup_help: peer {name} missing (pip install -e '.[bench]')", file=sys.stderr)
            continue
        commands[name] = [path, *rest]
    env_note = f"{os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f}"
    times: dict[str, list[float]] = {name: [] for name in commands}
    for argv in commands.values():  # warm the page cache once; not measured
        _once(argv)
    for _ in range(args.runs):
        for name, argv in commands.items():
            times[name].append(_once(argv))
    med = {name: statistics.median(values) * 1000 for name, values in times.items()}
    print(f"# median of {args.runs} interleaved runs ({env_note})")
    if len(commands) == 1:
        print("startup_help: not measured: no peer installed (pip install -e '.[bench]')")
        return 1
    for name in commands:
        if name == "routerkit":
            continue
        ratio = med["routerkit"] / med[name]
        print(
            f"startup_help: ours {med['routerkit']:.0f} ms, peer({name}) {med[name]:.0f} ms, "
            f"ratio {ratio:.2f} (ours/peer, lower is better)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
