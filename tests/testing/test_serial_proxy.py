"""The fault proxy really injects what it is told to (and nothing when told nothing)."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time

from toolkit.testing import Faults, SerialFaultProxy


def _sink_server() -> tuple[socket.socket, list[bytes], threading.Event]:
    """A TCP server that records what it receives and echoes nothing."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    got: list[bytes] = []
    closed = threading.Event()

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            buf = b""
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                buf += data
            got.append(buf)
            closed.set()
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return listener, got, closed


def _send_through(proxy: SerialFaultProxy, payload: bytes) -> None:
    client = socket.create_connection((proxy.host, proxy.port))
    with contextlib.suppress(OSError):
        client.sendall(payload)
    time.sleep(0.3)
    client.close()


def test_clean_proxy_forwards_every_byte_unchanged() -> None:
    listener, got, closed = _sink_server()
    payload = os.urandom(300_000)
    with SerialFaultProxy(listener.getsockname()) as proxy:
        _send_through(proxy, payload)
        assert closed.wait(5)
    assert got[0] == payload
    assert proxy.stats.flipped_bits == 0


def test_bit_errors_flip_about_ber_times_the_bits() -> None:
    listener, got, closed = _sink_server()
    payload = bytes(200_000)
    with SerialFaultProxy(listener.getsockname(), Faults(ber=1e-3), seed=7) as proxy:
        _send_through(proxy, payload)
        assert closed.wait(5)
    flipped = sum(bin(b).count("1") for b in got[0])
    assert flipped == proxy.stats.flipped_bits
    assert 1600 * 0.7 < flipped < 1600 * 1.3  # 1.6 M bits at 1e-3


def test_drops_and_duplicates_change_the_length() -> None:
    listener, got, closed = _sink_server()
    payload = os.urandom(100_000)
    with SerialFaultProxy(
        listener.getsockname(), Faults(drop_rate=1e-3, dup_rate=1e-3), seed=3
    ) as proxy:
        _send_through(proxy, payload)
        assert closed.wait(5)
    assert proxy.stats.dropped > 0 and proxy.stats.duplicated > 0
    assert len(got[0]) == len(payload) - proxy.stats.dropped + proxy.stats.duplicated


def test_cut_after_n_bytes_drops_the_link_once() -> None:
    listener, got, closed = _sink_server()
    with SerialFaultProxy(listener.getsockname(), Faults(cut_after=1000)) as proxy:
        _send_through(proxy, os.urandom(5000))
        assert closed.wait(5)
        closed.clear()
        _send_through(proxy, b"second")
        assert closed.wait(5)
    assert len(got[0]) == 1000
    assert got[1] == b"second"
    assert proxy.stats.cuts == 1


def test_rate_limit_paces_the_line() -> None:
    listener, got, closed = _sink_server()
    with SerialFaultProxy(listener.getsockname(), Faults(rate=20_000)) as proxy:
        start = time.monotonic()
        client = socket.create_connection((proxy.host, proxy.port))
        client.sendall(bytes(10_000))
        client.close()
        assert closed.wait(5)
        elapsed = time.monotonic() - start
    assert got[0] == bytes(10_000)
    assert elapsed >= 0.45  # 10 kB at 20 kB/s cannot arrive sooner than 0.5 s


def test_latency_delays_every_byte_without_limiting_the_rate() -> None:
    listener, got, closed = _sink_server()
    with SerialFaultProxy(listener.getsockname(), Faults(latency=0.3)) as proxy:
        start = time.monotonic()
        client = socket.create_connection((proxy.host, proxy.port))
        client.sendall(os.urandom(200_000))
        time.sleep(0.5)
        client.close()
        assert closed.wait(5)
        elapsed = time.monotonic() - start
    assert len(got[0]) == 200_000
    assert elapsed >= 0.3  # nothing can arrive before its latency has passed
