"""``routerkit hosts``: the SSH host keys routerkit trusts, per device identity."""

from __future__ import annotations

from pathlib import Path

import click

from toolkit.cli._app import App, confirm, emit, get_app, output_options


@click.group()
def hosts() -> None:
    """List, trust and forget SSH host keys (routerkit's own known_hosts).

    Keys are stored per device identity (board/target), not per address, in
    <config>/known_hosts (OpenSSH format: use it with `ssh -o HostKeyAlias=ID`).
    """


@hosts.command("list")
@output_options
def list_() -> None:
    """Show every trusted key, how it was trusted and where it was last seen."""
    from toolkit.hostkeys import HostKeyStore

    store = HostKeyStore()
    keys = store.list()

    def human(app: App) -> None:
        if not keys:
            click.echo(f"no trusted host keys ({store.known_hosts})")
            return
        for k in keys:
            where = f"{k.host}:{k.port}" if k.host else "-"
            click.echo(
                f"{k.identity:28} {k.keytype:12} {k.fingerprint}  via {k.source}  last seen {where} {k.last_seen or ''}"
            )

    emit({"known_hosts": str(store.known_hosts), "keys": [k.to_dict() for k in keys]}, human)


def _resolve(
    name: str | None, lab: Path | None, host: str | None, port: int | None, board: str | None
):  # type: ignore[no-untyped-def]
    from toolkit import targets

    return targets.resolve(name, lab=lab, board=board, ssh_host=host, ssh_port=port)


@hosts.command()
@click.argument("name", required=False)
@click.option("--lab", type=click.Path(dir_okay=False, path_type=Path), help="Lab file for NAME.")
@click.option("--host", help="SSH host (an ad-hoc device).")
@click.option("--ssh-port", type=int, help="SSH port.")
@click.option("--board", help="Board profile (default: the target's).")
@click.option("--fingerprint", help="Trust only if the device presents this SHA256:… fingerprint.")
@click.option(
    "--via-serial", is_flag=True, help="Trust only if the serial console reports the same key."
)
@output_options
def trust(
    name: str | None,
    lab: Path | None,
    host: str | None,
    ssh_port: int | None,
    board: str | None,
    fingerprint: str | None,
    via_serial: bool,
) -> None:
    """Trust the key a device presents now (first contact, or after `hosts forget`).

    Images announce no host key (each device makes its own at first boot), so the anchors are
    the device's serial console (--via-serial) or you: compare the fingerprint with
    `rk-settings hostkey` on the device's console and pass --fingerprint, or answer the prompt.

    Without --fingerprint/--via-serial the fingerprint is shown and you are asked;
    under --yes it is trusted as shown (the explicit choice of whoever runs the script).
    It never replaces a different key already trusted for the device, --yes or not: that is
    what a man in the middle would present. Run `routerkit hosts forget` first if the device
    really was reflashed. The same key again is a no-op.
    """
    from toolkit.errors import HostKeyError
    from toolkit.hostkeys import HostKeyStore, identity_of, parse_key_line
    from toolkit.hostkeys import fingerprint as fp_of
    from toolkit.transport.ssh import fetch_host_key

    app = get_app()
    target = _resolve(name, lab, host, ssh_port, board)
    if not target.ssh_host:
        raise HostKeyError(f"target {target.name} has no SSH address")
    identity = identity_of(target.board, target.name)
    keytype, key = fetch_host_key(target.ssh_host, int(target.ssh_port))
    presented = fp_of(key)
    store = HostKeyStore()
    stored = store.get(identity)
    if stored is not None and stored.matches(keytype, key):
        emit(
            {**stored.to_dict(), "changed": False},
            f"already trusted {stored.identity}: {stored.keytype} {stored.fingerprint} (via {stored.source})",
        )
        return
    if stored is not None:
        raise HostKeyError(
            f"host key: {identity} already has a trusted key ({stored.keytype} {stored.fingerprint}) "
            f"but {target.ssh_host}:{target.ssh_port} presents {keytype} {presented}: refused, "
            "nothing was changed",
            hint=f"if the device was really reflashed, run `routerkit hosts forget {identity}` first",
        )
    source = "user"
    if fingerprint:
        if fingerprint.strip() != presented:
            raise HostKeyError(
                f"host key: {identity} presents {presented}, not {fingerprint}: refused"
            )
        source = "user-fingerprint"
    elif via_serial:
        from toolkit.journeys.verify import serial_host_keys

        lines = serial_host_keys(target)
        if not any(parse_key_line(line) == (keytype, key) for line in lines):
            raise HostKeyError(
                f"host key: {identity} presents {presented}, its serial console reports another key: refused"
            )
        source = "serial-console"
    else:
        app.console.print(
            f"{identity} at {target.ssh_host}:{target.ssh_port} presents {keytype} {presented}"
        )
        if not confirm(f"Trust this key for {identity}?"):
            raise HostKeyError("not trusted")
    rec = store.trust(
        identity, keytype, key, source=source, host=target.ssh_host, port=int(target.ssh_port)
    )
    emit(
        {**rec.to_dict(), "changed": True},
        f"trusted {rec.identity}: {rec.keytype} {rec.fingerprint} (via {rec.source})",
    )


@hosts.command()
@click.argument("name")
@click.option("--board", default=None, help="Board of NAME (default: the one key stored for NAME).")
@click.option("--lab", type=click.Path(dir_okay=False, path_type=Path), help="Lab file for NAME.")
@output_options
def forget(name: str, board: str | None, lab: Path | None) -> None:
    """Forget a device's key; the next contact is a first contact again.

    NAME is a target name (its board from --board or --lab; without them, the one key stored
    for that name, whatever its board) or an identity as `hosts list` shows it (board/name).
    """
    from toolkit.hostkeys import HostKeyStore, identity_of

    store = HostKeyStore()
    if "/" in name:
        identity = name
    elif lab is not None or board is not None:
        identity = identity_of(board or _resolve(name, lab, None, None, None).board, name)
    else:
        stored = [k.identity for k in store.list() if k.identity.rsplit("/", 1)[-1] == name]
        if len(stored) > 1:
            raise click.UsageError(
                f"keys of several boards are stored for {name!r}: {', '.join(sorted(stored))}; "
                "name one as board/name, or add --board"
            )
        identity = stored[0] if stored else name
    rec = store.forget(identity)
    emit({"forgotten": rec.to_dict()}, f"forgot {rec.identity} ({rec.fingerprint})")
