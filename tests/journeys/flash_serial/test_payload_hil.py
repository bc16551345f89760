"""Writing payloads into a slot from U-Boot through a faulty line: noise, a pulled cable.

No boots here: ``write_payload`` is the middle of the journey (chunks, crc32 in RAM, write,
read back), so these tests cost seconds, and the noisy ones can run hundreds of times.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.journeys.flash_serial._hil import crc, known_running, slot_crc, target_for, uboot_console
from toolkit.errors import RouterkitError
from toolkit.journeys.flash import FlashOptions
from toolkit.journeys.flash_serial import write_payload
from toolkit.record import Journal
from toolkit.testing import Faults, SerialFaultProxy

pytestmark = pytest.mark.hil
RELIABILITY = os.environ.get("ROUTERKIT_RELIABILITY") == "1"


class DiskGuard:
    """The sample's raw disk seen from the host: what a write may change, and what it may not.

    Stronger than reading slots back through U-Boot: a command corrupted into another block
    number would show up anywhere on the disk, not only in the active slot's first bytes.
    """

    def __init__(self, disk: Path, start: int, length: int) -> None:
        self.disk, self.start, self.end = disk, start, start + length
        self.outside = self._outside()

    def _outside(self) -> str:
        digest = hashlib.sha256()
        with self.disk.open("rb") as f:
            digest.update(f.read(self.start))
            f.seek(self.end)
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()

    def unchanged_outside(self) -> bool:
        return self._outside() == self.outside

    def region(self) -> bytes:
        with self.disk.open("rb") as f:
            f.seek(self.start)
            return f.read(self.end - self.start)


@dataclass
class Outcome:
    ok: bool  # write_payload said the slot holds the data
    silent: bool  # ... and it does not: the one thing that must never happen
    fired: int  # bit flips, drops and duplicates the proxy made during this run
    seconds: float
    reason: str = ""


def _noisy_run(
    state: Any, proxy: SerialFaultProxy, data: bytes, faults: Faults, path: str, chunk: int
) -> Outcome:
    """Write ``data`` to the inactive slot through noise; judge the disk from the host side."""
    assert len(data) % 512 == 0, "whole blocks, so the guarded region is exactly the data"
    console, device = uboot_console(state, proxy.url)  # a clean line up to here
    inactive = device.board.slot("B" if device.active_slot() == "A" else "A")
    guard = DiskGuard(Path(state.disk), inactive.start_block * device.board.block_size, len(data))
    journal = Journal.create("flash", board=state.board, target=state.name)
    stats = proxy.stats
    fired_before = stats.flipped_bits + stats.dropped + stats.duplicated
    started = time.monotonic()
    ok, reason = True, ""
    try:
        proxy.faults = faults
        write_payload(console, target_for(state, proxy.url), data, inactive.name, journal,
                      FlashOptions(path=path, chunk_size=chunk))  # fmt: skip
    except RouterkitError as exc:  # a clear abort is acceptable, silence is not
        ok, reason = False, f"{type(exc).__name__}: {exc}"
    finally:
        proxy.faults = Faults()
        console.close()
    seconds = time.monotonic() - started
    assert guard.unchanged_outside(), (
        f"a write landed outside slot {inactive.name}'s region ({reason or 'ok'})"
    )
    fired = stats.flipped_bits + stats.dropped + stats.duplicated - fired_before
    return Outcome(ok, ok and guard.region() != data, fired, seconds, reason)


# The noise of the reliability campaign: the range of bit error rates, each way, with
# UART-like byte drops and duplicates at a tenth of it.
NOISE = [Faults(ber=ber, drop_rate=ber / 10, dup_rate=ber / 10) for ber in (1e-4, 3e-4, 1e-3)]
# The data paths: YMODEM carries the payload through the noise; TFTP carries it beside it,
# so only the commands (block numbers!) cross the noisy line.
PATHS = [("ymodem", 4 << 10, 2 << 10), ("tftp", 64 << 10, 32 << 10)]  # (path, size, chunk)


def test_noisy_ymodem_write_is_verified_or_aborted_never_silently_wrong(
    flash_sample, proxy
) -> None:
    state = flash_sample["state"]
    # 4 KiB in 2 KiB chunks at a BER of 1e-4 each way (~90k bits: ~9 flips expected, so a run
    # without one is a ~1e-4 event) plus drops/duplicates: small, since every error costs
    # U-Boot's 2 s flush timeout.
    outcome = _noisy_run(state, proxy, os.urandom(4 << 10), NOISE[0], "ymodem", 2 << 10)
    print(outcome)
    assert outcome.fired > 0  # the noise really happened
    assert not outcome.silent, "write_payload reported success, but the slot does not hold the data"


@pytest.mark.reliability
@pytest.mark.timeout(0)  # hundreds of runs: far past the suite's per-test timeout
@pytest.mark.skipif(not RELIABILITY, reason="set ROUTERKIT_RELIABILITY=1 (make reliability)")
def test_many_noisy_writes_never_corrupt_silently(flash_sample, proxy) -> None:
    """``ROUTERKIT_NOISY_FLASHES`` runs (default 200) over every noise level and path; then the
    sample must still boot what it booted before."""
    before = known_running(flash_sample)
    runs = int(os.environ.get("ROUTERKIT_NOISY_FLASHES", "200"))
    counts = {"verified": 0, "aborted": 0, "silent": 0}
    fired = 0
    for i in range(runs):
        faults = NOISE[i % len(NOISE)]
        path, size, chunk = PATHS[(i // len(NOISE)) % len(PATHS)]
        outcome = _noisy_run(flash_sample["state"], proxy, os.urandom(size), faults, path, chunk)
        kind = "silent" if outcome.silent else "verified" if outcome.ok else "aborted"
        counts[kind] += 1
        fired += outcome.fired
        print(f"run {i + 1}/{runs}: {path} ber={faults.ber:g} {kind} in {outcome.seconds:.1f} s, "
              f"{outcome.fired} faults {outcome.reason}", flush=True)  # fmt: skip
    flash_sample["known"] = None
    after = known_running(flash_sample)
    print(f"noisy flashes: {runs}, verified {counts['verified']}, aborted {counts['aborted']}, "
          f"silent corruptions {counts['silent']}, faults injected {fired}; boots {after[0]} from slot {after[1]}")  # fmt: skip
    assert counts["silent"] == 0
    assert after == before, "the sample no longer boots what it booted before the noise"


@pytest.mark.every_board
def test_link_drop_mid_transfer_then_rerun_resumes_with_fewer_bytes(flash_sample, proxy) -> None:
    state = flash_sample["state"]
    data = os.urandom(256 << 10)
    target = target_for(state, proxy.url)
    journal = Journal.create("flash", board=state.board, target=state.name)
    console, device = uboot_console(state, proxy.url)
    inactive = "B" if device.active_slot() == "A" else "A"
    proxy.faults = Faults(cut_after=170_000)  # inside the third 64 KiB chunk, after the commands
    with pytest.raises(RouterkitError):  # PortError or TransferError, both are fine
        write_payload(
            console,
            target,
            data,
            inactive,
            journal,
            FlashOptions(path="ymodem", chunk_size=64 << 10),
        )
    console.close()
    assert proxy.stats.cuts == 1
    first = journal.events("chunk")
    assert first, "no chunk was verified before the cut"
    console, device = uboot_console(state, proxy.url)
    journal2 = Journal.create("flash", board=state.board, target=state.name)
    sent, resumed_from, _ = write_payload(
        console, target, data, inactive, journal2, FlashOptions(path="ymodem", chunk_size=64 << 10)
    )
    try:
        assert resumed_from == first[-1]["offset"] + first[-1]["length"]
        assert 0 < sent < len(data)
        assert slot_crc(device, inactive, len(data)) == crc(data)
    finally:
        console.close()
