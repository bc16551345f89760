"""``routerkit firmware build|disk``: the reference firmware and the virtual sample's disk."""

from __future__ import annotations

from pathlib import Path

import click

from toolkit.boards import DEFAULT_BOARD
from toolkit.cli._app import App, emit, get_app, output_options


@click.command()
@click.option("--version", "version", required=True, help="Firmware version to build, e.g. 1.1.0.")
@click.option("--board", "-b", default=DEFAULT_BOARD, show_default=True, help="Board profile id.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Output directory (or .img file). Default: the routerkit cache.",
)
@click.option("--key", help="Secret signing key (name or .sec path). Default: local dev key.")
@click.option(
    "--refresh",
    is_flag=True,
    help="Ask the Debian mirror for newer guest packages (kernel, busybox, dropbear).",
)
@click.option(
    "--dev",
    is_flag=True,
    help="DEVELOPMENT image: the committed test key may log in as root. Local dev key "
    "only; marked in the metadata; never for a real device.",
)
@click.option(
    "--device-trust",
    "device_trust",
    multiple=True,
    metavar="KEY.pub",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Another signing key the flashed device will accept upgrades from "
    "(repeatable): how a fleet moves to a new key.",
)
@output_options
def build(
    version: str,
    board: str,
    out: Path | None,
    key: str | None,
    refresh: bool,
    dev: bool,
    device_trust: tuple[Path, ...],
) -> None:
    """Build the reference firmware image VERSION for BOARD, reproducibly.

    The same inputs give a byte-identical image. The first build downloads the arm64 guest
    packages (kernel, busybox, dropbear, signify) once; later builds work offline.

    The image holds no secret: the device makes its SSH host key at first boot, and root
    logins are granted by whoever flashes it (`routerkit flash` installs your key).

    \b
    Examples:
      routerkit firmware build --version 1.1.0 --out out/
      routerkit firmware build --version 1.2.0-nightly.3 --key nightly --json
    """
    from toolkit.firmware.build import build_image

    app = get_app()
    result = build_image(
        version,
        board,
        out=out,
        key=key,
        reporter=app.reporter(),
        refresh=refresh,
        dev=dev,
        device_trust=device_trust,
    )
    data = result.to_dict()

    def human(_app: App) -> None:
        click.echo(f"built {result.path}")
        click.echo(
            f"  version {result.version} for {result.board}, {result.size} bytes, "
            f"{result.seconds:.1f} s"
        )
        click.echo(f"  sha256  {result.sha256}")
        click.echo(f"  signed by {result.signer}" + ("" if key else " (local development key)"))
        if result.development:
            click.secho(
                "  DEVELOPMENT IMAGE: the committed TEST key can log in as root. "
                "Never flash it on a real device.",
                fg="red",
                bold=True,
            )

    emit(data, human)


@click.command()
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Disk image file to write.",
)
@click.option(
    "--version",
    "version",
    default="1.0.0",
    show_default=True,
    help="Firmware version for slot A (and slot B unless --slot-b).",
)
@click.option("--board", "-b", default=DEFAULT_BOARD, show_default=True, help="Board profile id.")
@click.option(
    "--slot-b",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Image file for slot B (default: the same version as slot A).",
)
@click.option("--active", type=click.Choice(["A", "B"]), default="A", show_default=True)
@output_options
def disk(out: Path, version: str, board: str, slot_b: Path | None, active: str) -> None:
    """Write a factory disk image for the virtual sample: MBR, boot partition, slots A and B."""
    from toolkit.firmware.build import build_image
    from toolkit.firmware.disk import make_disk

    app = get_app()
    reporter = app.reporter()
    result = build_image(version, board, reporter=reporter)
    make_disk(board, out, result.path, slot_b or result.path, active=active, reporter=reporter)
    data = {
        "path": str(out),
        "board": result.board,
        "active": active,
        "slots": {
            "A": {"image": str(result.path), "version": version},
            "B": {"image": str(slot_b or result.path), "version": None if slot_b else version},
        },
        "size": out.stat().st_size,
    }
    emit(data, f"wrote {out} (slot A: {version}, slot B: {slot_b or version}, active {active})")
