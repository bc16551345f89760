"""Load and validate ``guide.yaml`` files.

The YAML is *composed* (``yaml.compose``), not just loaded, so every node keeps its position and
each problem can be reported as ``FILE:LINE: FIELD: message`` — e.g.
``assembly_guide/es-virt/guide.yaml:42: steps[3].photos[0].shows: required field missing``.
Lines are 1-based; fields are dotted paths with 0-based list indexes. All problems of a file are
collected (:func:`lint_file`); :func:`load_guide` raises :class:`GuideError` listing them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit import paths
from toolkit.errors import GuideError
from toolkit.guide.checks import CheckRegistry, default_registry
from toolkit.guide.model import (
    DIFFICULTIES,
    LINE_KINDS,
    CheckSpec,
    Guide,
    Line,
    Part,
    PhotoSpec,
    Step,
    Tool,
)

SCHEMA_VERSION = 1
IMAGE_SUFFIXES = (".svg", ".png", ".jpg", ".jpeg")
_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,47}$")
_STR, _INT, _FLOAT, _BOOL = (f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool"))


@dataclass(frozen=True)
class Issue:
    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.message}"


class _Ctx:
    def __init__(self, file: str, base: Path, registry: CheckRegistry) -> None:
        self.file = file
        self.base = base
        self.registry = registry
        self.issues: list[Issue] = []

    def err(self, node: Any, fld: str, message: str) -> None:
        self.issues.append(Issue(self.file, node.start_mark.line + 1, fld or "(top)", message))


def _mapping(
    ctx: _Ctx,
    node: Any,
    fld: str,
    required: tuple[str, ...],
    optional: tuple[str, ...] = (),
    extra_ok: bool = False,
) -> dict[str, tuple[Any, Any]] | None:
    """Check a mapping's keys; returns {key: (key node, value node)}."""
    import yaml

    if not isinstance(node, yaml.MappingNode):
        ctx.err(node, fld, "expected a mapping (key: value)")
        return None
    out: dict[str, tuple[Any, Any]] = {}
    for knode, vnode in node.value:
        key = str(knode.value)
        sub = f"{fld}.{key}" if fld else key
        if key in out:
            ctx.err(knode, sub, "duplicate key")
            continue
        if key not in required and key not in optional and not extra_ok:
            allowed = ", ".join(sorted(required + optional))
            ctx.err(knode, sub, f"unknown field (allowed: {allowed})")
            continue
        out[key] = (knode, vnode)
    for key in required:
        if key not in out:
            ctx.err(node, f"{fld}.{key}" if fld else key, "required field missing")
    return out


def _scalar(ctx: _Ctx, node: Any, fld: str, tags: tuple[str, ...], what: str) -> Any:
    import yaml

    if not isinstance(node, yaml.ScalarNode) or node.tag not in tags:
        ctx.err(node, fld, f"expected {what}")
        return None
    return yaml.SafeLoader("").construct_object(node)


def _text(ctx: _Ctx, node: Any, fld: str) -> str | None:
    value = _scalar(ctx, node, fld, (_STR,), "text")
    if value is not None and not str(value).strip():
        ctx.err(node, fld, "must not be empty")
        return None
    return None if value is None else str(value).strip()


def _ident(ctx: _Ctx, node: Any, fld: str, seen: set[str] | None = None) -> str | None:
    value = _scalar(ctx, node, fld, (_STR, _INT), "an id")
    if value is None:
        return None
    value = str(value)
    if not _ID.match(value):
        ctx.err(node, fld, f"invalid id {value!r} (lower-case letters, digits and '-')")
        return None
    if seen is not None:
        if value in seen:
            ctx.err(node, fld, f"duplicate id {value!r}")
            return None
        seen.add(value)
    return value


def _seq(ctx: _Ctx, node: Any, fld: str, nonempty: bool = True) -> list[Any]:
    import yaml

    if not isinstance(node, yaml.SequenceNode):
        ctx.err(node, fld, "expected a list")
        return []
    if nonempty and not node.value:
        ctx.err(node, fld, "must not be empty")
    return list(node.value)


def _items(
    ctx: _Ctx,
    m: dict[str, tuple[Any, Any]],
    key: str,
    fld: str,
    parse: Callable[[Any, str], Any],
    nonempty: bool = True,
) -> tuple[Any, ...]:
    if key not in m:
        return ()
    out = []
    for i, item in enumerate(_seq(ctx, m[key][1], f"{fld}.{key}" if fld else key, nonempty)):
        value = parse(item, f"{fld}.{key}[{i}]" if fld else f"{key}[{i}]")
        if value is not None:
            out.append(value)
    return tuple(out)


def _svg_ok(path: Path) -> str | None:
    """None if ``path`` is a well-formed SVG document, else what is wrong."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        return f"not well-formed SVG: {err}"
    if root.tag not in ("svg", "{http://www.w3.org/2000/svg}svg"):
        return f"not an SVG document (root element {root.tag!r})"
    return None


def _image(ctx: _Ctx, node: Any, fld: str) -> Path | None:
    rel = _text(ctx, node, fld)
    if rel is None:
        return None
    path = (ctx.base / rel).resolve()  # follows symlinks: a link pointing out is caught too
    if Path(rel).is_absolute() or not path.is_relative_to(ctx.base):
        # guides are shared and downloaded: an illustration must come from the guide's own
        # folder, never from ../../etc/passwd or a symlink out of it
        ctx.err(node, fld, f"illustration outside the guide's folder: {rel}")
        return None
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        ctx.err(
            node, fld, f"unsupported image type {path.suffix or '(none)'!r} (use SVG, PNG or JPEG)"
        )
        return None
    if not path.is_file():
        ctx.err(node, fld, f"illustration not found: {rel}")
        return None
    if path.suffix.lower() == ".svg":
        problem = _svg_ok(path)
        if problem:
            ctx.err(node, fld, f"{rel}: {problem}")
            return None
    return path


def _line(ctx: _Ctx, node: Any, fld: str) -> Line | None:
    import yaml

    if isinstance(node, yaml.ScalarNode):
        text = _text(ctx, node, fld)
        return None if text is None else Line(text)
    m = _mapping(ctx, node, fld, ("text",), ("kind", "level"))
    if m is None:
        return None
    text = _text(ctx, m["text"][1], f"{fld}.text") if "text" in m else None
    kind = "plain"
    if "kind" in m:
        kind = _text(ctx, m["kind"][1], f"{fld}.kind") or "plain"
        if kind not in LINE_KINDS:
            ctx.err(
                m["kind"][1],
                f"{fld}.kind",
                f"unknown line kind {kind!r} (one of: {', '.join(LINE_KINDS)})",
            )
            return None
    level = 0
    if "level" in m:
        level = _scalar(ctx, m["level"][1], f"{fld}.level", (_INT,), "an integer 0..2")
        if level is None or not 0 <= level <= 2:
            if level is not None:
                ctx.err(m["level"][1], f"{fld}.level", "must be 0, 1 or 2")
            return None
    return None if text is None else Line(text, kind, level)


def _check(ctx: _Ctx, node: Any, fld: str, seen: set[str]) -> CheckSpec | None:
    import yaml

    m = _mapping(ctx, node, fld, ("id", "kind"), ("prompt",), extra_ok=True)
    if m is None:
        return None
    cid = _ident(ctx, m["id"][1], f"{fld}.id", seen) if "id" in m else None
    kind = _text(ctx, m["kind"][1], f"{fld}.kind") if "kind" in m else None
    prompt = _text(ctx, m["prompt"][1], f"{fld}.prompt") if "prompt" in m else None
    if kind is None:
        return None
    spec = ctx.registry.params(kind)
    if spec is None:
        known = ", ".join(ctx.registry.names())
        ctx.err(m["kind"][1], f"{fld}.kind", f"unknown check kind {kind!r} (known: {known})")
        return None
    if kind == "confirm" and prompt is None and "prompt" not in m:
        ctx.err(node, f"{fld}.prompt", "required field missing (a confirmation needs a question)")
    params: dict[str, Any] = {}
    for key, (knode, vnode) in m.items():
        if key in ("id", "kind", "prompt"):
            continue
        if key not in spec:
            allowed = ", ".join(["id", "kind", "prompt", *sorted(spec)])
            ctx.err(knode, f"{fld}.{key}", f"unknown field for a {kind} check (allowed: {allowed})")
            continue
        want = spec[key].type
        tags = {"str": (_STR,), "number": (_INT, _FLOAT), "bool": (_BOOL,)}.get(want)
        if tags is not None:
            value = _scalar(
                ctx,
                vnode,
                f"{fld}.{key}",
                tags,
                {"str": "text", "number": "a number", "bool": "true or false"}[want],
            )
        else:
            value = yaml.SafeLoader("").construct_document(vnode)
        if value is not None:
            params[key] = value
    for key, p in spec.items():
        if p.required and key not in m:
            ctx.err(node, f"{fld}.{key}", f"required field missing for a {kind} check")
    if cid is None:
        return None
    default = f"automatic check: {ctx.registry.get(kind).summary}" if kind != "confirm" else ""
    return CheckSpec(cid, kind, prompt or default, params)


def _refs(
    ctx: _Ctx, m: dict[str, tuple[Any, Any]], key: str, fld: str, known: set[str], what: str
) -> tuple[str, ...]:
    def one(node: Any, f: str) -> str | None:
        ref = _ident(ctx, node, f)
        if ref is not None and ref not in known:
            ctx.err(node, f, f"no {what} with id {ref!r} in the guide's {what}s")
            return None
        return ref

    return _items(ctx, m, key, fld, one, nonempty=False)


def _step(
    ctx: _Ctx, node: Any, fld: str, ids: set[str], tools: set[str], parts: set[str]
) -> Step | None:
    m = _mapping(
        ctx,
        node,
        fld,
        ("id", "title", "lines", "images"),
        ("photos", "checks", "tools", "parts", "minutes"),
    )
    if m is None:
        return None
    sid = _ident(ctx, m["id"][1], f"{fld}.id", ids) if "id" in m else None
    title = _text(ctx, m["title"][1], f"{fld}.title") if "title" in m else None
    lines = _items(ctx, m, "lines", fld, lambda n, f: _line(ctx, n, f))
    images = _items(ctx, m, "images", fld, lambda n, f: _image(ctx, n, f))
    photo_ids: set[str] = set()

    def photo(n: Any, f: str) -> PhotoSpec | None:
        pm = _mapping(ctx, n, f, ("id", "shows"))
        if pm is None:
            return None
        pid = _ident(ctx, pm["id"][1], f"{f}.id", photo_ids) if "id" in pm else None
        shows = _text(ctx, pm["shows"][1], f"{f}.shows") if "shows" in pm else None
        return PhotoSpec(pid, shows) if pid and shows else None

    photos = _items(ctx, m, "photos", fld, photo, nonempty=False)
    check_ids: set[str] = set()
    checks = _items(
        ctx, m, "checks", fld, lambda n, f: _check(ctx, n, f, check_ids), nonempty=False
    )
    used_tools = _refs(ctx, m, "tools", fld, tools, "tool")
    used_parts = _refs(ctx, m, "parts", fld, parts, "part")
    minutes = None
    if "minutes" in m:
        minutes = _scalar(
            ctx, m["minutes"][1], f"{fld}.minutes", (_INT, _FLOAT), "a number of minutes"
        )
    if sid is None or title is None:
        return None
    return Step(
        sid,
        title,
        lines,
        images,
        photos,
        checks,
        used_tools,
        used_parts,
        None if minutes is None else float(minutes),
    )


def _time(ctx: _Ctx, node: Any) -> tuple[int, int] | None:
    import yaml

    if isinstance(node, yaml.ScalarNode):
        value = _scalar(ctx, node, "time_minutes", (_INT,), "minutes, or [min, max]")
        return None if value is None else (value, value)
    items = _seq(ctx, node, "time_minutes")
    if len(items) != 2:
        ctx.err(node, "time_minutes", "expected [min, max]")
        return None
    lo, hi = (
        _scalar(ctx, n, f"time_minutes[{i}]", (_INT,), "minutes") for i, n in enumerate(items)
    )
    if lo is None or hi is None:
        return None
    if not 0 < lo <= hi:
        ctx.err(node, "time_minutes", "expected 0 < min <= max")
        return None
    return (lo, hi)


def _guide(ctx: _Ctx, root: Any, path: Path) -> Guide | None:
    m = _mapping(
        ctx,
        root,
        "",
        ("schema", "board", "title", "difficulty", "time_minutes", "tools", "parts", "steps"),
        ("summary", "prerequisites"),
    )
    if m is None:
        return None
    if "schema" in m:
        version = _scalar(ctx, m["schema"][1], "schema", (_INT,), "an integer")
        if version is not None and version != SCHEMA_VERSION:
            ctx.err(
                m["schema"][1],
                "schema",
                f"unsupported schema version {version} (this routerkit reads {SCHEMA_VERSION})",
            )
    board = _ident(ctx, m["board"][1], "board") if "board" in m else None
    if board is not None and _is_guide_name(path.name) and path.parent.name != board:
        ctx.err(m["board"][1], "board", f"guide for {board!r} lives in folder {path.parent.name!r}")
    title = _text(ctx, m["title"][1], "title") if "title" in m else None
    summary = (_text(ctx, m["summary"][1], "summary") or "") if "summary" in m else ""
    difficulty = _text(ctx, m["difficulty"][1], "difficulty") if "difficulty" in m else None
    if difficulty is not None and difficulty not in DIFFICULTIES:
        ctx.err(
            m["difficulty"][1],
            "difficulty",
            f"unknown difficulty {difficulty!r} (one of: {', '.join(DIFFICULTIES)})",
        )
    time_minutes = _time(ctx, m["time_minutes"][1]) if "time_minutes" in m else None
    tool_ids: set[str] = set()
    part_ids: set[str] = set()

    def tool(n: Any, f: str) -> Tool | None:
        tm = _mapping(ctx, n, f, ("id", "name"), ("note",))
        if tm is None:
            return None
        tid = _ident(ctx, tm["id"][1], f"{f}.id", tool_ids) if "id" in tm else None
        name = _text(ctx, tm["name"][1], f"{f}.name") if "name" in tm else None
        note = (_text(ctx, tm["note"][1], f"{f}.note") or "") if "note" in tm else ""
        return Tool(tid, name, note) if tid and name else None

    def part(n: Any, f: str) -> Part | None:
        pm = _mapping(ctx, n, f, ("id", "name", "quantity"), ("note",))
        if pm is None:
            return None
        pid = _ident(ctx, pm["id"][1], f"{f}.id", part_ids) if "id" in pm else None
        name = _text(ctx, pm["name"][1], f"{f}.name") if "name" in pm else None
        qty = (
            _scalar(ctx, pm["quantity"][1], f"{f}.quantity", (_INT,), "a whole number")
            if "quantity" in pm
            else None
        )
        if qty is not None and qty < 1:
            ctx.err(pm["quantity"][1], f"{f}.quantity", "must be at least 1")
            qty = None
        note = (_text(ctx, pm["note"][1], f"{f}.note") or "") if "note" in pm else ""
        return Part(pid, name, qty, note) if pid and name and qty else None

    tools = _items(ctx, m, "tools", "", tool)
    parts = _items(ctx, m, "parts", "", part)
    prereqs = _items(ctx, m, "prerequisites", "", lambda n, f: _text(ctx, n, f), nonempty=False)
    step_ids: set[str] = set()
    steps = _items(ctx, m, "steps", "", lambda n, f: _step(ctx, n, f, step_ids, tool_ids, part_ids))
    if ctx.issues or board is None or title is None or difficulty is None or time_minutes is None:
        return None
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return Guide(
        path, board, title, summary, difficulty, time_minutes, tools, parts, prereqs, steps, digest
    )


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _parse(path: Path, registry: CheckRegistry | None) -> tuple[Guide | None, list[Issue]]:
    import yaml

    ctx = _Ctx(_display(path), path.resolve().parent, registry or default_registry())
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, [Issue(ctx.file, 0, "(file)", "no such file")]
    except (OSError, UnicodeDecodeError) as err:
        return None, [Issue(ctx.file, 0, "(file)", f"cannot read: {err}")]
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else 0
        return None, [
            Issue(ctx.file, line, "(syntax)", f"YAML syntax error: {err.problem or err.context}")
        ]
    except yaml.YAMLError as err:
        return None, [Issue(ctx.file, 0, "(syntax)", f"YAML error: {err}")]
    if root is None:
        return None, [Issue(ctx.file, 1, "(top)", "the file is empty")]
    guide = _guide(ctx, root, path)
    return guide, ctx.issues


#: Translated guides sit beside ``guide.yaml`` as ``guide.<lang>.yaml`` (``guide.zh-CN.yaml``):
#: the same steps, checks, photos, tools, parts and images, every text translated.
TRANSLATIONS = ("zh-CN",)


def _is_guide_name(name: str) -> bool:
    return name == "guide.yaml" or name in {f"guide.{lang}.yaml" for lang in TRANSLATIONS}


def translation_issues(source: Guide, translated: Guide, file: str) -> list[Issue]:
    """Where a translated guide differs from its source in anything but text."""

    def shape(g: Guide) -> dict[str, Any]:
        return {
            "board": g.board,
            "difficulty": g.difficulty,
            "time_minutes": g.time_minutes,
            "tools": [t.id for t in g.tools],
            "parts": [(p.id, p.quantity) for p in g.parts],
            "prerequisites": len(g.prerequisites),
        }

    issues = []
    a, b = shape(source), shape(translated)
    for key in a:
        if a[key] != b[key]:
            issues.append(Issue(file, 0, key, f"differs from {source.path.name}: {b[key]!r}"))
    if [s.id for s in source.steps] != [s.id for s in translated.steps]:
        issues.append(Issue(file, 0, "steps", f"step ids differ from {source.path.name}"))
        return issues
    for i, (x, y) in enumerate(zip(source.steps, translated.steps, strict=True)):
        f = f"steps[{i}]"
        same = {
            "images": (x.images, y.images),
            "tools": (x.tools, y.tools),
            "parts": (x.parts, y.parts),
            "photos": ([p.id for p in x.photos], [p.id for p in y.photos]),
            "checks": (
                [(c.id, c.kind, c.params) for c in x.checks],
                [(c.id, c.kind, c.params) for c in y.checks],
            ),
            "lines": (
                [(ln.kind, ln.level) for ln in x.lines],
                [(ln.kind, ln.level) for ln in y.lines],
            ),
        }
        for key, (want, got) in same.items():
            if want != got:
                issues.append(Issue(file, 0, f"{f}.{key}", f"differs from {source.path.name}"))
    return issues


def lint_file(path: Path, registry: CheckRegistry | None = None) -> list[Issue]:
    """Every problem in one guide file (empty when it is valid). A translation
    (``guide.<lang>.yaml``) must also match its ``guide.yaml`` in everything but text."""
    path = Path(path)
    guide, issues = _parse(path, registry)
    source = path.with_name("guide.yaml")
    if guide is not None and not issues and path.name != "guide.yaml" and source.is_file():
        original, problems = _parse(source, registry)
        if original is not None and not problems:
            issues = translation_issues(original, guide, _display(path))
    return issues


def guide_files(target: Path) -> list[Path]:
    """The guide files under ``target``: itself if a file, else ``guide.yaml`` and ``*/guide.yaml``
    with their translations (``guide.<lang>.yaml``)."""
    target = Path(target)
    if target.is_file():
        return [target]
    if not target.is_dir():
        raise GuideError(f"{target}: no such file or directory")
    names = ["guide.yaml", *(f"guide.{lang}.yaml" for lang in TRANSLATIONS)]
    found = sorted({p for name in names for p in [*target.glob(name), *target.glob(f"*/{name}")]})
    if not found:
        raise GuideError(f"{target}: no guide.yaml here or in its sub-folders")
    return found


def load_guide(path: Path, registry: CheckRegistry | None = None) -> Guide:
    """Load a valid guide or raise GuideError naming every problem (file:line: field: message)."""
    guide, issues = _parse(Path(path), registry)
    if issues or guide is None:
        first = issues[0] if issues else Issue(_display(Path(path)), 0, "(top)", "invalid guide")
        more = (
            f" (and {len(issues) - 1} more: run `routerkit guide lint {path}`)"
            if len(issues) > 1
            else ""
        )
        raise GuideError(f"{first}{more}")
    return guide


def guide_path(board: str, lang: str | None = None) -> Path:
    """Where the guide of ``board`` lives: the first ``<dir>/<board>/guide.yaml`` of
    :func:`toolkit.paths.guide_dirs` (``ROUTERKIT_GUIDES``, the user's config, the shipped ones),
    or its translation beside it (``guide.zh-CN.yaml``) when the language (``lang``, else the
    locale: see :mod:`toolkit.i18n`) asks for one."""
    from toolkit import i18n

    wanted = i18n.current(lang)
    looked = []
    for _, directory in paths.guide_dirs():
        path = directory / board / "guide.yaml"
        if path.is_file():
            translated = path.with_name(f"guide.{wanted}.yaml")
            if wanted in TRANSLATIONS and translated.is_file():
                return translated
            return path
        looked.append(str(path))
    raise GuideError(f"no assembly guide for board {board!r} (looked for {', '.join(looked)})")


def guide_sources() -> list[tuple[str, str, Path]]:
    """Every board's guide as (board, origin, path), first match of each board wins."""
    found: dict[str, tuple[str, str, Path]] = {}
    for origin, directory in paths.guide_dirs():
        if directory.is_dir():
            for path in sorted(directory.glob("*/guide.yaml")):
                found.setdefault(path.parent.name, (path.parent.name, origin, path))
    return [found[k] for k in sorted(found)]


def load_board_guide(
    board: str, registry: CheckRegistry | None = None, *, lang: str | None = None
) -> Guide:
    """Load the guide of ``board`` (in ``lang``, else the locale's language when translated);
    its ``board:`` field must agree."""
    guide = load_guide(guide_path(board, lang), registry)
    if guide.board != board:
        raise GuideError(f"{guide.path}: board: says {guide.board!r}, expected {board!r}")
    return guide
