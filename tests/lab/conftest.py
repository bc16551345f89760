"""A real labgrid coordinator and exporter on loopback, exporting a pty through ser2net."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class LabgridLab:
    coordinator: str
    place: str
    peer_tty: str  # the other end of the exported pty: what the "device" sees
    tmp: Path

    def client(self, *args: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
        env = os.environ.copy()
        if user:
            env["LG_USERNAME"] = user
        return subprocess.run(
            [str(BIN / "labgrid-client"), "-x", self.coordinator, "-p", self.place, *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
        )


def start_labgrid(tmp: Path, device_tty: str, place: str = "es1") -> Iterator[LabgridLab]:
    """Coordinator + exporter exporting ``device_tty``; a place matching it."""
    port = free_port()
    coordinator = f"127.0.0.1:{port}"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        log = open(tmp / "coordinator.log", "wb")  # noqa: SIM115 - lives as long as the process
        procs.append(
            subprocess.Popen(
                [str(BIN / "labgrid-coordinator"), "-l", coordinator],
                stdout=log,
                stderr=log,
                cwd=tmp,
            )
        )
        config = tmp / "exporter.yaml"
        config.write_text(f"bench1:\n  RawSerialPort:\n    port: {device_tty}\n    speed: 115200\n")
        elog = open(tmp / "exporter.log", "wb")  # noqa: SIM115 - lives as long as the process
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        procs.append(
            subprocess.Popen(
                [
                    str(BIN / "labgrid-exporter"),
                    "-c",
                    coordinator,
                    "--name",
                    "ex1",
                    "--hostname",
                    "127.0.0.1",
                    str(config),
                ],
                stdout=elog,
                stderr=elog,
                cwd=tmp,
            )
        )
        lab = LabgridLab(coordinator, place, "", tmp)
        lab.client("create")
        while time.monotonic() < deadline:
            if (
                "bench1"
                in subprocess.run(
                    [str(BIN / "labgrid-client"), "-x", coordinator, "resources"],
                    capture_output=True,
                    text=True,
                    timeout=30,
                ).stdout
            ):
                break
            time.sleep(0.2)
        else:
            raise RuntimeError("exporter never registered: " + (tmp / "exporter.log").read_text())
        lab.client("add-match", "ex1/bench1/*")
        yield lab
    finally:
        for proc in reversed(procs):
            _stop(proc)


@pytest.fixture(scope="module")
def pty_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """Two linked ptys (socat): one exported as the device's port, one playing the device."""
    tmp_path = tmp_path_factory.mktemp("pty")
    proc = subprocess.Popen(
        ["socat", f"pty,raw,echo=0,link={tmp_path}/dev0", f"pty,raw,echo=0,link={tmp_path}/dev1"],
    )
    try:
        deadline = time.monotonic() + 10
        while not ((tmp_path / "dev0").exists() and (tmp_path / "dev1").exists()):
            if time.monotonic() > deadline:
                raise RuntimeError("socat did not create the pty pair")
            time.sleep(0.05)
        yield os.path.realpath(tmp_path / "dev0"), os.path.realpath(tmp_path / "dev1")
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def labgrid_lab(
    tmp_path_factory: pytest.TempPathFactory, pty_pair: tuple[str, str]
) -> Iterator[LabgridLab]:
    exported, device = pty_pair
    gen = start_labgrid(tmp_path_factory.mktemp("labgrid"), exported)
    lab = next(gen)
    lab.peer_tty = device
    try:
        yield lab
    finally:
        gen.close()
