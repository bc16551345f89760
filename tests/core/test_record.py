from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading

import pytest

from toolkit.errors import JournalError, SessionNotFound
from toolkit.record import Journal, read_journal


def test_journal_appends_numbered_records_and_reopens() -> None:
    journal = Journal.create("assemble", board="es-virt")
    journal.append("step_started", step=1)
    journal.append("step_finished", step=1, seconds=2.5)
    again = Journal.open(journal.id)
    records = again.events()
    assert [r["seq"] for r in records] == [1, 2, 3]
    assert [r["type"] for r in records] == ["session", "step_started", "step_finished"]
    assert again.board == "es-virt"
    assert Journal.latest(kind="assemble") is not None
    assert Journal.latest(kind="flash") is None


def test_torn_last_line_is_ignored_then_kept_aside_on_next_append() -> None:
    journal = Journal.create("flash")
    journal.append("chunk", offset=0)
    with open(journal.path, "ab") as fh:
        fh.write(b'{"seq":3,"ts":"x","type":"chu')  # a crash mid-write
    result = journal.read()
    assert result.torn
    assert [r["type"] for r in result.records] == ["session", "chunk"]
    rec = journal.append("chunk", offset=4096)
    assert rec["seq"] == 3
    assert not journal.read().torn
    assert b'"type":"chu' in (journal.dir / "journal.torn").read_bytes()


def test_unknown_session_is_a_clear_error() -> None:
    with pytest.raises(SessionNotFound):
        Journal.open("does-not-exist")
    with pytest.raises(SessionNotFound):
        Journal.open("../etc")


def test_concurrent_appends_from_threads_lose_nothing() -> None:
    journal = Journal.create("fleet")

    def worker(n: int) -> None:
        for i in range(25):
            journal.append("tick", worker=n, i=i)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records = journal.events()
    assert len(records) == 101
    assert sorted(r["seq"] for r in records) == list(range(1, 102))


def test_sigkill_mid_appends_leaves_a_readable_journal(tmp_path) -> None:
    journal = Journal.create("flash")
    code = (
        "import os,sys\n"
        "from toolkit.record import Journal\n"
        f"j = Journal.open({journal.id!r})\n"
        "for i in range(100000):\n"
        "    j.append('tick', i=i, pad='x'*200)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], env=os.environ.copy())
    # Wait until some records are there, then pull the plug.
    while len(journal.events()) < 20:
        pass
    proc.kill()
    proc.wait()
    records = journal.events()
    seqs = [r["seq"] for r in records]
    assert seqs == list(range(1, len(seqs) + 1)), "no gaps, no duplicates"
    after = journal.append("resumed")
    assert after["seq"] == seqs[-1] + 1


def test_attachment_names_cannot_escape_the_session() -> None:
    journal = Journal.create("bug")
    path = journal.store_bytes("console/uboot.log", b"=> ")
    assert path.read_bytes() == b"=> "
    assert journal.relpath(path) == "files/console/uboot.log"
    with pytest.raises(JournalError):
        journal.store_bytes("../../evil", b"x")


def test_corrupt_middle_line_is_counted_not_fatal(tmp_path) -> None:
    p = tmp_path / "journal.jsonl"
    p.write_bytes(b'{"seq":1,"type":"a"}\nGARBAGE\n{"seq":2,"type":"b"}\n')
    result = read_journal(p)
    assert [r["type"] for r in result.records] == ["a", "b"]
    assert result.corrupt_lines == 1
    assert json.loads(p.read_text().splitlines()[0])["seq"] == 1


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_sessions_are_private_whatever_the_umask(umask: int) -> None:
    def mode(path: os.PathLike[str]) -> int:
        return stat.S_IMODE(os.stat(path).st_mode)

    old = os.umask(umask)
    try:
        j = Journal.create("assemble", board="es-virt")
        j.append("step_started", step="s1")
        photo = j.store_bytes("photos/001.jpg", b"\xff\xd8jpeg")
        src = j.dir.parent / f"src-{umask:o}.bin"
        src.write_bytes(b"x")
        copied = j.store_file(src, "reports/selftest.json")
        with open(j.path, "ab") as fh:  # a crash mid-append: the fragment goes to journal.torn
            fh.write(b'{"seq": 99, "type": "ha')
        j.append("step_finished", step="s1")
    finally:
        os.umask(old)
    assert mode(j.dir.parent) == 0o700  # sessions/
    assert mode(j.dir) == mode(j.files_dir) == mode(photo.parent) == mode(copied.parent) == 0o700
    assert mode(j.path) == mode(photo) == mode(copied) == mode(j.dir / "journal.torn") == 0o600
