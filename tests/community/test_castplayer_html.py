"""The build log's console player, in headless Debian Chromium: the page opens on the
recording's last screen, a replay ends on the same screen, both equal the terminal model
`routerkit sessions replay` uses, and no secret from the console reaches the page."""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

from tests.community.fakes import assembly_session
from tests.community.test_buildlog_html import _chromium
from toolkit.community.buildlog import compose
from toolkit.community.redact import Redactor
from toolkit.protocol import Console, asciicast
from toolkit.testing.fake import FakeTransport

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

CHUNKS = [
    b"U-Boot 2023.01\r\nHit any key to stop autoboot:  2 \x08\x08\x08 1 \x08\x08\x08 0 \r\n",
    b"\x1b[0;32mStarting kernel\x1b[0m ...\r\n</script><!-- not markup -->\r\n",
    b"~ # uci show wireless\r\nwireless.radio0.key='planted-secret-77'\r\n",
    b"~ # " + b"x" * 130 + b"\r\n~ # \x1b[6n",
]


def _screen(dom: str, index: int) -> str:
    boxes = re.findall(r'<figure class="rk-cast"[^>]*>.*?<pre>(.*?)</pre>', dom, re.S)
    return html.unescape(boxes[index])


def test_build_log_player_shows_and_replays_the_recorded_screen(tmp_path: Path) -> None:
    assert Path(CHROMIUM).exists(), "make setup installs Debian's chromium"
    journal = assembly_session(photos=1, steps=1)
    fake = FakeTransport()
    console = Console(fake, transcript_path=journal.files_dir / "console.log")  # type: ignore[arg-type]
    for chunk in CHUNKS:
        fake.feed(chunk)
        console.flush_input(quiet=0.01, timeout=0.5)
    console.close()
    log = compose(journal, Redactor(b"s" * 32))
    assert "planted-secret-77" not in log.html
    assert log.html.count('<script type="application/x-asciicast">') == 1
    assert (
        "</script><!--"
        not in log.html.split("<h2>Console recordings</h2>", 1)[1].split("<script>", 1)[0]
    )
    title, cast = log.recordings[0]
    expected = "\n".join(asciicast.final_screen([cast.output()], cast.width, cast.height))
    assert "Hit any key to stop autoboot:  0" in expected and expected.endswith("~ #")
    page = tmp_path / "log.html"
    page.write_text(log.html)
    opened = _chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", page.as_uri())
    assert 'data-state="ready"' in opened.stdout, opened.stderr[-2000:]
    assert _screen(opened.stdout, 0) == expected
    played = _chromium(
        tmp_path, "--virtual-time-budget=60000", "--dump-dom", page.as_uri() + "#rk-play"
    )
    assert 'data-state="done"' in played.stdout, played.stderr[-2000:]
    assert _screen(played.stdout, 0) == expected


def test_the_weekly_page_replays_a_shared_build_logs_recording() -> None:
    """The build log carries its (redacted) recording as a file too; the weekly page replays
    the one of each shared build log beside its photos."""
    from datetime import UTC, datetime

    from toolkit.community.weekly import build

    journal = assembly_session(photos=1, steps=1)
    fake = FakeTransport()
    console = Console(fake, transcript_path=journal.files_dir / "console.log")  # type: ignore[arg-type]
    for chunk in CHUNKS:
        fake.feed(chunk)
        console.flush_input(quiet=0.01, timeout=0.5)
    console.close()
    log = compose(journal, Redactor(b"s" * 32))
    casts = [a for a in log.attachments if a.name.endswith(".cast")]
    assert [a.name for a in casts] == ["console-1.cast"]
    assert b"planted-secret-77" not in casts[0].data
    now = datetime(2026, 12, 6, 12, tzinfo=UTC)
    shared = {
        "id": "8", "title": "build log", "kind": "buildlog", "status": "unread", "votes": 0,
        "created": "2026-12-05.10:00:00", "files": ["1"], "url": "http://t/issue8",
        "board": "es-virt",
    }  # fmt: skip
    page = build([shared], [], [], photos=lambda _fid: (casts[0].name, casts[0].data), now=now)
    assert page.data["shared"][0]["recording"]["name"] == "console-1.cast"
    assert page.html.count('<figure class="rk-cast">') == 1
    assert page.html.count('<script type="application/x-asciicast">') == 1
    assert "planted-secret-77" not in page.html and "rk-cast button" in page.html
