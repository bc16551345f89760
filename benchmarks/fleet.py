"""Fleet flash: 8 light targets in parallel vs one, wall time, side by side in one run.

Light targets: dropbear on loopback running the firmware's real sysupgrade/fwinfo scripts
(they hash, write the inactive slot, read back, switch; the "reboot" restarts dropbear after
0.5 s). Same image (4 MiB), same journey (`flash_fleet` → the SSH flash), host keys trusted first.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

N = 8


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="rk-fleet-bench-"))
    os.environ.setdefault("ROUTERKIT_CONFIG", str(tmp / "config"))
    os.environ.setdefault("ROUTERKIT_DATA", str(tmp / "data"))
    from toolkit.journeys.fleet import flash_fleet
    from toolkit.targets import Target
    from toolkit.transport.dropbear import LoopbackDevice, make_image
    from toolkit.transport.ssh import connect_target

    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp / "id")], check=True)
    old = make_image("1.0.0", tmp / "img", payload_bytes=1 << 20)
    new = make_image("1.1.0", tmp / "img", payload_bytes=4 << 20)
    devices = []
    try:
        for i in range(N):
            dev = LoopbackDevice(tmp / f"d{i}", tmp / "id.pub")
            dev.start()
            dev.install(old, "A")
            connect_target(Target(name=f"t{i}", ssh_host="127.0.0.1", ssh_port=dev.port,
                                  identity=str(tmp / "id")), accept_new=True).close()
            devices.append(dev)

        def lab(names: range, path: Path) -> Path:
            path.write_text("".join(
                f'[targets.t{i}]\nboard = "es-virt"\nssh_host = "127.0.0.1"\nssh_port = {devices[i].port}\n'
                f'identity = "{tmp / "id"}"\n' for i in names))
            return path

        one_lab, all_lab = lab(range(1), tmp / "one.toml"), lab(range(N), tmp / "all.toml")
        t0 = time.monotonic()
        r1 = flash_fleet(new, one_lab, parallel=1)
        one = time.monotonic() - t0
        t0 = time.monotonic()
        r8 = flash_fleet(new, all_lab, parallel=N, force=True)
        eight = time.monotonic() - t0
        assert r1.ok and r8.ok, (r1.to_dict(), r8.to_dict())
        print(f"fleet_{N}_vs_1: ours {eight:.2f} s, peer {one:.2f} s (one target), ratio {eight / one:.2f}")
    finally:
        for dev in devices:
            dev.stop()


if __name__ == "__main__":
    main()
