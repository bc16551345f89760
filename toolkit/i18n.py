"""English and Simplified Chinese for the weekly loop (votes, confirmations, changes, the
weekly page and the share card), with gettext catalogs.

The language comes from ``--lang``, else ``ROUTERKIT_LANG``, else the locale
(``LC_ALL``, ``LC_MESSAGES``, ``LANG``: ``zh_CN.UTF-8`` gives Chinese), else English.
Messages are English msgids; the translations live in
``toolkit/locale/zh_CN/LC_MESSAGES/routerkit.po`` and are read from the compiled ``.mo`` with
the standard library's :mod:`gettext`. ``make i18n`` extracts the messages with Babel
(``pybabel extract`` through :func:`extract`, which also sees calls inside f-strings),
updates the ``.po`` and compiles it; ``tests/core/test_i18n.py`` fails when a message used in
the code has no Chinese translation or the ``.mo`` is older than the ``.po``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

LANGS = ("en", "zh-CN")

DOMAIN = "routerkit"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
#: the functions whose first argument is a message (what extraction looks for)
KEYWORDS = ("t", "both", "t_en", "t_zh", "N_")

_chosen: str | None = None


def choose(lang: str | None) -> None:
    """Set the language for this process (the CLI's ``--lang``); None goes back to the
    environment."""
    global _chosen
    _chosen = lang


def current(explicit: str | None = None) -> str:
    """The language to use: 'en' or 'zh-CN' (see the module docstring)."""
    for value in (
        explicit,
        _chosen,
        os.environ.get("ROUTERKIT_LANG"),
        os.environ.get("LC_ALL"),
        os.environ.get("LC_MESSAGES"),
        os.environ.get("LANG"),
    ):
        if not value:
            continue
        low = value.lower().replace("_", "-")
        if low.startswith("zh"):
            return "zh-CN"
        if low.startswith("en") or low in ("c", "posix", "c.utf-8"):
            return "en"
    return "en"


@functools.cache
def _catalog(lang: str) -> Any:
    import gettext

    code = lang.replace("-", "_")
    return gettext.translation(DOMAIN, str(LOCALE_DIR), languages=[code], fallback=True)


def t(msgid: str, lang: str | None = None, **values: object) -> str:
    """The message in ``lang`` (default: :func:`current`), with ``values`` filled in."""
    lang = lang or current()
    text = msgid if lang == "en" else str(_catalog(lang).gettext(msgid))
    return text.format(**values) if values else text


def localized(command: Any) -> Any:
    """Show a click command's help (its docstring, the msgid) in the current language.
    Put it above ``@click.command``; extraction picks up the docstring."""
    import inspect

    if command.help:  # click keeps the raw docstring; the msgid is its cleaned form
        command.help = t(inspect.cleandoc(command.help))
    return command


def N_(msgid: str) -> str:  # noqa: N802 - gettext's name for "mark, translate later"
    """Mark ``msgid`` for extraction without translating it here."""
    return msgid


def extract(
    fileobj: IO[bytes], keywords: Any, comment_tags: Any, options: Any
) -> Iterator[tuple[int, str, str, list[str]]]:
    """A Babel extraction method (``toolkit.i18n.extract`` in ``locale/babel.cfg``): every
    call of a :data:`KEYWORDS` function with a literal first argument, found with :mod:`ast`,
    so calls inside f-strings count too (Babel's tokenizer does not see them on Python 3.11),
    and the docstring of every function decorated ``@localized`` (a command's help)."""
    import ast

    tree = ast.parse(fileobj.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and any(
            getattr(d, "id", None) == "localized" for d in node.decorator_list
        ):
            doc = ast.get_docstring(node, clean=True)  # what click shows: inspect.cleandoc
            if doc:
                yield node.lineno, "t", doc, []
        if not isinstance(node, ast.Call) or not node.args:
            continue
        name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
        first = node.args[0]
        if name in KEYWORDS and isinstance(first, ast.Constant) and isinstance(first.value, str):
            yield node.lineno, str(name), first.value, []


def both(msgid: str, **values: object) -> str:
    """'English · 中文' for places both languages share (the page's headings, the card)."""
    en, zh = t(msgid, "en", **values), t(msgid, "zh-CN", **values)
    return en if en == zh else f"{en} · {zh}"


#: Messages chosen at run time (a report's kind, how you took part, what notes say a build
#: does to a report): marked here so extraction finds them.
RUNTIME_MESSAGES = (
    N_("bug"),
    N_("request"),
    N_("filed"),
    N_("voted"),
    N_("me too"),
    N_("confirmed"),
    N_("fixes"),
    N_("touches"),
)
