"""Turn a session journal into a build log: forum Markdown and a self-contained HTML page.

Reads what the other journeys record and tolerates anything missing:

- assembly (``step_started`` / ``step_finished`` / ``step_skipped`` / ``photo`` / ``check``);
- ``flash`` and ``verify`` results (ok, version_before/after, slot, path, bytes, seconds);
- console text from ``last_output`` / ``console_tail`` fields and ``files/*console*`` files.

Flash and verify sessions of the same board recorded *after* the assembly session are folded
in, so "assemble → flash → verify → share" gives one build log.

Every human text goes through the :class:`~toolkit.community.redact.Redactor` before it is
rendered; every photo is rebuilt from its pixels again by
:func:`toolkit.guide.photos.clean_image` (a photo dropped into the session by hand, or a
pipeline bug, must not leak GPS or a serial number in EXIF). The HTML page embeds
photo thumbnails as ``data:`` URIs (it opens offline, alone) and links each to the full photo
by its attachment name.
"""

from __future__ import annotations

import base64
import hashlib
import html
import os
import re
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from toolkit.community.redact import Redactor
from toolkit.errors import PhotoError
from toolkit.i18n import current, t
from toolkit.record import Journal

CONSOLE_LINES = 30


@dataclass
class Blob:
    """An attachment: name (unique in the post), bytes, MIME type."""

    name: str
    data: bytes
    mime: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class PhotoRef:
    name: str
    step: str
    width: int | None
    height: int | None
    original_bytes: int | None
    thumb: str = ""  # data: URI


@dataclass
class StepLog:
    id: str
    title: str
    status: str = "started"  # started | done | failed | skipped
    seconds: float | None = None
    photos: list[PhotoRef] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""


@dataclass
class BuildLog:
    session: str
    board: str
    title: str
    started: str
    steps: list[StepLog]
    parts: list[str]
    flashes: list[dict[str, Any]]
    verifies: list[dict[str, Any]]
    console: str
    attachments: list[Blob]
    original_bytes: int  # sum of the photo originals, for the "bytes uploaded" figure
    markdown: str = ""
    html: str = ""
    redactions: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: the tester's chosen name on the log; None shows "anonymous" (the default)
    display_name: str | None = None
    #: the sample's number as the tester knows it (e.g. "ES-042"), if given
    sample: str | None = None
    #: redacted console recordings (title, asciicast), replayed in the HTML page
    recordings: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def assembly_seconds(self) -> float:
        """Total time of the assembly steps (the leaderboard's figure)."""
        return sum(s.seconds or 0 for s in self.steps)

    @property
    def byline(self) -> str:
        who = self.display_name or t("anonymous")
        sample = " · " + t("sample {sample}", sample=self.sample) if self.sample else ""
        return t("by {who}", who=who) + sample


def _first(rec: dict[str, Any], *names: str) -> Any:
    for n in names:
        if rec.get(n) not in (None, ""):
            return rec[n]
    return None


def _ts(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def related_sessions(journal: Journal) -> list[Journal]:
    """The session, plus later flash/verify sessions of the same board (up to the next
    assembly session)."""
    out = [journal]
    board = journal.board
    seen = False
    # ids sort by the second only; the header's millisecond timestamp orders sessions
    # started within the same second (a scripted assemble → flash)
    for other in sorted(Journal.all(), key=lambda j: (str(j.header.get("ts", "")), j.id)):
        if other.id == journal.id:
            seen = True
            continue
        if not seen or other.board != board:
            continue
        kind = other.header.get("kind")
        if kind == "assemble":
            break
        if kind in ("flash", "verify"):
            out.append(other)
    return out


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:40] or "x"


def compose(
    journal: Journal,
    redactor: Redactor,
    *,
    related: bool = True,
    thumb_px: int = 480,
    max_photo_px: int | None = None,
    display_name: str | None = None,
    sample: str | None = None,
) -> BuildLog:
    """Build the (redacted) build log of ``journal``, signed ``display_name`` (anonymous when
    None) for ``sample``."""
    sessions = related_sessions(journal) if related else [journal]
    head = journal.header
    board = str(head.get("board") or "unknown board")
    steps: dict[str, StepLog] = {}
    starts: dict[str, datetime] = {}
    flashes: list[dict[str, Any]] = []
    verifies: list[dict[str, Any]] = []
    console: list[str] = []
    blobs: list[Blob] = []
    warnings: list[str] = []
    original_total = 0

    def step_of(rec: dict[str, Any]) -> StepLog:
        sid = str(_first(rec, "step", "step_id", "id") or "?")
        if sid not in steps:
            steps[sid] = StepLog(sid, str(_first(rec, "title", "name") or sid))
        elif rec.get("title"):
            steps[sid].title = str(rec["title"])
        return steps[sid]

    events = {sess.id: list(sess.events()) for sess in sessions}
    cleaning = _clean_photos(sessions, events, thumb_px, max_photo_px)
    for sess in sessions:
        for rec in events[sess.id]:
            kind = rec.get("type")
            if kind == "step_started":
                st = step_of(rec)
                ts = _ts(rec.get("ts"))
                if ts:
                    starts[st.id] = ts
            elif kind == "step_finished":
                st = step_of(rec)
                st.status = "done" if rec.get("ok", True) else "failed"
                secs = _first(rec, "seconds", "duration")
                if secs is None and st.id in starts and _ts(rec.get("ts")):
                    secs = (_ts(rec["ts"]) - starts[st.id]).total_seconds()  # type: ignore[operator]
                st.seconds = float(secs) if secs is not None else None
                if rec.get("error"):
                    st.note = str(rec["error"])
            elif kind == "step_skipped":
                st = step_of(rec)
                st.status, st.note = "skipped", str(rec.get("reason") or "")
            elif kind == "check":
                step_of(rec).checks.append(
                    {
                        "name": str(_first(rec, "name", "check", "id") or "check"),
                        "ok": rec.get("ok"),
                        "detail": str(rec.get("detail") or rec.get("value") or ""),
                    }
                )
            elif kind == "photo":
                st = step_of(rec)
                path = _photo_path(sess, rec)
                job = cleaning.get(path) if path is not None else None
                ref, blob, orig = _photo(sess, rec, st, len(st.photos) + 1, warnings, job)
                if ref is not None and blob is not None:
                    st.photos.append(ref)
                    blobs.append(blob)
                    original_total += orig
            elif kind == "flash":
                flashes.append(rec)
            elif kind == "verify":
                verifies.append(rec)
            for key in ("last_output", "console_tail"):
                if isinstance(rec.get(key), str):
                    console.extend(rec[key].splitlines())
        for f in sorted(sess.files_dir.glob("*console*")) if sess.files_dir.is_dir() else []:
            if f.suffix == ".cast":  # the timed recording of the same log (replayed, not listed)
                continue
            console.extend(f.read_text(errors="replace").splitlines()[-CONSOLE_LINES:])

    parts = _parts(board)
    log = BuildLog(
        session=journal.id,
        board=board,
        title=t("Build log: {board} ({session})", board=board, session=journal.id),
        started=str(head.get("ts", "")),
        steps=list(steps.values()),
        parts=parts,
        flashes=flashes,
        verifies=verifies,
        console="\n".join(console[-CONSOLE_LINES:]),
        attachments=blobs,
        original_bytes=original_total,
        warnings=warnings,
        display_name=(display_name or "").strip()[:60] or None,
        sample=(sample or head.get("sample") or None),
    )
    _redact_model(log, redactor)
    log.recordings = _recordings(sessions, redactor)
    # ...and attached as files too, so the weekly page can replay them beside the photos
    log.attachments += [
        Blob(f"console-{i}.cast", cast.to_bytes(), "application/x-asciicast")
        for i, (_title, cast) in enumerate(log.recordings, 1)
    ]
    log.markdown = render_markdown(log)
    log.html = render_html(log)
    log.redactions = dict(redactor.counts)
    return log


def _recordings(sessions: list[Journal], redactor: Redactor) -> list[tuple[str, Any]]:
    """The sessions' console recordings, redacted (after the rest: identifiers learned there
    are hashed here too)."""
    from toolkit.community.recordings import redacted
    from toolkit.protocol import asciicast

    found = []
    for sess in sessions:
        for path in redacted(sess, redactor):
            kind = sess.header.get("kind") or "session"
            found.append((f"{kind} console ({sess.id})", asciicast.read(path)))
    return found


def _photo_path(sess: Journal, rec: dict[str, Any]) -> Path | None:
    rel = _first(rec, "path", "processed", "processed_path", "file")
    if not rel:
        return None
    return Path(rel) if Path(rel).is_absolute() else sess.dir / rel


def _clean_one(path: Path, what: str, max_px: int | None, thumb_px: int) -> tuple[int, Any, str]:
    """(bytes of the file, its cleaned picture, its thumbnail); OSError when it is missing."""
    from toolkit.guide.photos import clean_image

    raw = path.read_bytes()
    clean = clean_image(raw, longest_side=max_px, what=what)
    return len(raw), clean, _thumbnail(clean.data, thumb_px)


def _clean_photos(
    sessions: list[Journal],
    events: dict[str, list[dict[str, Any]]],
    thumb_px: int,
    max_px: int | None,
) -> dict[Path, Future[tuple[int, Any, str]]]:
    """Start cleaning every photo of the sessions at once, on all cores (Pillow releases the
    GIL while it decodes, resizes and encodes): a 40-photo log is re-encoded in about half the
    time on two cores. The build log is still assembled in journal order from the results."""
    pool = ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1)))
    jobs: dict[Path, Future[tuple[int, Any, str]]] = {}
    try:
        for sess in sessions:
            for rec in events[sess.id]:
                path = _photo_path(sess, rec) if rec.get("type") == "photo" else None
                if path is not None and path not in jobs:
                    rel = _first(rec, "path", "processed", "processed_path", "file")
                    jobs[path] = pool.submit(_clean_one, path, f"photo {rel}", max_px, thumb_px)
    finally:
        pool.shutdown(wait=False)  # the jobs run on; compose() waits for each in turn
    return jobs


def _photo(
    sess: Journal,
    rec: dict[str, Any],
    st: StepLog,
    n: int,
    warnings: list[str],
    cleaning: Future[tuple[int, Any, str]] | None,
) -> tuple[PhotoRef | None, Blob | None, int]:
    rel = _first(rec, "path", "processed", "processed_path", "file")
    if not rel or cleaning is None:
        warnings.append(f"a photo of step {st.id} has no processed file recorded; skipped")
        return None, None, 0
    try:
        raw_bytes, clean, thumb = cleaning.result()
    except OSError:
        warnings.append(f"photo {rel} of step {st.id} is missing; skipped")
        return None, None, 0
    except PhotoError as exc:
        warnings.append(f"{exc}; skipped")
        return None, None, 0
    data = clean.data
    name = f"step-{_safe_name(st.id)}-{n}{clean.suffix}"
    orig_path = _first(rec, "original", "original_path")
    orig_bytes = _first(rec, "original_bytes")
    if orig_bytes is None and orig_path and Path(orig_path).is_file():
        orig_bytes = Path(orig_path).stat().st_size
    ref = PhotoRef(
        name, st.id, rec.get("width"), rec.get("height"), int(orig_bytes) if orig_bytes else None
    )
    ref.thumb = thumb
    return ref, Blob(name, data, clean.mime), int(orig_bytes or raw_bytes)


def _thumbnail(data: bytes, px: int) -> str:
    from toolkit.guide.photos import clean_image

    thumb = clean_image(data, longest_side=px, quality=75, output="JPEG", what="thumbnail")
    return "data:image/jpeg;base64," + base64.b64encode(thumb.data).decode()


def _parts(board: str) -> list[str]:
    try:
        from toolkit.guide.loader import load_board_guide

        guide = load_board_guide(board)
        return [f"{p.quantity} × {p.name}" for p in guide.parts]
    except Exception:  # noqa: BLE001 - the parts list is a nicety; a build log without it is fine
        return []


def _redact_model(log: BuildLog, r: Redactor) -> None:
    import json

    r.learn(
        log.console,
        json.dumps([log.flashes, log.verifies], default=str),
        *(f"{st.title}\n{st.note}\n{st.checks}" for st in log.steps),
    )
    for st in log.steps:
        st.title, st.note = r.text(st.title), r.text(st.note)
        for c in st.checks:
            c["name"], c["detail"] = r.text(c["name"]), r.text(c["detail"])
    log.console = r.text(log.console)
    log.flashes = [_redact_dict(f, r) for f in log.flashes]
    log.verifies = [_redact_dict(v, r) for v in log.verifies]
    log.title = r.text(log.title)
    if log.display_name:
        log.display_name = r.text(log.display_name)
    if log.sample:
        log.sample = r.text(str(log.sample))


def _redact_dict(d: Any, r: Redactor) -> Any:
    if isinstance(d, dict):
        return {k: _redact_dict(v, r) for k, v in d.items()}
    if isinstance(d, list):
        return [_redact_dict(v, r) for v in d]
    return r.text(d) if isinstance(d, str) else d


# --- rendering --------------------------------------------------------------------------------


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = int(round(seconds))
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{seconds:.1f} s"


_MARK = {"done": "✓", "failed": "✗", "skipped": "skipped", "started": "unfinished"}


def firmware_lines(log: BuildLog) -> list[str]:
    out = []
    for f in log.flashes:
        ok = (
            "ok"
            if f.get("ok")
            else f"FAILED ({f.get('error_class') or ''} {f.get('error') or ''})".strip()
        )
        vers = f"{f.get('version_before') or '?'} → {f.get('version_after') or '?'}"
        size = (
            f"{int(f['bytes']) / 1048576:.1f} MiB"
            if isinstance(f.get("bytes"), int | float)
            else "?"
        )
        out.append(
            f"flash: {ok}, {vers}, via {f.get('via') or '?'}/{f.get('path') or '?'}, slot {f.get('slot') or '?'}, "
            f"{size} in {_dur(f.get('seconds'))}"
        )
    for v in log.verifies:
        ok = "ok" if v.get("ok") else "FAILED"
        ver = v.get("version_after") or v.get("version") or "?"
        out.append(
            f"verify: {ok}, version {ver}, slot {v.get('slot') or '?'}, {_dur(v.get('seconds'))}"
        )
    return out


def render_markdown(log: BuildLog) -> str:
    total = sum(s.seconds or 0 for s in log.steps)
    md = [
        f"# {log.title}",
        "",
        t(
            "Board {board} · started {started} · assembly time {time}",
            board=f"**{log.board}**",
            started=log.started,
            time=_dur(total),
        ),
        "",
        f"_{log.byline}_",
        "",
    ]
    if log.parts:
        md += [f"## {t('Parts')}", "", *[f"- {p}" for p in log.parts], ""]
    md += [f"## {t('Steps')}", ""]
    if not log.steps:
        md += [f"_{t('No assembly steps were recorded in this session.')}_", ""]
    for i, st in enumerate(log.steps, 1):
        md.append(f"### {i}. {st.title} — {_dur(st.seconds)} {_MARK.get(st.status, st.status)}")
        md.append("")
        if st.note:
            md += [f"> {st.note}", ""]
        for p in st.photos:
            md.append(f"![{st.title}, photo]({p.name})")
        for c in st.checks:
            md.append(
                f"- check `{c['name']}`: {'ok' if c['ok'] else 'failed' if c['ok'] is False else '—'} {c['detail']}".rstrip()
            )
        md.append("")
    fw = firmware_lines(log)
    if fw:
        md += [f"## {t('Firmware')}", "", *[f"- {line}" for line in fw], ""]
    if log.console.strip():
        md += [
            f"## {t('Console (last lines)')}",
            "",
            "```text",
            log.console.replace("```", "ʼʼʼ"),
            "```",
            "",
        ]
    md.append(f"_{t('Shared with routerkit; identifiers are salted hashes, secrets removed.')}_")
    return "\n".join(md) + "\n"


_CSS = """body{font-family:system-ui,"Noto Sans CJK SC",sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{font-size:1.6rem}section.step{border-top:1px solid #ccc;padding:.5rem 0}
.photos{display:flex;flex-wrap:wrap;gap:.5rem}.photos img{max-width:240px;height:auto;border:1px solid #999}
.ok{color:#070}.failed{color:#b00}.skipped{color:#777}pre{background:#f4f4f4;padding:.5rem;overflow:auto}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:left}"""


def render_html(log: BuildLog) -> str:
    e = html.escape
    total = sum(s.seconds or 0 for s in log.steps)
    out = [
        "<!DOCTYPE html>",
        f'<html lang="{current()}"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>{e(log.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(log.title)}</h1>",
        "<p>"
        + t(
            "Board {board} · started {started} · assembly time {time}",
            board=f"<b>{e(log.board)}</b>",
            started=e(log.started),
            time=e(_dur(total)),
        )
        + "</p>",
        f'<p class="byline">{e(log.byline)}</p>',
    ]
    if log.parts:
        out += [f"<h2>{e(t('Parts'))}</h2><ul>", *[f"<li>{e(p)}</li>" for p in log.parts], "</ul>"]
    out.append(
        f"<h2>{e(t('Steps'))}</h2><table><tr><th>#</th><th>{e(t('step'))}</th>"
        f"<th>{e(t('time'))}</th><th>{e(t('result'))}</th></tr>"
    )
    for i, st in enumerate(log.steps, 1):
        out.append(
            f'<tr><td>{i}</td><td><a href="#s{i}">{e(st.title)}</a></td><td>{e(_dur(st.seconds))}</td>'
            f'<td class="{e(st.status)}">{e(_MARK.get(st.status, st.status))}</td></tr>'
        )
    out.append("</table>")
    for i, st in enumerate(log.steps, 1):
        out.append(f'<section class="step" id="s{i}"><h3>{i}. {e(st.title)}</h3>')
        if st.note:
            out.append(f"<p><i>{e(st.note)}</i></p>")
        out.append('<div class="photos">')
        for p in st.photos:
            dims = f"{p.width}×{p.height}" if p.width and p.height else ""
            out.append(
                f'<a href="{e(p.name)}"><img src="{p.thumb}" alt="{e(st.title)} ({e(p.name)})" '
                f'title="{e(p.name)} {e(dims)}"></a>'
            )
        out.append("</div>")
        if st.checks:
            out.append("<ul>")
            for c in st.checks:
                cls = "ok" if c["ok"] else "failed" if c["ok"] is False else ""
                out.append(
                    f'<li class="{cls}">check <code>{e(c["name"])}</code>: {e(str(c["detail"]))}</li>'
                )
            out.append("</ul>")
        out.append("</section>")
    fw = firmware_lines(log)
    if fw:
        out += [
            f"<h2>{e(t('Firmware'))}</h2><ul>",
            *[f"<li>{e(line)}</li>" for line in fw],
            "</ul>",
        ]
    if log.console.strip():
        out.append(f"<h2>{e(t('Console (last lines)'))}</h2><pre>{e(log.console)}</pre>")
    if log.recordings:
        from toolkit.community import castplayer

        out.append(f"<h2>Console recordings</h2><style>{castplayer.CSS}</style>")
        out += [castplayer.embed(cast, title) for title, cast in log.recordings]
        out.append(castplayer.script())
    footer = t("Shared with routerkit; identifiers are salted hashes, secrets removed.")
    out.append(f"<p><small>{e(footer)}</small></p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
