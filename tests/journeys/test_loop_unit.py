"""What a flashed build claims to fix, from channel metadata in the cache (no network)."""

from __future__ import annotations

import json
from pathlib import Path

from toolkit.community.outbox import Item, Outbox
from toolkit.journeys import loop


def _channel(cache: Path, name: str, version: str, sha: str, fixes: list[str]) -> None:
    meta = cache / name / "metadata" / "nightly.json"
    meta.parent.mkdir(parents=True)
    target = {
        "length": 1,
        "hashes": {"sha256": sha},
        "custom": {
            "routerkit": {"version": version, "board": "es-virt", "notes": {"fixes": fixes}}
        },
    }
    meta.write_text(json.dumps({"signed": {"targets": {f"nightly/es-virt-{version}.img": target}}}))


def test_the_flashed_bytes_pick_their_own_notes(tmp_path: Path) -> None:
    cache = tmp_path / "channels"
    _channel(cache, "a", "1.2.0", "aa" * 32, ["7"])
    _channel(cache, "b", "1.2.0", "bb" * 32, ["8"])
    mine = {"7": ["voted"], "8": ["filed"], "9": ["me-too"]}
    assert loop.after_flash("1.2.0", "es-virt", mine, cache=cache, sha256="BB" * 32) == [
        {"id": "8", "how": ["filed"]}
    ]
    # bytes no channel listed (a local build of that version): every listing of the version
    both = loop.after_flash("1.2.0", "es-virt", mine, cache=cache, sha256="cc" * 32)
    assert [f["id"] for f in both] == ["7", "8"]
    assert loop.after_flash("1.3.0", "es-virt", mine, cache=cache) == []
    assert loop.after_flash("1.2.0", "other-board", mine, cache=cache) == []


def test_my_reports_come_from_the_outbox(tmp_path: Path) -> None:
    box = Outbox(tmp_path)
    items = [
        Item("k1", "roundup", "bug", "t", {"body": ""}, remote={"id": "4", "url": "u"}),
        Item("k2", "roundup", "comment", "t", {"body": "", "target": "4"}),
        Item("k3", "roundup", "vote", "t", {"body": "", "target": "5"}),
        Item("k4", "roundup", "confirm", "t", {"body": "", "target": "5"}),
        Item("k5", "roundup", "comment", "t", {"body": "", "target": "6", "share_card": True}),
        Item("k6", "roundup", "bug", "t", {"body": ""}),  # queued, no id yet
    ]
    for item in items:
        box.enqueue(item)
    # enqueue keeps the remote out; a sent bug has one
    box._update("k1", state="sent", remote=json.dumps({"id": "4", "url": "u"}))
    assert loop.my_reports(box) == {"4": ["filed", "me-too"], "5": ["voted", "confirmed"]}


def test_after_a_flash_the_cli_names_the_fix_and_the_confirm_command(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    from toolkit.cli import flash as cli_flash

    cache = tmp_path / "cache"
    _channel(cache / "channels", "a", "1.2.0", "aa" * 32, ["7", "8"])
    monkeypatch.setenv("ROUTERKIT_CACHE", str(cache))
    monkeypatch.setenv("ROUTERKIT_LANG", "en")
    box = Outbox()
    box.enqueue(Item("k3", "roundup", "vote", "t", {"body": "", "target": "7"}))
    fixes = cli_flash._claimed_fixes("1.2.0", "es-virt", "aa" * 32)
    assert fixes == [{"id": "7", "how": ["voted"]}]
    cli_flash._say_fixes("1.2.0", fixes)
    out = capsys.readouterr().out
    assert "Build 1.2.0 claims to fix" in out and "routerkit confirm 7 --fixed" in out
    assert "#8" not in out  # not one of yours
    assert cli_flash._claimed_fixes("", "es-virt", "") == []
