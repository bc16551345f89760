"""Writing payloads into a slot from U-Boot through a faulty line: noise, a pulled cable.

No boots here: ``write_payload`` is the middle of the journey (chunks, crc32 in RAM, write,
read back), so these tests cost seconds, and the noisy ones can run hundreds of times.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.flash_serial._hil import crc, slot_crc, target_for, uboot_console
from toolkit.errors import RouterkitError
from toolkit.journeys.flash import FlashOptions
from toolkit.journeys.flash_serial import write_payload
from toolkit.record import Journal
from toolkit.testing import Faults, SerialFaultProxy

pytestmark = pytest.mark.hil
RELIABILITY = os.environ.get("ROUTERKIT_RELIABILITY") == "1"


def _payload_run(state: Any, proxy: SerialFaultProxy, data: bytes, faults: Faults, **opts: Any) -> tuple[bool, int, int, str]:
    """Write ``data`` to the inactive slot through noise; then check the slot with noise off."""
    console, device = uboot_console(state, proxy.url)
    active = device.active_slot()
    inactive = "B" if active == "A" else "A"
    active_before = slot_crc(device, active, 1 << 20)
    journal = Journal.create("flash", board=state.board, target=state.name)
    ok = True
    try:
        proxy.faults = faults
        write_payload(console, target_for(state, proxy.url), data, inactive, journal,
                      FlashOptions(path=opts.get("path", "ymodem"), chunk_size=opts.get("chunk", 64 << 10)))
    except RouterkitError as exc:  # any clear abort is acceptable, silence is not
        ok = False
        print(f"aborted: {type(exc).__name__}: {exc}")
    finally:
        proxy.faults = Faults()
        console.close()
    console, device = uboot_console(state, proxy.url)
    try:
        assert slot_crc(device, active, 1 << 20) == active_before, "the ACTIVE slot was touched"
        written = slot_crc(device, inactive, len(data))
    finally:
        console.close()
    return ok, written, crc(data), inactive


def test_noisy_ymodem_write_is_verified_or_aborted_never_silently_wrong(flash_sample, proxy) -> None:
    state = flash_sample["state"]
    data = os.urandom(32 << 10)  # small: every error costs U-Boot's ~2 s flush timeout
    ok, written, expected, _ = _payload_run(
        state, proxy, data, Faults(ber=1e-5, drop_rate=2e-6, dup_rate=2e-6, direction="to_device"), chunk=32 << 10
    )
    assert proxy.stats.flipped_bits + proxy.stats.dropped + proxy.stats.duplicated > 0  # it fired
    if ok:
        assert written == expected  # a success that is not the data would be silent corruption


@pytest.mark.reliability
@pytest.mark.timeout(0)  # hundreds of runs: far past the suite's per-test timeout
@pytest.mark.skipif(not RELIABILITY, reason="set ROUTERKIT_RELIABILITY=1 (make reliability)")
def test_many_noisy_writes_never_corrupt_silently(flash_sample, proxy) -> None:
    runs = int(os.environ.get("ROUTERKIT_NOISY_FLASHES", "200"))
    verified = aborted = silent = 0
    for i in range(runs):
        ber = (1e-5, 3e-5, 1e-4, 1e-3)[i % 4]
        data = os.urandom(16 << 10)
        ok, written, expected, _ = _payload_run(
            flash_sample["state"], proxy, data, Faults(ber=ber, drop_rate=ber / 10, dup_rate=ber / 10), chunk=8 << 10
        )
        if ok and written != expected:
            silent += 1
        elif ok:
            verified += 1
        else:
            aborted += 1
    print(f"noisy flashes: {runs}, verified {verified}, aborted {aborted}, silent corruptions {silent}")
    assert silent == 0


def test_link_drop_mid_transfer_then_rerun_resumes_with_fewer_bytes(flash_sample, proxy) -> None:
    state = flash_sample["state"]
    data = os.urandom(256 << 10)
    target = target_for(state, proxy.url)
    journal = Journal.create("flash", board=state.board, target=state.name)
    console, device = uboot_console(state, proxy.url)
    inactive = "B" if device.active_slot() == "A" else "A"
    proxy.faults = Faults(cut_after=170_000)  # inside the third 64 KiB chunk, after the commands
    with pytest.raises(RouterkitError):  # PortError or TransferError, both are fine
        write_payload(console, target, data, inactive, journal, FlashOptions(path="ymodem", chunk_size=64 << 10))
    console.close()
    assert proxy.stats.cuts == 1
    first = journal.events("chunk")
    assert first, "no chunk was verified before the cut"
    console, device = uboot_console(state, proxy.url)
    journal2 = Journal.create("flash", board=state.board, target=state.name)
    sent, resumed_from, _ = write_payload(console, target, data, inactive, journal2, FlashOptions(path="ymodem", chunk_size=64 << 10))
    try:
        assert resumed_from == first[-1]["offset"] + first[-1]["length"]
        assert 0 < sent < len(data)
        assert slot_crc(device, inactive, len(data)) == crc(data)
    finally:
        console.close()
