"""The scripted fake transport: receive queue, transmit log, responders, link drops."""

from __future__ import annotations

import re
import threading

import pytest

from toolkit.errors import PortError
from toolkit.testing.fake import FakeTransport, FakeUBoot
from toolkit.transport import Transport


def test_fake_logs_writes_and_answers_responders() -> None:
    fake = FakeTransport()
    assert isinstance(fake, Transport)
    fake.respond(re.escape(b"version\n"), b"U-Boot 2023.01\r\n=> ")
    fake.respond(b"\n", b"\r\n=> ")
    fake.write(b"version\n")
    fake.write(b"\n")
    assert fake.sent == b"version\n\n"
    assert fake.writes == [b"version\n", b"\n"]
    assert fake.read(1024, 0) == b"U-Boot 2023.01\r\n=> \r\n=> "


def test_responder_skip_and_times() -> None:
    fake = FakeTransport()
    responder = fake.respond(b" ", b"=> ", skip=2, times=1)
    for _ in range(5):
        fake.write(b" ")
    assert fake.read(100, 0) == b"=> "
    assert responder.hits == 3  # inactive once it has answered `times` times


def test_callable_responder_sees_the_match() -> None:
    fake = FakeTransport()
    fake.respond(rb"echo (\S+)\n", lambda m: m.group(1) + b"\r\n")
    fake.write(b"echo rk-sync-1234\n")
    assert fake.read(100, 0) == b"rk-sync-1234\r\n"


def test_delayed_feed_is_released_later_and_read_waits_for_it() -> None:
    fake = FakeTransport()
    fake.feed(b"late", delay=0.1)
    assert fake.read(10, 0) == b""
    assert fake.read(10, 5.0) == b"late"


def test_feed_from_another_thread_wakes_a_waiting_read() -> None:
    fake = FakeTransport()
    timer = threading.Timer(0.05, fake.feed, args=(b"x",))
    timer.start()
    try:
        assert fake.read(10, 5.0) == b"x"
    finally:
        timer.cancel()


def test_read_returns_at_most_max_bytes() -> None:
    fake = FakeTransport()
    fake.feed(b"abcdef")
    assert fake.read(4, 0) == b"abcd"
    assert fake.read(4, 0) == b"ef"


def test_disconnect_raises_port_error_on_read_and_write() -> None:
    fake = FakeTransport()
    fake.disconnect("power cut")
    with pytest.raises(PortError, match="power cut"):
        fake.read(1, 0.1)
    with pytest.raises(PortError):
        fake.write(b"x")


def test_fake_uboot_runs_commands_with_status() -> None:
    fake = FakeUBoot(at_prompt=True, memory={0x1000: b"abc"})
    fake.write(b"nosuch; echo rc=$?\n")
    out = fake.read(4096, 0).decode()
    assert "Unknown command 'nosuch'" in out
    assert "rc=1" in out
    assert out.endswith("=> ")
    fake.write(b"crc32 1000 3\n")
    assert "==> 352441c2" in fake.read(4096, 0).decode()  # zlib.crc32(b"abc")
