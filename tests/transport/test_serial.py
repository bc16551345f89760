"""SerialTransport through the real pyserial: loop://, a socket:// pair, and port errors."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from toolkit.errors import PortError
from toolkit.transport import SerialTransport, Transport, normalize_url, open_serial


def test_loop_url_round_trips_bytes() -> None:
    with SerialTransport("loop://") as port:
        assert isinstance(port, Transport)
        port.write(b"hello\x00\xff")
        got = b""
        while len(got) < 7:
            chunk = port.read(64, 1.0)
            assert chunk, "loop:// lost bytes"
            got += chunk
        assert got == b"hello\x00\xff"


def test_loop_read_returns_empty_on_timeout() -> None:
    with SerialTransport("loop://") as port:
        assert port.read(10, 0.05) == b""
        assert port.read(10, 0) == b""


@pytest.fixture
def tcp_peer() -> Iterator[tuple[int, list[socket.socket]]]:
    """A one-shot TCP server on 127.0.0.1 (port 0): the 'device' end of a socket:// link."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        conn, _ = server.accept()
        accepted.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    for conn in accepted:
        conn.close()
    server.close()


def _peer(accepted: list[socket.socket]) -> socket.socket:
    for _ in range(200):
        if accepted:
            return accepted[0]
        time.sleep(0.01)
    raise AssertionError("server never accepted the connection")


def test_socket_url_reads_whatever_is_available_without_waiting_for_count(
    tcp_peer: tuple[int, list[socket.socket]],
) -> None:
    port_no, accepted = tcp_peer
    with open_serial(f"socket://127.0.0.1:{port_no}") as port:
        peer = _peer(accepted)
        peer.sendall(b"C")
        # One byte is all there is: the read must hand it over although 1024 were allowed
        # (a generous timeout that a count-waiting read would run into and then fail on).
        assert port.read(1024, 5.0) == b"C"
        port.write(b"\x06" * 3)
        got = b""
        while len(got) < 3:
            got += peer.recv(16)
        assert got == b"\x06\x06\x06"


def test_socket_read_drains_a_burst_in_one_call(
    tcp_peer: tuple[int, list[socket.socket]],
) -> None:
    port_no, accepted = tcp_peer
    with SerialTransport(f"socket://127.0.0.1:{port_no}") as port:
        peer = _peer(accepted)
        peer.sendall(bytes(range(256)) * 4)
        got = b""
        while len(got) < 1024:
            got += port.read(4096, 2.0)
        assert got == bytes(range(256)) * 4


def test_remote_close_during_read_raises_port_error(
    tcp_peer: tuple[int, list[socket.socket]],
) -> None:
    port_no, accepted = tcp_peer
    with SerialTransport(f"socket://127.0.0.1:{port_no}") as port:
        _peer(accepted).close()
        with pytest.raises(PortError, match="dropped"):
            port.read(16, 2.0)


def test_connection_refused_names_the_likely_cause() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        free = probe.getsockname()[1]
    with pytest.raises(PortError) as info:
        SerialTransport(f"socket://127.0.0.1:{free}")
    assert "nothing is listening" in str(info.value)


def test_missing_device_names_the_likely_cause(tmp_path: object) -> None:
    with pytest.raises(PortError) as info:
        SerialTransport("/dev/ttyUSB-routerkit-does-not-exist")
    assert "plugged in" in str(info.value)


def test_closed_port_refuses_io() -> None:
    port = SerialTransport("loop://")
    port.close()
    port.close()  # idempotent
    with pytest.raises(PortError):
        port.write(b"x")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("rfc2217://127.0.0.1:7000", "rfc2217://127.0.0.1:7000?ign_set_control"),
        ("rfc2217://h:1?logging=debug", "rfc2217://h:1?logging=debug&ign_set_control"),
        ("rfc2217://h:1?ign_set_control", "rfc2217://h:1?ign_set_control"),
        ("socket://h:1", "socket://h:1"),
        ("/dev/ttyUSB0", "/dev/ttyUSB0"),
    ],
)
def test_rfc2217_urls_get_ign_set_control(url: str, expected: str) -> None:
    assert normalize_url(url) == expected
