"""``routerkit firmware``: build, inspect, verify, publish, list and pull images.

The subcommands live in two modules (building in ``firmware_build``, trust and channels in
``firmware_trust``) and are imported only when used.
"""

from __future__ import annotations

import click

from toolkit.cli import LazyGroup

FIRMWARE_COMMANDS: dict[str, tuple[str, str, str]] = {
    "build": (
        "toolkit.cli.firmware_build",
        "build",
        "Build a reference firmware image (reproducible).",
    ),
    "disk": (
        "toolkit.cli.firmware_build",
        "disk",
        "Write a factory disk image for the virtual sample.",
    ),
    "inspect": ("toolkit.cli.firmware_trust", "inspect", "Show everything about an image."),
    "verify": (
        "toolkit.cli.firmware_trust",
        "verify",
        "Check signature, board, compat, hashes, size.",
    ),
    "publish": (
        "toolkit.cli.firmware_trust",
        "publish",
        "Publish an image to a TUF channel repository.",
    ),
    "list": ("toolkit.cli.firmware_trust", "list_", "List the images of a channel."),
    "changes": (
        "toolkit.cli.loop",
        "changes",
        "Release notes of a channel: what each build fixes (yours marked).",
    ),
    "pull": (
        "toolkit.cli.firmware_trust",
        "pull",
        "Download and verify the newest image of a channel.",
    ),
}


@click.group(cls=LazyGroup, lazy=FIRMWARE_COMMANDS)
def firmware() -> None:
    """Build, inspect, verify, publish and pull firmware images.

    \b
    Examples:
      routerkit firmware build --version 1.1.0 --out out/
      routerkit firmware inspect out/es-virt-1.1.0.img
      routerkit firmware verify out/es-virt-1.1.0.img --board es-virt
      routerkit firmware pull --channel nightly --board es-virt
    """
