"""The bug journey: collect context, compute the duplicate signature, find existing reports,
then file a new report or add to an existing one — through the outbox, like every upload."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from toolkit.community.bugreport import BugContext, collect, compose
from toolkit.community.buildlog import Blob
from toolkit.community.outbox import Item
from toolkit.community.publishers import Publisher, Remote
from toolkit.community.redact import Redactor
from toolkit.journeys.share import Plan, item_key
from toolkit.record import Journal


def prepare_bug(
    title: str,
    *,
    session_id: str | None = None,
    step: str | None = None,
    attach: list[Path] | None = None,
    raw: bool = False,
    publisher: str = "roundup",
    remote: Callable[[str], str] | None = None,
    redactor: Redactor | None = None,
) -> tuple[Plan, BugContext]:
    """Compose a bug report (redacted) from the session (default: the newest one).

    ``raw``: attach files that are neither text nor pictures unchanged (the plan's warnings
    say so) instead of refusing them with ``AttachmentRefused``."""
    journal = Journal.open(session_id) if session_id else Journal.latest()
    redactor = redactor or Redactor.for_installation()
    ctx = collect(journal, step=step, remote=remote)
    if ctx.board == "unknown" and journal is None:
        ctx.step = ctx.step or "general"
    safe_title, body, blobs, attach_warnings = compose(
        title, ctx, list(attach or []), redactor, raw=raw
    )
    if journal is not None:
        blobs += _recording(journal, redactor, {b.name for b in blobs})
    fields = {
        "kind": "bug",
        "board": ctx.board,
        "firmware": ctx.firmware,
        "signature": ctx.signature,
    }
    item = Item(
        key=item_key("bug", ctx.session or "-", title, ctx.signature, publisher),
        publisher=publisher,
        kind="bug",
        title=safe_title,
        payload={
            "body": body,
            "fields": fields,
            "tags": ["bug", ctx.board],
            "session": ctx.session,
        },
    )
    warnings = (
        [] if journal is not None else ["no session recorded: the report has no device context"]
    )
    warnings += attach_warnings
    return Plan(item, blobs, dict(redactor.counts), warnings), ctx


def _recording(journal: Journal, redactor: Redactor, taken: set[str]) -> list[Blob]:
    """The session's newest console recording, redacted with the report's own redactor."""
    from toolkit.community.recordings import redacted
    from toolkit.protocol.asciicast import MIME

    found = redacted(journal, redactor)
    if not found:
        return []
    name = "console.cast" if "console.cast" not in taken else f"{journal.id}.console.cast"
    return [Blob(name, found[-1].read_bytes(), MIME)]


def duplicates(plan: Plan, publisher: Publisher) -> list[Remote]:
    """Existing reports with the same duplicate signature (may raise PublishRetryableError
    when the tracker is unreachable: the caller decides whether to file anyway)."""
    return publisher.find_by_signature(str(plan.item.payload["fields"]["signature"]))


def as_addition(plan: Plan, target: Remote) -> Plan:
    """Turn a new report into a message added to the existing report ``target``."""
    item = replace(
        plan.item,
        key=item_key("comment", target.id, plan.item.key),
        kind="comment",
        payload=dict(plan.item.payload, target=target.id),
    )
    return replace(plan, item=item)


def file_bug(
    title: str,
    *,
    session_id: str | None = None,
    step: str | None = None,
    publisher: str = "roundup",
    add_to_duplicate: bool = True,
    wait: float = 60.0,
) -> dict[str, object]:
    """Collect, search duplicates, queue and deliver a bug report in one call (demo, scripts).
    Returns ``{"key", "state", "url", "signature", "added_to"}``."""
    from toolkit.community.publishers import PublisherCache
    from toolkit.errors import PublishRetryableError
    from toolkit.journeys.share import deliver, submit

    plan, ctx = prepare_bug(title, session_id=session_id, step=step, publisher=publisher)
    pubs = PublisherCache()
    try:
        target = None
        if add_to_duplicate:
            try:
                found = duplicates(plan, pubs(publisher))
                target = found[0] if found else None
            except PublishRetryableError:
                target = None
        if target is not None:
            plan = as_addition(plan, target)
        item = submit(plan)
        result = deliver(pubs, keys=[item.key], wait=wait)
    finally:
        pubs.close()
    done = next((i for i in result.sent if i.key == item.key), None)
    return {
        "key": item.key,
        "state": "sent" if done else "queued",
        "url": (done.remote or {}).get("url") if done else None,
        "signature": ctx.signature,
        "added_to": target.id if target else None,
    }
