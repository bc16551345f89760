"""Delta reflash of a nightly over a 115200-baud serial line, against a full flash.

One private virtual sample. Two nightlies are built the way CI builds them: N and N+1 differ in
their version (the FIT header, the initramfs's version file, the metadata); the kernel is the
same. Before each run the sample is brought to the same state over its direct console (TFTP,
fast): an older build O in one slot, nightly N active in the other. Then N+1 is flashed through
a throttling proxy that paces the console at 11,520 B/s each way (115200 baud, 8N1):

* ours: ``routerkit flash`` with delta (the default): only what neither slot holds crosses the
  line, the rest is copied slot to slot on the device; the whole slot is verified as always;
* peer: the same flash with ``--no-delta``: the whole image crosses the line, which is what
  every U-Boot flasher does (and routerkit did before).

Printed per path: bytes that went towards the device through the proxy (commands included),
and wall time of the whole journey (power cycle to the verified new version). YMODEM carries
the image through the 115200 line itself: a full flash takes ~20 minutes, so each side runs
once there (no median). TFTP carries only the commands through it (delta is off by default for
TFTP; here it is forced on, to show why). SSH (no console involved): upload bytes and wall
time, delta against ``--no-delta``, median of 3 interleaved pairs.
``ROUTERKIT_BENCH_QUICK=1`` skips the YMODEM pair.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

LINE_RATE = 11_520  # bytes/s at 115200 baud, 8N1
VERSIONS = {"O": "1.1.0", "N": "1.3.0-nightly.7", "N+1": "1.3.0-nightly.8"}


def _flash(image: Path, target: Any, path: str, *, delta: bool = True) -> Any:
    from toolkit.journeys.flash import FlashOptions, flash

    via = "ssh" if path == "ssh" else "serial"
    options = FlashOptions(
        via=via, path="auto" if via == "ssh" else path, allow_downgrade=True, delta=delta,
        timeout=600,
    )  # fmt: skip
    return flash(image, target, options)


def _ssh_pair(images: dict[str, Path], direct: Any) -> tuple[list[Any], list[Any]]:
    ours, peer = [], []
    for _ in range(3):
        for delta, runs in ((True, ours), (False, peer)):
            _prepare(images, direct)
            start = time.monotonic()
            result = _flash(images["N+1"], direct, "ssh", delta=delta)
            runs.append((result.bytes, time.monotonic() - start, result))
    return ours, peer


def _prepare(images: dict[str, Path], direct: Any) -> None:
    """The same starting state for every run: O in one slot, N active in the other."""
    _flash(images["O"], direct, "tftp")
    _flash(images["N"], direct, "tftp")


def _run(images: dict[str, Path], direct: Any, path: str, delta: bool) -> tuple[int, float, Any]:
    from toolkit.testing import Faults, SerialFaultProxy

    _prepare(images, direct)
    port = int(str(direct.serial_url).rsplit(":", 1)[1])
    with SerialFaultProxy(("127.0.0.1", port), Faults(rate=LINE_RATE)) as proxy:
        paced = dataclasses.replace(direct, serial_url=f"socket://127.0.0.1:{proxy.port}")
        start = time.monotonic()
        result = _flash(images["N+1"], paced, path, delta=delta)
        seconds = time.monotonic() - start
        wire = proxy.stats.to_device
    if not result.ok or result.version_after != VERSIONS["N+1"]:
        raise SystemExit(f"delta_reflash: the flash did not end on N+1: {result}")
    return wire, seconds, result


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="rk-delta-bench-"))
    os.environ.setdefault("ROUTERKIT_CONFIG", str(tmp / "config"))
    os.environ.setdefault("ROUTERKIT_DATA", str(tmp / "data"))
    from toolkit import sample
    from toolkit.firmware.build import build_image
    from toolkit.targets import from_sample

    name = f"bench-delta-{os.getpid()}"
    images = {label: build_image(v, "es-virt", out=tmp).path for label, v in VERSIONS.items()}
    size = images["N+1"].stat().st_size
    state = sample.up(name=name, wait="uboot", fresh=True)
    paths = ["tftp"] if os.environ.get("ROUTERKIT_BENCH_QUICK") == "1" else ["tftp", "ymodem"]
    try:
        direct = from_sample(name)
        for path in paths:
            ours_wire, ours_s, ours = _run(images, direct, path, delta=True)
            peer_wire, peer_s, _ = _run(images, direct, path, delta=False)
            label = "delta_reflash_115200" if path == "ymodem" else f"delta_reflash_{path}_115200"
            print(
                f"{label} bytes on the line: ours {ours_wire} B, peer {peer_wire} B, "
                f"ratio {ours_wire / peer_wire:.3f} (ours/peer, lower is better; image "
                f"{size} B, {ours.reused_bytes} B of it copied on the device)"
            )
            print(
                f"{label} wall time: ours {ours_s:.1f} s, peer {peer_s:.1f} s, "
                f"ratio {ours_s / peer_s:.3f} (ours/peer, lower is better)"
            )
        ours_runs, peer_runs = _ssh_pair(images, direct)
        ob = statistics.median(r[0] for r in ours_runs)
        pb = statistics.median(r[0] for r in peer_runs)
        os_, ps = (statistics.median(r[1] for r in runs) for runs in (ours_runs, peer_runs))
        print(
            f"delta_reflash_ssh bytes uploaded: ours {ob:.0f} B, peer {pb:.0f} B, "
            f"ratio {ob / pb:.3f} (ours/peer, lower is better)"
        )
        print(
            f"delta_reflash_ssh wall time: ours {os_:.1f} s, peer {ps:.1f} s, "
            f"ratio {os_ / ps:.3f} (ours/peer, lower is better; median of 3 interleaved)"
        )
    finally:
        current = sample.status(name)
        sample.down(current or state)


if __name__ == "__main__":
    main()
