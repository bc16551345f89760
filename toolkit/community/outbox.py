"""The outbox: every upload waits here until a server has it — exactly once.

A SQLite database in WAL mode (``data_dir()/outbox.sqlite``) holds one row per item with an
**idempotency key**; the item's attachments are frozen into ``data_dir()/outbox/<key>/`` when
it is queued, so what is uploaded is byte for byte what the preview showed.

States: ``queued`` → ``sending`` → ``sent``, or ``failed`` (a permanent refusal such as 401 or
413; ``routerkit outbox retry`` puts it back). A crash leaves an item in ``sending``; the next
drain treats it as queued. Exactly-once delivery comes from the publisher contract: before
creating anything, a publisher asks the server whether an object with this key exists and, if
so, returns it. So a SIGKILL between the server accepting a post and the local ``sent`` ack
costs one lookup on the retry, never a second post.

Transient failures (server down, timeout, 5xx, 429) back off exponentially with jitter,
honouring ``Retry-After`` when the server sends one.

An item remembers its **destination**: the server it was previewed for (``publisher`` plus
the base URL, or ``local`` for the embedded tracker). A publisher built from the
configuration carries the destination that configuration names; when the two differ the item
is not sent there: it fails with :class:`DestinationChangedError` and stays in the outbox
(``outbox retry`` tries again, e.g. once the URL is switched back; sharing again previews it
for the new server and replaces it). Files are private: the database is created 0600 and the
staging directories 0700.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import random
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit import paths
from toolkit.errors import NotFoundError, PublishError, PublishRetryableError
from toolkit.events import NullReporter, Reporter

STATES = ("queued", "sending", "sent", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    key        TEXT PRIMARY KEY,
    publisher  TEXT NOT NULL,
    kind       TEXT NOT NULL,
    title      TEXT NOT NULL,
    payload    TEXT NOT NULL,
    state      TEXT NOT NULL DEFAULT 'queued',
    attempts   INTEGER NOT NULL DEFAULT 0,
    next_at    REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    remote     TEXT,
    created    REAL NOT NULL,
    updated    REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS items_due ON items(state, next_at);
"""


@dataclass
class Attachment:
    """One file of an item, frozen in the item's staging directory."""

    name: str
    path: Path
    size: int
    sha256: str
    mime: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "size": self.size,
            "sha256": self.sha256,
            "mime": self.mime,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Attachment:
        return cls(d["name"], Path(d["path"]), int(d["size"]), d["sha256"], d["mime"])


@dataclass
class Item:
    """A queued upload. ``payload`` holds title, body (Markdown), fields, tags, target."""

    key: str
    publisher: str
    kind: str  # buildlog | bug | comment
    title: str
    payload: dict[str, Any]
    attachments: list[Attachment] = field(default_factory=list)
    state: str = "queued"
    attempts: int = 0
    next_at: float = 0.0
    last_error: str | None = None
    remote: dict[str, Any] | None = None
    created: float = 0.0
    #: the server the payload was previewed for (see the module docstring); None for items
    #: queued before routerkit recorded it, which are held until shared again
    destination: str | None = None

    @property
    def body(self) -> str:
        return str(self.payload.get("body", ""))

    @property
    def total_bytes(self) -> int:
        return len(self.body.encode()) + sum(a.size for a in self.attachments)

    def summary(self) -> dict[str, Any]:
        """The row as shown by ``routerkit outbox list --json``."""
        return {
            "key": self.key,
            "publisher": self.publisher,
            "kind": self.kind,
            "title": self.title,
            "state": self.state,
            "attempts": self.attempts,
            "next_at": self.next_at,
            "last_error": self.last_error,
            "url": (self.remote or {}).get("url"),
            "destination": self.destination,
            "attachments": len(self.attachments),
            "bytes": self.total_bytes,
        }


@dataclass
class DrainResult:
    sent: list[Item] = field(default_factory=list)
    failed: list[Item] = field(default_factory=list)
    pending: list[Item] = field(default_factory=list)  # still queued (backing off)


PublisherFactory = Callable[[str], Any]  # name -> Publisher (see publishers/__init__.py)


class Outbox:
    """The queue. Cheap to construct; every method opens its own connection (process-safe)."""

    def __init__(
        self, root: Path | None = None, *, base_delay: float = 1.0, max_delay: float = 300.0
    ) -> None:
        self.root = root or paths.data_dir()
        self.db_path = self.root / "outbox.sqlite"
        self.staging = self.root / "outbox"
        self.base_delay = base_delay
        self.max_delay = max_delay
        paths.private_dir(self.root)
        # sqlite creates the database (and its -wal/-shm files, which copy its mode) with the
        # umask's permissions; create it 0600 first, and close one an older routerkit left open
        fd = os.open(self.db_path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_mode & 0o077:
                os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
        for side in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.chmod(f"{self.db_path}{side}", 0o600)
        with self._conn() as db:
            db.executescript(_SCHEMA)

    @contextlib.contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            # FULL: a row marked sent survives a power cut, not just a process crash
            db.execute("PRAGMA synchronous=FULL")
            db.row_factory = sqlite3.Row
            yield db
        finally:
            db.close()

    # --- queueing -----------------------------------------------------------------------

    def stage_dir(self, key: str, *, create: bool = False) -> Path:
        """The item's staging directory; ``create`` makes it (0700, like the outbox around it)."""
        path = self.staging / key
        if create:
            paths.private_dir(self.staging)
            paths.private_dir(path)
        return path

    def enqueue(self, item: Item) -> Item:
        """Queue ``item`` (attachments must already be in :meth:`stage_dir`). Idempotent:
        queueing the same key again returns the existing item untouched."""
        existing = self.get(item.key, missing_ok=True)
        if existing is not None:
            return existing
        now = time.time()
        payload = dict(item.payload, attachments=[a.to_json() for a in item.attachments])
        if item.destination is not None:
            payload["destination"] = item.destination
        with self._conn() as db:
            db.execute(
                "INSERT OR IGNORE INTO items(key,publisher,kind,title,payload,state,created,updated)"
                " VALUES(?,?,?,?,?,'queued',?,?)",
                (item.key, item.publisher, item.kind, item.title, json.dumps(payload), now, now),
            )
        return self.get(item.key)  # type: ignore[return-value]

    def get(self, key: str, *, missing_ok: bool = False) -> Item | None:
        with self._conn() as db:
            row = db.execute("SELECT * FROM items WHERE key=?", (key,)).fetchone()
        if row is None:
            if missing_ok:
                return None
            raise NotFoundError(
                f"no outbox item {key!r}", hint="`routerkit outbox list` shows them"
            )
        return _row_to_item(row)

    def find(self, prefix: str) -> Item:
        """An item by key or unique key prefix (what a human types)."""
        items = [i for i in self.list() if i.key.startswith(prefix)]
        if len(items) != 1:
            raise NotFoundError(
                f"{'no' if not items else 'more than one'} outbox item matches {prefix!r}",
                hint="`routerkit outbox list` shows the keys",
            )
        return items[0]

    def list(self, states: tuple[str, ...] | None = None) -> list[Item]:
        with self._conn() as db:
            rows = db.execute("SELECT * FROM items ORDER BY created").fetchall()
        items = [_row_to_item(r) for r in rows]
        return [i for i in items if states is None or i.state in states]

    # --- state changes ------------------------------------------------------------------

    def _update(self, key: str, **cols: Any) -> None:
        cols["updated"] = time.time()
        sets = ",".join(f"{k}=?" for k in cols)
        with self._conn() as db:
            db.execute(f"UPDATE items SET {sets} WHERE key=?", (*cols.values(), key))

    def retry(self, key: str | None = None) -> int:
        """Make failed (or backing-off) items due now. Returns how many were changed."""
        with self._conn() as db:
            if key is None:
                cur = db.execute(
                    "UPDATE items SET state='queued', next_at=0, updated=? WHERE state IN ('failed','queued','sending')",
                    (time.time(),),
                )
            else:
                cur = db.execute(
                    "UPDATE items SET state='queued', next_at=0, updated=? WHERE key=? AND state!='sent'",
                    (time.time(), key),
                )
            return cur.rowcount

    def drop(self, key: str) -> Item:
        """Forget an item and its staged files (it will not be uploaded)."""
        item = self.get(key)
        assert item is not None
        with self._conn() as db:
            db.execute("DELETE FROM items WHERE key=?", (key,))
        shutil.rmtree(self.stage_dir(key), ignore_errors=True)
        return item

    def export(self, key: str, dest: Path) -> Path:
        """Write the item (payload.json, body.md, attachments) to ``dest/<key>/`` for a
        manual upload from another machine."""
        item = self.get(key)
        assert item is not None
        out = dest / key
        out.mkdir(parents=True, exist_ok=True)
        (out / "body.md").write_text(item.body)
        meta = {k: v for k, v in item.payload.items() if k != "attachments"}
        meta.update(
            key=item.key,
            kind=item.kind,
            title=item.title,
            publisher=item.publisher,
            destination=item.destination,
        )
        meta["attachments"] = [
            {"name": a.name, "size": a.size, "sha256": a.sha256, "mime": a.mime}
            for a in item.attachments
        ]
        (out / "payload.json").write_text(json.dumps(meta, indent=2))
        for a in item.attachments:
            shutil.copyfile(a.path, out / a.name)
        return out

    # --- delivery -----------------------------------------------------------------------

    def backoff(self, attempts: int, retry_after: float | None) -> float:
        """Seconds to wait after the ``attempts``-th failure: exponential, jittered, capped;
        never sooner than the server's Retry-After."""
        delay = min(self.max_delay, self.base_delay * (2 ** max(0, attempts - 1)))
        delay *= random.uniform(0.5, 1.0)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay

    def drain(
        self,
        publishers: PublisherFactory,
        reporter: Reporter | None = None,
        *,
        keys: builtins.list[str] | None = None,
        deadline: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> DrainResult:
        """Upload due items until none is due, or wait for back-offs until ``deadline``
        (a ``time.monotonic()`` value; None means: one pass, no waiting).

        Only one process drains at a time (a lock file); a second one returns at once.
        """
        from filelock import FileLock, Timeout

        reporter = reporter or NullReporter()
        lock = FileLock(str(self.root / "outbox.lock"))
        try:
            lock.acquire(timeout=0 if deadline is None else max(0.0, deadline - time.monotonic()))
        except Timeout:
            reporter.message(
                "another routerkit is uploading the outbox; leaving it to it", "warning"
            )
            return self._result(keys)
        try:
            while True:
                due = [
                    i
                    for i in self.list(("queued", "sending"))
                    if (keys is None or i.key in keys) and i.next_at <= time.time()
                ]
                for item in due:
                    self._deliver(item, publishers, reporter)
                waiting = [
                    i for i in self.list(("queued", "sending")) if keys is None or i.key in keys
                ]
                if not waiting or deadline is None:
                    break
                wake = min(i.next_at for i in waiting)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                sleep(max(0.0, min(remaining, wake - time.time())))
                if time.monotonic() >= deadline and min(i.next_at for i in waiting) > time.time():
                    break
        finally:
            lock.release()
        return self._result(keys)

    def _result(self, keys: builtins.list[str] | None) -> DrainResult:
        res = DrainResult()
        for i in self.list():
            if keys is not None and i.key not in keys:
                continue
            {"sent": res.sent, "failed": res.failed}.get(i.state, res.pending).append(i)
        return res

    def _deliver(self, item: Item, publishers: PublisherFactory, reporter: Reporter) -> None:
        self._update(item.key, state="sending", attempts=item.attempts + 1)
        item.attempts += 1
        try:
            publisher = publishers(item.publisher)
            _check_destination(item, publisher)
            remote = publisher.publish(item, reporter)
        except PublishRetryableError as err:
            delay = self.backoff(item.attempts, err.retry_after)
            self._update(item.key, state="queued", next_at=time.time() + delay, last_error=str(err))
            reporter.message(f"{item.title}: {err}; retrying in {delay:.1f} s", "warning")
            return
        except PublishError as err:
            self._update(item.key, state="failed", last_error=f"{type(err).__name__}: {err}")
            reporter.message(f"{item.title}: {err}", "error")
            return
        self._update(item.key, state="sent", remote=json.dumps(remote), last_error=None)
        reporter.message(f"sent: {item.title} → {remote.get('url')}")


class DestinationChangedError(PublishError):
    """The configuration now sends this publisher's items to another server than the one the
    item was previewed for. Not sent; the item stays in the outbox."""


def _check_destination(item: Item, publisher: Any) -> None:
    """Refuse to hand ``item`` to a publisher that posts somewhere it was not previewed for.

    A publisher built from the configuration says where it posts (``destination``); one the
    caller built itself for this drain (a script, a test) has ``None`` there: the caller chose
    the server, so there is no configuration to disagree with.
    """
    from toolkit.community.config import describe_destination

    where = getattr(publisher, "destination", None)
    if where is None or where == item.destination:
        return
    if item.destination is None:
        said = "it was queued before routerkit remembered where an item was previewed for"
    else:
        said = f"it was previewed for {describe_destination(item.destination)}"
    raise DestinationChangedError(
        f"not sent: {said}, and {item.publisher} now posts to {describe_destination(where)}",
        hint="point the configuration back and `routerkit outbox retry`, or share it again to preview it "
        "for the new server (or `routerkit outbox drop` it)",
    )


def _row_to_item(row: sqlite3.Row) -> Item:
    payload = json.loads(row["payload"])
    attachments = [Attachment.from_json(a) for a in payload.pop("attachments", [])]
    destination = payload.pop("destination", None)
    return Item(
        key=row["key"],
        publisher=row["publisher"],
        kind=row["kind"],
        title=row["title"],
        payload=payload,
        attachments=attachments,
        state=row["state"],
        attempts=row["attempts"],
        next_at=row["next_at"],
        last_error=row["last_error"],
        remote=json.loads(row["remote"]) if row["remote"] else None,
        created=row["created"],
        destination=destination,
    )
