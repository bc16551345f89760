"""The session journal: append-only, crash-safe, the single source of truth.

One directory per session under ``paths.sessions_dir()``::

    <session-id>/
        journal.jsonl     one JSON object per line, fsync'ed after every append
        journal.torn      fragments of torn lines found after a crash (kept, never deleted)
        files/            photos, console transcripts, reports (written atomically)

Sessions hold console transcripts and board details: directories are 0700 and files 0600,
whatever the umask.

Every record has ``seq`` (1, 2, 3... without gaps), ``ts`` (UTC, ISO 8601) and ``type``.
The first record is always ``{"type": "session", "kind": ..., "board": ...}``.

Crash safety: a record is one ``write()`` of a full line followed by ``fsync``. If the process
dies mid-write, the file ends without a newline; readers ignore that fragment (``torn`` is set)
and the next writer moves it to ``journal.torn`` before appending, so nothing is silently
dropped and the journal never becomes unreadable. Appends hold an ``flock`` so threads and
processes (a fleet flash) can share one journal.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from toolkit import paths
from toolkit.errors import JournalError, SessionNotFound

JOURNAL = "journal.jsonl"
TORN = "journal.torn"


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _new_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class ReadResult:
    records: list[dict[str, Any]]
    torn: bool  # the file ended in a partial line (a crash mid-append)
    corrupt_lines: int  # complete lines that were not JSON objects (skipped, counted)


def read_journal(path: Path) -> ReadResult:
    """Parse a journal file, tolerating a torn last line. Never raises on bad content."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return ReadResult([], False, 0)
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    records: list[dict[str, Any]] = []
    corrupt = 0
    for raw in lines:
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            corrupt += 1
            continue
        if isinstance(rec, dict):
            records.append(rec)
        else:
            corrupt += 1
    return ReadResult(records, torn=bool(tail), corrupt_lines=corrupt)


class Journal:
    """One session's journal. Construct with :meth:`create`, :meth:`open` or :meth:`latest`."""

    _locks: dict[Path, threading.Lock] = {}
    _locks_guard = threading.Lock()

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.id = directory.name
        self.path = directory / JOURNAL
        with Journal._locks_guard:
            self._lock = Journal._locks.setdefault(self.path, threading.Lock())

    # --- construction ----------------------------------------------------------------

    @classmethod
    def create(cls, kind: str, board: str | None = None, **meta: Any) -> Journal:
        """Start a new session of ``kind`` (assemble, flash, verify, demo...)."""
        root = paths.sessions_dir()
        for _ in range(100):
            directory = root / _new_id()
            try:
                directory.mkdir(mode=0o700)
                break
            except FileExistsError:
                continue
        else:  # pragma: no cover - 100 collisions of 16 random bits in one second
            raise JournalError(f"could not create a session directory in {root}")
        os.chmod(directory, 0o700)  # mkdir's mode is filtered by the umask; this is not
        paths.private_dir(directory / "files")
        _fsync_dir(root)
        journal = cls(directory)
        journal.append("session", kind=kind, board=board, **meta)
        return journal

    @classmethod
    def open(cls, session_id: str) -> Journal:
        directory = paths.sessions_dir() / session_id
        if not session_id or "/" in session_id or not (directory / JOURNAL).is_file():
            raise SessionNotFound(
                f"no session {session_id!r}", hint="`routerkit sessions` lists them"
            )
        return cls(directory)

    @classmethod
    def all(cls) -> list[Journal]:
        """Every session, oldest first (ids sort by creation time)."""
        root = paths.sessions_dir()
        return [cls(d) for d in sorted(root.iterdir()) if (d / JOURNAL).is_file()]

    @classmethod
    def latest(cls, kind: str | None = None, board: str | None = None) -> Journal | None:
        """The newest session, optionally of one kind and board."""
        for journal in reversed(cls.all()):
            head = journal.header
            if kind is not None and head.get("kind") != kind:
                continue
            if board is not None and head.get("board") != board:
                continue
            return journal
        return None

    # --- reading ---------------------------------------------------------------------

    def read(self) -> ReadResult:
        return read_journal(self.path)

    def events(self, type: str | None = None) -> list[dict[str, Any]]:
        records = self.read().records
        return records if type is None else [r for r in records if r.get("type") == type]

    def last(self, type: str) -> dict[str, Any] | None:
        found = self.events(type)
        return found[-1] if found else None

    @property
    def header(self) -> dict[str, Any]:
        records = self.read().records
        return records[0] if records else {}

    @property
    def board(self) -> str | None:
        return self.header.get("board")

    @property
    def files_dir(self) -> Path:
        return self.dir / "files"

    # --- writing ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[int]:
        with self._lock:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield fd
            finally:
                os.close(fd)  # releases the flock

    def _repair_tail(self, fd: int) -> None:
        """Move a torn last line (from a crash mid-append) to journal.torn, then truncate."""
        size = os.fstat(fd).st_size
        if size == 0:
            return
        if os.pread(fd, 1, size - 1) == b"\n":
            return
        chunk = min(size, 1 << 20)
        tail = os.pread(fd, chunk, size - chunk)
        cut = tail.rfind(b"\n")
        keep = size - chunk + cut + 1 if cut >= 0 else 0
        fragment = os.pread(fd, size - keep, keep)
        with os.fdopen(
            os.open(self.dir / TORN, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab"
        ) as fh:
            fh.write(fragment + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.ftruncate(fd, keep)
        os.fsync(fd)

    def _next_seq(self, fd: int) -> int:
        size = os.fstat(fd).st_size
        data = os.pread(fd, size, 0) if size else b""
        seq = 0
        for raw in data.split(b"\n"):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
            except ValueError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("seq"), int):
                seq = max(seq, rec["seq"])
        return seq + 1

    def append(self, type: str, **data: Any) -> dict[str, Any]:
        """Append one record and fsync it. Returns the record as written."""
        with self._locked() as fd:
            self._repair_tail(fd)
            record: dict[str, Any] = {"seq": self._next_seq(fd), "ts": utcnow(), "type": type}
            record.update(data)
            line = json.dumps(record, separators=(",", ":"), default=str).encode() + b"\n"
            os.write(fd, line)
            os.fsync(fd)
        return record

    def store_bytes(self, name: str, data: bytes) -> Path:
        """Save an attachment under files/ atomically; returns its path."""
        target = self._file_path(name)
        paths.private_dir(target.parent)
        atomic_write(target, data)
        return target

    def store_file(self, src: Path, name: str | None = None) -> Path:
        """Copy ``src`` into files/ atomically (temp file + fsync + rename)."""
        target = self._file_path(name or src.name)
        paths.private_dir(target.parent)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        os.close(fd)
        try:
            shutil.copyfile(src, tmp)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        _fsync_dir(target.parent)
        return target

    def _file_path(self, name: str) -> Path:
        target = (self.files_dir / name).resolve()
        if self.files_dir.resolve() not in target.parents:
            raise JournalError(f"attachment name {name!r} escapes the session directory")
        return target

    def relpath(self, path: Path) -> str:
        """A path inside the session, as stored in records (portable across machines)."""
        return str(Path(path).resolve().relative_to(self.dir.resolve()))

    def __repr__(self) -> str:
        return f"Journal({self.id!r})"
