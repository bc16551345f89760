"""Console recordings: every byte the console showed is in the asciicast v2 file with its
timing, a replay ends on the same screen, and what leaves the machine is redacted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from toolkit.community.recordings import redact_cast, redacted
from toolkit.community.redact import Redactor
from toolkit.protocol import Console, asciicast
from toolkit.record import Journal
from toolkit.testing.fake import FakeTransport

# A boot as a real console shows it: CR LF, a countdown with backspaces, ash's ESC[6n, a
# UTF-8 character split across two reads, an escape sequence split across two reads.
CHUNKS = [
    b"U-Boot 2023.01 (Debian)\r\n\r\nHit any key to stop autoboot:  2 ",
    b"\x08\x08\x08 1 \x08\x08\x08 0 \r\n",
    b"Starting kernel ...\r\n\r\nrouterkit: booted slot A version 1.2.0 gr\xc3",
    b"\xbc\xc3\x9fe\r\n\x1b[0;3",
    b"2mOK\x1b[0m\r\n~ # \x1b[6n",
    b'cat /etc/board.json\r\n{"board": "es-virt"}\r\n~ # ',
]

SECRET_CHUNKS = [
    b"~ # uci show wireless\r\nwireless.default_radio0.ssid='Mueller Home'\r\n",
    b"wireless.default_radio0.key='hunter2-pass",  # the secret arrives in two reads
    b"phrase-42'\r\n~ # ip addr\r\n    link/ether 52:54:00:12:34:56\r\n~ # ",
]


def _console_session(chunks: list[bytes], tmp: Path) -> tuple[Console, Path]:
    fake = FakeTransport()
    console = Console(fake, transcript_path=tmp / "console.log", name="sample")  # type: ignore[arg-type]
    for chunk in chunks:
        fake.feed(chunk)
        console.flush_input(quiet=0.01, timeout=0.5)
    return console, tmp / "console.cast"


def test_the_recording_holds_exactly_what_the_console_showed(tmp_path: Path) -> None:
    console, path = _console_session(CHUNKS, tmp_path)
    console.close()
    cast = asciicast.read(path)
    assert cast.header["version"] == 2 and cast.header["width"] > 0
    assert (path.stat().st_mode & 0o777) == 0o600
    times = [e.time for e in cast.events]
    assert times == sorted(times) and len(cast.events) >= len(CHUNKS) - 1
    assert cast.output() == b"".join(CHUNKS).decode("utf-8")  # split UTF-8 stays whole
    assert "grüße" in cast.output()


def test_a_replay_ends_on_the_screen_the_console_showed(tmp_path: Path) -> None:
    console, path = _console_session(CHUNKS, tmp_path)
    shown = console.transcript_bytes().decode("utf-8")
    console.close()
    cast = asciicast.read(path)
    played: list[str] = []
    pauses: list[float] = []
    asciicast.play(cast, played.append, sleep=pauses.append)
    expected = asciicast.final_screen([shown], cast.width, cast.height)
    assert asciicast.final_screen(played, cast.width, cast.height) == expected
    assert expected[-1] == "~ #" and "Hit any key to stop autoboot:  0" in expected
    assert all(p >= 0 for p in pauses)


def test_a_second_console_of_the_session_continues_the_recording(tmp_path: Path) -> None:
    first, path = _console_session(CHUNKS[:2], tmp_path)
    first.close()
    second, _ = _console_session(CHUNKS[2:], tmp_path)
    second.close()
    cast = asciicast.read(path)
    assert path.read_text().count('"version": 2') == 1
    assert cast.output() == b"".join(CHUNKS).decode("utf-8")


def test_binary_transfers_stay_out_of_the_recording(tmp_path: Path) -> None:
    fake = FakeTransport()
    console = Console(fake, transcript_path=tmp_path / "console.log")  # type: ignore[arg-type]
    fake.feed(b"## Ready for binary (ymodem) download\r\n")
    console.expect("download")
    with console.binary():
        fake.feed(b"\x06" * 40 + b"C")
        got = b""
        while b"C" not in got:
            got += console.read_raw(100, 0.5)
    console.close()
    out = asciicast.read(tmp_path / "console.cast").output()
    assert "\x06" not in out and "bytes of binary transfer not shown" in out


def test_screen_model_applies_cursor_moves_and_erases() -> None:
    lines = asciicast.final_screen(["abc\r\n", "xyz\x1b[2D\x1b[K", "Q\r\n", "\x1b[1;2Hb"], 10, 4)
    assert lines == ["abc", "xQ"] or lines == ["abc", "xQ", ""]
    assert asciicast.final_screen(["x" * 12], 10, 3) == ["x" * 10, "xx"]


def test_secrets_planted_on_the_console_are_redacted_in_the_recording(tmp_path: Path) -> None:
    console, path = _console_session(CHUNKS + SECRET_CHUNKS, tmp_path)
    console.close()
    raw = asciicast.read(path)
    assert "hunter2-passphrase-42" in raw.output()  # the raw file is what the console saw
    red = redact_cast(raw, Redactor(b"s" * 32))
    out = red.output()
    assert "hunter2" not in out and "phrase-42" not in out
    assert "Mueller Home" not in out and "52:54:00:12:34:56" not in out
    assert "<redacted>" in out and "wireless.default_radio0.key=" in out
    # lines the redactor did not touch keep their own timing, in order
    assert [e.time for e in red.events] == sorted(e.time for e in red.events)
    assert "Hit any key to stop autoboot" in out and red.header.get("redacted") is True
    # the redacted copy is still a valid asciicast v2 recording
    again = asciicast.parse(red.to_bytes())
    assert again.output() == out


def test_session_replay_plays_the_redacted_copy(tmp_path: Path) -> None:
    from toolkit.cli import root

    journal = Journal.create("flash", board="es-virt")
    fake = FakeTransport()
    console = Console(fake, transcript_path=journal.files_dir / "console.log")  # type: ignore[arg-type]
    for chunk in CHUNKS + SECRET_CHUNKS:
        fake.feed(chunk)
        console.flush_input(quiet=0.01, timeout=0.5)
    console.close()
    result = CliRunner().invoke(root, ["sessions", "replay", journal.id, "--speed", "0"])
    assert result.exit_code == 0, result.output
    assert "Starting kernel" in result.output and "hunter2" not in result.output
    shown = CliRunner().invoke(root, ["--json", "sessions", "replay", journal.id])
    screen = json.loads(shown.output)["screen"]
    assert screen[-1] == "~ #" and not any("hunter2" in line for line in screen)
    kept = journal.events("recording")
    assert kept and kept[-1]["file"].endswith(".redacted.cast")
    assert kept[-1]["redactions"]  # the journal says what was removed
    assert redacted(journal) and len(journal.events("recording")) == len(kept)  # unchanged


def test_replay_of_a_session_without_console_says_so() -> None:
    from toolkit.cli import root

    journal = Journal.create("assemble", board="es-virt")
    result = CliRunner().invoke(root, ["sessions", "replay", journal.id])
    assert result.exit_code != 0 and "no console recording" in result.output


@pytest.mark.parametrize("cut", [2, 7, 20])
def test_a_torn_last_line_is_skipped(tmp_path: Path, cut: int) -> None:
    console, path = _console_session(CHUNKS, tmp_path)
    console.close()
    data = path.read_bytes()
    cast = asciicast.parse(data[:-cut])
    assert len(cast.events) == len(asciicast.parse(data).events) - 1


def test_a_bug_report_attaches_the_sessions_recording_redacted() -> None:
    from tests.community.test_canaries import CANARIES, PLANTED
    from toolkit.journeys.bug import prepare_bug

    journal = Journal.create("flash", board="es-virt")
    fake = FakeTransport()
    console = Console(fake, transcript_path=journal.files_dir / "console.log")  # type: ignore[arg-type]
    data = PLANTED.replace("\n", "\r\n").encode() + b"\r\n~ # "
    for start in range(0, len(data), 37):  # secrets cut across reads
        fake.feed(data[start : start + 37])
        console.flush_input(quiet=0.005, timeout=0.5)
    console.close()
    plan, _ = prepare_bug("sample hangs after flash", session_id=journal.id)
    casts = [b for b in plan.blobs if b.name.endswith(".cast")]
    assert len(casts) == 1 and casts[0].mime == asciicast.MIME
    cast = asciicast.parse(casts[0].data)
    assert "~ # " in cast.output()
    leaked = [name for name, (_, secret) in CANARIES.items() if secret.encode() in casts[0].data]
    assert leaked == []
    assert PLANTED.split("\n")[1].encode() in (journal.files_dir / "console.log").read_bytes()


def test_a_transcript_named_like_a_recording_does_not_share_its_file(tmp_path: Path) -> None:
    fake = FakeTransport()
    console = Console(fake, transcript_path=tmp_path / "odd.cast")  # type: ignore[arg-type]
    fake.feed(b"hello\r\n")
    console.flush_input(quiet=0.01, timeout=0.5)
    console.close()
    assert (tmp_path / "odd.cast").read_bytes() == b"hello\r\n"
    assert asciicast.read(tmp_path / "odd.cast.cast").output() == "hello\r\n"
