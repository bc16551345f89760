"""Planning a serial flash: chunks, resume points, the transfer path. Pure, no device.

An image is written to the inactive slot in chunks. Each chunk is transferred to RAM, checked
with U-Boot's ``crc32`` over its exact length (XMODEM pads its last block with 0x1A), written,
read back and checked again; only then is a ``chunk`` record appended to the journal. A rerun
with the same image and slot finds those records, re-checks the written prefix on the device
itself, and starts after it: never from zero, and never trusting the journal alone.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from toolkit.record import Journal

CHUNK_TYPE = "chunk"
DEFAULT_CHUNK = {"tftp": 4 << 20, "ymodem": 256 << 10, "xmodem": 256 << 10, "gzip": 512 << 10}


@dataclass(frozen=True)
class Chunk:
    index: int
    offset: int
    length: int
    crc32: int

    @property
    def end(self) -> int:
        return self.offset + self.length


def plan_chunks(data: bytes, chunk_size: int, block_size: int) -> list[Chunk]:
    """Split ``data`` into chunks of ``chunk_size`` (rounded to whole flash blocks)."""
    if chunk_size <= 0 or block_size <= 0:
        raise ValueError("chunk and block sizes must be positive")
    size = max(block_size, chunk_size - chunk_size % block_size)
    view = memoryview(data)
    return [
        Chunk(i, off, min(size, len(data) - off), zlib.crc32(view[off : off + size]))
        for i, off in enumerate(range(0, len(data), size))
    ]


def chunk_record(
    chunk: Chunk, image_sha256: str, slot: str, target: str, path: str
) -> dict[str, Any]:
    """The journal record of one chunk that is verified on the device."""
    return {
        "index": chunk.index, "offset": chunk.offset, "length": chunk.length,
        "crc32": f"{chunk.crc32:08x}", "image_sha256": image_sha256, "slot": slot,
        "target": target, "path": path,
    }  # fmt: skip


def verified_prefix(
    records: list[dict[str, Any]], chunks: list[Chunk], image_sha256: str, slot: str
) -> int:
    """How many leading chunks the records show as verified for this image and slot."""
    done: set[tuple[int, int, str]] = set()
    for rec in records:
        if rec.get("image_sha256") != image_sha256 or rec.get("slot") != slot:
            continue
        done.add((int(rec.get("offset", -1)), int(rec.get("length", -1)), str(rec.get("crc32"))))
    count = 0
    for chunk in chunks:
        if (chunk.offset, chunk.length, f"{chunk.crc32:08x}") not in done:
            break
        count += 1
    return count


def previous_chunks(
    target: str, board: str, image_sha256: str, slot: str, exclude: str | None = None
) -> list[dict[str, Any]]:
    """Chunk records a resume may use: from the newest earlier flash of ``target`` only.

    Only the newest flash session counts: once a later flash wrote or switched anything, older
    chunk records say nothing about the slot any more. A session that ended with the image
    booted (``flash`` ok) has nothing left to resume.
    """
    for journal in reversed(Journal.all()):
        if journal.id == exclude:
            continue
        head = journal.header
        if (
            head.get("kind") != "flash"
            or head.get("board") != board
            or head.get("target") != target
        ):
            continue
        records = journal.read().records
        finished = [r for r in records if r.get("type") == "flash" and r.get("ok")]
        if finished:
            return []
        return [
            r for r in records
            if r.get("type") == CHUNK_TYPE and r.get("image_sha256") == image_sha256
            and r.get("slot") == slot and r.get("target") == target
        ]  # fmt: skip
    return []


def choose_path(requested: str, *, own_tftp: bool, bench_tftp: bool) -> str:
    """The transfer path for ``--path``: auto prefers TFTP (ours, then the bench's), then YMODEM."""
    if requested == "auto":
        return "tftp" if (own_tftp or bench_tftp) else "ymodem"
    return requested
