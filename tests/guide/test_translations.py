"""Translated assembly guides: chosen by the language, and kept in step with the source."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from toolkit import paths
from toolkit.guide.loader import guide_files, guide_path, lint_file, load_board_guide

SHIPPED = paths.REPO_ROOT / "assembly_guide" / "es-virt"


def test_the_shipped_chinese_guide_matches_the_english_one() -> None:
    assert lint_file(SHIPPED / "guide.zh-CN.yaml") == []
    assert SHIPPED / "guide.zh-CN.yaml" in guide_files(SHIPPED.parent)


def test_the_language_picks_the_guide(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("ROUTERKIT_LANG", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    zh = load_board_guide("es-virt")
    assert zh.path.name == "guide.zh-CN.yaml" and zh.title == "组装 routerkit ES 样机"
    en = load_board_guide("es-virt", lang="en")
    assert en.path.name == "guide.yaml"
    assert [s.id for s in zh.steps] == [s.id for s in en.steps]
    monkeypatch.setenv("LANG", "C.UTF-8")
    assert guide_path("es-virt").name == "guide.yaml"


def test_a_translation_that_drifts_from_its_source_is_a_lint_error(tmp_path: Path) -> None:
    board = tmp_path / "es-virt"
    shutil.copytree(SHIPPED, board)
    text = (board / "guide.zh-CN.yaml").read_text()
    drifted = text.replace(
        '      - {id: no-damage, kind: confirm, prompt: "没有看得见的运输损伤吗？"}\n', ""
    ).replace("expect: ok, timeout: 90, settle: 30", "expect: ok, timeout: 30, settle: 30")
    assert drifted != text
    (board / "guide.zh-CN.yaml").write_text(drifted)
    fields = {issue.field for issue in lint_file(board / "guide.zh-CN.yaml")}
    assert fields == {"steps[0].checks", "steps[7].checks"}
