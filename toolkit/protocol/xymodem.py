"""XMODEM-1K and YMODEM senders for U-Boot's ``loadx``/``loady``, in CRC-16 mode only.

Why CRC only: the 8-bit checksum of classic XMODEM misses many two-bit errors, so a noisy
line corrupts the image silently. A receiver that asks for checksum mode (``NAK`` instead of
``C`` at the start) is ignored until it asks for CRC, and refused if it never does.

XMODEM-1K goes through the PyPI ``xmodem`` package (a maintained implementation); we only wrap
its ``getc`` so that it can never fall back to checksum mode. YMODEM has our own sender because
U-Boot's ``loady`` ACKs block 0 but sends the next ``C`` only after a ~4.25 s timeout: a sender
that waits for that ``C`` (lrzsz ``sz``) loses 4 s per file. Ours goes on after the ACK
(``benchmarks/serial_transfer.py`` measures the gain against ``sz``).

Both senders talk to a :class:`Link` (``read_raw``/``write_raw``), so they run over a console,
a raw socket, or a fake in the tests. Reads take what is available and never wait for a count:
a reader that waits for a full buffer would hold every ACK until its timeout.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from toolkit.errors import TransferError

SOH = 0x01  # 128-byte block
STX = 0x02  # 1024-byte block
EOT = 0x04
ACK = 0x06
NAK = 0x15
CAN = 0x18
CRC_REQUEST = 0x43  # "C": the receiver asks for CRC-16 mode
PAD = 0x1A  # CP/M EOF: XMODEM pads the last block with it, hence crc32 over the exact length

Progress = Callable[[int, int], None]


class Link(Protocol):
    """The two byte primitives a transfer needs."""

    def read_raw(self, size: int, timeout: float) -> bytes:
        """Up to ``size`` bytes that are available now or arrive within ``timeout``; b"" if none."""

    def write_raw(self, data: bytes) -> None:
        """Send ``data`` as is."""


@dataclass
class TransferStats:
    payload: int = 0  # bytes of the file
    wire: int = 0  # bytes written to the link, headers and retransmissions included
    blocks: int = 0
    retransmits: int = 0
    seconds: float = 0.0


def crc16(data: bytes, crc: int = 0) -> int:
    """CRC-16/XMODEM (poly 0x1021, init 0), as the CRC mode of X/YMODEM uses."""
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        crc &= 0xFFFF
    return crc


# A table makes crc16 fast enough for megabytes in Python.
_TABLE = [crc16(bytes([i])) for i in range(256)]


def crc16_fast(data: bytes) -> int:
    crc = 0
    table = _TABLE
    for byte in data:
        crc = ((crc << 8) & 0xFF00) ^ table[((crc >> 8) ^ byte) & 0xFF]
    return crc


def make_block(seq: int, payload: bytes, size: int) -> bytes:
    """One framed block: SOH/STX, seq, ~seq, payload padded to ``size``, CRC-16 big-endian."""
    body = payload.ljust(size, bytes([PAD]))
    crc = crc16_fast(body)
    head = STX if size == 1024 else SOH
    return bytes([head, seq & 0xFF, 0xFF - (seq & 0xFF)]) + body + bytes([crc >> 8, crc & 0xFF])


def header_block(name: str, size: int) -> bytes:
    """YMODEM block 0: ``name NUL size`` (decimal), zero-padded, in a 128-byte block."""
    info = name.encode("ascii", "replace")[:100] + b"\0" + str(size).encode() + b"\0"
    body = info.ljust(128, b"\0")
    crc = crc16_fast(body)
    return bytes([SOH, 0, 0xFF]) + body + bytes([crc >> 8, crc & 0xFF])


def cancel(link: Link) -> None:
    """Abort a receiver: U-Boot's xyzModem gives up after 3 CANs; send more for noise."""
    link.write_raw(bytes([CAN]) * 8)


class _Reader:
    """Reads single control bytes from a link, keeping what came in a burst."""

    def __init__(self, link: Link, abort: threading.Event | None, max_seconds: float | None = None) -> None:
        self.link = link
        self.buf = bytearray()
        self.abort = abort
        # A whole-transfer deadline: on a very noisy line every block needs retries that each
        # cost the receiver's flush timeout; give up (and let the caller retry or abort) instead.
        self.deadline = None if max_seconds is None else time.monotonic() + max_seconds

    def next_byte(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while not self.buf:
            if self.abort is not None and self.abort.is_set():
                raise TransferError("transfer interrupted")
            if self.deadline is not None and time.monotonic() > self.deadline:
                raise TransferError("transfer too slow (a very noisy line?); gave up")
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.buf += self.link.read_raw(4096, min(left, 0.25))
        return self.buf.pop(0)


def wait_crc_request(reader: _Reader, timeout: float) -> None:
    """Wait for ``C``. NAK (checksum mode) is refused; CAN CAN aborts."""
    deadline = time.monotonic() + timeout
    cans = 0
    saw_nak = False
    while time.monotonic() < deadline:
        byte = reader.next_byte(deadline - time.monotonic())
        if byte == CRC_REQUEST:
            return
        if byte == NAK:
            saw_nak = True
        elif byte == CAN:
            cans += 1
            if cans >= 2:
                raise TransferError("the receiver cancelled the transfer before it started")
    if saw_nak:
        raise TransferError(
            "the receiver asked for 8-bit checksum mode only; refusing (it corrupts silently)"
        )
    raise TransferError(f"the receiver did not ask for a CRC transfer within {timeout:.0f} s")


def _send_until_ack(
    link: Link,
    reader: _Reader,
    frame: bytes,
    stats: TransferStats,
    *,
    retries: int,
    ack_timeout: float,
    what: str,
) -> None:
    """Send one frame until it is ACKed. Stray ``C`` and line noise are skipped."""
    for attempt in range(retries + 1):
        if attempt:
            stats.retransmits += 1
        link.write_raw(frame)
        stats.wire += len(frame)
        cans = 0
        deadline = time.monotonic() + ack_timeout
        while True:
            byte = reader.next_byte(deadline - time.monotonic())
            if byte is None or byte == NAK:
                break  # resend
            if byte == ACK:
                return
            if byte == CAN:
                cans += 1
                if cans >= 2:
                    raise TransferError(f"the receiver cancelled the transfer at {what}")
            # anything else (a late "C", a flipped byte): keep listening
    raise TransferError(f"{what} was not acknowledged after {retries} retries")


def send_ymodem(
    link: Link,
    data: bytes,
    name: str = "image.bin",
    *,
    start_timeout: float = 30.0,
    ack_timeout: float = 5.0,
    retries: int = 10,
    progress: Progress | None = None,
    abort: threading.Event | None = None,
    wait_c_after_header: bool = False,
    max_seconds: float | None = None,
) -> TransferStats:
    """Send one file by YMODEM (1 KiB blocks, CRC-16), then the empty batch-end header."""
    reader = _Reader(link, abort, max_seconds)
    stats = TransferStats(payload=len(data))
    wait_crc_request(reader, start_timeout)
    start = time.monotonic()  # from the receiver's first "C": the receiver sets the pace before
    opts = {"retries": retries, "ack_timeout": ack_timeout}
    _send_until_ack(link, reader, header_block(name, len(data)), stats, what="block 0", **opts)  # type: ignore[arg-type]
    if wait_c_after_header:  # what the spec asks, and what costs ~4 s against U-Boot
        wait_crc_request(reader, start_timeout)
    _send_data_blocks(link, reader, data, stats, progress, opts)
    _send_eot(link, reader, stats, retries, ack_timeout)
    # YMODEM batch end: an empty block 0 says "no more files". The receiver asks for it with
    # "C", but U-Boot sends that "C" only after its ~4 s timeout again, so do not wait for it:
    # U-Boot reads the block whenever it gets there.
    end = bytes([SOH, 0, 0xFF]) + bytes(130)  # CRC-16 of zeros is zero
    _send_until_ack(link, reader, end, stats, what="the batch end", **opts)  # type: ignore[arg-type]
    stats.seconds = time.monotonic() - start
    return stats


def _send_data_blocks(
    link: Link,
    reader: _Reader,
    data: bytes,
    stats: TransferStats,
    progress: Progress | None,
    opts: dict[str, float],
) -> None:
    seq = 1
    offset = 0
    total = len(data)
    while offset < total:
        left = total - offset
        size = 128 if left <= 128 else 1024  # a short tail costs 133 bytes, not 1029
        frame = make_block(seq, data[offset : offset + size], size)
        _send_until_ack(
            link, reader, frame, stats,
            retries=int(opts["retries"]), ack_timeout=opts["ack_timeout"], what=f"block {seq}",
        )  # fmt: skip
        offset += min(size, left)
        stats.blocks += 1
        seq = (seq + 1) & 0xFF
        if progress is not None:
            progress(offset, total)


def _send_eot(
    link: Link, reader: _Reader, stats: TransferStats, retries: int, timeout: float
) -> None:
    for _ in range(retries + 1):
        link.write_raw(bytes([EOT]))
        stats.wire += 1
        deadline = time.monotonic() + timeout
        while True:
            byte = reader.next_byte(deadline - time.monotonic())
            if byte is None or byte == NAK:
                break
            if byte == ACK:
                return
    raise TransferError("end of transmission (EOT) was not acknowledged")


def send_xmodem(
    link: Link,
    data: bytes,
    *,
    start_timeout: float = 30.0,
    ack_timeout: float = 5.0,
    retries: int = 10,
    progress: Progress | None = None,
    abort: threading.Event | None = None,
    max_seconds: float | None = None,
) -> TransferStats:
    """Send ``data`` by XMODEM-1K/CRC through the PyPI ``xmodem`` package.

    The package would fall back to the 8-bit checksum when the receiver starts with NAK; the
    wrapped ``getc`` hides every NAK until the first ``C`` so that can never happen.
    """
    import io

    from xmodem import XMODEM

    reader = _Reader(link, abort, max_seconds)
    stats = TransferStats(payload=len(data))
    wait_crc_request(reader, start_timeout)
    crc_seen = [False]

    def getc(size: int, timeout: float = 1) -> bytes | None:
        if not crc_seen[0]:
            crc_seen[0] = True
            return bytes([CRC_REQUEST])  # the "C" wait_crc_request consumed
        out = bytearray()
        deadline = time.monotonic() + timeout
        while len(out) < size:
            byte = reader.next_byte(deadline - time.monotonic())
            if byte is None:
                return None
            out.append(byte)
        return bytes(out)

    def putc(chunk: bytes, timeout: float = 1) -> int:
        link.write_raw(bytes(chunk))
        stats.wire += len(chunk)
        return len(chunk)

    def callback(total: int, success: int, errors: int) -> None:
        stats.blocks = success
        if errors:
            stats.retransmits += 1
        if progress is not None:
            progress(min(success * 1024, len(data)), len(data))

    start = time.monotonic()  # after the first "C", like send_ymodem
    modem = XMODEM(getc, putc, mode="xmodem1k", pad=bytes([PAD]))
    ok = modem.send(
        io.BytesIO(data), retry=retries, timeout=ack_timeout, quiet=True, callback=callback
    )
    stats.seconds = time.monotonic() - start
    if not ok:
        raise TransferError(
            "XMODEM transfer failed (too many retries or cancelled by the receiver)"
        )
    return stats
