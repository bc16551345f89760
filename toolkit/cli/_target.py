"""The options that name a device under test, shared by every command that talks to one.

``@target_options`` adds ``--target``, ``--lab``, ``--port``, ``--host``, ``--ssh-port``,
``--user``, ``--identity`` and ``--board`` to a command and hands them over as one
:class:`TargetArgs` (keyword ``target_args``); :meth:`TargetArgs.resolve` turns them into a
:class:`toolkit.targets.Target` the way every command does (``targets.resolve``, then the SSH
user and key given on the command line).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from toolkit.targets import Target

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class TargetArgs:
    """What the command line said about the target (``None``: not given)."""

    name: str | None = None
    lab: Path | None = None
    serial_url: str | None = None
    ssh_host: str | None = None
    ssh_port: int | None = None
    ssh_user: str | None = None
    identity: str | None = None
    board: str | None = None

    def resolve(self) -> Target:
        """The target these options name (see :func:`toolkit.targets.resolve`).

        ``--target labgrid:PLACE`` acquires the place through labgrid's coordinator
        (``LG_COORDINATOR``) for as long as the command runs: it is released when the command
        ends, fails or is interrupted (Ctrl-C), and a place someone else holds is refused
        naming who.
        """
        from toolkit import targets

        if self.name and self.name.startswith("labgrid:"):
            target = self._labgrid(self.name.partition(":")[2])
        else:
            target = targets.resolve(
                self.name,
                lab=self.lab,
                board=self.board,
                serial_url=self.serial_url,
                ssh_host=self.ssh_host,
                ssh_port=self.ssh_port,
            )
        if self.ssh_user:
            target.ssh_user = self.ssh_user
        if self.identity:
            target.identity = self.identity
        return target

    def _labgrid(self, place: str) -> Target:
        from toolkit import coordinator
        from toolkit.boards import DEFAULT_BOARD

        held = coordinator.acquire(place)
        click.get_current_context().call_on_close(lambda: coordinator.release(held))
        target: Target = coordinator.target_for(held, self.board or DEFAULT_BOARD)
        if self.ssh_host:
            target.ssh_host, target.ssh_port = self.ssh_host, self.ssh_port or 22
        return target


_OPTIONS = (
    click.option(
        "--target",
        "target_name",
        metavar="NAME",
        help="A running virtual sample, lab.toml:NAME, or labgrid:PLACE (acquired for the "
        "command's duration). Default: the running sample.",
    ),
    click.option(
        "--lab", type=click.Path(dir_okay=False, path_type=Path), help="Lab file for --target."
    ),
    click.option(
        "--port",
        "serial_url",
        metavar="URL",
        help="Serial port of an ad-hoc device: /dev/ttyUSB0, socket://H:P, rfc2217://H:P.",
    ),
    click.option("--host", "ssh_host", metavar="HOST", help="SSH host of an ad-hoc device."),
    click.option("--ssh-port", type=int, help="SSH port of the device."),
    click.option("--user", "ssh_user", help="SSH user (default: the board's, root)."),
    click.option("--identity", type=click.Path(dir_okay=False), help="SSH private key file."),
    click.option("--board", help="Board profile (default: the target's)."),
)


def target_options(func: F) -> F:
    """Add the target options to a click command; it receives them as ``target_args``."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        given = TargetArgs(
            name=kwargs.pop("target_name"), lab=kwargs.pop("lab"),
            serial_url=kwargs.pop("serial_url"), ssh_host=kwargs.pop("ssh_host"),
            ssh_port=kwargs.pop("ssh_port"), ssh_user=kwargs.pop("ssh_user"),
            identity=kwargs.pop("identity"), board=kwargs.pop("board"),
        )  # fmt: skip
        return func(*args, target_args=given, **kwargs)

    decorated: Any = wrapper
    for option in reversed(_OPTIONS):
        decorated = option(decorated)
    return decorated  # type: ignore[no-any-return]
