"""Run every benchmark in this folder and check that each printed the figures it owes.

``make bench`` runs this. Each ``benchmarks/NAME.py`` (not starting with ``_``) runs to its end,
one after the other, its output shown as it comes. A figure line has one format everywhere::

    NAME: ours X unit, peer[(who)] Y unit, ratio Z (ours/peer, lower is better|higher is better...)

The run goes on after a script fails (so one broken benchmark does not hide the others'
figures), and ends with a summary: every figure line, then every script that exited non-zero
or did not print a figure it owes (``EXPECTED``; a script not listed there owes at least one).
The exit status is non-zero when anything is missing.

    .venv/bin/python benchmarks/_run_all.py [NAME ...]

``ROUTERKIT_BENCH_LOCK=/path/to/lockfile`` runs the benchmarks that boot QEMU under
``flock`` on that file, so a shared machine runs one QEMU-heavy job at a time.
``ROUTERKIT_BENCH_QUICK=1`` skips the long runs: delta_reflash then owes no YMODEM figures,
and find_first_bad runs no peer, so its figure is missing and the run fails (as it should).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

FIGURE = re.compile(
    r"^(?P<name>[^#\s][^:\n]*): ours (?P<ours>-?[\d.]+)(?: [^,\n]+)?, "
    r"peer(?:\([^)\n]*\))? (?P<peer>-?[\d.]+)(?: [^,\n]+)?, "
    r"ratio (?P<ratio>-?[\d.]+) \(ours/peer, (?:lower|higher) is better"
)

#: The figures each script must print (exact names, before the colon).
EXPECTED: dict[str, list[str]] = {
    "boot": ["boot_linux_shell", "boot_ssh_ready"],
    "build": ["firmware_build"],
    "delta_reflash": [
        "delta_reflash_tftp_115200 bytes on the line",
        "delta_reflash_tftp_115200 wall time",
        "delta_reflash_ssh bytes uploaded",
        "delta_reflash_ssh wall time",
    ]
    + (
        []
        if os.environ.get("ROUTERKIT_BENCH_QUICK") == "1"
        else ["delta_reflash_115200 bytes on the line", "delta_reflash_115200 wall time"]
    ),
    "fleet": ["fleet_8_vs_1"],
    "hil": [
        "hil_fixture_overhead",
        "hil_fixture_overhead_shell",
        "hil_fixture_overhead_shell_output",
    ],
    "photos": ["photos_40x12mp", "photos_upload_bytes"],
    "pull": ["pull_nightly_cold", "pull_nightly_warm"],
    "serial_transfer": [
        "serial ymodem payload vs raw line",
        "serial ymodem vs lrzsz sz",
        "serial ymodem vs xmodem package",
        "serial ymodem at 115200 baud",
    ],
    "share": ["share_40_photos", "share_bytes"],
    "ssh_flash_overhead": ["ssh_flash_overhead", "ssh_flash_host_overhead"],
    "ssh_upload": ["ssh_upload_loopback_dropbear", "ssh_upload_virtual_sample"],
    "startup": ["startup_help"],
    "tftp": ["tftp_8mib_into_uboot"],
    "verify": ["verify_64mib", "verify_64mib_cli"],
}

#: Benchmarks that boot the virtual sample (or a bare U-Boot) in QEMU.
QEMU_HEAVY = {
    "boot",
    "delta_reflash",
    "find_first_bad",
    "fleet",
    "hil",
    "serial_transfer",
    "ssh_flash_overhead",
    "ssh_upload",
    "tftp",
    "verify",
}


def scripts(names: list[str]) -> list[Path]:
    found = sorted(p for p in HERE.glob("*.py") if not p.name.startswith("_"))
    if not names:
        return found
    unknown = set(names) - {p.stem for p in found}
    if unknown:
        raise SystemExit(f"no such benchmark: {', '.join(sorted(unknown))}")
    return [p for p in found if p.stem in names]


def run(script: Path) -> tuple[int, list[str], float]:
    """Run one benchmark, echoing its output; (exit status, its stdout lines, seconds)."""
    cmd = [sys.executable, str(script)]
    lock = os.environ.get("ROUTERKIT_BENCH_LOCK")
    if lock and script.stem in QEMU_HEAVY:
        cmd = ["flock", lock, *cmd]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=HERE.parent)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        lines.append(line.rstrip("\n"))
    return proc.wait(), lines, time.monotonic() - start


def main(argv: list[str]) -> int:
    figures: list[str] = []
    problems: list[str] = []
    for script in scripts(argv):
        print(f"== {script.relative_to(HERE.parent)}", flush=True)
        status, lines, seconds = run(script)
        found = [line for line in lines if FIGURE.match(line)]
        names = {m.group("name") for line in found if (m := FIGURE.match(line))}
        figures += found
        if status != 0:
            problems.append(f"{script.name}: exited {status} after {seconds:.0f} s")
        owed = EXPECTED.get(script.stem)
        if owed is None:
            if not found:
                problems.append(f"{script.name}: printed no figure line")
        else:
            missing = [name for name in owed if name not in names]
            if missing:
                problems.append(f"{script.name}: missing {', '.join(missing)}")
        # a line that looks like a figure but misses the format's parts (a line saying why a
        # figure was not measured is not one; the figure counts as missing above)
        for line in lines:
            if (
                ": ours " in line
                and not line.startswith(("#", " "))
                and not FIGURE.match(line)
                and not re.search(r"not (measured|run)", line)
            ):
                problems.append(f"{script.name}: not in the figure format: {line[:120]}")
    print("\n== figures")
    for line in figures:
        print(line)
    if problems:
        print("\n== missing or failed")
        for problem in problems:
            print(problem)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
