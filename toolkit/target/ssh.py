"""SSH to a device under test, with routerkit's trust rules and credentials.

:func:`connect_target` turns a :class:`toolkit.targets.Target` into a
:class:`toolkit.transport.ssh.SSHConnection` whose host-key check is
:func:`toolkit.hostkeys.check` under the target's identity (``board/name``), and whose
credentials are the target's key, a device password kept in the keyring, or routerkit's own
identity (the key ``routerkit flash`` authorizes). The transport below knows no trust rule and
no key store; this module gives it both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from toolkit.transport.ssh import HostKeyCheck, SSHConnection

if TYPE_CHECKING:
    from toolkit.hostkeys import Decision, HostKeyContext, HostKeyStore


def host_key_check(
    identity: str,
    host: str,
    port: int,
    *,
    context: HostKeyContext | None = None,
    store: HostKeyStore | None = None,
) -> HostKeyCheck:
    """The check an SSH connection applies to the key ``identity`` presents at ``host:port``:
    :func:`toolkit.hostkeys.check` against ``store`` (default: the user's), with ``context``."""
    from toolkit.hostkeys import HostKeyStore, check

    def decide(keytype: str, key: str) -> Decision:
        return check(
            store or HostKeyStore(), identity or f"{host}:{port}", keytype, key,
            host=host, port=port, context=context,
        )  # fmt: skip

    return decide


def announcer(identity: str, reporter: Any) -> Callable[[Decision], None]:
    """Tells ``reporter`` (if any) about a key trusted anew: first contact or a changed key."""

    def announce(decision: Decision) -> None:
        if reporter is None or decision.how == "known":
            return
        what = "first contact" if decision.first_contact else "host key changed"
        reporter.message(
            f"{what}: {identity} presents {decision.fingerprint}; trusted via {decision.how}",
            level="warning" if decision.how == "accept-new-hostkey" else "info",
        )

    return announce


def connect_target(
    target: Any,
    *,
    accept_new: bool = False,
    context: HostKeyContext | None = None,
    store: HostKeyStore | None = None,
    reporter: Any = None,
    connect_timeout: float = 10.0,
    connect: bool = True,
) -> SSHConnection:
    """An :class:`SSHConnection` to a :class:`toolkit.targets.Target`, host key checked under
    the target's identity (in ``store``, default the user's). A first-contact key is compared
    with the one the device's serial console reports only when ``context.serial_keys`` says how
    to read it (the journeys pass ``journeys.verify.host_key_context``)."""
    from toolkit.errors import ConfigError
    from toolkit.hostkeys import HostKeyContext, identity_of

    if not target.ssh_host:
        raise ConfigError(f"target {target.name} has no SSH address (ssh_host)")
    identity = identity_of(target.board, target.name)
    if context is None:
        context = HostKeyContext(accept_new=accept_new)
    host, port = str(target.ssh_host), int(target.ssh_port or 22)

    password = None
    key_file = target.identity
    if not key_file:
        # A device password kept in the keyring, else routerkit's own key (the one
        # `routerkit flash` authorizes on the devices it flashes).
        password = _keyring_password(identity)
        if password is None:
            from toolkit.identity import identity_path

            key_file = str(identity_path())
    conn = SSHConnection(
        host=host,
        port=port,
        user=target.ssh_user or "root",
        identity=identity,
        key_file=key_file,
        password=password,
        check_host_key=host_key_check(identity, host, port, context=context, store=store),
        connect_timeout=connect_timeout,
        on_hostkey=announcer(identity, reporter),
    )
    return conn.connect() if connect else conn


def _keyring_password(identity: str) -> str | None:
    """A device password from the system keyring (service ``routerkit-ssh``), never a file."""
    try:
        import keyring

        return keyring.get_password("routerkit-ssh", identity)
    except Exception:  # no backend: key-based login is the normal case anyway
        return None
