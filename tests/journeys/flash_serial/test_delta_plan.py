"""Delta reflash planning (pure) and U-Boot's batched crc32 (fake U-Boot): pieces handled alike
are merged, sends stay within the transfer's chunk size, and a sum that does not come back
legibly makes its piece look changed, never unchanged."""

from __future__ import annotations

import os
import zlib

from hypothesis import given
from hypothesis import strategies as st

from toolkit.boards import load_board
from toolkit.journeys import flash_serial_plan as plan
from toolkit.protocol.console import Console
from toolkit.target.uboot import UBoot
from toolkit.testing.fake import FakeUBoot


def test_plan_range_covers_the_rest_of_the_image_in_aligned_pieces() -> None:
    data = os.urandom(5000)
    pieces = plan.plan_range(data, 1024, 1024, 512)
    assert [(p.offset, p.length) for p in pieces] == [(1024, 1024), (2048, 1024), (3072, 1024),
                                                      (4096, 904)]  # fmt: skip
    assert all(p.crc32 == zlib.crc32(data[p.offset : p.end]) for p in pieces)


@given(
    how=st.lists(st.sampled_from([None, "present", "copy"]), min_size=1, max_size=40),
    limit_pieces=st.integers(min_value=1, max_value=6),
)
def test_coalesce_merges_neighbours_alike_and_keeps_sends_within_the_limit(
    how: list[str | None], limit_pieces: int
) -> None:
    piece = 512
    data = bytes(range(256)) * (len(how) * piece // 256 + 1)
    data = data[: len(how) * piece - 100]  # a short last piece
    pieces = plan.plan_range(data, 0, piece, 512)
    kinds = {p.index: k for p, k in zip(pieces, how, strict=True) if k is not None}
    merged = plan.coalesce(pieces, kinds, limit_pieces * piece, data, first_index=7)

    assert [c.index for c, _ in merged] == list(range(7, 7 + len(merged)))
    # the merged chunks tile the image exactly, each with its own crc32
    assert merged[0][0].offset == 0 and merged[-1][0].end == len(data)
    assert all(a.end == b.offset for (a, _), (b, _) in zip(merged, merged[1:], strict=False))
    assert all(c.crc32 == zlib.crc32(data[c.offset : c.end]) for c, _ in merged)
    # every byte keeps the way its piece is handled
    for chunk, kind in merged:
        covered = [
            k for p, k in zip(pieces, how, strict=True) if chunk.offset <= p.offset < chunk.end
        ]
        assert set(covered) == {kind}
        if kind is None:
            assert chunk.length <= limit_pieces * piece
    # neighbours handled alike are merged (sends only split at the limit)
    for (a, ka), (b, kb) in zip(merged, merged[1:], strict=False):
        assert ka != kb or (ka is None and a.length + b.length > limit_pieces * piece)


def test_crc32_many_matches_each_answer_to_its_range_and_leaves_out_garbled_ones() -> None:
    board = load_board("es-virt")
    memory = {0x50000000: os.urandom(4096)}
    ranges = [(0x50000000 + i * 512, 512) for i in range(8)] + [(0x50000000, 100)]

    class Garbling(FakeUBoot):
        def _command(self, argv: list[str]) -> tuple[str, int]:
            out, status = super()._command(argv)
            if argv[0] == "crc32" and int(argv[1], 16) == 0x50000400:
                out = out.replace("crc32 for", "crc32 f0r")  # a flipped bit in the answer
            return out, status

    fake = Garbling(at_prompt=True, memory=memory)
    sums = UBoot(Console(fake, name="fake"), board).crc32_many(ranges)
    blob = memory[0x50000000]
    expected = {(a, n): zlib.crc32(blob[a - 0x50000000 : a - 0x50000000 + n]) for a, n in ranges}
    del expected[(0x50000400, 512)]
    assert sums == expected
    assert len([line for line in fake.lines if "crc32" in line]) == -(-len(ranges) // 4)
