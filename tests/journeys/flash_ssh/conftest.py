"""Fixtures for the SSH tests: light loopback devices (real dropbear + the firmware's real
on-device scripts), a client key, small signed images, a TCP proxy that cuts links."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from toolkit.targets import Target
from toolkit.testing import dropbear


@pytest.fixture(scope="session")
def _light_ok() -> None:
    reason = dropbear.available()
    if reason:
        pytest.skip(f"no loopback dropbear device here: {reason}")


@pytest.fixture(scope="session")
def client_key(tmp_path_factory: pytest.TempPathFactory, _light_ok: None) -> Path:
    import paramiko

    d = tmp_path_factory.mktemp("client")
    key = paramiko.Ed25519Key.from_private_key_file(str(_gen(d)))
    assert key.get_name() == "ssh-ed25519"
    return d / "id_ed25519"


def _gen(d: Path) -> Path:
    import subprocess

    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "id_ed25519")], check=True
    )
    return d / "id_ed25519"


@pytest.fixture
def make_device(
    tmp_path: Path, client_key: Path
) -> Iterator[Callable[..., dropbear.LoopbackDevice]]:
    devices: list[dropbear.LoopbackDevice] = []

    def make(name: str = "dev", **kwargs: Any) -> dropbear.LoopbackDevice:
        dev = dropbear.LoopbackDevice(tmp_path / name, Path(str(client_key) + ".pub"), **kwargs)
        devices.append(dev)
        dev.start()
        return dev

    yield make
    for dev in devices:
        dev.stop()


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    out = tmp_path_factory.mktemp("images")

    def make(version: str, *, size: int = 256 * 1024, seed: str | None = None) -> Path:
        where = out / f"{version}-{size}-{seed or ''}" / "x.img"
        return dropbear.make_image(version, where, payload_bytes=size, seed=seed)

    return make


def target_for(
    dev: dropbear.LoopbackDevice, key: Path, name: str = "dev", port: int | None = None
) -> Target:
    return Target(name=name, ssh_host="127.0.0.1", ssh_port=port or dev.port, identity=str(key))


class CuttingProxy:
    """Forwards 127.0.0.1:port → target; the first ``cuts`` connections are dropped after
    ``after`` client bytes (an SSH link lost mid-upload)."""

    def __init__(self, target_port: int, after: int, cuts: int = 1) -> None:
        self.target_port = target_port
        self.after = after
        self.cuts = cuts
        self.cut_count = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:  # the device is rebooting: refuse this one, keep accepting
                client.close()
                continue
            cut = self.cut_count < self.cuts
            threading.Thread(target=self._pipe, args=(client, server, cut), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, cut: bool) -> None:
        sent = 0
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
                sent += len(data)
                if cut and sent > self.after:
                    self.cut_count += 1
                    break
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self._stop = True
        self.sock.close()
