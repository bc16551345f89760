"""X/YMODEM senders against receivers that behave like U-Boot's loadx/loady (and worse)."""

from __future__ import annotations

import io
import os
import socket
import threading

import pytest

from tests.journeys.flash_serial._links import SockLink
from toolkit.errors import TransferError
from toolkit.protocol import xymodem as xm


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise EOFError
        out += chunk
    return out


def uboot_like_ymodem_receiver(
    sock: socket.socket, result: dict, corrupt_block: int | None = None
) -> None:
    """ACKs block 0 without a following "C" (like U-Boot), NAKs a bad CRC, keeps the size."""
    sock.sendall(b"C")
    data = bytearray()
    size = None
    expected = 0
    corrupted = False
    while True:
        head = _recv_exact(sock, 1)[0]
        if head == xm.EOT:
            sock.sendall(bytes([xm.ACK]))
            break
        length = 1024 if head == xm.STX else 128
        frame = _recv_exact(sock, 2 + length + 2)
        seq, body, crc = frame[0], frame[2 : 2 + length], frame[2 + length :]
        if corrupt_block == seq and not corrupted:
            body = bytes([body[0] ^ 1]) + body[1:]
            corrupted = True
        if xm.crc16(body) != int.from_bytes(crc, "big"):
            sock.sendall(bytes([xm.NAK]))
            continue
        if size is None:
            name, size_text = body.split(b"\0")[:2]
            result["name"] = name.decode()
            size = int(size_text)
            expected = 1
        elif seq == expected & 0xFF:
            data += body
            expected += 1
        sock.sendall(bytes([xm.ACK]))
    # batch end block
    head = _recv_exact(sock, 1)[0]
    frame = _recv_exact(sock, 2 + 128 + 2)
    result["batch_end"] = head == xm.SOH and frame[0] == 0 and not any(frame[2:130])
    sock.sendall(bytes([xm.ACK]))
    result["data"] = bytes(data[:size])


@pytest.mark.parametrize("size", [0, 1, 128, 129, 1024, 3000, 70 * 1024 + 5])
def test_ymodem_delivers_exact_bytes_without_waiting_for_the_second_c(size: int) -> None:
    payload = os.urandom(size)
    host, device = socket.socketpair()
    result: dict = {}
    thread = threading.Thread(target=uboot_like_ymodem_receiver, args=(device, result))
    thread.start()
    stats = xm.send_ymodem(SockLink(host), payload, "fw.bin", ack_timeout=2)
    thread.join(5)
    assert result["data"] == payload
    assert result["name"] == "fw.bin"
    assert result["batch_end"]
    assert stats.payload == size


@pytest.mark.parametrize("size", [1, 128, 1000, 3000])
def test_ymodem_in_128_byte_blocks_for_a_noisy_line(size: int) -> None:
    payload = os.urandom(size)
    host, device = socket.socketpair()
    result: dict = {}
    thread = threading.Thread(target=uboot_like_ymodem_receiver, args=(device, result, 1))
    thread.start()
    stats = xm.send_ymodem(SockLink(host), payload, ack_timeout=2, block_size=128)
    thread.join(5)
    assert result["data"] == payload
    assert stats.blocks == -(-size // 128)  # every block a SOH block, the NAKed one resent
    assert stats.retransmits >= 1
    assert stats.wire % 133 == 1  # only 133-byte SOH frames on the wire, and one EOT
    with pytest.raises(ValueError):
        xm.send_ymodem(SockLink(host), payload, block_size=512)


def test_ymodem_resends_a_block_the_receiver_naks() -> None:
    payload = os.urandom(5000)
    host, device = socket.socketpair()
    result: dict = {}
    thread = threading.Thread(target=uboot_like_ymodem_receiver, args=(device, result, 2))
    thread.start()
    stats = xm.send_ymodem(SockLink(host), payload, ack_timeout=2)
    thread.join(5)
    assert result["data"] == payload
    assert stats.retransmits >= 1


def test_sender_refuses_checksum_mode() -> None:
    host, device = socket.socketpair()
    device.sendall(bytes([xm.NAK]) * 3)
    with pytest.raises(TransferError, match="checksum"):
        xm.send_ymodem(SockLink(host), b"abc", start_timeout=0.5)
    device.sendall(bytes([xm.NAK]) * 3)
    with pytest.raises(TransferError, match="checksum"):
        xm.send_xmodem(SockLink(host), b"abc", start_timeout=0.5)


def test_receiver_cancel_aborts_the_transfer() -> None:
    host, device = socket.socketpair()
    device.sendall(b"C")

    def cancel_after_header() -> None:
        _recv_exact(device, 133)
        device.sendall(bytes([xm.CAN, xm.CAN, xm.CAN]))

    thread = threading.Thread(target=cancel_after_header)
    thread.start()
    with pytest.raises(TransferError, match="cancelled"):
        xm.send_ymodem(SockLink(host), os.urandom(4000), ack_timeout=1)
    thread.join(5)


def test_no_crc_request_times_out_with_a_clear_error() -> None:
    host, _device = socket.socketpair()
    with pytest.raises(TransferError, match="did not ask"):
        xm.send_ymodem(SockLink(host), b"x", start_timeout=0.3)


@pytest.mark.parametrize("block_size", [1024, 128])
def test_xmodem_through_the_xmodem_package_round_trips(block_size: int) -> None:
    from xmodem import XMODEM

    payload = os.urandom(10 * 1024 + 17)
    host, device = socket.socketpair()
    got = io.BytesIO()

    def getc(size: int, timeout: float = 1) -> bytes | None:
        device.settimeout(timeout)
        try:
            return _recv_exact(device, size)
        except (TimeoutError, EOFError):
            return None

    def putc(data: bytes, timeout: float = 1) -> int:
        device.sendall(data)
        return len(data)

    receiver = XMODEM(getc, putc, mode="xmodem1k")
    thread = threading.Thread(target=lambda: receiver.recv(got, crc_mode=1, quiet=True))
    thread.start()
    stats = xm.send_xmodem(SockLink(host), payload, ack_timeout=2, block_size=block_size)
    thread.join(10)
    data = got.getvalue()
    assert data[: len(payload)] == payload
    assert set(data[len(payload) :]) <= {xm.PAD}  # why flash checks crc32 over the exact length
    assert stats.blocks == -(-len(payload) // block_size)
    assert stats.wire >= stats.blocks * (block_size + 5)


def test_crc16_matches_the_xmodem_reference_value() -> None:
    assert xm.crc16(b"123456789") == 0x31C3
    assert xm.crc16_fast(b"123456789") == 0x31C3
