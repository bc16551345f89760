"""routerkit's TFTP server against a small RFC-following client written here."""

from __future__ import annotations

import os
import socket
import struct
from pathlib import Path

import pytest

from toolkit.protocol import tftp


def fetch(
    port: int,
    name: str,
    options: dict[str, str] | None = None,
    drop: set[int] | None = None,
    host: str = "127.0.0.1",
) -> tuple[bytes, dict[str, str], int]:
    """Download ``name``; ACK like U-Boot (every ``windowsize`` blocks, or the last good one)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(2)
    req = b"\0\1" + name.encode() + b"\0octet\0"
    for k, v in (options or {}).items():
        req += k.encode() + b"\0" + v.encode() + b"\0"
    sock.sendto(req, (host, port))
    blksize, window = 512, 1
    oack: dict[str, str] = {}
    data = bytearray()
    expected = 1
    in_window = 0
    dropped = set(drop or ())
    packets = 0
    while True:
        packet, peer = sock.recvfrom(70000)
        opcode = struct.unpack("!H", packet[:2])[0]
        if opcode == tftp.ERROR:
            raise FileNotFoundError(packet[4:-1].decode())
        if opcode == tftp.OACK:
            parts = packet[2:].split(b"\0")[:-1]
            oack = {parts[i].decode(): parts[i + 1].decode() for i in range(0, len(parts), 2)}
            blksize = int(oack.get("blksize", 512))
            window = int(oack.get("windowsize", 1))
            sock.sendto(struct.pack("!HH", tftp.ACK, 0), peer)
            continue
        number = struct.unpack("!H", packet[2:4])[0]
        packets += 1
        if number in dropped:
            dropped.discard(number)
            continue
        if number != expected & 0xFFFF:
            sock.sendto(struct.pack("!HH", tftp.ACK, (expected - 1) & 0xFFFF), peer)
            in_window = 0
            continue
        data += packet[4:]
        in_window += 1
        last = len(packet) - 4 < blksize
        if last or in_window >= window:
            sock.sendto(struct.pack("!HH", tftp.ACK, number), peer)
            in_window = 0
        expected += 1
        if last:
            return bytes(data), oack, packets


@pytest.fixture
def served(tmp_path: Path):
    (tmp_path / "img.bin").write_bytes(os.urandom(200_000))
    (tmp_path / "exact.bin").write_bytes(os.urandom(1024))
    with tftp.TftpServer(tmp_path) as server:
        yield server, tmp_path


def test_serves_a_file_with_rfc1350_defaults(served) -> None:
    server, root = served
    data, oack, _ = fetch(server.port, "img.bin")
    assert data == (root / "img.bin").read_bytes()
    assert oack == {}


def test_file_of_a_multiple_of_blksize_ends_with_an_empty_block(served) -> None:
    server, root = served
    data, _, packets = fetch(server.port, "exact.bin")
    assert data == (root / "exact.bin").read_bytes()
    assert packets == 3


def test_negotiates_blksize_tsize_windowsize(served) -> None:
    server, root = served
    data, oack, packets = fetch(
        server.port, "img.bin", {"blksize": "1468", "tsize": "0", "windowsize": "8", "timeout": "1"}
    )
    assert data == (root / "img.bin").read_bytes()
    assert oack == {"blksize": "1468", "tsize": "200000", "windowsize": "8", "timeout": "1"}
    assert packets == 200_000 // 1468 + 1


def test_window_recovers_from_lost_blocks(served) -> None:
    server, root = served
    data, _, _ = fetch(
        server.port, "img.bin", {"blksize": "512", "windowsize": "16"}, drop={3, 40, 41}
    )
    assert data == (root / "img.bin").read_bytes()
    assert server.stats.retransmits >= 1 or server.stats.bytes_sent > 200_000


def test_block_numbers_roll_over_past_65535(tmp_path: Path) -> None:
    payload = os.urandom(70_000 * 8 + 3)
    (tmp_path / "big.bin").write_bytes(payload)
    with tftp.TftpServer(tmp_path) as server:
        data, _, _ = fetch(server.port, "big.bin", {"blksize": "8", "windowsize": "64"})
    assert data == payload


def test_missing_file_and_escape_attempts_are_refused(served) -> None:
    server, _ = served
    with pytest.raises(FileNotFoundError, match="not found"):
        fetch(server.port, "nope.bin")
    with pytest.raises(FileNotFoundError, match="outside"):
        fetch(server.port, "../../etc/passwd")


def test_write_requests_are_refused(served) -> None:
    server, _ = served
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(2)
    sock.sendto(b"\0\2evil.bin\0octet\0", ("127.0.0.1", server.port))
    packet, _ = sock.recvfrom(1000)
    assert struct.unpack("!HH", packet[:4]) == (tftp.ERROR, tftp.ERR_ACCESS)


def test_in_memory_files_are_served(tmp_path: Path) -> None:
    with tftp.TftpServer(None, files={"chunk-0001.bin": b"hello" * 300}) as server:
        data, _, _ = fetch(server.port, "/chunk-0001.bin", {"blksize": "1468"})
    assert data == b"hello" * 300


def test_malformed_requests_do_not_kill_the_server(served) -> None:
    server, root = served
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.sendto(b"\0", ("127.0.0.1", server.port))
    sock.sendto(b"\0\1noterminator", ("127.0.0.1", server.port))
    data, _, _ = fetch(server.port, "img.bin")
    assert data == (root / "img.bin").read_bytes()
