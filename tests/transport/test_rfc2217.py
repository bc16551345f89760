"""SerialTransport over RFC2217 through a real ser2net sharing a pty (a remote bench in small).

socat makes a pty pair: ser2net serves one end as ``telnet(rfc2217)`` on 127.0.0.1, the test
plays the device on the other end. Without ``?ign_set_control`` (added by the transport)
pyserial would time out opening a pty-backed port.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tools import require
from toolkit.errors import PortError
from toolkit.transport import SerialTransport

# pyserial 3.5's rfc2217 module uses Thread.setDaemon/setName.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(autouse=True, scope="module")
def _tools() -> None:
    require("ser2net", "socat")


def _wait_for(condition: object, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[tuple[str, int, subprocess.Popen[bytes]]]:
    """(rfc2217 URL, fd of the device end, the ser2net process)."""
    board_end, server_end = tmp_path / "board", tmp_path / "server"
    socat = subprocess.Popen(
        ["socat", f"PTY,link={server_end},raw,echo=0", f"PTY,link={board_end},raw,echo=0"],
        stderr=subprocess.DEVNULL,
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "ser2net.yaml"
    config.write_text(
        "connection: &bench\n"
        f"  accepter: telnet(rfc2217),tcp,127.0.0.1,{port}\n"
        f"  connector: serialdev,{server_end},115200n81,local\n"
    )
    ser2net = None
    fd = -1
    try:
        _wait_for(lambda: board_end.exists() and server_end.exists(), "socat ptys")
        ser2net = subprocess.Popen(
            ["ser2net", "-n", "-u", "-c", str(config), "-P", str(tmp_path / "pid")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        fd = os.open(board_end, os.O_RDWR | os.O_NOCTTY)
        yield f"rfc2217://127.0.0.1:{port}", fd, ser2net
    finally:
        if fd >= 0:
            os.close(fd)
        for proc in (ser2net, socat):
            if proc is not None:
                proc.kill()
                proc.wait(timeout=10)


def _open(url: str) -> SerialTransport:
    deadline = time.monotonic() + 10
    while True:
        try:
            return SerialTransport(url)
        except PortError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)  # ser2net still starting


def test_rfc2217_through_ser2net_moves_bytes_both_ways(
    bench: tuple[str, int, subprocess.Popen[bytes]],
) -> None:
    url, fd, _ = bench
    with _open(url) as port:
        assert port.url.endswith("?ign_set_control")
        os.write(fd, b"=> ")
        got = b""
        while len(got) < 3:
            chunk = port.read(1024, 5.0)
            assert chunk, "nothing arrived through ser2net"
            got += chunk
        assert got == b"=> "
        port.write(b"version\n\xff")  # 0xff is telnet IAC: must be escaped on the way
        received = b""
        deadline = time.monotonic() + 5
        while len(received) < 9 and time.monotonic() < deadline:
            received += os.read(fd, 64)
        assert received == b"version\n\xff"


def test_rfc2217_link_drop_raises_port_error(
    bench: tuple[str, int, subprocess.Popen[bytes]],
) -> None:
    url, _, ser2net = bench
    with _open(url) as port:
        ser2net.kill()
        ser2net.wait(timeout=10)
        with pytest.raises(PortError):
            for _ in range(50):  # the first read may only see the end of the stream
                port.read(16, 0.1)
