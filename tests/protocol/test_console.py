"""Console: deadlines, escape stripping, transcript, and raw reads for binary transfers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from toolkit.errors import DeviceTimeout
from toolkit.protocol import Console, strip_terminal
from toolkit.testing.fake import FakeTransport


def make(*chunks: bytes, **kwargs: object) -> tuple[Console, FakeTransport]:
    fake = FakeTransport()
    for chunk in chunks:
        fake.feed(chunk)
    return Console(fake, **kwargs), fake  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        (b"~ # \x1b[6n", "~ # "),  # busybox ash cursor position query
        (b"\x1b[?25l\x1b[0;32mOK\x1b[0m\x1b[?25h", "OK"),
        (b"\x1b]0;root@es-virt\x07# ", "# "),  # OSC window title
        (b"\x1b(Bplain\x1b=", "plain"),
        (b"a\r\nb\r\r\nc\rd", "a\nb\nc\nd"),
        (b"autoboot:  2 \x08\x08\x08 1 ", "autoboot:  1 "),
        (b"bell\x07 nul\x00", "bell nul"),
        ("grüße\tok".encode(), "grüße\tok"),
        (b"noise \xff\xfe end", "noise \ufffd\ufffd end"),
    ],
)
def test_strip_terminal_cleans_console_bytes(raw: bytes, clean: str) -> None:
    assert strip_terminal(raw) == clean


def test_expect_matches_clean_text_when_escape_is_split_across_reads() -> None:
    console, _ = make(b"login ok\r\n~ # \x1b[", b"6n")
    found = console.expect("# ", timeout=1)
    assert found.before == "login ok\n~ "
    console.expect(re.compile(r"\Z"), timeout=0)
    assert "\x1b" not in console.pending_text


def test_utf8_character_split_across_reads_is_not_garbled() -> None:
    data = "größe\n".encode()
    console, _ = make(data[:3], data[3:])
    assert console.expect("\n", timeout=1).before == "größe"


def test_expect_returns_earliest_match_and_its_index() -> None:
    console, _ = make(b"noise Hit any key to stop autoboot\r\n=> ")
    found = console.expect(["\n=> ", "Hit any key"], timeout=1)
    assert found.index == 1
    assert found.before == "noise "
    assert console.expect(["\n=> "], timeout=1).index == 0


def test_expect_timeout_raises_with_console_tail() -> None:
    console, _ = make(b"DRAM:  1 GiB\r\nStarting kernel ...\r\n")
    with pytest.raises(DeviceTimeout) as info:
        console.expect("\n=> ", timeout=0.2)
    assert "Starting kernel" in (info.value.last_output or "")
    assert "'\\n=> '" in str(info.value)


def test_try_expect_returns_none_on_timeout() -> None:
    console, _ = make()
    assert console.try_expect("x", 0.05) is None


def test_read_raw_returns_bytes_left_after_a_match_then_reads_the_transport() -> None:
    console, fake = make(b"## Ready for binary (xmodem) download\r\nCC")
    console.expect("download\n", timeout=1)
    assert console.read_raw(1024, 0) == b"CC"
    fake.feed(b"\x06")
    assert console.read_raw(1024, 1) == b"\x06"


def test_read_raw_keeps_escape_bytes_that_were_not_matched() -> None:
    console, _ = make(b"=> \x1b[6n\x15")
    console.expect("=> ", timeout=1)
    assert console.read_raw(100, 0) == b"\x1b[6n\x15"


def test_binary_block_keeps_transcript_readable(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    console, fake = make(transcript_path=log)
    fake.feed(b"=> loadx\r\n")
    console.expect("loadx\n", timeout=1)
    with console.binary():
        fake.feed(b"\x15\x06" * 100)
        got = b""
        while len(got) < 200:
            got += console.read_raw(4096, 1)
        console.write_raw(b"\x04")
    fake.feed(b"## Total Size = 0x00000400\r\n=> ")
    console.expect("\n=> ", timeout=1)
    text = console.transcript_text()
    assert "200 bytes of binary transfer not shown" in text
    assert "\x15" not in text
    assert "Total Size" in text
    assert log.read_bytes() == console.transcript_bytes()
    console.close()


def test_transcript_appends_to_an_existing_file(tmp_path: Path) -> None:
    log = tmp_path / "sub" / "console.log"
    log.parent.mkdir()
    log.write_bytes(b"earlier\n")
    console, _ = make(b"later\r\n", transcript_path=log)
    console.expect("later", timeout=1)
    console.close()
    assert log.read_bytes() == b"earlier\nlater\r\n"


def test_tail_gives_the_last_lines_clean() -> None:
    console, _ = make(b"".join(b"line %d\r\n" % i for i in range(50)) + b"\x1b[6n# ")
    console.expect("# ", timeout=1)
    assert console.tail(3) == "line 48\nline 49\n# "


def test_flush_input_discards_pending_text() -> None:
    console, fake = make(b"garbage\r\n")
    assert console.flush_input(quiet=0.05) == "garbage\n"
    fake.feed(b"fresh")
    assert console.expect("fresh", timeout=1).before == ""


def test_sendline_uses_the_console_newline() -> None:
    console, fake = make(newline="\r")
    console.sendline("version")
    assert fake.sent == b"version\r"
