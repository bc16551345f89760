"""The whole serial flash journey against the in-memory board (toolkit.testing.fake_board):
power cycle, autoboot interrupt, real YMODEM into RAM, slot writes into an in-memory disk,
the switch in state.env, reset, boot and the Linux-side checks, without QEMU or a network."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolkit.events import RecordingReporter
from toolkit.journeys import flash as flash_journey
from toolkit.journeys.flash import FlashOptions, FlashResult
from toolkit.record import Journal
from toolkit.targets import Target
from toolkit.testing import dropbear
from toolkit.testing.fake_board import FakeBoard

TARGET = Target(name="dev", board="es-virt", serial_url="fake://dev")
CHUNK = 16 << 10


@pytest.fixture
def images(tmp_path: Path) -> dict[str, bytes]:
    """Small signed images (built per test: the signing key is the isolated test home's)."""
    return {
        version: dropbear.make_image(
            version, tmp_path / version / "x.img", payload_bytes=40 << 10
        ).read_bytes()
        for version in ("1.0.0", "1.1.0")
    }


def _board(images: dict[str, bytes]) -> FakeBoard:
    board = FakeBoard(bootdelay=0.5)
    board.install("A", images["1.0.0"])
    return board


def _flash(
    board: FakeBoard, image: Path, journal: Journal, reporter: RecordingReporter
) -> FlashResult:
    return flash_journey.flash(
        image,
        TARGET,
        FlashOptions(via="serial", path="ymodem", chunk_size=CHUNK),
        reporter,
        journal,
        console=board.console,
        power=board.power,
    )


def test_serial_flash_writes_the_inactive_slot_switches_and_boots_it(
    images: dict[str, bytes], tmp_path: Path
) -> None:
    board = _board(images)
    image = tmp_path / "new.img"
    image.write_bytes(images["1.1.0"])
    journal = Journal.create("flash", board=TARGET.board, target=TARGET.name)
    reporter = RecordingReporter()

    result = _flash(board, image, journal, reporter)

    assert (result.ok, result.path, result.version_before, result.version_after, result.slot) == (
        True,
        "ymodem",
        "1.0.0",
        "1.1.0",
        "B",
    )
    new = images["1.1.0"]
    assert board.slot_bytes("B", len(new)) == new  # exactly the image, byte for byte
    assert board.slot_bytes("A", len(images["1.0.0"])) == images["1.0.0"]  # the old slot kept
    assert board.active_slot() == "B" and board.boots == ["B"]
    assert board.fwinfo()["version"] == "1.1.0" and len(board.authorized_keys) == 1
    assert result.bytes >= len(new)
    chunks = journal.events("chunk")
    assert [c["index"] for c in chunks] == list(range(-(-len(new) // CHUNK)))
    assert not journal.events("chunk_retry")
    steps = [r["name"] for r in journal.events("step")]
    for name in (
        "check image", "open console", "power-cycle", "interrupt autoboot", "read U-Boot",
        "read slots", "plan", "transfer and write", "read back", "switch slot",
        "reset and boot", "verify running", "authorize key",
    ):  # fmt: skip
        assert name in steps, (name, steps)
    assert (journal.last("slot_switched") or {}).get("new") == "B"
    assert (journal.last("flash") or {}).get("ok") is True
    assert (journal.files_dir / "console.log").stat().st_size > 0


def test_a_chunk_corrupted_in_ram_is_sent_again_and_the_slot_is_still_exact(
    images: dict[str, bytes], tmp_path: Path
) -> None:
    board = _board(images)
    board.corrupt_loads = 1
    image = tmp_path / "new.img"
    image.write_bytes(images["1.1.0"])
    journal = Journal.create("flash", board=TARGET.board, target=TARGET.name)

    result = _flash(board, image, journal, RecordingReporter())

    retries = journal.events("chunk_retry")
    assert [(r["index"], r["reason"]) for r in retries] == [(0, "crc32 in RAM")]
    assert board.corrupt_loads == 0
    assert result.ok and result.version_after == "1.1.0" and result.slot == "B"
    assert board.slot_bytes("B", len(images["1.1.0"])) == images["1.1.0"]


@pytest.mark.parametrize("delta", [True, False])
def test_a_nightly_that_shares_most_chunks_with_the_active_slot_sends_only_the_rest(
    tmp_path: Path, delta: bool
) -> None:
    """Delta reflash: two builds with the same payload (a nightly's kernel) differ only in
    their header and metadata; the chunks the active slot holds are copied on the device,
    the rest crosses the line, and the slot is the image byte for byte either way."""
    old, new = (
        dropbear.make_image(v, tmp_path / v / "x.img", payload_bytes=96 << 10, seed="kernel")
        for v in ("1.0.0", "1.1.0")
    )
    data = new.read_bytes()
    board = FakeBoard(bootdelay=0.5)
    board.install("A", old.read_bytes())
    journal = Journal.create("flash", board=TARGET.board, target=TARGET.name)
    result = flash_journey.flash(
        new, TARGET, FlashOptions(via="serial", path="ymodem", chunk_size=CHUNK, delta=delta),
        RecordingReporter(), journal, console=board.console, power=board.power,
    )  # fmt: skip

    assert result.ok and result.version_after == "1.1.0" and result.slot == "B"
    assert board.slot_bytes("B", len(data)) == data
    reused = [c for c in journal.events("chunk") if c.get("reused")]
    if delta:
        (plan,) = journal.events("delta")
        # the images differ in their first and last piece (header, metadata): the pieces
        # between are copied from slot A in one go, the two ends are sent
        assert plan["copy_from"] == "A" and plan["present_bytes"] == 0
        assert plan["send_bytes"] == 2 * CHUNK - (-len(data) % CHUNK)
        assert [c["reused"] for c in reused] == ["copy"]
        assert reused[0]["offset"] == CHUNK and reused[0]["length"] == plan["copy_bytes"]
        assert result.reused_bytes == plan["copy_bytes"] == len(data) - plan["send_bytes"]
        assert result.bytes < len(data) // 2 and result.image_size == len(data)
    else:
        assert not journal.events("delta") and not reused and result.reused_bytes == 0
        assert result.bytes >= len(data)


def test_delta_keeps_what_the_inactive_slot_already_holds(tmp_path: Path) -> None:
    """A slot left half-written by an interrupted flash of the same image (or holding it
    already) keeps its good chunks: only the missing ones are sent."""
    image = dropbear.make_image("1.1.0", tmp_path / "x.img", payload_bytes=96 << 10)
    data = image.read_bytes()
    board = FakeBoard(bootdelay=0.5)
    board.install("A", dropbear.make_image("1.0.0", tmp_path / "o.img").read_bytes())
    half = len(data) // CHUNK // 2 * CHUNK
    board.install("B", data[:half], active=False)  # as far as an earlier run got
    journal = Journal.create("flash", board=TARGET.board, target=TARGET.name)
    result = flash_journey.flash(
        image, TARGET, FlashOptions(via="serial", path="ymodem", chunk_size=CHUNK),
        RecordingReporter(), journal, console=board.console, power=board.power,
    )  # fmt: skip

    (plan,) = journal.events("delta")
    assert plan["present_bytes"] == half and plan["copy_bytes"] == 0
    assert plan["send_bytes"] == len(data) - half
    assert result.reused_bytes == half and board.slot_bytes("B", len(data)) == data
