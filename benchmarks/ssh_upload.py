"""routerkit's SSH upload vs OpenSSH `ssh host 'cat > f'` to the same target, side by side.

Targets: a dropbear on loopback (the light device: the firmware's SSH server, host-side
ceiling) and, when it can be started, the virtual sample (QEMU). Each figure is the median of
5 interleaved runs, connection set-up included on both sides (a fresh connection per run, as
a flash does). OpenSSH checks the host key against routerkit's own known_hosts
(HostKeyAlias), like we do.

Two lines per target: the goal line against OpenSSH's defaults (both negotiate
chacha20-poly1305 with dropbear: OpenSSH natively, routerkit through
toolkit.transport.chacha), and a line with both sides forced to aes128-ctr + hmac-sha2-256,
which shows what is not the cipher (window use, packet sizes, Python overhead).
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
from toolkit.target.ssh import connect_target  # noqa: E402
from toolkit.targets import Target  # noqa: E402

RUNS = 5
AES = "aes128-ctr"


def ours(target: Target, data: bytes, cipher: str | None = None) -> float:
    from toolkit.transport import ssh

    saved = ssh.CIPHERS
    if cipher:
        ssh.CIPHERS = (cipher,)
    try:
        t0 = time.monotonic()
        conn = connect_target(target)
        conn.upload(data, "/tmp/rk-bench.bin", method="cat")
        if cipher:
            assert conn.transport.local_cipher == cipher, conn.transport.local_cipher
        conn.close()
        return time.monotonic() - t0
    finally:
        ssh.CIPHERS = saved


def openssh(target: Target, ident: str, src: Path, cipher: str | None = None) -> float:
    store = HostKeyStore()
    cmd = [
        "ssh",
        "-p",
        str(target.ssh_port),
        "-i",
        str(target.identity),
        "-o",
        "BatchMode=yes",
        "-o",
        f"UserKnownHostsFile={store.known_hosts}",
        "-o",
        f"HostKeyAlias={ident}",
        "-o",
        "StrictHostKeyChecking=yes",
    ]
    if cipher:
        cmd += ["-c", cipher, "-m", "hmac-sha2-256"]
    cmd += [f"{target.ssh_user}@{target.ssh_host}", "cat > /tmp/ossh-bench.bin"]
    t0 = time.monotonic()
    with open(src, "rb") as fh:
        subprocess.run(cmd, stdin=fh, check=True, capture_output=True)
    return time.monotonic() - t0


def _cpu_seconds(pid: int | None) -> float:
    """CPU time of process ``pid`` so far (QEMU: the emulated device, its network, its disk)."""
    if not pid:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def compare(where: str, target: Target, size: int, device_pid: int | None = None) -> None:
    from toolkit.hostkeys import identity_of

    data = os.urandom(size)
    src = Path(tempfile.mkdtemp()) / "blob"
    src.write_bytes(data)
    connect_target(target, accept_new=True).close()
    ident = identity_of(target.board, target.name)
    runs: dict[str, list[float]] = {"ours": [], "peer": [], "ours_aes": [], "peer_aes": []}
    device: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(RUNS):  # interleaved, so all four see the same machine load
        for key, run in (
            ("ours", lambda: ours(target, data)),
            ("peer", lambda: openssh(target, ident, src)),
            ("ours_aes", lambda: ours(target, data, AES)),
            ("peer_aes", lambda: openssh(target, ident, src, AES)),
        ):
            before = _cpu_seconds(device_pid)
            runs[key].append(run())
            device[key].append(_cpu_seconds(device_pid) - before)
    mbps = {k: size / statistics.median(v) / 1e6 for k, v in runs.items()}
    x, y = mbps["ours"], mbps["peer"]
    print(
        f"ssh_upload_{where}: ours {x:.1f} MB/s, peer(openssh defaults) {y:.1f} MB/s, "
        f"ratio {x / y:.2f} (ours/peer, higher is better; median of {RUNS} interleaved runs)",
        flush=True,
    )
    x, y = mbps["ours_aes"], mbps["peer_aes"]
    print(
        f"ssh_upload_{where}_aes128ctr: ours {x:.1f} MB/s, peer(openssh -c aes128-ctr) "
        f"{y:.1f} MB/s, ratio {x / y:.2f} (ours/peer, higher is better)",
        flush=True,
    )
    if device_pid:
        # Wall figures swing with the load of a shared machine; the device's CPU per MB is the
        # cost the upload imposes where it is paid, and barely moves with the load.
        a, b = (statistics.median(device[k]) / (size / 1e6) for k in ("ours", "peer"))
        print(
            f"ssh_upload_{where}_device_cpu: ours {a * 1000:.0f} ms/MB, peer(openssh defaults) "
            f"{b * 1000:.0f} ms/MB, ratio {a / b:.2f} (ours/peer, lower is better; QEMU CPU per "
            "MB uploaded)",
            flush=True,
        )


def main() -> None:
    from toolkit.testing import dropbear

    tmp = Path(tempfile.mkdtemp(prefix="rk-bench-"))
    os.environ.setdefault("ROUTERKIT_CONFIG", str(tmp / "config"))
    os.environ.setdefault("ROUTERKIT_DATA", str(tmp / "data"))
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp / "id")], check=True
    )
    dev = dropbear.LoopbackDevice(tmp / "dev", tmp / "id.pub")
    dev.start()
    try:
        compare(
            "loopback_dropbear",
            Target(
                name="bench-light",
                ssh_host="127.0.0.1",
                ssh_port=dev.port,
                identity=str(tmp / "id"),
            ),
            32 << 20,
        )
    finally:
        dev.stop()
    if os.environ.get("RK_BENCH_SAMPLE", "1") == "1":
        sample_bench()


def sample_bench() -> None:
    from toolkit import sample
    from toolkit.identity import identity_path

    name = f"bench-ssh-{os.getpid()}"
    try:
        state = sample.up(name=name, wait="ssh")
    except Exception as exc:  # no firmware/QEMU here: the loopback figure stands alone
        print(f"ssh_upload_virtual_sample: not measured: the sample did not start ({exc})")
        raise SystemExit(1) from exc
    try:
        target = Target(
            name=name,
            ssh_host=state.ssh_host,
            ssh_port=state.ssh_port,
            # The sample lets in the key of whoever flashed it: routerkit's own.
            identity=str(identity_path()),
        )
        compare("virtual_sample", target, 8 << 20, device_pid=state.pid)
    finally:
        sample.down(state)


if __name__ == "__main__":
    main()
