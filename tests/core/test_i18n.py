"""Every message has a Simplified Chinese translation, and the compiled catalog is current.

Messages are extracted the way `make i18n` does it: Babel's extraction through
``toolkit/locale/babel.cfg`` (``toolkit.i18n.extract``, which sees calls inside f-strings).
A new message without a translation, a translation that drops a placeholder, or a ``.po``
changed without recompiling the ``.mo`` fails here."""

from __future__ import annotations

import gettext
import re

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from toolkit import i18n, paths

LOCALE = paths.REPO_ROOT / "toolkit" / "locale"
PO = LOCALE / "zh_CN" / "LC_MESSAGES" / "routerkit.po"
MO = PO.with_suffix(".mo")


def _extracted() -> set[str]:
    with (LOCALE / "babel.cfg").open() as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    keywords = {k: None for k in i18n.KEYWORDS}
    found = extract_from_dir(
        str(paths.REPO_ROOT),
        method_map,
        options_map,
        keywords=keywords,  # type: ignore[arg-type]
    )
    return {str(message) for _file, _line, message, _comments, _context in found}


MESSAGES = sorted(_extracted())


def test_extraction_finds_the_messages() -> None:
    assert len(MESSAGES) > 40  # the extraction works (it can fail)
    assert "Assembly-time leaderboard" in MESSAGES  # a call inside an f-string
    assert "me too" in MESSAGES  # marked with N_()


def _fields(text: str) -> list[str]:
    return sorted(re.findall(r"\{(\w*)\}", text))


@pytest.mark.parametrize("msgid", MESSAGES)
def test_every_message_has_a_chinese_translation(msgid: str) -> None:
    zh = i18n.t(msgid, "zh-CN")
    assert zh != msgid, f"no zh-CN translation for {msgid!r} (make i18n, then translate)"
    assert _fields(zh) == _fields(msgid)


def test_the_compiled_catalog_matches_the_po_file() -> None:
    with PO.open("rb") as fh:
        po = {m.id: m.string for m in read_po(fh) if m.id}
    with MO.open("rb") as fh:
        mo = {k: v for k, v in gettext.GNUTranslations(fh)._catalog.items() if k}  # type: ignore[attr-defined]
    assert mo == po, "the .mo is out of date: run `make i18n`"


def test_language_follows_the_locale_and_lang(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("ROUTERKIT_LANG", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    assert i18n.current() == "zh-CN" and i18n.t("fixed") == "已修复"
    monkeypatch.setenv("LANG", "en_US.UTF-8")
    assert i18n.current() == "en" and i18n.t("fixed") == "fixed"
    assert i18n.current("zh-CN") == "zh-CN"
    assert i18n.both("rank") == "rank · 名次"


def test_command_help_follows_the_locale() -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("LC_ALL", "LC_MESSAGES")}
    env.pop("ROUTERKIT_LANG", None)
    outs = {}
    for lang in ("zh_CN.UTF-8", "C.UTF-8"):
        proc = subprocess.run(
            [sys.executable, "-m", "toolkit.cli", "vote", "--help"],
            env={**env, "LANG": lang},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        outs[lang] = proc.stdout
    assert "每位测试者一票" in outs["zh_CN.UTF-8"] and "示例：" in outs["zh_CN.UTF-8"]
    assert "one vote per tester" in outs["C.UTF-8"]
