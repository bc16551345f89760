"""Recorded consoles of a session, redacted before anyone sees them outside this machine.

Every :class:`~toolkit.protocol.console.Console` with a transcript in a session also records an
asciicast v2 file (``files/console.cast``, raw, 0600 like ``console.log``). What is shown,
attached or uploaded is its **redacted** copy, ``files/<name>.redacted.cast``, made by
:func:`redacted` with the same :class:`~toolkit.community.redact.Redactor` as every other
upload and noted in the journal (``recording`` records).

Redacting a timed recording: secrets may be split across two reads (a passphrase arriving in
two chunks), so the whole output is redacted as one text and the result is laid back on the
original timing line by line. Lines the redactor left alone keep their exact events (typing
speed, a slow boot); a line it changed is replayed as one event at the moment its last byte
arrived.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from toolkit.community.redact import Redactor
from toolkit.protocol import asciicast
from toolkit.protocol.asciicast import Cast, Event
from toolkit.record import Journal

REDACTED_SUFFIX = ".redacted.cast"


def _lines(text: str) -> list[str]:
    """Split after each ``\\n``, keeping it (the last line may have none)."""
    parts = text.split("\n")
    out = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        out.append(parts[-1])
    return out


def _plain(line: str) -> str:
    """``line`` with a console line end (``\\r\\n``, ``\\r\\r\\n``) made a plain ``\\n``."""
    if line.endswith("\n"):
        return line.rstrip("\r\n") + "\n"
    return line


def redact_cast(cast: Cast, redactor: Redactor) -> Cast:
    """The recording with its output (and marker labels) redacted, timing kept per line."""
    outputs = [e for e in cast.events if e.code == "o"]
    others = [Event(e.time, e.code, redactor.text(e.data)) for e in cast.events if e.code != "o"]
    # each original line as its fragments (time, text)
    lines: list[list[tuple[float, str]]] = [[]]
    for event in outputs:
        pieces = event.data.split("\n")
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            text = piece if last else piece + "\n"
            if text:
                lines[-1].append((event.time, text))
            if not last:
                lines.append([])
    if not lines[-1]:
        lines.pop()
    before = ["".join(text for _, text in line) for line in lines]
    # The redactor's line rules expect "\n" line ends; a console sends "\r\n" (a CR before the
    # end hides "option key '...'" from them). Redact the text with plain "\n" ends, compare
    # line by line, and give changed lines back their console line ends.
    plain = [_plain(line) for line in before]
    after = _lines(redactor.text("".join(plain)))
    events: list[Event] = []
    if plain == after:
        events = [Event(t, "o", text) for line in lines for t, text in line]
    else:
        matcher = difflib.SequenceMatcher(None, plain, after, autojunk=False)
        previous = 0.0
        for op, i1, i2, j1, j2 in matcher.get_opcodes():
            if op == "equal":
                for line in lines[i1:i2]:
                    events += [Event(t, "o", text) for t, text in line]
                    previous = line[-1][0]
                continue
            block = [frag for line in lines[i1:i2] for frag in line]
            when = block[-1][0] if block else previous
            crlf = any(line.endswith("\r\n") for line in before[i1:i2])
            for text in after[j1:j2]:
                if crlf and text.endswith("\n"):
                    text = text[:-1] + "\r\n"
                events.append(Event(when, "o", text))
            previous = when
    merged = sorted([*events, *others], key=lambda e: e.time)  # stable: output order kept
    header = {k: v for k, v in cast.header.items() if k != "env"}
    if isinstance(header.get("title"), str):
        header["title"] = redactor.text(header["title"])
    header["redacted"] = True
    return Cast(header, merged)


def raw_recordings(journal: Journal) -> list[Path]:
    """The session's raw recordings (``files/*.cast``), oldest first."""
    if not journal.files_dir.is_dir():
        return []
    found = [p for p in journal.files_dir.glob("*.cast") if not p.name.endswith(REDACTED_SUFFIX)]
    return sorted(found, key=lambda p: (p.stat().st_mtime, p.name))


def redacted_name(raw: Path) -> str:
    return raw.name[: -len(".cast")] + REDACTED_SUFFIX


def redacted(
    journal: Journal, redactor: Redactor | None = None, *, record: bool = True
) -> list[Path]:
    """Redacted copies of the session's recordings (made or refreshed now), oldest first.

    Each new or changed copy is noted in the journal (``recording``: file, source, duration,
    events, what the redactor removed)."""
    redactor = redactor or Redactor.for_installation()
    made = []
    for raw in raw_recordings(journal):
        try:
            cast = asciicast.read(raw)
        except (OSError, ValueError):
            continue  # not a recording (or unreadable): never shown unredacted
        before = dict(redactor.counts)
        clean = redact_cast(cast, redactor)
        data = clean.to_bytes()
        target = journal.files_dir / redacted_name(raw)
        try:
            same = target.read_bytes() == data
        except OSError:
            same = False
        if not same:
            journal.store_bytes(target.name, data)
            if record:
                removed = {
                    k: v - before.get(k, 0)
                    for k, v in redactor.counts.items()
                    if v > before.get(k, 0)
                }
                journal.append(
                    "recording",
                    file=journal.relpath(target),
                    source=journal.relpath(raw),
                    duration=round(clean.duration, 3),
                    events=len(clean.events),
                    redactions=removed,
                )
        made.append(target)
    return made


def summary(path: Path) -> dict[str, Any]:
    """Name, duration and size of one recording (for listings)."""
    cast = asciicast.read(path)
    return {
        "file": path.name,
        "duration": round(cast.duration, 3),
        "events": len(cast.events),
        "bytes": path.stat().st_size,
        "title": cast.header.get("title"),
    }
