"""The outbox on its own: states, back-off and Retry-After, crash recovery, export, drop."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from toolkit.community.outbox import Attachment, Item, Outbox
from toolkit.errors import NotFoundError, PublishAuthError, PublishRetryableError
from toolkit.events import Reporter


class Scripted:
    """A publisher that fails as told, then succeeds; remembers what it created."""

    name = "scripted"

    def __init__(self, failures: list[Exception]) -> None:
        self.failures = list(failures)
        self.created: list[str] = []

    def publish(self, item: Item, reporter: Reporter) -> dict[str, Any]:
        if self.failures:
            raise self.failures.pop(0)
        if item.key not in self.created:
            self.created.append(item.key)
        return {"id": str(self.created.index(item.key) + 1), "url": f"http://x/{item.key}"}

    def find_by_signature(self, signature: str) -> list[Any]:
        return []

    def close(self) -> None:
        pass


def _item(outbox: Outbox, key: str = "k1", with_file: bool = False) -> Item:
    attachments = []
    if with_file:
        path = outbox.stage_dir(key) / "a.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"hello")
        attachments = [Attachment("a.txt", path, 5, "0" * 64, "text/plain")]
    return outbox.enqueue(
        Item(key, "scripted", "bug", f"title {key}", {"body": "text"}, attachments)
    )


def test_enqueue_is_idempotent_by_key(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    _item(outbox)
    _item(outbox)
    assert len(outbox.list()) == 1


def test_transient_failures_back_off_honouring_retry_after(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path, base_delay=0.01, max_delay=0.05)
    _item(outbox)
    pub = Scripted([PublishRetryableError("429", retry_after=30.0)])
    outbox.drain(lambda name: pub)
    (item,) = outbox.list()
    assert item.state == "queued" and item.attempts == 1
    assert item.next_at - item.created >= 29  # not before the server's Retry-After
    slept: list[float] = []
    outbox.retry()  # the tester says: now
    result = outbox.drain(
        lambda name: pub, deadline=__import__("time").monotonic() + 5, sleep=slept.append
    )
    assert [i.key for i in result.sent] == ["k1"] and pub.created == ["k1"]


def test_backoff_grows_exponentially_and_is_capped(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path, base_delay=1.0, max_delay=8.0)
    delays = [outbox.backoff(n, None) for n in range(1, 8)]
    assert all(
        0.5 * min(8, 2 ** (n - 1)) <= d <= min(8, 2 ** (n - 1))
        for n, d in zip(range(1, 8), delays, strict=True)
    )
    assert outbox.backoff(1, 42.0) == 42.0


def test_permanent_refusal_marks_failed_and_retry_requeues(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    _item(outbox)
    pub = Scripted([PublishAuthError("401")])
    result = outbox.drain(lambda name: pub)
    assert [i.state for i in result.failed] == ["failed"] and "PublishAuthError" in (
        result.failed[0].last_error or ""
    )
    assert outbox.retry("k1") == 1
    assert [i.key for i in outbox.drain(lambda name: pub).sent] == ["k1"]


def test_item_left_sending_by_a_crash_is_delivered_next_time(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    _item(outbox)
    outbox._update("k1", state="sending", attempts=1)  # what a SIGKILL mid-upload leaves
    pub = Scripted([])
    assert [i.key for i in outbox.drain(lambda name: pub).sent] == ["k1"]


def test_export_writes_payload_and_attachments_and_drop_forgets(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    _item(outbox, with_file=True)
    out = outbox.export("k1", tmp_path / "export")
    assert (out / "a.txt").read_bytes() == b"hello"
    assert json.loads((out / "payload.json").read_text())["attachments"][0]["size"] == 5
    outbox.drop("k1")
    assert outbox.list() == [] and not outbox.stage_dir("k1").exists()
    with pytest.raises(NotFoundError):
        outbox.get("k1")


def test_database_is_in_wal_mode(tmp_path: Path) -> None:
    import sqlite3

    Outbox(tmp_path)
    db = sqlite3.connect(tmp_path / "outbox.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
