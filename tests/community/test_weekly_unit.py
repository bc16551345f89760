"""The weekly page's model and the release-notes format, on fakes (no tracker, no channel)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from toolkit.community.weekly import build, leaderboard, rank_of, top, verdict_counts
from toolkit.errors import ConfigError
from toolkit.firmware.notes import reports_named, validate

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def report(rid: int, **kw: Any) -> dict[str, Any]:
    base = {
        "id": str(rid),
        "url": f"http://t/issue{rid}",
        "title": f"report {rid}",
        "kind": "bug",
        "status": "unread",
        "votes": 0,
        "verified": "",
        "fixed_in": None,
        "board": "es-virt",
        "created": "2026-12-05.10:00:00",
        "files": [],
        "display_name": None,
        "sample": None,
        "assembly_seconds": None,
    }
    return {**base, **kw}


@dataclass
class Image:
    version: str
    board: str = "es-virt"
    channel: str = "nightly"
    build_date: str | None = "2026-12-05T08:00:00Z"
    notes: dict[str, Any] | None = None


def test_top_lists_open_reports_by_votes_then_age() -> None:
    reports = [
        report(1, votes=2),
        report(2, votes=5, status="resolved"),
        report(3, votes=2, kind="request"),
        report(4, votes=3),
        report(5, votes=9, kind="buildlog"),
    ]
    assert [r["id"] for r in top(reports)] == ["4", "1", "3"]


def test_a_testers_latest_verdict_counts_once() -> None:
    confirmations = [
        {"id": "1", "issue": "7", "creator": "3", "verdict": "fixed"},
        {"id": "2", "issue": "7", "creator": "4", "verdict": "fixed"},
        {"id": "3", "issue": "7", "creator": "3", "verdict": "still-broken"},
    ]
    assert verdict_counts(confirmations) == {"7": {"fixed": 1, "still-broken": 1}}


def test_leaderboard_ranks_per_board_fastest_first_with_ties() -> None:
    reports = [
        report(1, kind="buildlog", assembly_seconds=600.0, display_name="Ana"),
        report(2, kind="buildlog", assembly_seconds=480.0),
        report(3, kind="buildlog", assembly_seconds=600.0),
        report(4, kind="buildlog", assembly_seconds=300.0, board="es-mini"),
        report(5, kind="buildlog", assembly_seconds=None),
    ]
    board = leaderboard(reports)
    assert [(r["report"], r["rank"]) for r in board["es-virt"]] == [("2", 1), ("1", 2), ("3", 2)]
    assert board["es-virt"][1]["name"] == "Ana" and board["es-virt"][0]["name"] is None
    assert rank_of(reports, "3") == (2, 3) and rank_of(reports, "4") == (1, 1)
    assert rank_of(reports, "5") is None


def test_the_week_keeps_its_builds_fixes_and_galleries_only() -> None:
    reports = [
        report(7, title="Fan loud", status="resolved", fixed_in="1.2.0"),
        report(8, kind="buildlog", files=["1", "2", "3"], display_name="Ming 小明"),
        report(9, kind="buildlog", created="2026-11-01.10:00:00"),  # shared long ago
    ]
    images = [
        Image("1.2.0", notes={"summary": "Fan fixed", "fixes": ["7"]}),
        Image("1.1.0", build_date="2026-10-01T00:00:00Z", notes={"fixes": ["9"]}),
    ]
    confirmations = [
        {
            "id": "1",
            "issue": "7",
            "creator": "3",
            "verdict": "fixed",
            "created": "2026-12-06.09:00:00",
        }
    ]
    files = {
        "1": ("step-1-1.jpg", _jpeg()),
        "2": ("buildlog.html", b""),
        "3": ("share-card.png", b"x"),
    }
    weekly = build(reports, confirmations, images, photos=files.__getitem__, now=NOW)
    data = weekly.data
    assert [b["version"] for b in data["builds"]] == ["1.2.0"]
    assert data["builds"][0]["fixes"][0] == {
        "report": "7",
        "title": "Fan loud",
        "verified_fixed": 1,
        "url": "http://t/issue7",
    }
    assert [f["report"] for f in data["fixed"]] == ["7"]
    assert [s["report"] for s in data["shared"]] == ["8"]
    assert [p["name"] for p in data["shared"][0]["photos"]] == ["step-1-1.jpg"]
    assert data["shared"][0]["photos"][0]["src"].startswith("data:image/jpeg;base64,")
    assert "Ming 小明" in weekly.html and "本周构建" in weekly.html


def _jpeg() -> bytes:
    from tests.community.fakes import jpeg

    return jpeg(200, 150, seed=3)


def test_release_notes_are_checked_and_normalised() -> None:
    notes = validate({"summary": " Fan ", "fixes": ["#12", 12, "15"], "touches": 20})
    assert notes["summary"] == "Fan" and notes["fixes"] == ["12", "15"]
    assert notes["touches"] == ["20"] and notes["changes"] == []
    assert reports_named(notes) == {"20": "touches", "12": "fixes", "15": "fixes"}
    for bad, says in [
        ({"fixes": ["twelve"]}, "not a report number"),
        ({"fixes": [True]}, "not a report number"),
        ({"summary": "x", "bogus": 1}, "unknown key"),
        ({"changes": "one line"}, "list of lines"),
        ({}, "say nothing"),
        (["fixes"], "mapping"),
    ]:
        with pytest.raises(ConfigError, match=says):
            validate(bad)
