"""The windowed YMODEM sender against a receiver that answers like U-Boot's xyzModem, on a
line that corrupts frames and loses or repeats ACKs: the data arrives exact, or the sender
gives up with an error; it never delivers wrong bytes."""

from __future__ import annotations

import os
import random
import select
import socket
import threading
from collections.abc import Callable

import pytest

from tests.journeys.flash_serial._links import SockLink
from toolkit.errors import TransferError
from toolkit.protocol import xymodem as xm


class LoadyLike:
    """A receiver with U-Boot's answering rules (xyzModem, as documented in xymodem.py):
    a good block is ACKed only when the next header is wanted, a repeat of the previous block
    is ACKed at once, a bad CRC or a block out of sequence gets "C", junk before a header is
    skipped, and a silent line for ``idle`` s gets "C" too."""

    def __init__(
        self, sock: socket.socket, *, mangle: Callable[[int, bytes], bytes] | None = None,
        answer: Callable[[bytes], bytes] | None = None, idle: float = 0.5, peek: float = 0.0,
    ) -> None:  # fmt: skip
        self.sock, self.mangle, self.answer, self.idle, self.peek = sock, mangle, answer, idle, peek
        self.data = bytearray()
        self.size = 0
        self.frames_seen = 0
        self.next_ready_before_ack = 0  # ACKs sent while the next frame was already waiting
        self.done = False

    def send(self, byte: int) -> None:
        out = self.answer(bytes([byte])) if self.answer else bytes([byte])
        if out:
            self.sock.sendall(out)

    def getc(self) -> int | None:
        ready, _, _ = select.select([self.sock], [], [], self.idle)
        if not ready:
            return None
        got = self.sock.recv(1)
        return got[0] if got else None

    def read_frame(self, head: int) -> tuple[int, bytes] | None:
        """(block number, payload) of a frame whose first byte was ``head``; None when bad."""
        length = 1024 if head == xm.STX else 128
        raw = bytearray([head])
        for _ in range(2 + length + 2):
            c = self.getc()
            if c is None:
                return None
            raw.append(c)
        self.frames_seen += 1
        frame = self.mangle(self.frames_seen, bytes(raw)) if self.mangle else bytes(raw)
        blk, cblk, body, crc = frame[1], frame[2], frame[3 : 3 + length], frame[3 + length :]
        if blk ^ cblk != 0xFF or xm.crc16(body) != int.from_bytes(crc, "big"):
            return None
        return blk, body

    def run(self) -> None:
        self.send(xm.CRC_REQUEST)
        while True:  # block 0; U-Boot answers a bad one with nothing
            c = self.getc()
            if c in (xm.SOH, xm.STX) and (got := self.read_frame(c)) and got[0] == 0:
                self.size = int(got[1].split(b"\0")[1] or b"0")
                break
        expected, owe_ack = 1, True
        while True:
            if owe_ack:
                ready, _, _ = select.select([self.sock], [], [], self.peek)
                self.next_ready_before_ack += bool(ready)
                self.send(xm.ACK)
                owe_ack = False
            c = self.getc()
            if c is None:
                self.send(xm.CRC_REQUEST)
                continue
            if c == xm.EOT:
                self.send(xm.ACK)
                self.send(xm.ACK)
                self.send(xm.CRC_REQUEST)
                while (c := self.getc()) not in (xm.SOH, None):
                    pass
                if c is not None:
                    self.read_frame(c)
                self.send(xm.ACK)
                self.done = True
                return
            if c not in (xm.SOH, xm.STX):
                continue  # junk before a header
            got = self.read_frame(c)
            if got is None:
                self.send(xm.CRC_REQUEST)
            elif got[0] == expected & 0xFF:
                self.data += got[1]
                expected += 1
                owe_ack = True
            elif got[0] == (expected - 1) & 0xFF:
                self.send(xm.ACK)
            else:
                self.send(xm.CRC_REQUEST)

    @property
    def file(self) -> bytes:
        return bytes(self.data[: self.size])


def _transfer(
    payload: bytes, window: int, **receiver: object
) -> tuple[LoadyLike, xm.TransferStats | None, Exception | None]:
    host, device = socket.socketpair()
    rx = LoadyLike(device, **receiver)  # type: ignore[arg-type]
    thread = threading.Thread(target=rx.run, daemon=True)
    thread.start()
    stats, error = None, None
    try:
        stats = xm.send_ymodem(
            SockLink(host), payload, ack_timeout=1.0, window=window, max_seconds=60
        )
    except TransferError as exc:
        error = exc
    thread.join(5)
    host.close()
    device.close()
    return rx, stats, error


@pytest.mark.parametrize("window", [1, 2, 4])
@pytest.mark.parametrize("size", [0, 100, 1024, 20 * 1024 + 300])
def test_clean_line_delivers_the_exact_file(window: int, size: int) -> None:
    payload = os.urandom(size)
    rx, stats, error = _transfer(payload, window)
    assert error is None and rx.done
    assert rx.file == payload
    assert stats is not None and stats.retransmits == 0


def test_a_window_keeps_the_next_block_on_the_line_while_an_ack_travels() -> None:
    payload = os.urandom(16 * 1024)
    # Before each ACK the receiver looks (up to 0.3 s) whether the next frame is already there.
    piped, _, _ = _transfer(payload, 2, peek=0.3)
    serial, _, _ = _transfer(payload[:4096], 1, peek=0.3)
    assert piped.file == payload and serial.file == payload[:4096]
    assert piped.next_ready_before_ack >= 15  # every data block but the last had company
    assert serial.next_ready_before_ack == 0


def test_corrupted_frames_are_resent_and_the_file_arrives_exact() -> None:
    rng = random.Random(11)
    bad = set(rng.sample(range(2, 60), 12)) | {5, 6}  # two in a row, too

    def mangle(n: int, frame: bytes) -> bytes:
        if n not in bad:
            return frame
        pos = rng.randrange(1, len(frame))
        return frame[:pos] + bytes([frame[pos] ^ 0x10]) + frame[pos + 1 :]

    payload = os.urandom(40 * 1024 + 7)
    rx, stats, error = _transfer(payload, 2, mangle=mangle)
    assert error is None, error
    assert rx.file == payload
    assert stats is not None and stats.retransmits > 0


@pytest.mark.parametrize("fault", ["lose", "repeat"])
def test_lost_or_repeated_acks_never_deliver_wrong_bytes(fault: str) -> None:
    rng = random.Random(5 if fault == "lose" else 6)

    def answer(byte: bytes) -> bytes:
        if byte == bytes([xm.ACK]) and rng.random() < 0.08:
            return b"" if fault == "lose" else byte * 2
        return byte

    payload = os.urandom(30 * 1024)
    rx, _, error = _transfer(payload, 2, answer=answer)
    if error is None:  # the only other acceptable outcome is a clear TransferError
        assert rx.file == payload
    assert rx.data[: len(rx.file)] == payload[: len(rx.file)]  # whatever arrived is in order
