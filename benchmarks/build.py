"""firmware_build: `routerkit firmware build` of the reference image vs a plain mkimage pipeline.

ours: `routerkit firmware build --version V` (a new version each run, so the FIT is really
      rebuilt; the guest packages and the compressed kernel come from our cache), including
      staging the tree, the host key, signing and sealing.
peer: the same tree (staged for it, untimed) and the same .its, run the plain way:
      `find | sort | cpio -o -H newc --reproducible | gzip -n` and `mkimage -f`. It has the
      same cache as ours: the kernel Image is gzip'ed once before the runs (untimed), as our
      cache holds it, so neither side compresses the kernel in a timed run.
Median of 3 interleaved runs each, same machine, same moment. Ours does more than the peer
(it stages the tree and signs and seals the image; the peer's tree is staged for it).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

RUNS = 3


def main() -> None:
    from toolkit.boards import load_board
    from toolkit.firmware import fit as fitmod
    from toolkit.firmware.guest import fetch_guest
    from toolkit.firmware.initramfs import DeviceTrust, stage
    from toolkit.firmware.keys import dev_key

    work = Path(tempfile.mkdtemp(prefix="rk-bench-build-"))
    env = dict(os.environ, ROUTERKIT_DATA=str(work / "data"))
    os.environ["ROUTERKIT_DATA"] = env["ROUTERKIT_DATA"]
    board = load_board("es-virt")
    guest = fetch_guest()  # warm: downloads once, like both pipelines would have
    tree = work / "tree"
    tree.mkdir()
    signer = dev_key()
    trust = DeviceTrust(signing_keys=((signer.keyid, signer.public_key().to_bytes()),))
    stage(guest, board, "9.9.9", trust, tree)
    (work / "Image").write_bytes(fitmod.raw_arm64_image(guest.kernel.read_bytes()))
    its = fitmod.its_source(
        description="peer", kernel="kernel.gz", initramfs="initramfs.cpio.gz", load="0x40400000"
    )
    (work / "image.its").write_text(its)
    routerkit = REPO / ".venv" / "bin" / "routerkit"
    # Warm our kernel cache once (a developer's second build), untimed.
    subprocess.run(
        [
            str(routerkit),
            "firmware",
            "build",
            "--version",
            "0.0.0-warm",
            "--out",
            str(work / "out"),
            "--json",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    # The peer's kernel cache, filled once like ours was by the warm-up build.
    subprocess.run(["bash", "-c", f"gzip -n -c {work}/Image > {work}/kernel.gz"], check=True)
    peer_script = (
        f"cd {tree} && find . | LC_ALL=C sort | cpio --quiet -o -H newc --reproducible -R 0:0 "
        f"| gzip -n > {work}/initramfs.cpio.gz && cd {work} && SOURCE_DATE_EPOCH=0 "
        "mkimage -f image.its image.fit >/dev/null"
    )
    ours, peer = [], []
    for i in range(RUNS):
        t = time.perf_counter()
        subprocess.run(
            [
                str(routerkit),
                "firmware",
                "build",
                "--version",
                f"0.0.{i}-bench",
                "--out",
                str(work / "out"),
                "--json",
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        subprocess.run(["bash", "-c", peer_script], check=True)
        peer.append(time.perf_counter() - t)
    o, p = statistics.median(ours), statistics.median(peer)
    print(
        f"firmware_build: ours {o:.2f} s, peer {p:.2f} s, ratio {o / p:.2f} (ours/peer, lower "
        f"is better; both with the kernel gzip cached; ours also stages, signs and seals; "
        f"median of {RUNS} interleaved runs)"
    )
    subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    main()
