"""XMODEM-1K and YMODEM senders for U-Boot's ``loadx``/``loady``, in CRC-16 mode only.

Why CRC only: the 8-bit checksum of classic XMODEM misses many two-bit errors, so a noisy
line corrupts the image silently. A receiver that asks for checksum mode (``NAK`` instead of
``C`` at the start) is ignored until it asks for CRC, and refused if it never does.

XMODEM-1K goes through the PyPI ``xmodem`` package (a maintained implementation); we only wrap
its ``getc`` so that it can never fall back to checksum mode. YMODEM has our own sender for two
reasons the benchmark (``benchmarks/serial_transfer.py``) measures:

* U-Boot's ``loady`` ACKs block 0 but sends the next ``C`` only after a ~4 s timeout: a sender
  that waits for that ``C`` (lrzsz ``sz``) loses 4 s per file. Ours goes on after the ACK.
* A stop-and-wait sender leaves the line idle for a whole round trip per block (U-Boot ACKs a
  block only when it asks for the next header). Ours keeps ``window`` blocks in flight.

How the window stays correct although an ACK carries no block number: U-Boot answers every
frame it reads in order, with ACK (the block it expected), ACK (a repeat of the block before,
"get on with it") or ``C`` (a CRC error, a block out of sequence, a timeout). So after the first
non-ACK everything still in flight is lost: wait until the line is quiet, then *probe* block
by block, stop-and-wait. A probe of block k is ACKed only when U-Boot now holds every block up
to k (it accepts k, or already had it), which also repairs a lost ACK (probe k+1) or a
duplicated one (probe k-1). U-Boot never accepts a block out of order, and the caller checks
the result with ``crc32`` anyway, so a confused window costs time, never data.

"""

from __future__ import annotations

import binascii
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from toolkit.errors import TransferError

log = logging.getLogger(__name__)

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


def crc16_fast(data: bytes) -> int:
    """The same CRC in C: ``binascii.crc_hqx`` is CRC-16/CCITT, which with init 0 is XMODEM's."""
    return binascii.crc_hqx(data, 0)


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

    def __init__(
        self, link: Link, abort: threading.Event | None, max_seconds: float | None = None
    ) -> None:
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
    window: int = 2,
    block_size: int = 1024,
) -> TransferStats:
    """Send one file by YMODEM (CRC-16), then the empty batch-end header.

    ``window``: data blocks in flight before an ACK (1: classic stop-and-wait). Two are enough
    to keep the receiver busy while an ACK travels back; more only fill buffers.
    ``block_size``: 1024 (STX), or 128 (SOH) for a noisy line: a bit error costs the receiver's
    flush timeout either way, and a 128-byte frame is 8 times less likely to catch one.
    """
    if block_size not in (128, 1024):
        raise ValueError(f"block size {block_size}: YMODEM has 128 or 1024")
    reader = _Reader(link, abort, max_seconds)
    stats = TransferStats(payload=len(data))
    log.info(
        "YMODEM: sending %s (%d bytes, %d-byte blocks, window %d)",
        name,
        len(data),
        block_size,
        window,
    )
    wait_crc_request(reader, start_timeout)
    start = time.monotonic()  # from the receiver's first "C": the receiver sets the pace before
    opts = {"retries": retries, "ack_timeout": ack_timeout}
    # Block 0 alone: U-Boot reads it while opening the stream, where a bad block gets no answer.
    _send_until_ack(link, reader, header_block(name, len(data)), stats, what="block 0", **opts)  # type: ignore[arg-type]
    if wait_c_after_header:  # what the spec asks, and what costs ~4 s against U-Boot
        wait_crc_request(reader, start_timeout)
    _Window(
        link, reader, data, stats, progress, retries, ack_timeout, max(1, window), block_size
    ).run()
    _send_eot(link, reader, stats, retries, ack_timeout)
    # YMODEM batch end: an empty block 0 says "no more files". The receiver asks for it with
    # "C", but U-Boot sends that "C" only after its ~4 s timeout again, so do not wait for it:
    # U-Boot reads the block whenever it gets there.
    end = bytes([SOH, 0, 0xFF]) + bytes(130)  # CRC-16 of zeros is zero
    _send_until_ack(link, reader, end, stats, what="the batch end", **opts)  # type: ignore[arg-type]
    stats.seconds = time.monotonic() - start
    log.info(
        "YMODEM: %s sent in %.1f s (%d retransmitted blocks)",
        name,
        stats.seconds,
        stats.retransmits,
    )
    return stats


class _Window:
    """The data blocks of one YMODEM file, ``window`` in flight (see the module docstring)."""

    def __init__(
        self, link: Link, reader: _Reader, data: bytes, stats: TransferStats,
        progress: Progress | None, retries: int, ack_timeout: float, window: int, block_size: int,
    ) -> None:  # fmt: skip
        self.link, self.reader, self.data, self.stats = link, reader, data, stats
        self.progress, self.retries, self.ack_timeout, self.window = (
            progress,
            retries,
            ack_timeout,
            window,
        )
        view = memoryview(data)
        self.block_size = block_size
        self.offsets = list(range(0, len(data), block_size))
        self.frames: dict[int, bytes] = {}
        self.view = view
        self.acked = 0  # blocks the receiver holds (blocks 1..acked), as far as we know
        self.sent = 0  # blocks written so far (the highest block number sent)
        self.block_time = 0.0  # seconds per block, measured between ACKs: sizes the quiet wait

    def frame(self, index: int) -> bytes:
        """Frame of block ``index + 1`` (built once: a retransmission sends the same bytes)."""
        frame = self.frames.get(index)
        if frame is None:
            off = self.offsets[index]
            chunk = bytes(self.view[off : off + self.block_size])
            # A short tail goes in a 128-byte block: it costs 133 bytes on the wire, not 1029.
            frame = make_block(index + 1, chunk, 128 if len(chunk) <= 128 else 1024)
            self.frames = {k: v for k, v in self.frames.items() if k >= self.acked - 2}
            self.frames[index] = frame
        return frame

    def put(self, index: int) -> None:
        frame = self.frame(index)
        self.link.write_raw(frame)
        self.stats.wire += len(frame)
        self.sent = max(self.sent, index + 1)

    def ack(self, upto: int) -> None:
        self.acked = upto
        self.stats.blocks = upto
        if self.progress is not None:
            self.progress(min(len(self.data), upto * self.block_size), len(self.data))

    def run(self) -> None:
        total = len(self.offsets)
        cans = 0
        last_ack = time.monotonic()
        while self.acked < total:
            while self.sent < total and self.sent - self.acked < self.window:
                self.put(self.sent)
            byte = self.reader.next_byte(self.ack_timeout)
            if byte == ACK:
                now = time.monotonic()
                self.block_time = (
                    0.8 * self.block_time + 0.2 * (now - last_ack)
                    if self.block_time
                    else now - last_ack
                )
                last_ack = now
                self.ack(self.acked + 1)
                cans = 0
            elif byte == CAN:
                cans += 1
                if cans >= 2:
                    raise TransferError(
                        f"the receiver cancelled the transfer at block {self.acked + 1}"
                    )
            elif byte in (CRC_REQUEST, NAK, None):
                self.recover()
                last_ack = time.monotonic()
            # anything else is line noise: keep listening
        if self.stats.retransmits and total:
            # After a recovery, make sure the receiver really holds the last block before EOT
            # (an EOT where it expects a block would end the file short).
            self.probe_from([total - 1])

    def recover(self) -> None:
        """Something in flight was refused: let the line go quiet, then probe stop-and-wait."""
        log.debug("YMODEM: block %d refused or unanswered; resynchronizing", self.acked + 1)
        self.quiet()
        around = [self.acked, self.acked + 1, self.acked - 1]
        self.probe_from(
            [i for i in around if 0 <= i < max(self.sent, self.acked + 1) and i < len(self.offsets)]
        )

    def quiet(self) -> None:
        """Read (and forget) answers to frames still in flight, until none came for a while.

        The pause must stay well below the receiver's own idle timeout (U-Boot: 2 s), after
        which it says "C" again by itself, and it is bounded: a chattering line ends it too.
        """
        settle = min(0.05 + 2.5 * self.block_time, 0.5)
        end = time.monotonic() + 4 * settle
        while time.monotonic() < end and self.reader.next_byte(settle) is not None:
            pass

    def probe_from(self, candidates: list[int]) -> None:
        """Send candidate blocks one at a time; the first ACKed one sets ``acked``."""
        for attempt in range(self.retries + 1):
            index = candidates[attempt % len(candidates)]
            self.stats.retransmits += 1
            self.put(index)
            deadline = time.monotonic() + self.ack_timeout
            while True:
                byte = self.reader.next_byte(max(0.0, deadline - time.monotonic()))
                if byte == ACK:
                    self.ack(index + 1)
                    self.sent = index + 1  # go-back-N: what was in flight after it is resent
                    return
                if byte in (CRC_REQUEST, NAK, None, CAN):
                    break
            self.quiet()
        raise TransferError(
            f"block {self.acked + 1} was not acknowledged after {self.retries} retries"
        )


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
    block_size: int = 1024,
) -> TransferStats:
    """Send ``data`` by XMODEM-1K/CRC through the PyPI ``xmodem`` package (``block_size``
    128: classic XMODEM/CRC blocks, for a noisy line).

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
            progress(min(success * block_size, len(data)), len(data))

    start = time.monotonic()  # after the first "C", like send_ymodem
    mode = "xmodem1k" if block_size == 1024 else "xmodem"
    modem = XMODEM(getc, putc, mode=mode, pad=bytes([PAD]))
    ok = modem.send(
        io.BytesIO(data), retry=retries, timeout=ack_timeout, quiet=True, callback=callback
    )
    stats.seconds = time.monotonic() - start
    if not ok:
        raise TransferError(
            "XMODEM transfer failed (too many retries or cancelled by the receiver)"
        )
    return stats
