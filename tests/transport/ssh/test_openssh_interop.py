"""chacha20-poly1305@openssh.com against the reference implementation: a real OpenSSH sshd.

The adapter (toolkit.transport.chacha) was written from PROTOCOL.chacha20poly1305; dropbear
is one peer (test_chacha.py), OpenSSH is the one that wrote the protocol. sshd runs as a
child process on 127.0.0.1 with its own config, host key, authorized_keys and pid file in
the test's directory, and is offered no other cipher: if the handshake succeeds, both sides
speak chacha20-poly1305. routerkit's own SSH transport then runs a command, uploads 1 MiB
(SFTP and ``cat``), forces a re-key in the middle and downloads 1 MiB, comparing every byte.

sshd is installed by the Makefile (openssh-server): a missing sshd fails, it does not skip.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from toolkit.hostkeys import HostKeyStore, identity_of, parse_key_line
from toolkit.target.ssh import connect_target
from toolkit.targets import Target
from toolkit.transport import chacha

SSHD = Path("/usr/sbin/sshd")
MIB = 1024 * 1024


@dataclass
class Sshd:
    port: int
    host_key_line: str
    client_key: Path
    log: Path
    home: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


def _wait_for_banner(
    proc: subprocess.Popen[bytes], port: int, log: Path, timeout: float = 15.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"sshd exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=1) as s,
        ):
            if s.recv(64).startswith(b"SSH-2.0-OpenSSH"):
                return
        time.sleep(0.05)
    pytest.fail(
        f"sshd did not answer on port {port} within {timeout} s:\n{log.read_text(errors='replace')}"
    )


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    if not SSHD.is_file():
        pytest.fail(f"{SSHD} is missing: install openssh-server (the Makefile does)")
    # Privilege separation: sshd refuses to start without this directory.
    if not Path("/run/sshd").is_dir():
        try:
            Path("/run/sshd").mkdir(mode=0o755, parents=True)
        except OSError as exc:
            pytest.fail(f"sshd needs /run/sshd and it cannot be created here: {exc}")
    home = tmp_path / "sshd"
    home.mkdir()
    host_key = _keygen(home / "host_ed25519")
    client_key = _keygen(home / "client_ed25519")
    authorized = home / "authorized_keys"
    authorized.write_text(Path(f"{client_key}.pub").read_text())
    port = _free_port()
    config = home / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"ListenAddress 127.0.0.1:{port}",
                f"HostKey {host_key}",
                f"PidFile {home / 'sshd.pid'}",
                f"AuthorizedKeysFile {authorized}",
                "Ciphers chacha20-poly1305@openssh.com",
                "UsePAM no",
                "StrictModes no",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password",
                "UseDNS no",
                "Subsystem sftp internal-sftp",
                "LogLevel DEBUG1",
                "",
            ]
        )
    )
    log = home / "sshd.log"
    with log.open("wb") as out:
        # -D: stay in the foreground as our child; -e: log to stderr (the log file).
        proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stdout=out, stderr=out)
    try:
        _wait_for_banner(proc, port, log)
        pid_file = home / "sshd.pid"
        assert int(pid_file.read_text()) == proc.pid
        yield Sshd(port, Path(f"{host_key}.pub").read_text(), client_key, log, home)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)  # by its PID: this sshd and no other
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def _download(transport: Any, path: Path) -> bytes:
    """The raw bytes of ``cat path`` over one session channel (device -> host)."""
    chan = transport.open_session()
    try:
        chan.exec_command(f"cat {path}")
        data = bytearray()
        while chunk := chan.recv(65536):
            data += chunk
        assert chan.recv_exit_status() == 0
        return bytes(data)
    finally:
        chan.close()


def test_openssh_negotiates_chacha20_poly1305_and_bytes_arrive_intact_both_ways(sshd: Sshd) -> None:
    target = Target(
        name="openssh",
        ssh_host="127.0.0.1",
        ssh_port=sshd.port,
        ssh_user=getpass.getuser(),
        identity=str(sshd.client_key),
    )
    # The host key is ours (generated above): trusted as a person would, with hosts trust.
    HostKeyStore().trust(
        identity_of(target.board, target.name), *parse_key_line(sshd.host_key_line), source="user"
    )
    with connect_target(target) as conn:
        transport: Any = conn.transport
        assert (transport.local_cipher, transport.remote_cipher) == (chacha.NAME, chacha.NAME)

        hello = conn.run("echo routerkit-$((6 * 7))", check=True)
        assert hello.stdout.strip() == "routerkit-42"

        up = os.urandom(MIB + 4099)  # not a multiple of any packet or window size
        for method in ("sftp", "cat"):
            dest = sshd.home / f"up-{method}.bin"
            conn.upload(up, str(dest), method=method)
            assert dest.read_bytes() == up, f"{method} upload corrupted"
        remote_sum = conn.run(f"sha256sum {sshd.home / 'up-cat.bin'}", check=True).stdout.split()[0]
        assert remote_sum == hashlib.sha256(up).hexdigest()

        # A re-key mid-connection: new keys for both directions, sequence numbers carry on.
        transport.renegotiate_keys()
        assert (transport.local_cipher, transport.remote_cipher) == (chacha.NAME, chacha.NAME)

        down = os.urandom(MIB + 777)
        source = sshd.home / "down.bin"
        source.write_bytes(down)
        assert _download(transport, source) == down

    log = sshd.log.read_text(errors="replace")
    # The server's own word on what it negotiated, both directions.
    assert f"kex: client->server cipher: {chacha.NAME}" in log
    assert f"kex: server->client cipher: {chacha.NAME}" in log
    assert "Accepted publickey" in log
    assert "rekeying out" in log and "rekeying in" in log  # the re-key above really happened
