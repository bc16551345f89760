"""``routerkit vote|request|confirm|top`` and ``routerkit firmware changes``: the weekly loop.

Uploads (votes, requests, confirmations) are shown before they leave, need consent like
every share, and go through the outbox: offline they wait, and nothing is posted twice.
Messages are in English or Simplified Chinese (``--lang``, else the locale).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from toolkit.cli._app import App, emit, get_app, output_options
from toolkit.i18n import current, localized, t

F = TypeVar("F", bound=Callable[..., Any])


def lang_option(func: F) -> F:
    """``--lang en|zh-CN`` (default: the locale, e.g. LANG=zh_CN.UTF-8)."""

    @click.option(
        "--lang",
        type=click.Choice(["en", "zh-CN"]),
        help="Language of messages (default: from the locale).",
    )
    @functools.wraps(func)
    def wrapper(*args: Any, lang: str | None, **kwargs: Any) -> Any:
        from toolkit import i18n

        i18n.choose(lang)
        try:
            return func(*args, **kwargs)
        finally:  # the choice is this command's only (tests and embedders call many in a row)
            i18n.choose(None)

    return wrapper  # type: ignore[return-value]


_to = click.option(
    "--to", "publisher", type=click.Choice(["roundup", "discourse"]), help="Where to post."
)
#: votes and confirmations live on the Roundup tracker (voters, confirmation counts)
_to_tracker = click.option(
    "--to", "publisher", type=click.Choice(["roundup"]), help="The tracker (Roundup)."
)
_preview = click.option("--preview", is_flag=True, help="Show the exact payload and stop.")
_wait = click.option(
    "--wait",
    type=float,
    default=20.0,
    show_default=True,
    help="Seconds to keep retrying before leaving it queued.",
)


def _publisher(name: str | None, *, tracker_only: bool = False) -> str:
    from toolkit.community.config import community_config
    from toolkit.errors import ConfigError

    chosen = str(name or community_config().get("publisher") or "roundup")
    if tracker_only and chosen != "roundup":
        raise ConfigError(
            f"votes and confirmations live on the Roundup tracker, not on {chosen}",
            hint="--to roundup",
        )
    return chosen


def _send(plan: Any, preview: bool, question: str, wait: float) -> dict[str, Any] | None:
    """Show, ask, queue and deliver one plan; None after --preview."""
    from toolkit.cli.share import deliver_and_report, require_consent, show_payload
    from toolkit.journeys.share import submit

    app = get_app()
    info = plan.preview()
    if not app.json or preview:
        show_payload(info)
    if preview:
        emit({"ok": True, "preview": True, **info}, lambda a: None)
        return None
    require_consent(app, question)
    from toolkit.community.outbox import Outbox

    before = Outbox().get(plan.item.key, missing_ok=True)
    already = before is not None and before.state == "sent"
    item = submit(plan)
    outcome = deliver_and_report([item.key], wait)
    sent = Outbox().get(item.key)
    remote = dict((sent.remote if sent else None) or {})
    if already:  # sent by an earlier run: nothing was posted now
        remote["reused"] = True
    return {
        "ok": True,
        "key": item.key,
        "publisher": item.publisher,
        **outcome,
        "remote": remote,
        "already_sent": already,
    }


@localized
@click.command()
@click.argument("report")
@_to_tracker
@_preview
@_wait
@lang_option
@output_options
def vote(report: str, publisher: str | None, preview: bool, wait: float) -> None:
    """Vote for REPORT (a bug or a request): one vote per tester, however often you run it.

    \b
    Examples:
      routerkit vote 12
      routerkit vote '#12' --yes --json
      routerkit top
    """
    from toolkit.journeys.loop import prepare_vote

    plan = prepare_vote(report, _publisher(publisher, tracker_only=True))
    rid = plan.item.payload["target"]
    result = _send(plan, preview, t("Vote for #{id}?", id=rid), wait)
    if result is None:
        return
    remote = result["remote"]

    def human(a: App) -> None:
        if result["state"] != "sent":
            click.echo(
                t(
                    "vote queued (not sent yet: {error}); `routerkit outbox retry` sends it later",
                    error=result.get("error"),
                )
            )
        elif remote.get("reused"):
            click.echo(
                t(
                    "you had already voted for #{id} ({votes} vote(s))",
                    id=rid,
                    votes=remote.get("votes"),
                )
            )
        else:
            click.echo(t("voted for #{id}: {votes} vote(s)", id=rid, votes=remote.get("votes")))

    emit({**result, "report": rid, "votes": remote.get("votes")}, human)


@localized
@click.command()
@click.argument("title")
@click.option("--detail", default="", help="What you would like and why (Markdown).")
@click.option("--board", help="The board it is about (default: none).")
@_to
@_preview
@_wait
@lang_option
@output_options
def request(
    title: str, detail: str, board: str | None, publisher: str | None, preview: bool, wait: float
) -> None:
    """File a feature request titled TITLE; others vote on it with `routerkit vote`.

    \b
    Examples:
      routerkit request "Fan curve in the web UI"
      routerkit request "Fan curve" --detail "Quieter at idle" --board es-virt --yes --json
    """
    from toolkit.journeys.loop import prepare_request

    plan = prepare_request(title, detail, board=board, publisher=_publisher(publisher))
    result = _send(plan, preview, t("File this request?"), wait)
    if result is None:
        return

    def human(a: App) -> None:
        if result["state"] == "sent":
            click.echo(t("request filed: {url}", url=result["url"]))
        else:
            click.echo(
                t(
                    "queued (not sent yet: {error}); `routerkit outbox retry` uploads it later",
                    error=result.get("error"),
                )
            )

    emit({**result, "report": result["remote"].get("id")}, human)


@localized
@click.command()
@click.argument("report")
@click.option("--fixed", "verdict", flag_value="fixed", help="The build fixes it on your bench.")
@click.option(
    "--still-broken", "verdict", flag_value="still-broken", help="It still happens: reopens it."
)
@click.option("--build", help="The build you tested (default: the version last flashed/verified).")
@click.option("--session", "session_id", metavar="ID", help="Session with the bench context.")
@_to_tracker
@_preview
@_wait
@lang_option
@output_options
def confirm(
    report: str,
    verdict: str | None,
    build: str | None,
    session_id: str | None,
    publisher: str | None,
    preview: bool,
    wait: float,
) -> None:
    """Tell the tracker whether the build on your bench fixes REPORT.

    Board, firmware, slot, the last verify and the selftest are attached for you (redacted, and
    shown before anything is sent). The tracker counts one verdict per tester and build:
    "verified fixed by N testers on build X"; a still-broken verdict reopens the report.

    \b
    Examples:
      routerkit confirm 12 --fixed
      routerkit confirm 12 --still-broken --build 1.2.0-nightly.3 --yes --json
    """
    from toolkit.errors import ConfigError
    from toolkit.journeys.loop import prepare_confirm

    if verdict is None:
        raise ConfigError("say --fixed or --still-broken")
    plan = prepare_confirm(
        report,
        verdict,
        build=build,
        session_id=session_id,
        publisher=_publisher(publisher, tracker_only=True),
    )
    fields = plan.item.payload["fields"]
    result = _send(plan, preview, t("Send this confirmation to the tracker?"), wait)
    if result is None:
        return
    remote = result["remote"]
    rid = plan.item.payload["target"]

    def human(a: App) -> None:
        if result["state"] != "sent":
            click.echo(
                t(
                    "queued (not sent yet: {error}); `routerkit outbox retry` uploads it later",
                    error=result.get("error"),
                )
            )
            return
        word = t("fixed") if verdict == "fixed" else t("still broken")
        click.echo(
            t(
                "confirmed #{id} {verdict} on build {build}: {verified}",
                id=rid,
                verdict=word,
                build=fields["build"],
                verified=remote.get("verified") or "",
            )
        )

    emit(
        {
            **result,
            "report": rid,
            "build": fields["build"],
            "verdict": verdict,
            "verified": remote.get("verified"),
            "status": remote.get("status"),
        },
        human,
    )


def reading_publisher(name: str | None) -> Any:
    """A publisher that can read reports back (the Roundup tracker)."""
    from toolkit.community.publishers import get_publisher
    from toolkit.errors import ConfigError

    name = _publisher(name)
    pub = get_publisher(name)
    if not hasattr(pub, "reports"):
        pub.close()
        raise ConfigError(
            f"{name} cannot list reports and votes; the weekly loop reads a Roundup tracker",
            hint="--to roundup",
        )
    return pub


@localized
@click.command()
@click.option(
    "--kind", type=click.Choice(["all", "bug", "request"]), default="all", show_default=True
)
@click.option("--limit", "-n", type=click.IntRange(1, 1000), default=10, show_default=True)
@click.option("--to", "publisher", type=click.Choice(["roundup"]), help="Tracker to read.")
@lang_option
@output_options
def top(kind: str, limit: int, publisher: str | None) -> None:
    """List the most-voted open requests and bugs.

    \b
    Examples:
      routerkit top
      routerkit top --kind request -n 5 --json
    """
    from toolkit.cli.firmware_trust import printable
    from toolkit.journeys.loop import my_reports
    from toolkit.journeys.loop import top as pick

    pub = reading_publisher(publisher)
    try:
        reports = pub.reports(None if kind == "all" else kind)
    finally:
        pub.close()
    best = pick(reports, limit)
    mine = my_reports()
    for r in best:
        r["yours"] = mine.get(r["id"], [])

    def human(a: App) -> None:
        if not best:
            click.echo(t("no open requests or bugs"))
        for r in best:
            yours = (
                " " + t("(yours: {how})", how=", ".join(_how(h) for h in r["yours"]))
                if r["yours"]
                else ""
            )
            click.echo(
                printable(
                    f"#{r['id']:<5} {r['votes']:>3} {t('votes')}  {t(r['kind']):<8} "
                    f"{r['status']:<11} {r['title']}{yours}"
                )
            )

    emit({"ok": True, "reports": best}, human)


def _how(how: str) -> str:
    return t({"me-too": "me too"}.get(how, how))


@localized
@click.command()
@click.option(
    "--channel", type=click.Choice(["nightly", "release"]), default="nightly", show_default=True
)
@click.option("--since", metavar="VERSION", help="Only builds newer than VERSION.")
@click.option("--board", "-b", help="Only builds for this board.")
@click.option("--url", help="Channel base URL (default: $ROUTERKIT_CHANNEL_URL or channel.toml).")
@click.option(
    "--root",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Trusted root.json (overrides the configured and bundled roots).",
)
@lang_option
@output_options
def changes(
    channel: str, since: str | None, board: str | None, url: str | None, root: Path | None
) -> None:
    """Show the signed release notes of a channel: changes and the reports each build fixes.

    Reports you filed, voted on, added "me too" to or confirmed are marked.

    \b
    Examples:
      routerkit firmware changes
      routerkit firmware changes --channel nightly --since 1.1.0 --json
    """
    from toolkit.cli.firmware_trust import printable
    from toolkit.firmware.channels import list_images
    from toolkit.firmware.versions import parse_version
    from toolkit.journeys.loop import changes as pick
    from toolkit.journeys.loop import my_reports

    if since:
        parse_version(since)  # a typo is a clear error, not an empty list
    found = pick(list_images(channel, board, url=url, root=root), my_reports(), since)

    def human(a: App) -> None:
        if not found:
            click.echo(t("no release notes in {channel}", channel=channel))
        for c in found:
            notes = c.notes
            zh = current() == "zh-CN"
            summary = (notes.get("summary_zh") if zh else None) or notes.get("summary")
            head = f"{c.version}  {c.board}  {c.build_date or ''}".rstrip()
            click.echo(printable(head + (f"  — {summary}" if summary else "")))
            lines = (notes.get("changes_zh") if zh else None) or notes.get("changes")
            for line in lines or []:
                click.echo(printable(f"    • {line}"))
            for key in ("fixes", "touches"):
                for rid in notes.get(key) or []:
                    mark = ""
                    if rid in c.yours:
                        mark = "  ★ " + t(
                            "(yours: {how})", how=", ".join(_how(h) for h in c.yours[rid])
                        )
                    click.echo(printable(f"    {t(key)} #{rid}{mark}"))

    emit({"ok": True, "channel": channel, "builds": [c.to_dict() for c in found]}, human)
