"""``routerkit bug``: file a bug report with the context collected for you."""

from __future__ import annotations

import re
from pathlib import Path

import click

from toolkit.cli._app import App, emit, get_app, output_options


@click.command()
@click.argument("title", required=False)
@click.option(
    "--from-bisect",
    "from_bisect",
    is_flag=False,
    flag_value="latest",
    default=None,
    metavar="[ID]",
    help="Report what a bisect found (default: the newest bisect): the first bad build in the "
    "title, its summary, the failing test's output and the console recording attached.",
)
@click.option("--step", metavar="N", help="The assembly step that failed (number or id).")
@click.option(
    "--attach",
    "attach",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file to attach (repeatable): text is redacted, pictures are rebuilt without metadata, "
    "anything else is refused unless --raw.",
)
@click.option(
    "--raw",
    is_flag=True,
    help="Attach files that are neither text nor pictures UNCHANGED (not checked for secrets).",
)
@click.option(
    "--session", "session_id", metavar="ID", help="Session to report on (default: the newest)."
)
@click.option(
    "--to", "publisher", type=click.Choice(["roundup", "discourse"]), help="Where to file it."
)
@click.option(
    "--new", "force_new", is_flag=True, help="File a new report even if a duplicate exists."
)
@click.option(
    "--add-to", "add_to", metavar="ID", help="Add to this existing report instead of filing anew."
)
@click.option(
    "--target",
    "target_name",
    metavar="NAME",
    help="Device to read dmesg/logread from over SSH (default: the running virtual sample).",
)
@click.option("--no-device", is_flag=True, help="Do not contact the device for logs.")
@click.option("--preview", is_flag=True, help="Show the exact payload and stop.")
@click.option(
    "--wait",
    type=float,
    default=20.0,
    show_default=True,
    help="Seconds to keep retrying before leaving it queued.",
)
@output_options
def bug(
    title: str | None,
    from_bisect: str | None,
    step: str | None,
    attach: tuple[Path, ...],
    raw: bool,
    session_id: str | None,
    publisher: str | None,
    force_new: bool,
    add_to: str | None,
    target_name: str | None,
    no_device: bool,
    preview: bool,
    wait: float,
) -> None:
    """File a bug report titled TITLE.

    Board, hardware revision, firmware version and slot, the last flash and verify results,
    the console tail, the selftest JSON and the failing step are collected from the session.
    A duplicate signature (board, firmware, step, error class) finds existing reports with
    the same failure; you can add to one of those instead of filing anew.

    \b
    Examples:
      routerkit bug "Fan does not spin" --step 3 --attach fan.jpg
      routerkit bug "Verify fails after flash" --to roundup --yes --json
      routerkit bug "Crash dump" --attach core.bin --raw
      routerkit bug --from-bisect --yes
    """
    from toolkit.cli.share import deliver_and_report, require_consent, show_payload
    from toolkit.community.config import community_config
    from toolkit.community.publishers import PublisherCache, Remote
    from toolkit.errors import PublishRetryableError
    from toolkit.journeys.bug import as_addition, duplicates, prepare_bug
    from toolkit.journeys.share import submit

    app = get_app()
    if from_bisect is not None:
        from toolkit.journeys.bisect import bug_material

        material = bug_material(None if from_bisect == "latest" else from_bisect)
        title = title or material.title
        session_id = material.session
        step = step or "bisect"
        attach = (*attach, *material.attach)
    if not title:
        from toolkit.errors import ConfigError

        raise ConfigError("a bug report needs a TITLE", hint='routerkit bug "what is wrong"')
    publisher = publisher or community_config().get("publisher") or "roundup"
    conn = None if no_device else _device_shell(app, target_name)
    remote = (lambda cmd: conn.run(cmd, timeout=15).stdout) if conn is not None else None
    try:
        plan, ctx = prepare_bug(
            title,
            session_id=session_id,
            step=step,
            attach=list(attach),
            raw=raw,
            publisher=publisher,
            remote=remote,
        )
    finally:
        if conn is not None:
            conn.close()
    found: list[Remote] = []
    if add_to:
        found = [Remote(re.sub(r"^(#|issue)", "", add_to), "")]
    elif not force_new and not preview:
        pubs = PublisherCache()
        try:
            found = duplicates(plan, pubs(publisher))
        except PublishRetryableError as err:
            app.reporter().message(
                f"cannot search for duplicates now ({err}); filing a new report", "warning"
            )
        finally:
            pubs.close()
    target = None
    if found and not force_new:
        if add_to or app.yes or not app.interactive:
            target = found[0]
        else:
            click.echo(f"{len(found)} report(s) with the same signature {ctx.signature}:", err=True)
            for r in found[:5]:
                click.echo(f"  #{r.id} {r.title} {r.url}", err=True)
            if click.confirm(
                f"Add your report to #{found[0].id} instead of filing a new one?",
                default=True,
                err=True,
            ):
                target = found[0]
    if target is not None:
        plan = as_addition(plan, target)
    info = plan.preview()
    if (
        app.json and not preview
    ):  # show_payload prints the warnings otherwise; stderr keeps stdout JSON
        for warning in plan.warnings:
            click.echo(f"! {warning}", err=True)
    if not app.json or preview:
        show_payload(info)
    if preview:
        emit({"ok": True, "preview": True, "signature": ctx.signature, **info}, lambda a: None)
        return
    require_consent(
        app,
        "Add this to the existing report?" if target else f"File this bug report on {publisher}?",
    )
    item = submit(plan)
    outcome = deliver_and_report([item.key], wait)
    result = {
        "ok": True,
        "key": item.key,
        "signature": ctx.signature,
        "publisher": publisher,
        "added_to": target.id if target else None,
        "duplicates": [r.id for r in found],
        "warnings": plan.warnings,
        **outcome,
    }

    def human(a: App) -> None:
        if outcome["state"] == "sent":
            click.echo(f"{'added to' if target else 'filed'}: {outcome['url']}")
        else:
            click.echo(
                f"queued (not sent yet: {outcome.get('error')}); `routerkit outbox retry` uploads it later"
            )

    emit(result, human)


def _device_shell(app: App, target_name: str | None):  # type: ignore[no-untyped-def]
    """An SSH connection to the device when one is reachable, else None (logs are a bonus)."""
    from toolkit.errors import RouterkitError

    try:
        from toolkit import targets
        from toolkit.journeys.verify import host_key_context
        from toolkit.target.ssh import connect_target

        target = targets.resolve(target_name)
        if not target.ssh_host:
            return None
        return connect_target(
            target, context=host_key_context(target), reporter=app.reporter(), connect_timeout=5.0
        )
    except (RouterkitError, ImportError, OSError) as err:
        if target_name:  # asked for explicitly: say why there are no device logs
            app.reporter().message(f"no device logs: {err}", "warning")
        return None
