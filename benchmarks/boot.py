"""Boot time of the virtual sample: QEMU start -> U-Boot prompt -> Linux shell -> SSH ready.

Three ways to boot the same QEMU machine and the same factory disk, measured in one run,
round-robin, median of N rounds (all times from the QEMU process start):

- ours: ``toolkit.sample.up(wait="ssh")``: U-Boot's autoboot countdown is interrupted and
  ``boot`` typed at once (the countdown cannot be shortened otherwise: Debian's U-Boot has
  bootdelay=2 built in and QEMU 7.2's pflash cannot save an environment).
- peer "stock autoboot": the same console watched without typing: U-Boot counts down, then
  runs the same bootcmd.
- peer "direct kernel": QEMU loads the FIT's kernel and initramfs itself (``-kernel/-initrd``,
  no U-Boot, no FIT hash check): the floor for this kernel + initramfs on this machine.

The DESIGN's prototype figures (U-Boot 0.7-1.2 s, Linux ~3.8 s, SSH ~5.5 s) are printed for
reference only; they were measured on another day and are not a peer.

    .venv/bin/python benchmarks/boot.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from toolkit import sample  # noqa: E402
from toolkit.boards import Board, load_board  # noqa: E402
from toolkit.protocol.console import Console  # noqa: E402
from toolkit.sample import qemu  # noqa: E402
from toolkit.sample.watch import connect  # noqa: E402
from toolkit.target.shell import LinuxShell  # noqa: E402
from toolkit.target.strategy import wait_ssh_banner  # noqa: E402

STAGES = ("uboot_banner", "uboot_prompt", "kernel_start", "linux_shell", "ssh_ready")


def _ours(name: str) -> dict[str, float]:
    state = sample.up(name=name, wait="ssh")
    try:
        return dict(state.boot_times)
    finally:
        sample.down(name)


def _start(
    board: Board, work: Path, disk: Path, extra: list[str], no_uboot: bool
) -> tuple[subprocess.Popen[bytes], int, int, float]:
    serial_port, ssh_port = qemu.free_port(), qemu.free_port()
    spec = qemu.QemuSpec(
        disk=disk, qmp=work / "qmp.sock", tftp_dir=work, ssh_port=ssh_port,
        serial="socket", serial_port=serial_port,
    )  # fmt: skip
    cmd = qemu.build_command(board, spec)
    if no_uboot:
        at = next(i for i, a in enumerate(cmd) if a.startswith("if=pflash"))
        del cmd[at - 1 : at + 1]
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd + extra, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return proc, serial_port, ssh_port, t0


def _peer(
    board: Board, work: Path, disk: Path, direct: tuple[Path, Path] | None
) -> dict[str, float]:
    """Boot without typing anything (stock autoboot), or straight into the kernel."""
    extra: list[str] = []
    watch = board
    if direct is not None:
        kernel, initrd = direct
        console = str(board.get("firmware.console", "ttyAMA0"))
        extra = [
            "-kernel",
            str(kernel),
            "-initrd",
            str(initrd),
            "-append",
            f"console={console} rk.slot=A",
        ]
        data = copy.deepcopy(board.data)
        data["console"]["kernel_banner"] = "Booting Linux"  # no U-Boot "Starting kernel" here
        watch = Board(id=board.id, path=board.path, data=data)
    proc, serial_port, ssh_port, t0 = _start(board, work, disk, extra, direct is not None)
    marks: dict[str, float] = {}
    try:
        con = Console(connect(f"socket://127.0.0.1:{serial_port}", time.monotonic() + 10))
        try:
            if direct is None:
                con.expect(str(board.get("console.uboot_banner", "U-Boot ")), timeout=30)
                marks["uboot_banner"] = time.monotonic() - t0
            deadline = time.monotonic() + 120

            def kernel() -> None:
                marks["kernel_start"] = time.monotonic() - t0

            LinuxShell(con, watch).wait_boot(deadline - time.monotonic(), on_kernel=kernel)
            marks["linux_shell"] = time.monotonic() - t0
            wait_ssh_banner("127.0.0.1", ssh_port, deadline)
            marks["ssh_ready"] = time.monotonic() - t0
        finally:
            con.close()
    finally:
        proc.kill()
        proc.wait()
    return marks


def _extract_kernel(board: Board, disk: Path, out: Path) -> tuple[Path, Path]:
    """The kernel and initramfs of the FIT in slot A of the factory disk."""
    from toolkit.firmware.fdt import header_totalsize
    from toolkit.firmware.image import read_fit

    start = board.slot("A").start_block * board.block_size
    with open(disk, "rb") as fh:
        fh.seek(start)
        size = header_totalsize(fh.read(64))
        fh.seek(start)
        fit = fh.read(size)
    info = read_fit(fit)
    found: dict[str, Path] = {}
    for img in info.images:
        if img.type in ("kernel", "ramdisk"):
            path = out / img.type
            path.write_bytes(fit[img.data_offset : img.data_offset + img.data_size])
            found[img.type] = path
    return found["kernel"], found["ramdisk"]


def _median(rounds: list[dict[str, float]], key: str) -> float | None:
    values = [r[key] for r in rounds if key in r]
    return statistics.median(values) if values else None


def _fmt(marks: dict[str, Any]) -> str:
    return ", ".join(f"{k} {marks[k]:.2f} s" for k in STAGES if marks.get(k) is not None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rk-bench-boot-"))
    os.environ["ROUTERKIT_DATA"] = str(work / "data")  # keep the user's samples out of it
    board = load_board("es-virt")
    try:
        from toolkit.sample.disk import factory_builder

        builder = factory_builder()
        if builder is None:
            print(
                "boot: the reference firmware (toolkit.firmware.disk) is missing", file=sys.stderr
            )
            return 1
        disk = work / "factory.img"
        print("# preparing the factory disk (not measured) ...", file=sys.stderr, flush=True)
        builder(board, disk)  # type: ignore[operator]
        kernel, initrd = _extract_kernel(board, disk, work)
        results: dict[str, list[dict[str, float]]] = {"ours": [], "autoboot": [], "direct": []}
        for n in range(args.rounds):
            results["ours"].append(_ours(f"bench-{os.getpid()}-{n}"))
            copy_disk = work / "peer.img"
            shutil.copyfile(disk, copy_disk)
            results["autoboot"].append(_peer(board, work, copy_disk, None))
            shutil.copyfile(disk, copy_disk)
            results["direct"].append(_peer(board, work, copy_disk, (kernel, initrd)))
            print(f"# round {n + 1}: ours {_fmt(results['ours'][-1])}", file=sys.stderr, flush=True)
        med = {name: {k: _median(r, k) for k in STAGES} for name, r in results.items()}
        load = os.getloadavg()[0]
        print(
            f"# median of {args.rounds} rounds, times from QEMU start ({os.cpu_count()} cpus, load {load:.2f})"
        )
        print(f"# boot_breakdown: ours {_fmt(med['ours'])}")
        print(f"# boot_breakdown: peer(stock autoboot) {_fmt(med['autoboot'])}")
        print(f"# boot_breakdown: peer(direct kernel, no U-Boot) {_fmt(med['direct'])}")
        for stage in ("linux_shell", "ssh_ready"):
            ours = med["ours"][stage]
            for peer, label in (("autoboot", "stock autoboot"), ("direct", "qemu -kernel/-initrd")):
                other = med[peer][stage]
                if ours and other:
                    print(
                        f"boot_{stage}: ours {ours:.2f} s, peer({label}) {other:.2f} s, "
                        f"ratio {ours / other:.2f} (ours/peer, lower is better; median of "
                        f"{args.rounds} interleaved rounds)"
                    )
        prompt = med["ours"]["uboot_prompt"]
        if prompt:
            print(
                f"# boot_uboot_prompt: ours {prompt:.2f} s, no peer (DESIGN prototype 0.7-1.2 s, "
                "reference only)"
            )
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
