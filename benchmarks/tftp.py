"""8 MiB by tftpboot: routerkit's TFTP server vs QEMU's built-in one, same U-Boot, one run.

routerkit's server binds a random 127.x.y.z:69 (needs root or CAP_NET_BIND_SERVICE); U-Boot
reaches it through QEMU's user-net gateway. Median of 5 each, interleaved: QEMU's server (it
does not take RFC 7440's windowsize, so U-Boot ACKs every block), ours with the board's
window (``flash.tftp.windowsize``), and ours with the old window of 8.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _uboot_qemu import bare_uboot  # noqa: E402

from toolkit.boards import load_board  # noqa: E402
from toolkit.protocol.tftp import TftpServer  # noqa: E402

SIZE = 8 << 20


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="rk-bench-tftp-") as tmp:
        root = Path(tmp)
        (root / "img.bin").write_bytes(os.urandom(SIZE))
        host = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
        server = TftpServer(root, host=host, port=69).start()
        try:
            with bare_uboot(root) as ub:
                ub.cmd(
                    "setenv ipaddr 10.0.2.15; setenv netmask 255.255.255.0; setenv gatewayip 10.0.2.2"
                )
                board = load_board("es-virt")
                window = int(os.environ.get("WS", board.get("flash.tftp.windowsize", 8)))
                ub.cmd(
                    f"setenv tftpblocksize {os.environ.get('BS', board.get('flash.tftp.blocksize', 1468))}"
                )
                runs = (("ours", host, window), ("qemu", "10.0.2.2", window), ("ours-w8", host, 8))
                times: dict[str, list[float]] = {name: [] for name, _, _ in runs}
                for _ in range(int(os.environ.get("RUNS", "5"))):
                    for name, ip, ws in runs:
                        ub.cmd(f"setenv serverip {ip}; setenv tftpwindowsize {ws}")
                        start = time.monotonic()
                        out = ub.cmd("tftpboot 0x50000000 img.bin", 60)
                        elapsed = time.monotonic() - start
                        if f"Bytes transferred = {SIZE} " not in out:
                            raise SystemExit(f"{name}: transfer failed: {out[-300:]}")
                        times[name].append(elapsed)
        finally:
            server.stop()
    if os.environ.get("VERBOSE"):
        print({k: [round(SIZE / t / 1e6, 1) for t in v] for k, v in times.items()})
    ours = SIZE / statistics.median(times["ours"]) / 1e6
    peer = SIZE / statistics.median(times["qemu"]) / 1e6
    old = SIZE / statistics.median(times["ours-w8"]) / 1e6
    print(
        f"tftp_8mib_into_uboot: ours {ours:.2f} MB/s, peer(QEMU's TFTP server) {peer:.2f} MB/s, "
        f"ratio {ours / peer:.2f} (ours/peer, higher is better; ours with window {window}, QEMU's "
        "takes no window)"
    )
    print(
        f"tftp_8mib_window8: ours {old:.2f} MB/s, peer(QEMU's TFTP server) {peer:.2f} MB/s, "
        f"ratio {old / peer:.2f} (ours/peer, higher is better; ours with the old window of 8)"
    )


if __name__ == "__main__":
    main()
