"""The weekly page: a static, self-contained HTML page (and its JSON) from the tracker and the
channel — this week's builds and their signed notes, the reports they fixed with their
confirmation counts, the most-voted open requests and bugs, the week's shared build logs as a
photo gallery, and an assembly-time leaderboard per board.

Static on purpose: ``index.html`` + ``weekly.json`` can be served from any web host or CDN,
for a community of any size, with no server code. Photos are embedded as small ``data:``
thumbnails (rebuilt from their pixels, so no metadata survives), the page needs nothing from
the network, and every heading is in English and Simplified Chinese.

Inputs are injected: ``reports`` and ``confirmations`` as the Roundup publisher returns them
(:meth:`RoundupPublisher.reports`), ``images`` as ``channels.list_images`` returns them, and
``photos(file_id) -> (name, bytes)`` to fetch a build log's pictures.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from toolkit.i18n import both
from toolkit.record import atomic_write

CLOSED = ("resolved", "done-cbb")
PHOTOS_PER_LOG = 4
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
THUMB_PX = 320
TOP_N = 10


def parse_date(value: Any) -> datetime | None:
    """Roundup's '2026-12-06.12:05:03' or ISO 8601, as an aware UTC datetime."""
    if not value:
        return None
    text = str(value)
    for fmt in ("%Y-%m-%d.%H:%M:%S", "%Y-%m-%d.%H:%M:%S.%f"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            pass
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def top(reports: list[dict[str, Any]], limit: int = TOP_N) -> list[dict[str, Any]]:
    """The most-voted open requests and bugs (ties: the older report first)."""
    open_ = [
        r for r in reports if r.get("kind") in ("bug", "request") and r["status"] not in CLOSED
    ]
    open_.sort(key=lambda r: (-int(r["votes"]), int(r["id"])))
    return open_[:limit]


def verdict_counts(confirmations: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """report id -> {"fixed": n, "still-broken": m}, a tester's latest verdict counting once
    (the tracker's own rule, see toolkit/community/loop_detector.py)."""
    latest: dict[tuple[str, str], str] = {}
    for c in sorted(confirmations, key=lambda c: int(c["id"])):
        latest[(str(c["issue"]), str(c["creator"]))] = str(c["verdict"])
    out: dict[str, dict[str, int]] = {}
    for (issue, _), verdict in latest.items():
        counts = out.setdefault(issue, {"fixed": 0, "still-broken": 0})
        counts[verdict] = counts.get(verdict, 0) + 1
    return out


def leaderboard(reports: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """board -> build logs ranked by total assembly time (fastest first; ties share a rank)."""
    boards: dict[str, list[dict[str, Any]]] = {}
    for r in reports:
        if r.get("kind") != "buildlog" or not r.get("assembly_seconds"):
            continue
        boards.setdefault(str(r.get("board") or "?"), []).append(r)
    out: dict[str, list[dict[str, Any]]] = {}
    for board, logs in sorted(boards.items()):
        logs.sort(key=lambda r: (float(r["assembly_seconds"]), int(r["id"])))
        rows: list[dict[str, Any]] = []
        for i, r in enumerate(logs):
            tie = rows and rows[-1]["seconds"] == float(r["assembly_seconds"])
            rows.append(
                {
                    "rank": rows[-1]["rank"] if tie else i + 1,
                    "report": r["id"],
                    "name": r.get("display_name") or None,
                    "sample": r.get("sample"),
                    "seconds": float(r["assembly_seconds"]),
                    "url": r.get("url"),
                }
            )
        out[board] = rows
    return out


def rank_of(reports: list[dict[str, Any]], report: str) -> tuple[int, int] | None:
    """(rank, entrants) of build log ``report`` on its board's leaderboard, if it is on it."""
    for rows in leaderboard(reports).values():
        for row in rows:
            if row["report"] == str(report):
                return int(row["rank"]), len(rows)
    return None


@dataclass
class Weekly:
    start: datetime
    end: datetime
    data: dict[str, Any]
    html: str = ""

    def write(self, out: Path) -> dict[str, Path]:
        """Write ``index.html`` and ``weekly.json`` into ``out`` (atomically each)."""
        out.mkdir(parents=True, exist_ok=True)
        page, data = out / "index.html", out / "weekly.json"
        atomic_write(data, json.dumps(self.data, indent=1, ensure_ascii=False).encode())
        atomic_write(page, self.html.encode())
        return {"html": page, "json": data}


def build(
    reports: list[dict[str, Any]],
    confirmations: list[dict[str, Any]],
    images: list[Any],
    *,
    photos: Callable[[str], tuple[str, bytes]] | None = None,
    now: datetime | None = None,
    days: int = 7,
) -> Weekly:
    """The week ending at ``now`` (default: now)."""
    end = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    start = end - timedelta(days=days)

    def this_week(value: Any) -> bool:
        when = parse_date(value)
        return when is not None and start <= when <= end

    by_id = {r["id"]: r for r in reports}
    counts = verdict_counts(confirmations)

    builds = []
    claimed: dict[str, str] = {}  # report -> first build of the week that claims to fix it
    for img in sorted(images, key=lambda i: (str(i.build_date or ""), i.version)):
        if img.build_date and not this_week(img.build_date):
            continue
        notes = img.notes or {}
        fixes = []
        for rid in notes.get("fixes") or []:
            claimed.setdefault(str(rid), img.version)
            r = by_id.get(str(rid), {})
            fixes.append(
                {
                    "report": str(rid),
                    "title": r.get("title"),
                    "verified_fixed": counts.get(str(rid), {}).get("fixed", 0),
                    "url": r.get("url"),
                }
            )
        builds.append(
            {
                "version": img.version,
                "board": img.board,
                "channel": img.channel,
                "build_date": img.build_date,
                "summary": notes.get("summary"),
                "summary_zh": notes.get("summary_zh"),
                "changes": notes.get("changes") or [],
                "changes_zh": notes.get("changes_zh") or [],
                "fixes": fixes,
                "touches": list(notes.get("touches") or []),
            }
        )
    builds.reverse()  # newest first

    fixed = []
    recent_confirmed = {str(c["issue"]) for c in confirmations if this_week(c.get("created"))}
    for rid in sorted(set(claimed) | recent_confirmed, key=int):
        if rid not in by_id:
            continue
        r = by_id[rid]
        c = counts.get(rid, {})
        fixed.append(
            {
                "report": rid,
                "title": r["title"],
                "kind": r.get("kind"),
                "status": r.get("status"),
                "claimed_by": claimed.get(rid),
                "fixed_in": r.get("fixed_in"),
                "verified_fixed": c.get("fixed", 0),
                "still_broken": c.get("still-broken", 0),
                "verified": r.get("verified") or "",
                "url": r.get("url"),
            }
        )

    voted = [
        {k: r.get(k) for k in ("id", "title", "kind", "status", "votes", "url")}
        for r in top(reports, TOP_N)
    ]

    shared = []
    for r in sorted(reports, key=lambda r: -int(r["id"])):
        if r.get("kind") != "buildlog" or not this_week(r.get("created")):
            continue
        thumbs: list[dict[str, str]] = []
        recording: dict[str, Any] | None = None
        for fid in r.get("files") or []:
            if photos is None or (len(thumbs) >= PHOTOS_PER_LOG and recording is not None):
                break
            name, blob = photos(fid)
            if name.lower().endswith(".cast") and recording is None:
                recording = _recording(name, blob)
                continue
            if len(thumbs) >= PHOTOS_PER_LOG:
                continue
            if name == "share-card.png" or not name.lower().endswith(PHOTO_SUFFIXES):
                continue
            thumbs.append({"name": name, "src": _thumb(blob)})
        shared.append(
            {
                "report": r["id"],
                "title": r["title"],
                "board": r.get("board"),
                "name": r.get("display_name"),
                "sample": r.get("sample"),
                "assembly_seconds": r.get("assembly_seconds"),
                "url": r.get("url"),
                "photos": thumbs,
                "recording": recording,
            }
        )

    data = {
        "week": {"start": start.isoformat(), "end": end.isoformat()},
        "builds": builds,
        "fixed": fixed,
        "top": voted,
        "shared": shared,
        "leaderboard": leaderboard(reports),
    }
    weekly = Weekly(start, end, data)
    weekly.html = render_html(data)
    return weekly


#: A shared build log's console recording is replayed in the page up to this size.
MAX_RECORDING = 512 << 10


def _recording(name: str, data: bytes) -> dict[str, Any] | None:
    """A build log's (already redacted) console recording, to replay in the page; None if it
    is too large or not an asciicast."""
    from toolkit.errors import RouterkitError
    from toolkit.protocol import asciicast

    if len(data) > MAX_RECORDING:
        return None
    try:
        cast = asciicast.parse(data)
    except (RouterkitError, ValueError):
        return None
    return {"name": name, "cast": cast.to_bytes().decode("utf-8"), "seconds": cast.duration}


def _thumb(data: bytes) -> str:
    from toolkit.guide.photos import clean_image

    small = clean_image(data, longest_side=THUMB_PX, quality=75, output="JPEG", what="thumbnail")
    return "data:image/jpeg;base64," + base64.b64encode(small.data).decode()


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = int(round(seconds))
    return (
        f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
    )


_CSS = """body{font-family:"Noto Sans CJK SC","Noto Sans",system-ui,sans-serif;max-width:64rem;
margin:2rem auto;padding:0 1rem;color:#1d232a}h1{font-size:1.8rem}h2{border-top:2px solid #d0d7de;
padding-top:.6rem;margin-top:2rem}table{border-collapse:collapse;width:100%}
td,th{border:1px solid #d0d7de;padding:.25rem .5rem;text-align:left}.muted{color:#667}
.gallery{display:flex;flex-wrap:wrap;gap:1rem}.log{border:1px solid #d0d7de;padding:.5rem;width:20rem}
.log img{width:9.5rem;height:auto;margin:.1rem}.ok{color:#08660b}.bad{color:#b3261e}"""


def render_html(data: dict[str, Any]) -> str:
    """The page (both languages; no external resource)."""
    e = html.escape
    week = data["week"]
    start, end = week["start"][:10], week["end"][:10]
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>{e(both('routerkit weekly'))} {e(end)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(both('routerkit weekly'))}</h1>",
        f'<p class="muted">{e(both("Week of {start} to {end}", start=start, end=end))}</p>',
        f'<h2 id="builds">{e(both("Builds this week"))}</h2>',
    ]
    if not data["builds"]:
        out.append(f"<p>{e(both('No builds this week.'))}</p>")
    for b in data["builds"]:
        out.append(
            f"<h3>{e(b['version'])} <small class='muted'>{e(b['board'])} · {e(b['channel'])}"
            f" · {e(str(b['build_date'] or ''))}</small></h3>"
        )
        for key in ("summary", "summary_zh"):
            if b.get(key):
                lang = ' lang="zh-CN"' if key.endswith("_zh") else ""
                out.append(f"<p{lang}>{e(b[key])}</p>")
        lines = [*b["changes"], *b["changes_zh"]]
        if lines:
            out += ["<ul>", *[f"<li>{e(line)}</li>" for line in lines], "</ul>"]
        for f in b["fixes"]:
            title = e(f.get("title") or "")
            out.append(
                f'<p>{e(both("fixes"))} <a href="{e(f.get("url") or "#")}">#{e(f["report"])}</a> '
                f"{title} — {e(both('verified by {n}', n=f['verified_fixed']))}</p>"
            )
    out.append(f'<h2 id="fixed">{e(both("Fixed reports"))}</h2>')
    if not data["fixed"]:
        out.append(f"<p>{e(both('No fixed reports this week.'))}</p>")
    else:
        out.append(
            f"<table><tr><th>{e(both('report'))}</th><th>{e(both('title'))}</th>"
            f"<th>{e(both('build'))}</th><th>{e(both('verified'))}</th><th>{e(both('status'))}</th></tr>"
        )
        for f in data["fixed"]:
            cls = "bad" if f["still_broken"] else "ok"
            out.append(
                f'<tr><td><a href="{e(f["url"] or "#")}">#{e(f["report"])}</a></td>'
                f"<td>{e(f['title'])}</td><td>{e(str(f['fixed_in'] or f['claimed_by'] or ''))}</td>"
                f'<td class="{cls}">{e(both("verified by {n}", n=f["verified_fixed"]))}'
                + (f" · {e(f['verified'])}" if f["verified"] else "")
                + f"</td><td>{e(str(f['status']))}</td></tr>"
            )
        out.append("</table>")
    out.append(f'<h2 id="top">{e(both("Most-voted requests and bugs"))}</h2>')
    if not data["top"]:
        out.append(f"<p>{e(both('No open requests or bugs.'))}</p>")
    else:
        out.append(
            f"<table><tr><th>{e(both('votes'))}</th><th>{e(both('kind'))}</th>"
            f"<th>{e(both('report'))}</th><th>{e(both('title'))}</th></tr>"
        )
        for r in data["top"]:
            out.append(
                f"<tr><td>{int(r['votes'])}</td><td>{e(both(str(r['kind'])))}</td>"
                f'<td><a href="{e(r["url"] or "#")}">#{e(r["id"])}</a></td><td>{e(r["title"])}</td></tr>'
            )
        out.append("</table>")
    out.append(f'<h2 id="shared">{e(both("Shared builds"))}</h2>')
    if not data["shared"]:
        out.append(f"<p>{e(both('No build logs shared this week.'))}</p>")
    out.append('<div class="gallery">')
    for s in data["shared"]:
        who = s.get("name") or both("anonymous")
        out.append(
            f'<div class="log"><a href="{e(s["url"] or "#")}"><b>{e(who)}</b></a> '
            f"<span class='muted'>{e(str(s['board']))} · {e(duration(s.get('assembly_seconds')))}</span><br>"
        )
        for p in s["photos"]:
            out.append(f'<img src="{p["src"]}" alt="{e(p["name"])}">')
        if s.get("recording"):
            from toolkit.community import castplayer
            from toolkit.protocol import asciicast

            cast = asciicast.parse(s["recording"]["cast"].encode("utf-8"))
            out.append(castplayer.embed(cast, both("console of this build")))
        out.append("</div>")
    out.append("</div>")
    if any(s.get("recording") for s in data["shared"]):
        from toolkit.community import castplayer

        out.append(f"<style>{castplayer.CSS}</style>{castplayer.script()}")
    out.append(f'<h2 id="leaderboard">{e(both("Assembly-time leaderboard"))}</h2>')
    for board, rows in data["leaderboard"].items():
        out.append(
            f"<h3>{e(both('board'))}: {e(board)}</h3><table><tr><th>{e(both('rank'))}</th>"
            f"<th>{e(both('tester'))}</th><th>{e(both('time'))}</th></tr>"
        )
        for row in rows:
            who = row["name"] or both("anonymous")
            out.append(
                f'<tr><td>{row["rank"]}</td><td><a href="{e(row["url"] or "#")}">{e(who)}</a></td>'
                f"<td>{e(duration(row['seconds']))}</td></tr>"
            )
        out.append("</table>")
    out.append(
        f'<p class="muted"><small>{e(both("Made with routerkit from the tracker and the signed channel."))}</small></p>'
    )
    out.append("</body></html>")
    return "\n".join(out) + "\n"
