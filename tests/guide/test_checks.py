"""Automatic checks against fake devices: the U-Boot banner and the selftest report."""

from __future__ import annotations

import json

import pytest

from toolkit.errors import DeviceTimeout
from toolkit.guide.checks import Device, default_registry


class FakeLine:
    """A serial line that prints ``after_reset`` once the device is reset."""

    def __init__(self, before: bytes = b"", after_reset: bytes = b"") -> None:
        self.buffer = before
        self.after_reset = after_reset
        self.closed = False
        self.writes: list[bytes] = []

    def reset(self) -> None:
        self.buffer += self.after_reset

    def read_available(self, timeout: float) -> bytes:
        data, self.buffer = self.buffer[:40], self.buffer[40:]  # dribbles in, like a UART
        return data

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True


BANNER = b"\r\n\x1b[0mU-Boot 2023.01+dfsg-2 (Jan 10 2024 - 12:00:00 +0000)\r\n\r\nDRAM:  1 GiB\r\n"


def _device(line: FakeLine) -> Device:
    return Device(
        open_console=lambda: line, reset=line.reset, console_settings={"uboot_banner": "U-Boot "}
    )


def test_uboot_banner_seen_after_reset_passes() -> None:
    line = FakeLine(after_reset=BANNER)
    result = default_registry().run("uboot_banner", _device(line), {"timeout": 2})
    assert result.ok, result.detail
    assert result.data["banner"] == "U-Boot 2023.01+dfsg-2 (Jan 10 2024 - 12:00:00 +0000)"
    assert line.closed


def test_old_banner_before_reset_does_not_count() -> None:
    line = FakeLine(before=BANNER, after_reset=b"")
    result = default_registry().run("uboot_banner", _device(line), {"timeout": 0.5})
    assert not result.ok
    assert "nothing at all" in result.detail  # what arrived before the reset was drained


def test_garbage_on_the_line_suggests_baud_rate() -> None:
    line = FakeLine(after_reset=b"\xfe\x80\x13garbled\xff\xfe\r\n")
    result = default_registry().run("uboot_banner", _device(line), {"timeout": 0.5})
    assert not result.ok and "baud" in result.detail


def test_unreachable_device_fails_with_its_reason() -> None:
    dev = Device(unavailable="the virtual sample 'default' is not running")
    result = default_registry().run("uboot_banner", dev, {})
    assert not result.ok and "not running" in result.detail


def test_console_that_refuses_connection_is_a_failed_check_not_a_crash() -> None:
    def refuse() -> FakeLine:
        raise ConnectionRefusedError(111, "Connection refused")

    result = default_registry().run(
        "uboot_banner", Device(open_console=refuse, reset=lambda: None), {}
    )
    assert not result.ok and "Connection refused" in result.detail


REPORT = {
    "board": "es-virt",
    "status": "ok",
    "fan": {"status": "absent", "reason": "absent on the virtual sample"},
    "storage": {"vda1": {"present": True}},
}


def _shell(status: int, output: str) -> Device:
    return Device(shell=lambda cmd, timeout: (status, output))


def test_selftest_field_matches_one_of_the_accepted_values() -> None:
    out = "selftest\n" + json.dumps(REPORT) + "\n# "
    reg = default_registry()
    assert reg.run(
        "selftest", _shell(0, out), {"field": "fan.status", "expect": ["ok", "absent"]}
    ).ok
    failed = reg.run("selftest", _shell(0, out), {"field": "fan.status", "expect": "ok"})
    assert not failed.ok and failed.detail == 'fan.status = "absent", expected "ok"'
    assert reg.run("selftest", _shell(0, out), {"field": "storage.vda1.present", "expect": True}).ok


def test_selftest_missing_field_bad_json_and_exit_status() -> None:
    reg = default_registry()
    assert (
        "reports no 'radio.status'"
        in reg.run("selftest", _shell(0, json.dumps(REPORT)), {"field": "radio.status"}).detail
    )
    assert (
        "did not print JSON"
        in reg.run("selftest", _shell(0, "sh: selftest: not found"), {"field": "status"}).detail
    )
    assert (
        "exited with 127"
        in reg.run("selftest", _shell(127, "sh: selftest: not found"), {"field": "status"}).detail
    )


def test_selftest_timeout_on_the_device_is_a_failed_check() -> None:
    def slow(cmd: str, timeout: float) -> tuple[int, str]:
        raise DeviceTimeout("no Linux shell prompt within 5 s")

    result = default_registry().run("selftest", Device(shell=slow), {"field": "status"})
    assert not result.ok and "no Linux shell prompt" in result.detail


def test_selftest_settles_while_a_fresh_boot_brings_its_network_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("toolkit.guide.checks.SETTLE_POLL", 0.01)
    answers = iter([(0, '{"status": "fail"}'), (0, '{"status": "fail"}'), (0, '{"status": "ok"}')])
    calls: list[str] = []

    def shell(cmd: str, timeout: float) -> tuple[int, str]:
        calls.append(cmd)
        return next(answers)

    params = {"field": "status", "expect": "ok", "settle": 10}
    result = default_registry().run("selftest", Device(shell=shell), params)
    assert result.ok and len(calls) == 3
