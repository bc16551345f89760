"""The build log speaks the tester's language (the locale or --lang), with their name on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.community.fakes import assembly_session
from toolkit import i18n
from toolkit.community.buildlog import compose
from toolkit.community.redact import Redactor


@pytest.fixture
def lang(request: pytest.FixtureRequest) -> Iterator[None]:
    i18n.choose(request.param)
    try:
        yield
    finally:
        i18n.choose(None)


@pytest.mark.parametrize("lang", ["zh-CN"], indirect=True)
def test_build_log_in_chinese_with_display_name(lang: None) -> None:
    journal = assembly_session(photos=2, steps=2)
    log = compose(journal, Redactor(b"s" * 32), display_name="小明", sample="ES-042")
    assert log.title.startswith("组装日志：es-virt")
    assert "## 步骤" in log.markdown and "组装用时" in log.markdown
    assert "作者：小明 · 样机 ES-042" in log.markdown
    assert '<html lang="zh-CN">' in log.html and "<h2>步骤</h2>" in log.html


@pytest.mark.parametrize("lang", ["en"], indirect=True)
def test_build_log_is_anonymous_unless_named(lang: None) -> None:
    journal = assembly_session(photos=1, steps=1)
    log = compose(journal, Redactor(b"s" * 32))
    assert "_by anonymous_" in log.markdown and '<html lang="en">' in log.html
    assert log.assembly_seconds > 0 and "assembly time" in log.markdown
