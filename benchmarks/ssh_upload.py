"""routerkit's SSH upload vs OpenSSH `ssh host 'cat > f'` to the same target, side by side.

Targets: a dropbear on loopback (the light device: the firmware's SSH server, host-side
ceiling) and, when it can be started, the virtual sample (QEMU). Each figure is the median of
3 runs, connection set-up included on both sides (a fresh connection per run, as a flash does).
OpenSSH checks the host key against routerkit's own known_hosts (HostKeyAlias), like we do.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from toolkit.hostkeys import HostKeyStore  # noqa: E402
from toolkit.targets import Target  # noqa: E402
from toolkit.transport.ssh import connect_target  # noqa: E402

RUNS = 3


def ours(target: Target, data: bytes) -> float:
    t0 = time.monotonic()
    conn = connect_target(target)
    conn.upload(data, "/tmp/rk-bench.bin", method="cat")
    conn.close()
    return time.monotonic() - t0


def openssh(target: Target, ident: str, src: Path) -> float:
    store = HostKeyStore()
    cmd = ["ssh", "-p", str(target.ssh_port), "-i", str(target.identity), "-o", "BatchMode=yes",
           "-o", f"UserKnownHostsFile={store.known_hosts}", "-o", f"HostKeyAlias={ident}",
           "-o", "StrictHostKeyChecking=yes", f"{target.ssh_user}@{target.ssh_host}", "cat > /tmp/ossh-bench.bin"]
    t0 = time.monotonic()
    with open(src, "rb") as fh:
        subprocess.run(cmd, stdin=fh, check=True, capture_output=True)
    return time.monotonic() - t0


def compare(where: str, target: Target, size: int) -> None:
    from toolkit.hostkeys import identity_of

    data = os.urandom(size)
    src = Path(tempfile.mkdtemp()) / "blob"
    src.write_bytes(data)
    connect_target(target, accept_new=True).close()
    a, b = [], []
    for _ in range(RUNS):  # interleaved, so both see the same machine load
        a.append(ours(target, data))
        b.append(openssh(target, identity_of(target.board, target.name), src))
    x, y = size / statistics.median(a) / 1e6, size / statistics.median(b) / 1e6
    print(f"ssh_upload_{where}: ours {x:.1f} MB/s, peer(openssh) {y:.1f} MB/s, ratio {x / y:.2f}", flush=True)


def main() -> None:
    from toolkit.transport import dropbear

    tmp = Path(tempfile.mkdtemp(prefix="rk-bench-"))
    os.environ.setdefault("ROUTERKIT_CONFIG", str(tmp / "config"))
    os.environ.setdefault("ROUTERKIT_DATA", str(tmp / "data"))
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp / "id")], check=True)
    dev = dropbear.LoopbackDevice(tmp / "dev", tmp / "id.pub")
    dev.start()
    try:
        compare("loopback_dropbear", Target(name="bench-light", ssh_host="127.0.0.1", ssh_port=dev.port,
                                            identity=str(tmp / "id")), 32 << 20)
    finally:
        dev.stop()
    if os.environ.get("RK_BENCH_SAMPLE", "1") == "1":
        sample_bench()


def sample_bench() -> None:
    from toolkit import sample
    from toolkit.firmware.build import test_client_key

    name = f"bench-ssh-{os.getpid()}"
    try:
        state = sample.up(name=name, wait="ssh")
    except Exception as exc:  # no firmware/QEMU here: the loopback figure stands alone
        print(f"ssh_upload_virtual_sample: skipped ({exc})")
        return
    try:
        target = Target(name=name, ssh_host=state.ssh_host, ssh_port=state.ssh_port,
                        identity=str(test_client_key()))
        compare("virtual_sample", target, 8 << 20)
    finally:
        sample.down(state)


if __name__ == "__main__":
    main()
