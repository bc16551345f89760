"""Every message the weekly loop shows has a Simplified Chinese translation.

The msgids are read from the source (calls of ``t(...)`` and ``both(...)`` with a literal
first argument), so a new message without a translation fails here."""

from __future__ import annotations

import ast

import pytest

from toolkit import i18n, paths

SOURCES = [
    "toolkit/cli/loop.py",
    "toolkit/cli/share.py",
    "toolkit/cli/flash.py",
    "toolkit/cli/community.py",
    "toolkit/community/weekly.py",
    "toolkit/community/card.py",
]


def _msgids() -> set[str]:
    found = set()
    for rel in SOURCES:
        tree = ast.parse((paths.REPO_ROOT / rel).read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            first = node.args[0]
            literal = isinstance(first, ast.Constant) and isinstance(first.value, str)
            if name in ("t", "both", "t_en", "t_zh") and literal:
                found.add(first.value)  # type: ignore[attr-defined]
    return found


def test_the_sources_use_messages_at_all() -> None:
    assert len(_msgids()) > 30  # the scan finds the calls (it can fail)


@pytest.mark.parametrize("msgid", sorted(_msgids()))
def test_every_message_has_a_chinese_translation(msgid: str) -> None:
    zh = i18n.ZH_CN.get(msgid)
    assert zh, f"no zh-CN translation for {msgid!r}"
    placeholders = lambda s: sorted(p.split("}")[0] for p in s.split("{")[1:])  # noqa: E731
    assert placeholders(zh) == placeholders(msgid)


def test_language_follows_the_locale_and_lang(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("ROUTERKIT_LANG", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    assert i18n.current() == "zh-CN" and i18n.t("fixed") == "已修复"
    monkeypatch.setenv("LANG", "en_US.UTF-8")
    assert i18n.current() == "en" and i18n.t("fixed") == "fixed"
    assert i18n.current("zh-CN") == "zh-CN"
    assert i18n.both("rank") == "rank · 名次"
