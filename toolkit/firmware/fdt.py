"""A small, defensive reader for flattened device trees (the container format of U-Boot FITs).

Written for hostile input (it is fuzzed): every offset and length is checked against the
buffer and the header before use, nesting depth and node count are bounded, and the only
exception it raises is :class:`~toolkit.errors.ImageFormatError`. Property values are
``memoryview`` slices of the buffer, so a 60 MiB kernel blob is never copied.

Layout (devicetree specification v0.4, chapter 5): a 40-byte big-endian header, then the
structure block of 32-bit tokens (BEGIN_NODE name, PROP len nameoff value, END_NODE, NOP, END)
and the strings block holding property names.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from toolkit.errors import ImageFormatError

FDT_MAGIC = 0xD00DFEED
HEADER_SIZE = 40
_BEGIN_NODE, _END_NODE, _PROP, _NOP, _END = 1, 2, 3, 4, 9
MAX_DEPTH = 32
MAX_NODES = 10_000
MAX_NAME = 256


@dataclass
class FdtNode:
    name: str
    props: dict[str, memoryview] = field(default_factory=dict)
    children: list[FdtNode] = field(default_factory=list)
    # Offset of each property's value in the buffer (for ranged hashing without copies).
    offsets: dict[str, int] = field(default_factory=dict)

    def child(self, name: str) -> FdtNode | None:
        for node in self.children:
            if node.name == name:
                return node
        return None

    def string(self, prop: str) -> str | None:
        """A string property (NUL-terminated), or None if absent or not text."""
        value = self.props.get(prop)
        if value is None:
            return None
        raw = bytes(value)
        if raw.endswith(b"\0"):
            raw = raw[:-1]
        try:
            return raw.replace(b"\0", b", ").decode("utf-8")
        except UnicodeDecodeError:
            return None

    def u32(self, prop: str) -> int | None:
        value = self.props.get(prop)
        if value is None or len(value) != 4:
            return None
        return int.from_bytes(value, "big")

    def walk(self, prefix: str = "") -> Iterator[tuple[str, FdtNode]]:
        path = f"{prefix}/{self.name}" if self.name else prefix
        yield (path or "/"), self
        for node in self.children:
            yield from node.walk(path)


def header_totalsize(buf: bytes | memoryview) -> int:
    """The ``totalsize`` field of an FDT header (raises if ``buf`` is no FDT)."""
    if len(buf) < HEADER_SIZE:
        raise ImageFormatError(f"FIT: {len(buf)} bytes is shorter than a device-tree header")
    magic, totalsize = struct.unpack_from(">II", buf, 0)
    if magic != FDT_MAGIC:
        raise ImageFormatError(f"FIT: bad device-tree magic {magic:#010x} (expected 0xd00dfeed)")
    return int(totalsize)


def parse_fdt(data: bytes | memoryview) -> FdtNode:
    """Parse a whole FDT blob into a tree; raise ImageFormatError on any inconsistency."""
    buf = memoryview(data).cast("B") if not isinstance(data, memoryview) else data
    totalsize = header_totalsize(buf)
    (off_struct, off_strings, _rsv, version, last_comp, _cpu, size_strings, size_struct) = (
        struct.unpack_from(">8I", buf, 8)
    )
    if totalsize != len(buf):
        raise ImageFormatError(
            f"FIT: header says {totalsize} bytes but {len(buf)} bytes were given"
        )
    if last_comp > 17 or version < 16:
        raise ImageFormatError(
            f"FIT: unsupported device-tree version {version} (compat {last_comp})"
        )
    if version < 17:
        size_struct = totalsize - off_struct  # v16 headers have no size_dt_struct
    for name, off, size in (
        ("structure", off_struct, size_struct),
        ("strings", off_strings, size_strings),
    ):
        if off < HEADER_SIZE or off + size > totalsize:
            raise ImageFormatError(f"FIT: {name} block ({off}+{size}) lies outside the blob")
    if off_struct % 4:
        raise ImageFormatError("FIT: structure block is not 4-byte aligned")
    strings = buf[off_strings : off_strings + size_strings]
    return _parse_struct(buf, off_struct, off_struct + size_struct, strings)


def _cstring(buf: memoryview, start: int, end: int, what: str) -> tuple[str, int]:
    """Read a NUL-terminated string in [start, end); return it and the offset after the NUL."""
    limit = min(end, start + MAX_NAME + 1)
    raw = bytes(buf[start:limit])
    nul = raw.find(b"\0")
    if nul < 0:
        raise ImageFormatError(f"FIT: unterminated {what} at offset {start}")
    try:
        return raw[:nul].decode("ascii"), start + nul + 1
    except UnicodeDecodeError:
        raise ImageFormatError(f"FIT: non-ASCII {what} at offset {start}") from None


def _parse_struct(buf: memoryview, pos: int, end: int, strings: memoryview) -> FdtNode:
    stack: list[FdtNode] = []
    root: FdtNode | None = None
    nodes = 0
    while True:
        if pos + 4 > end:
            raise ImageFormatError("FIT: structure block ends without an END token")
        (token,) = struct.unpack_from(">I", buf, pos)
        pos += 4
        if token == _BEGIN_NODE:
            name, after = _cstring(buf, pos, end, "node name")
            pos = (after + 3) & ~3
            nodes += 1
            if nodes > MAX_NODES or len(stack) >= MAX_DEPTH:
                raise ImageFormatError("FIT: too many or too deeply nested nodes")
            if root is not None and not stack:
                raise ImageFormatError("FIT: more than one root node")
            node = FdtNode(name)
            if stack:
                stack[-1].children.append(node)
            else:
                root = node
            stack.append(node)
        elif token == _END_NODE:
            if not stack:
                raise ImageFormatError(f"FIT: unbalanced END_NODE at offset {pos - 4}")
            stack.pop()
        elif token == _PROP:
            if not stack:
                raise ImageFormatError(f"FIT: property outside any node at offset {pos - 4}")
            if pos + 8 > end:
                raise ImageFormatError("FIT: truncated property header")
            length, nameoff = struct.unpack_from(">II", buf, pos)
            pos += 8
            if length > end - pos:
                raise ImageFormatError(
                    f"FIT: property at offset {pos - 12} declares {length} bytes, "
                    f"only {end - pos} remain"
                )
            if nameoff >= len(strings):
                raise ImageFormatError(f"FIT: property name offset {nameoff} out of range")
            pname, _ = _cstring(strings, nameoff, len(strings), "property name")
            stack[-1].props[pname] = buf[pos : pos + length]
            stack[-1].offsets[pname] = pos
            pos = (pos + length + 3) & ~3
        elif token == _NOP:
            continue
        elif token == _END:
            if stack or root is None:
                raise ImageFormatError("FIT: END token inside an open node or before any node")
            return root
        else:
            raise ImageFormatError(f"FIT: unknown structure token {token:#x} at offset {pos - 4}")
