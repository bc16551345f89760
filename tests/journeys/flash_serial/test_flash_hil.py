"""The whole serial flash against the virtual sample (QEMU + stock U-Boot), with real faults.

Every test here ends with the sample booted and checked (or, for the one full flash, booted
twice), and leaves ``flash_sample["known"]`` = what it runs, so the next test needs no boot
just to learn its starting point.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.journeys.flash_serial._hil import known_running, running, target_for, uboot_console
from tests.journeys.flash_serial.conftest import ensure_running
from toolkit.errors import Interrupted, RouterkitError, TransferError
from toolkit.events import RecordingReporter
from toolkit.journeys.flash import FlashOptions, flash
from toolkit.record import Journal

pytestmark = pytest.mark.hil
RELIABILITY = os.environ.get("ROUTERKIT_RELIABILITY") == "1"
REPO = Path(__file__).resolve().parents[3]


def _other(images: dict[str, Path], version: str, salt: int = 0) -> Path:
    """An image whose version is not ``version``; consecutive salts give different images, so
    a run never resumes the chunks of the run before it."""
    choices = [v for v in ("1.0.0", "1.1.0", "1.2.0") if v != version]
    return images[choices[salt % len(choices)]]


@pytest.mark.every_board
def test_flash_over_tftp_boots_the_new_version_from_the_other_slot(
    flash_sample, proxy, images
) -> None:
    state = flash_sample["state"]
    before_version, before_slot = known_running(flash_sample)
    image = _other(images, before_version)
    reporter = RecordingReporter()
    result = flash(
        image,
        target_for(state, proxy.url),
        FlashOptions(path="tftp", allow_downgrade=True, delta=True),
        reporter,
    )
    flash_sample["known"] = None
    assert result.ok and result.path == "tftp"
    assert result.version_before == before_version
    assert result.slot != before_slot
    verify = result.verify or {}
    assert result.version_after == verify["version"] == verify["firmware_version_file"]
    # Delta reflash: the builds share their kernel, so the pieces the old slot holds at the
    # same offsets were copied on the device; the rest crossed the line.
    size = image.stat().st_size
    (delta,) = Journal.open(result.session).events("delta")
    assert result.image_size == size and result.reused_bytes > 0
    assert result.reused_bytes == delta["copy_bytes"] + delta["present_bytes"]
    assert result.bytes >= delta["send_bytes"] == size - result.reused_bytes
    assert result.resumed_from == 0
    for name in (
        "check image",
        "power-cycle",
        "interrupt autoboot",
        "transfer and write",
        "read back",
        "switch slot",
        "verify running",
    ):
        assert name in reporter.steps()
    journal = Journal.open(result.session)
    assert (journal.last("read_back") or {}).get("length") == image.stat().st_size
    assert verify["slots"][result.slot]["ok"] is True  # the device hashed the written FIT
    # ...and it stays booted from the new slot on a fresh boot
    flash_sample["known"] = running(state)
    assert flash_sample["known"] == (result.version_after, result.slot)


@pytest.mark.every_board
def test_flash_over_ymodem_sends_only_what_the_device_lacks(flash_sample, tmp_path) -> None:
    """YMODEM, the path of a bench without a network: delta is on by default, so only the
    pieces neither slot holds cross the line, and the whole slot is still verified."""
    from toolkit.firmware.build import build_image

    state = ensure_running(flash_sample)
    _, before_slot = known_running(flash_sample)
    # A build neither slot holds (the session's images may both be on the device already).
    image = build_image("1.3.0", state.board, out=tmp_path).path
    result = flash(image, target_for(state), FlashOptions(path="ymodem", allow_downgrade=True))
    flash_sample["known"] = None
    assert result.ok and result.path.startswith("ymodem")
    assert result.slot != before_slot
    size = image.stat().st_size
    assert result.image_size == size and 0 < result.reused_bytes < size
    assert result.bytes < size  # the line carried less than the image
    verify = result.verify or {}
    assert verify["version"] == result.version_after and verify["slots"][result.slot]["ok"]
    flash_sample["known"] = running(state)
    assert flash_sample["known"] == (result.version_after, result.slot)


def test_crc_mismatch_reported_by_uboot_aborts_clearly_and_the_previous_firmware_boots(
    flash_sample, images, monkeypatch
) -> None:
    """TFTP delivers a wrong chunk every time: U-Boot's own crc32 of RAM disagrees, the chunk is
    retried, then the flash stops with a clear error before anything is switched."""
    from toolkit.journeys import flash_serial_transfer

    state = ensure_running(flash_sample)
    before = known_running(flash_sample)
    original = flash_serial_transfer.TftpLoader.load

    def corrupting(self: Any, data: bytes, name: str, progress: Any) -> int:
        if name.startswith("0001"):
            data = data[:1000] + bytes([data[1000] ^ 0x40]) + data[1001:]
        return original(self, data, name, progress)

    monkeypatch.setattr(flash_serial_transfer.TftpLoader, "load", corrupting)
    journal = Journal.create("flash", board=state.board, target=state.name)
    with pytest.raises(
        TransferError, match=r"chunk 1 .* failed \d+ times; nothing was switched"
    ) as info:
        flash(
            _other(images, before[0]),
            target_for(state),
            FlashOptions(path="tftp", allow_downgrade=True, chunk_size=1 << 20, delta=False),
            journal=journal,
        )
    assert info.value.hint and "rerun" in info.value.hint
    retries = journal.events("chunk_retry")
    assert retries and all(r["index"] == 1 and r["reason"] == "crc32 in RAM" for r in retries)
    assert [r["index"] for r in journal.events("chunk")] == [0]
    assert not journal.events("slot_switched") and not journal.events("read_back")
    flash_sample["known"] = None
    flash_sample["known"] = running(state)
    assert flash_sample["known"] == before


def test_ctrl_c_mid_transfer_keeps_the_previous_firmware_booting(
    flash_sample, proxy, images
) -> None:
    state = flash_sample["state"]
    before = known_running(flash_sample)

    class CtrlC(RecordingReporter):
        def progress(self, name: str, done: int, total: int | None) -> None:
            super().progress(name, done, total)
            if name == "transfer and write" and done > 2 << 20:
                raise KeyboardInterrupt

    with pytest.raises(Interrupted, match="previous firmware still boots"):
        flash(
            _other(images, before[0]),
            target_for(state, proxy.url),
            FlashOptions(path="tftp", allow_downgrade=True, chunk_size=1 << 20, delta=False),
            CtrlC(),
        )
    flash_sample["known"] = None
    flash_sample["known"] = running(state)
    assert flash_sample["known"] == before


def _power_cut_once(holder: dict[str, Any], images: dict[str, Path], salt: int) -> dict[str, Any]:
    """Flash, pull the plug at a random moment of the slot write, power on, see what boots."""
    from toolkit import sample

    state = ensure_running(holder)
    before = known_running(holder)
    image = _other(images, before[0], salt)
    size = image.stat().st_size
    # Progress comes when a chunk has arrived in RAM, before it is checked and written: at the
    # k-th (k >= 2) at least one chunk of this run is on the slot, and several are still to come.
    threshold = random.randint(2, max(2, size // (1 << 20) // 2))
    # Within one chunk's cycle after the threshold (a TFTP load, a crc32, a write or a read):
    # at most as long as the last chunk took, so a fast board (es-arm32's small image on NVMe
    # writes a chunk in tens of ms) is still cut before its last chunk.
    share = random.random()
    fired = threading.Event()
    loaded = [0]
    last = [time.monotonic()]

    class Cutter(RecordingReporter):
        def progress(self, name: str, done: int, total: int | None) -> None:
            super().progress(name, done, total)
            if name != "transfer and write":
                return
            loaded[0] += 1
            now, interval = time.monotonic(), time.monotonic() - last[0]
            last[0] = now
            if loaded[0] >= threshold and not fired.is_set():
                fired.set()
                delay = share * min(0.2, interval)
                threading.Timer(delay, sample.power_cut, args=(state,)).start()

    journal = Journal.create("flash", board=state.board, target=state.name)
    with pytest.raises(RouterkitError):
        flash(
            image,
            target_for(state),
            FlashOptions(path="tftp", allow_downgrade=True, chunk_size=1 << 20, delta=False),
            Cutter(),
            journal,
        )
    holder["known"] = None
    assert fired.is_set(), "the power cut never fired"
    assert not getattr(sample.status(state), "running", True), (
        "QEMU still runs: the cut did not happen"
    )
    written = [r for r in journal.events("chunk") if not r.get("carried")]
    assert written, "the cut came before any chunk was written"
    assert len(written) < -(-size // (1 << 20)), "every chunk was written: the cut came too late"
    assert not journal.events("slot_switched") and not journal.events("read_back")
    state = ensure_running(holder, wait="none")  # power on: the guest waits for our console
    holder["known"] = running(state, reset=False)
    assert holder["known"] == before, (
        f"after a cut at chunk {threshold} (+{share:.2f} of a chunk) it runs {holder['known']}, not {before}"
    )
    return {"threshold": threshold, "share": round(share, 3), "chunks": len(written)}


@pytest.mark.every_board
def test_power_cuts_during_the_slot_write_always_boot_the_previous_firmware(
    flash_sample, images
) -> None:
    cuts = [_power_cut_once(flash_sample, images, i) for i in range(3)]
    print("power cuts:", json.dumps(cuts))


@pytest.mark.reliability
@pytest.mark.timeout(0)  # hundreds of runs: far past the suite's per-test timeout
@pytest.mark.skipif(not RELIABILITY, reason="set ROUTERKIT_RELIABILITY=1 (make reliability)")
def test_twenty_power_cuts_during_the_slot_write(flash_sample, images) -> None:
    runs = int(os.environ.get("ROUTERKIT_POWER_CUTS", "20"))
    cuts = [_power_cut_once(flash_sample, images, i) for i in range(runs)]
    print(
        f"power cuts: {len(cuts)} fired during the slot write, {len(cuts)} booted the previous firmware"
    )


_CHILD = """
import json, sys
from tests.journeys.flash_serial._hil import target_for
from toolkit.journeys.flash import FlashOptions, flash
from toolkit.sample import SampleState
state = SampleState.from_dict(json.loads(sys.argv[2]))
flash(__import__("pathlib").Path(sys.argv[1]), target_for(state),
      FlashOptions(path="tftp", allow_downgrade=True, chunk_size=1 << 20, delta=False))
"""


@pytest.mark.every_board
def test_a_journal_left_by_a_sigkilled_routerkit_is_resumed(flash_sample, images) -> None:
    state = ensure_running(flash_sample)
    before = known_running(flash_sample)
    image = _other(images, before[0])
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(image), json.dumps(state.to_dict())], cwd=REPO,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    killed_after: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and child.poll() is None:
            journal = Journal.latest(kind="flash")
            chunks = journal.events("chunk") if journal else []
            if len(chunks) >= 2:
                child.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
    finally:
        if child.poll() is None:
            child.kill()
        stderr = child.communicate(timeout=30)[1].decode(errors="replace")
    assert child.returncode == -signal.SIGKILL, (
        f"the child was not killed mid-transfer: {stderr[-2000:]}"
    )
    assert journal is not None
    killed_after = journal.events("chunk")
    assert not journal.events("flash") and not journal.events("slot_switched")
    flash_sample["known"] = None

    result = flash(
        image,
        target_for(state),
        FlashOptions(path="tftp", allow_downgrade=True, chunk_size=1 << 20, delta=False),
    )
    rerun = Journal.open(result.session)
    indices = [r["index"] for r in rerun.events("chunk")]
    carried = [r["index"] for r in rerun.events("chunk") if r.get("carried")]
    assert len(indices) == len(set(indices)) == -(-image.stat().st_size // (1 << 20)), indices
    assert carried == list(range(len(carried))) and len(carried) >= len(killed_after) >= 2
    assert result.resumed_from == (max(carried) + 1) * (1 << 20) > 0
    assert (
        image.stat().st_size - result.resumed_from <= result.bytes < image.stat().st_size
    )  # only the rest
    assert (rerun.last("read_back") or {}).get("length") == image.stat().st_size
    assert (result.verify or {})["slots"][result.slot]["ok"] is True
    flash_sample["known"] = (result.version_after, result.slot)
    assert result.version_after != before[0]


@pytest.mark.every_board
def test_both_slots_corrupt_stops_at_a_clear_message_and_a_serial_flash_recovers(
    flash_sample, images
) -> None:
    """The worst case short of a dead U-Boot: no slot boots. boot.scr says so on the console,
    and a serial flash (U-Boot lives in flash of its own, not on the disk) brings it back."""
    from toolkit.protocol.console import Console
    from toolkit.sample.qmp import QMPClient
    from toolkit.transport import open_serial

    state = ensure_running(flash_sample)
    console, device = uboot_console(state, state.serial_url)
    try:
        device.run(f"mw.b {device.scratch_addr:#x} 0 0x1000")
        for name in ("A", "B"):  # zero the FIT header of both slots
            slot = device.board.slot(name)
            write = str(device.board.require("flash.write"))
            device.run(write.format(addr=hex(device.scratch_addr), block=slot.start_block, count=8))
    finally:
        console.close()
    flash_sample["known"] = None
    with Console(open_serial(state.serial_url), name="corrupt boot") as console:
        with QMPClient(Path(state.qmp)) as qmp:
            qmp.system_reset()
        found = console.try_expect("no bootable slot. Reflash over the serial console.", 90.0)
        assert found is not None, console.tail(40)
        assert "slot A is corrupt" in found.before or "slot B is corrupt" in found.before

    result = flash(
        images["1.1.0"], target_for(state), FlashOptions(path="tftp", allow_downgrade=True)
    )
    assert result.ok and result.version_before is None  # nothing readable was on either slot
    flash_sample["known"] = running(state)
    assert flash_sample["known"] == ("1.1.0", result.slot)
