"""Private data stays private under a permissive umask (issue #11, item 6.3): directories
0700, files 0600, whatever the umask says."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from toolkit import paths
from toolkit.community.outbox import Attachment, Item, Outbox


@pytest.fixture(params=[0o022, 0o002], ids=["umask022", "umask002"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_data_dir_and_sessions_dir_are_0700(umask: int) -> None:
    assert _mode(paths.data_dir()) == 0o700
    assert _mode(paths.sessions_dir()) == 0o700


def test_an_existing_open_data_dir_is_closed(umask: int) -> None:
    data = paths.data_dir()
    os.chmod(data, 0o755)
    assert _mode(paths.data_dir()) == 0o700


def test_console_transcript_is_0600(umask: int) -> None:
    from toolkit.protocol.console import Console
    from toolkit.testing.fake import FakeTransport

    path = paths.sessions_dir() / "t" / "files" / "console.log"
    console = Console(FakeTransport(), transcript_path=path)
    try:
        assert _mode(path) == 0o600
    finally:
        console.close()


def test_outbox_database_and_staging_are_private(umask: int) -> None:
    box = Outbox()
    stage = box.stage_dir("rk1", create=True)
    (stage / "a.txt").write_bytes(b"hello")
    os.chmod(stage / "a.txt", 0o600)
    box.enqueue(
        Item(
            "rk1",
            "scripted",
            "bug",
            "t",
            {"body": "b"},
            [Attachment("a.txt", stage / "a.txt", 5, "0" * 64, "text/plain")],
        )
    )
    assert _mode(box.db_path) == 0o600
    for side in ("-wal", "-shm"):
        extra = Path(str(box.db_path) + side)
        if extra.exists():
            assert _mode(extra) == 0o600, side
    assert _mode(box.staging) == 0o700 and _mode(stage) == 0o700


def test_share_stages_attachments_privately(umask: int) -> None:
    from tests.community.fakes import assembly_session
    from toolkit.journeys.share import prepare_share, submit

    item = submit(prepare_share(assembly_session(photos=1, steps=1).id, "roundup"), Outbox())
    for a in item.attachments:
        assert _mode(a.path) == 0o600 and _mode(a.path.parent) == 0o700


def test_local_tracker_state_dir_is_0700(umask: int) -> None:
    from toolkit.community.server import LocalTracker

    tracker = LocalTracker()
    assert _mode(tracker.root) == 0o700


def test_an_outbox_left_readable_by_an_older_routerkit_is_closed(umask: int) -> None:
    box = Outbox()
    os.chmod(box.db_path, 0o644)
    Outbox()
    assert _mode(box.db_path) == 0o600
