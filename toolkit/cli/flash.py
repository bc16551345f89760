"""``routerkit flash``: flash an image over serial (U-Boot) or SSH, then verify it."""

from __future__ import annotations

from pathlib import Path

import click

from toolkit.cli._app import App, emit, get_app, output_options
from toolkit.cli._target import TargetArgs, target_options


@click.command()
@click.argument("image", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option(
    "--via",
    type=click.Choice(["serial", "ssh"]),
    default="serial",
    show_default=True,
    help="Flash through the U-Boot console or over SSH with sysupgrade.",
)
@target_options
@click.option(
    "--path",
    "transfer_path",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "tftp", "ymodem", "xmodem", "gzip", "sftp", "scp", "cat"]),
    help="Transfer method; auto picks the fastest the bench offers.",
)
@click.option(
    "--channel",
    type=click.Choice(["nightly", "release"]),
    help="Pull the newest image of this channel first (instead of IMAGE).",
)
@click.option("--url", "channel_url", metavar="URL", help="Channel base URL (with --channel).")
@click.option(
    "--root",
    "channel_root",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Trusted TUF root.json of the channel (with --channel).",
)
@click.option(
    "--keep-settings", is_flag=True, help="Keep device settings across the upgrade (ssh)."
)
@click.option("--allow-downgrade", is_flag=True, help="Allow an older version. Loud; recorded.")
@click.option("--force-board", is_flag=True, help="Skip the board check. Loud; recorded.")
@click.option(
    "--accept-new-hostkey",
    is_flag=True,
    help="Accept a changed SSH host key when the device comes back from THIS flash "
    "(never for the device before it; shown and recorded).",
)
@click.option(
    "--authorized-key",
    "authorized_key",
    metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Public key (.pub) to let log in as root. Default: your routerkit SSH identity.",
)
@click.option(
    "--no-authorized-key",
    is_flag=True,
    help="Authorize no SSH key (console only, or whoever the device already trusts).",
)
@click.option("--timeout", type=float, help="Boot/reconnect timeout in seconds.")
@click.option(
    "--delta/--no-delta",
    default=None,
    help="Send only what the device does not already hold (the rest is copied on the "
    "device); the whole slot is verified either way. Default: on where the image crosses "
    "the serial line (YMODEM/XMODEM/gzip), off for TFTP and SSH (use --delta on a slow "
    "network).",
)
@click.option(
    "--session",
    "session_id",
    metavar="ID",
    help="Record into this session (e.g. the assembly's) instead of a new one.",
)
@output_options
def flash(
    image: Path | None,
    via: str,
    target_args: TargetArgs,
    transfer_path: str,
    channel: str | None,
    channel_url: str | None,
    channel_root: Path | None,
    keep_settings: bool,
    allow_downgrade: bool,
    force_board: bool,
    accept_new_hostkey: bool,
    authorized_key: Path | None,
    no_authorized_key: bool,
    timeout: float | None,
    delta: bool | None,
    session_id: str | None,
) -> None:
    """Flash IMAGE onto a sample and verify it.

    The image is checked (signature, board, compat_version, downgrade, size) before a single
    byte is sent. Only the inactive slot is written; the sample switches to it after the
    written data has been read back and verified, so a failure at any point leaves the
    previous firmware booting.

    Images carry no login key and no host key: the device makes its own SSH host key at first
    boot (routerkit reads it over the serial console), and the flash authorizes your SSH key
    (routerkit's identity, --identity's, or --authorized-key) in the device's own settings.

    \b
    Examples:
      routerkit flash out/es-virt-1.1.0.img                  # the running virtual sample, serial
      routerkit flash fw.img --via ssh --host 192.0.2.1
      routerkit flash fw.img --port rfc2217://bench:7000 --board es-virt
      routerkit flash --channel nightly --via ssh --json
    """
    from toolkit.errors import ConfigError
    from toolkit.journeys.flash import FlashOptions
    from toolkit.journeys.flash import flash as run_flash
    from toolkit.record import Journal

    app = get_app()
    target = target_args.resolve()
    if channel:
        if image is not None:
            raise ConfigError("give either IMAGE or --channel, not both")
        image = _pull(app, channel, channel_url, channel_root, target.board)
    if image is None:
        raise ConfigError("no image given", hint="pass IMAGE or --channel nightly")
    if not image.is_file():
        raise ConfigError(f"image {image} does not exist")
    if authorized_key is not None and no_authorized_key:
        raise ConfigError("give either --authorized-key or --no-authorized-key, not both")
    from toolkit import identity as ids

    key_line = None
    if authorized_key is not None:
        key_line = ids.read_authorized_key(authorized_key)
    elif target.identity:
        key_line = ids.public_line(target.identity)
    if allow_downgrade:
        app.console.print("[bold yellow]--allow-downgrade: an older image may be flashed[/]")
    if force_board:
        app.console.print("[bold red]--force-board: the board check is skipped[/]")
    options = FlashOptions(
        via=via,
        path=transfer_path,
        allow_downgrade=allow_downgrade,
        force_board=force_board,
        keep_settings=keep_settings,
        accept_new_hostkey=accept_new_hostkey,
        interactive=app.interactive,
        timeout=timeout,
        authorize=not no_authorized_key,
        authorized_key=key_line,
        delta=delta,
    )
    journal = Journal.open(session_id) if session_id else None
    result = run_flash(image, target, options, app.reporter(), journal)

    def human(app: App) -> None:
        click.echo(
            f"flashed {result.version_before or '?'} → {result.version_after} on {result.target} "
            f"(slot {result.slot}) via {result.via}/{result.path}: {result.bytes} bytes in "
            f"{result.seconds:.1f} s"
            + (f", resumed from byte {result.resumed_from}" if result.resumed_from else "")
            + (
                f", {result.reused_bytes} of {result.image_size} image bytes already on the "
                "device (delta)"
                if result.reused_bytes
                else ""
            )
        )
        click.echo(f"session: {result.session}")
        if fixes:
            _say_fixes(str(result.version_after), fixes)

    fixes = _claimed_fixes(str(result.version_after or ""), target.board, result.image_sha256)
    emit({**result.to_dict(), "fixes_yours": fixes}, human)


def _claimed_fixes(version: str, board: str, sha256: str) -> list[dict[str, object]]:
    """Reports you filed, voted on or added "me too" to that this build's signed release
    notes claim to fix (from the channel metadata already on this machine; never fails the
    flash)."""
    from toolkit.errors import RouterkitError
    from toolkit.journeys.loop import after_flash

    if not version:
        return []
    try:
        return after_flash(version, board, sha256=sha256 or None)
    except (RouterkitError, OSError, ValueError):
        return []


def _say_fixes(version: str, fixes: list[dict[str, object]]) -> None:
    from toolkit.i18n import t

    click.echo(t("Build {version} claims to fix report(s) you care about:", version=version))
    for fix in fixes:
        click.echo(f"  #{fix['id']}")
    for fix in fixes:
        click.echo(
            "  "
            + t("Tell the community: routerkit confirm {id} --fixed | --still-broken", id=fix["id"])
        )


def _pull(app: App, channel: str, url: str | None, root: Path | None, board: str) -> Path:
    from toolkit.firmware import channels

    pulled = channels.pull(channel, board, url=url, root=root, reporter=app.reporter())
    return Path(pulled.path)
