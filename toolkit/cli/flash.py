"""``routerkit flash``: flash an image over serial (U-Boot) or SSH, then verify it."""

from __future__ import annotations

from pathlib import Path

import click

from toolkit.cli._app import App, emit, get_app, output_options


@click.command()
@click.argument("image", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option(
    "--via",
    type=click.Choice(["serial", "ssh"]),
    default="serial",
    show_default=True,
    help="Flash through the U-Boot console or over SSH with sysupgrade.",
)
@click.option(
    "--target",
    "target_name",
    metavar="NAME",
    help="A running virtual sample, or lab.toml:NAME. Default: the running sample.",
)
@click.option(
    "--lab", type=click.Path(dir_okay=False, path_type=Path), help="Lab file for --target."
)
@click.option(
    "--port",
    "serial_url",
    metavar="URL",
    help="Serial port: /dev/ttyUSB0, socket://H:P, rfc2217://H:P.",
)
@click.option("--host", "ssh_host", metavar="HOST", help="SSH host of the device.")
@click.option("--ssh-port", type=int, help="SSH port of the device.")
@click.option("--user", "ssh_user", help="SSH user (default: the board's, root).")
@click.option("--identity", type=click.Path(dir_okay=False), help="SSH private key file.")
@click.option("--board", help="Board profile (default: the target's).")
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
    "--session",
    "session_id",
    metavar="ID",
    help="Record into this session (e.g. the assembly's) instead of a new one.",
)
@output_options
def flash(
    image: Path | None,
    via: str,
    target_name: str | None,
    lab: Path | None,
    serial_url: str | None,
    ssh_host: str | None,
    ssh_port: int | None,
    ssh_user: str | None,
    identity: str | None,
    board: str | None,
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
    from toolkit import targets
    from toolkit.errors import ConfigError
    from toolkit.journeys.flash import FlashOptions
    from toolkit.journeys.flash import flash as run_flash
    from toolkit.record import Journal

    app = get_app()
    target = targets.resolve(
        target_name,
        lab=lab,
        board=board,
        serial_url=serial_url,
        ssh_host=ssh_host,
        ssh_port=ssh_port,
    )
    if ssh_user:
        target.ssh_user = ssh_user
    if identity:
        target.identity = identity
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
    )
    journal = Journal.open(session_id) if session_id else None
    result = run_flash(image, target, options, app.reporter(), journal)

    def human(app: App) -> None:
        click.echo(
            f"flashed {result.version_before or '?'} → {result.version_after} on {result.target} "
            f"(slot {result.slot}) via {result.via}/{result.path}: {result.bytes} bytes in "
            f"{result.seconds:.1f} s"
            + (f", resumed from byte {result.resumed_from}" if result.resumed_from else "")
        )
        click.echo(f"session: {result.session}")

    emit(result.to_dict(), human)


def _pull(app: App, channel: str, url: str | None, root: Path | None, board: str) -> Path:
    from toolkit.firmware import channels

    pulled = channels.pull(channel, board, url=url, root=root, reporter=app.reporter())
    return Path(pulled.path)
