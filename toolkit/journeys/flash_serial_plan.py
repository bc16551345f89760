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
#: A delta reflash compares the slots with the image in pieces this large (or the transfer's
#: chunk size, if smaller): a nightly's changes are found to within 256 KiB, whatever the path.
DELTA_GRAIN = 256 << 10


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


def plan_range(data: bytes, start: int, chunk_size: int, block_size: int) -> list[Chunk]:
    """Chunks of ``chunk_size`` (whole blocks) covering ``data[start:]``; ``start`` must be
    block aligned. Indices count from 0."""
    if start % block_size:
        raise ValueError("start must be block aligned")
    return [
        Chunk(c.index, c.offset + start, c.length, c.crc32)
        for c in plan_chunks(memoryview(data)[start:].tobytes(), chunk_size, block_size)
    ]


def coalesce(
    chunks: list[Chunk], how: dict[int, str], limit: int, data: bytes, first_index: int = 0
) -> list[tuple[Chunk, str | None]]:
    """Neighbouring chunks handled alike (``how[index]``: ``present``, ``copy``, or absent:
    send) merged into one, so the device is asked once per run of them instead of once per
    piece; a merged chunk to send stays within ``limit`` bytes (the transfer's chunk size).
    Indices are renumbered from ``first_index``; each merged chunk's crc32 is its own."""
    merged: list[tuple[Chunk, str | None]] = []
    group: list[Chunk] = []

    def flush() -> None:
        if group:
            offset, end = group[0].offset, group[-1].end
            crc = zlib.crc32(memoryview(data)[offset:end])
            index = first_index + len(merged)
            merged.append((Chunk(index, offset, end - offset, crc), how.get(group[0].index)))
            group.clear()

    for chunk in chunks:
        if group and (
            how.get(chunk.index) != how.get(group[0].index)
            or (how.get(chunk.index) is None and chunk.end - group[0].offset > limit)
        ):
            flush()
        group.append(chunk)
    flush()
    return merged


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
