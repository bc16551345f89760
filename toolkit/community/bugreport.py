"""Bug reports with the context collected for the tester, and a duplicate signature.

Context (each piece optional — a report is never refused for lack of it):
board and hardware revision (board profile), firmware version and slot (last verify/flash),
the last flash and verify results, the console tail, the selftest JSON, ``dmesg``/``logread``
from the device when a shell is reachable (an injected ``remote`` callable), and the failing
assembly step or command.

The **duplicate signature** is ``sha256(board | firmware | step-or-command | error class)``,
16 hex digits, deliberately *unsalted*: the same failure on two testers' benches must give the
same signature so the tracker can group them. None of its inputs identify a person.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.community.buildlog import Blob
from toolkit.community.redact import Redactor
from toolkit.record import Journal

CONSOLE_TAIL = 40
# the fields of a flash/verify record worth showing in a report
_RECORD_FIELDS = frozenset(
    {
        "ok",
        "via",
        "path",
        "version_before",
        "version_after",
        "version",
        "slot",
        "bytes",
        "seconds",
        "error_class",
        "error",
    }
)
REMOTE_COMMANDS = ("dmesg | tail -n 80", "logread | tail -n 80")


@dataclass
class BugContext:
    board: str = "unknown"
    hardware_rev: str | None = None
    firmware: str | None = None
    slot: str | None = None
    flash: dict[str, Any] | None = None
    verify: dict[str, Any] | None = None
    console_tail: str = ""
    selftest: Any = None
    remote_logs: dict[str, str] = field(default_factory=dict)
    step: str | None = None  # the failing assembly step, or the command (flash, verify...)
    error_class: str | None = None
    error: str | None = None
    session: str | None = None

    @property
    def signature(self) -> str:
        return signature(self.board, self.firmware, self.step, self.error_class)


def signature(
    board: str | None, firmware: str | None, step: str | None, error_class: str | None
) -> str:
    """The duplicate signature (see the module docstring)."""
    parts = [board or "-", firmware or "-", step or "-", error_class or "-"]
    return hashlib.sha256("|".join(p.strip().lower() for p in parts).encode()).hexdigest()[:16]


def _fw(rec: dict[str, Any] | None) -> str | None:
    if not rec:
        return None
    return rec.get("version_after") or rec.get("version") or rec.get("version_before")


def collect(
    journal: Journal | None,
    *,
    step: str | None = None,
    remote: Callable[[str], str] | None = None,
) -> BugContext:
    """Gather what routerkit knows about the failure from ``journal`` (and the device)."""
    ctx = BugContext()
    records: list[dict[str, Any]] = []
    if journal is not None:
        from toolkit.community.buildlog import related_sessions

        ctx.session = journal.id
        ctx.board = str(journal.board or "unknown")
        for sess in related_sessions(journal):
            records.extend(sess.events())
    ctx.hardware_rev = _hardware_rev(ctx.board)
    ctx.flash = next((r for r in reversed(records) if r.get("type") == "flash"), None)
    ctx.verify = next((r for r in reversed(records) if r.get("type") == "verify"), None)
    ctx.firmware = _fw(ctx.verify) or _fw(ctx.flash)
    ctx.slot = (ctx.verify or {}).get("slot") or (ctx.flash or {}).get("slot")
    sel = (ctx.verify or {}).get("selftest")
    ctx.selftest = (
        sel
        if sel is not None
        else next((r.get("report") for r in reversed(records) if r.get("type") == "selftest"), None)
    )
    console: list[str] = []
    for r in records:
        for key in ("last_output", "console_tail"):
            if isinstance(r.get(key), str):
                console.extend(r[key].splitlines())
    if journal is not None and journal.files_dir.is_dir():
        for f in sorted(journal.files_dir.glob("*console*")):
            if f.suffix == ".cast":  # the timed recording of the same log: attached whole
                continue
            console.extend(f.read_text(errors="replace").splitlines())
    ctx.console_tail = "\n".join(console[-CONSOLE_TAIL:])
    ctx.step, ctx.error_class, ctx.error = _failure(records, step, ctx.board)
    if remote is not None:
        for cmd in REMOTE_COMMANDS:
            try:
                ctx.remote_logs[cmd.split()[0]] = remote(cmd)
            except Exception as exc:  # noqa: BLE001 - an unreachable device is part of the story
                ctx.remote_logs[cmd.split()[0]] = f"(not collected: {type(exc).__name__}: {exc})"
    return ctx


def _hardware_rev(board: str) -> str | None:
    try:
        from toolkit.boards import load_board

        return load_board(board).get("board.hardware_rev")  # type: ignore[no-any-return]
    except Exception:  # noqa: BLE001 - an unknown board is still reportable
        return None


def _failure(
    records: list[dict[str, Any]], step: str | None, board: str
) -> tuple[str | None, str | None, str | None]:
    """(step or command, error class, error message) of the most relevant failure."""
    if step is not None and step.isdigit():
        try:
            from toolkit.guide.loader import load_board_guide

            step = load_board_guide(board).steps[int(step) - 1].id
        except Exception:  # noqa: BLE001 - keep the number as given
            pass
    failed = [r for r in records if r.get("ok") is False or r.get("error_class")]
    if step is not None:
        mine = [r for r in failed if str(r.get("step", "")) == step]
        last = mine[-1] if mine else (failed[-1] if failed else {})
        return step, last.get("error_class"), last.get("error")
    if failed:
        last = failed[-1]
        where = last.get("step") or last.get("type")
        return str(where), last.get("error_class"), last.get("error")
    open_steps = [r for r in records if r.get("type") == "step_started"]
    done = {
        str(r.get("step")) for r in records if r.get("type") in ("step_finished", "step_skipped")
    }
    unfinished = [r for r in open_steps if str(r.get("step")) not in done]
    if unfinished:
        return str(unfinished[-1].get("step")), None, None
    return None, None, None


def compose(
    title: str,
    ctx: BugContext,
    attach: list[Path],
    redactor: Redactor,
    *,
    raw: bool = False,
) -> tuple[str, str, list[Blob], list[str]]:
    """(redacted title, redacted Markdown body, attachments, warnings) of a bug report.

    Attachments go through :func:`~toolkit.community.attachments.prepare_attachment`: text is
    redacted, pictures are rebuilt from pixels, anything else raises ``AttachmentRefused``
    unless ``raw`` (then it is sent unchanged and a warning says so)."""
    from toolkit.community.attachments import prepare_attachment

    r = redactor
    r.learn(
        ctx.console_tail,
        json.dumps([ctx.flash, ctx.verify, ctx.selftest, ctx.error], default=str),
        *ctx.remote_logs.values(),
    )
    # attachments before the body: a hostname named in an attached config is then known bare
    prepared = [prepare_attachment(p, r, raw=raw) for p in attach]
    md = [
        f"**Board** {ctx.board} (hardware rev {ctx.hardware_rev or '?'}) · **firmware** {ctx.firmware or '?'} "
        f"· **slot** {ctx.slot or '?'}",
        f"**Failing step or command** {ctx.step or '?'} · **error** {ctx.error_class or '?'}",
        f"**Duplicate signature** `{ctx.signature}`",
        "",
    ]
    if ctx.error:
        md += ["> " + r.text(ctx.error).replace("\n", "\n> "), ""]
    for label, rec in (("Last flash", ctx.flash), ("Last verify", ctx.verify)):
        if rec:
            keep = {k: v for k, v in rec.items() if k in _RECORD_FIELDS}
            md += [
                f"### {label}",
                "",
                "```json",
                r.text(json.dumps(keep, indent=1, default=str)),
                "```",
                "",
            ]
    blocks = [("Console (tail)", ctx.console_tail, "text")]
    if ctx.selftest is not None:
        st = (
            ctx.selftest
            if isinstance(ctx.selftest, str)
            else json.dumps(ctx.selftest, indent=1, default=str)
        )
        blocks.append(("Selftest", st, "json"))
    blocks += [(name, text, "text") for name, text in ctx.remote_logs.items()]
    for label, text, lang in blocks:
        if text and text.strip():
            md += [f"### {label}", "", f"```{lang}", r.text(text).replace("```", "ʼʼʼ"), "```", ""]
    if ctx.session:
        md.append(
            f"_Session {ctx.session}, reported with routerkit; identifiers are salted hashes._"
        )
    warnings = [p.warning for p in prepared if p.warning]
    return r.text(title), "\n".join(md) + "\n", [p.blob for p in prepared], warnings
