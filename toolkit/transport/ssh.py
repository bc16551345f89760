"""SSH to a device: paramiko with routerkit's own host keys, commands, and fast uploads.

Constructing an :class:`SSHConnection` records parameters; the first use connects (fabric's
lazy model). Each failure names its step, so a tester knows where to look:

- ``TCP``      → :class:`HostUnreachableError` (nothing listens, no route, timeout; or the
  port answers but no SSH server speaks — a device still booting behind QEMU's port forward)
- host key     → :class:`HostKeyError` (decided by the connection's ``check_host_key``, *before*
  any credential is sent; paramiko's ``RejectPolicy`` is the base: nothing is auto-added, and a
  connection given no check refuses every key). :func:`toolkit.target.ssh.connect_target`
  gives it routerkit's trust rules (:func:`toolkit.hostkeys.check`): this layer knows none.
- ``auth``     → :class:`AuthError` (wrong key or password)
- ``upload``   → :class:`TransferError` (link lost, device-side write failed)

Uploads (SFTP ▸ legacy scp ▸ ``cat >``, dropbear's window) live in
:mod:`toolkit.transport.ssh_upload`; the chacha20-poly1305 cipher paramiko lacks, in
:mod:`toolkit.transport.chacha`.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.errors import (
    AuthError,
    DeviceCommandError,
    HostKeyError,
    HostUnreachableError,
    SSHError,
)
from toolkit.transport.ssh_upload import (
    MAX_PACKET,
    WINDOW,
    Progress,
    Uploader,
    UploadResult,
    paramiko_error,
)

if TYPE_CHECKING:
    import paramiko

#: Decides on the key a server presents, ``(keytype, base64) -> decision``, inside the
#: handshake and before any credential is sent: returns what the caller wants recorded as
#: ``SSHConnection.hostkey``, or raises :class:`HostKeyError`.
HostKeyCheck = Callable[[str, str], Any]

_NULL_LOG = logging.NullHandler()
log = logging.getLogger(__name__)

#: Ciphers in the order we offer them. The device's CPU limits an upload (it decrypts every
#: byte): dropbear (Debian) offers chacha20-poly1305 and aes-ctr but no GCM, and without AES
#: instructions chacha20 costs it ~40 % less CPU per byte (toolkit.transport.chacha adds it
#: to paramiko). AES-128 does 10 rounds to AES-256's 14.
CIPHERS: tuple[str, ...] = (
    "chacha20-poly1305@openssh.com",
    "aes128-gcm@openssh.com",
    "aes128-ctr",
    "aes256-gcm@openssh.com",
    "aes256-ctr",
)


@dataclass
class RunResult:
    """The outcome of one command on the device (fabric's Result, smaller)."""

    command: str
    exit_status: int  # -1: the connection dropped before the command reported its status
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    @property
    def output(self) -> str:
        """stdout then stderr, as a console shell's result reads (one interface for both)."""
        return self.stdout + (
            ("\n" if self.stdout and not self.stdout.endswith("\n") else "") + self.stderr
            if self.stderr
            else ""
        )

    def check(self, what: str | None, where: str) -> None:
        """:class:`DeviceCommandError` naming the command, the device and the output's tail
        when the status is not 0 (``run(check=True)`` of real and fake connections)."""
        if not self.ok:
            raise DeviceCommandError(
                f"{what or self.command.split()[0]} failed on {where} (exit {self.exit_status}): "
                f"{self.tail(3) or 'no output'}",
                last_output=self.tail(20),
            )

    def tail(self, lines: int = 8) -> str:
        text = (self.stdout + ("\n" + self.stderr if self.stderr else "")).strip()
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class SSHConnection:
    """One SSH connection to one device. Thread-safe for concurrent commands/channels."""

    host: str
    port: int = 22
    user: str = "root"
    identity: str = ""  # the host-key identity (board/name) the key is checked under
    key_file: str | None = None
    password: str | None = None
    check_host_key: HostKeyCheck | None = None
    connect_timeout: float = 10.0
    on_hostkey: Callable[[Any], None] | None = None
    hostkey: Any = field(default=None, init=False)
    _client: Any = field(default=None, init=False, repr=False)
    _methods: dict[str, bool] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    # --- connection ----------------------------------------------------------------------

    @property
    def transport(self) -> paramiko.Transport:
        """The live paramiko Transport; connects on first use."""
        with self._lock:
            if self._client is None:
                self._client = self._connect()
        transport = self._client.get_transport()
        if transport is None or not transport.is_active():
            raise SSHError(f"ssh: the connection to {self.where} was lost")
        return transport  # type: ignore[no-any-return]

    @property
    def where(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"

    def connect(self) -> SSHConnection:
        """Connect now (instead of on first use); returns self."""
        self.transport  # noqa: B018 - the property connects
        return self

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def __enter__(self) -> SSHConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connect(self) -> Any:
        import paramiko

        # paramiko logs every failed handshake (a device still booting behind QEMU's port
        # forward) with a traceback; without a handler Python prints that on stderr. We raise
        # typed errors instead; an application that configures logging still sees them.
        logging.getLogger("paramiko").addHandler(_NULL_LOG)

        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        except OSError as exc:
            raise HostUnreachableError(
                f"TCP: cannot reach {self.host}:{self.port}: {exc.strerror or exc}",
                hint="is the device powered and on the network? is the port right?",
            ) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(_make_policy(self))
        try:
            client.connect(
                self.host,
                self.port,
                username=self.user,
                pkey=self._pkey(),
                password=self.password,
                sock=sock,
                look_for_keys=False,
                allow_agent=False,
                timeout=self.connect_timeout,
                banner_timeout=self.connect_timeout,
                auth_timeout=self.connect_timeout,
                transport_factory=_tuned_transport,
            )
        except HostKeyError:
            client.close()
            raise
        except paramiko.AuthenticationException as exc:
            client.close()
            how = (
                f"key {self.key_file}"
                if self.key_file
                else "password"
                if self.password
                else "no key or password"
            )
            raise AuthError(
                f"auth: {self.where} refused {how} ({exc})",
                hint="check --identity/--user, or the device's authorized_keys",
            ) from None
        except (paramiko.SSHException, EOFError, OSError) as exc:
            client.close()
            raise HostUnreachableError(
                f"ssh: {self.host}:{self.port} accepts TCP but no SSH session could be set up "
                f"({exc or type(exc).__name__})",
                hint="the device may still be booting, or another service owns the port",
            ) from None
        log.info("ssh: connected to %s", self.where)
        return client

    def verify_host_key(self, keytype: str, key: str) -> Any:
        """Apply ``check_host_key`` to a presented key (refuse it when there is none) and tell
        ``on_hostkey``; returns the check's decision."""
        if self.check_host_key is None:
            raise HostKeyError(
                f"{self.where}: no host-key check was given for this connection; refusing its "
                f"{keytype} key",
                hint="connect through toolkit.target.ssh.connect_target",
            )
        decision = self.check_host_key(keytype, key)
        if self.on_hostkey is not None:
            self.on_hostkey(decision)
        return decision

    def _pkey(self) -> Any:
        if not self.key_file:
            return None
        import paramiko

        path = Path(self.key_file).expanduser()
        try:
            return paramiko.PKey.from_path(path)
        except FileNotFoundError:
            raise AuthError(f"auth: identity file {path} does not exist") from None
        except (paramiko.SSHException, ValueError) as exc:
            raise AuthError(f"auth: cannot load identity file {path}: {exc}") from None

    # --- commands ------------------------------------------------------------------------

    def run(
        self,
        command: str,
        *,
        timeout: float | None = 60.0,
        input: bytes | None = None,
        check: bool = False,
        what: str | None = None,
        on_line: Callable[[str], None] | None = None,
    ) -> RunResult:
        """Run ``command`` through the device's shell and collect its output and status.

        ``check`` raises :class:`DeviceCommandError` (naming ``what``) on a non-zero status.
        A connection that drops mid-command yields ``exit_status == -1`` (a reboot looks so).
        ``on_line(line)`` sees each complete output line (stdout or stderr) as it arrives, from
        the calling thread: progress of a long command such as ``sysupgrade``.
        """
        try:
            chan = self.transport.open_session(window_size=WINDOW, max_packet_size=MAX_PACKET)
        except HostKeyError:
            raise
        except SSHError:
            raise
        except Exception as exc:
            raise SSHError(f"ssh: cannot open a session on {self.where}: {exc}") from None
        out, err = bytearray(), bytearray()
        lines = _LineSplitter(on_line)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            chan.exec_command(command)
            if input is not None:
                chan.sendall(input)
            chan.shutdown_write()
            while True:
                while chan.recv_ready():
                    chunk = chan.recv(65536)
                    out += chunk
                    lines.feed("out", chunk)
                while chan.recv_stderr_ready():
                    chunk = chan.recv_stderr(65536)
                    err += chunk
                    lines.feed("err", chunk)
                if (
                    chan.exit_status_ready()
                    and not chan.recv_ready()
                    and not chan.recv_stderr_ready()
                ):
                    break
                if chan.closed or not chan.get_transport().is_active():
                    break
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise DeviceCommandError(
                        f"{what or command.split()[0]}: no answer within {timeout:.0f} s on {self.where}",
                        last_output=(out + err).decode(errors="replace")[-2000:],
                    )
                select.select([chan], [], [], min(left, 1.0) if left is not None else 1.0)
            status = chan.recv_exit_status() if chan.exit_status_ready() else -1
        except (OSError, EOFError, paramiko_error()) as exc:
            status = -1
            err += f"\n(connection lost: {exc})".encode()
        finally:
            chan.close()
            lines.flush()
        result = RunResult(
            command, status, out.decode(errors="replace"), err.decode(errors="replace")
        )
        log.debug("ssh %s: %s -> exit %d", self.where, what or command[:120], status)
        if check:
            result.check(what, self.where)
        return result

    # --- uploads (toolkit.transport.ssh_upload) -----------------------------------------

    def upload(
        self,
        source: Path | bytes,
        dest: str,
        *,
        method: str = "auto",
        progress: Progress | None = None,
        streams: int | None = None,
    ) -> UploadResult:
        """Copy ``source`` to the device path ``dest``.

        ``method``: ``auto`` (SFTP ▸ legacy scp ▸ ``cat``), or one of ``sftp``, ``scp``, ``cat``.
        ``streams`` (``cat`` only): parallel channels; default picks by size (1–4).
        ``progress(done, total)`` is called from the sending thread(s) as bytes leave.
        """
        return Uploader(self).upload(
            source, dest, method=method, progress=progress, streams=streams
        )

    def _client_or_connect(self) -> Any:
        self.transport  # noqa: B018 - connects
        return self._client


class _LineSplitter:
    """Cuts stdout/stderr chunks into lines for a ``run(on_line=...)`` callback."""

    def __init__(self, on_line: Callable[[str], None] | None) -> None:
        self.on_line = on_line
        self.partial: dict[str, bytes] = {"out": b"", "err": b""}

    def feed(self, stream: str, chunk: bytes) -> None:
        if self.on_line is None:
            return
        *complete, rest = (self.partial[stream] + chunk).split(b"\n")
        self.partial[stream] = rest
        for line in complete:
            self.on_line(line.decode(errors="replace").rstrip("\r"))

    def flush(self) -> None:
        if self.on_line is None:
            return
        for stream, rest in self.partial.items():
            if rest:
                self.on_line(rest.decode(errors="replace").rstrip("\r"))
            self.partial[stream] = b""


def _tuned_transport(sock: Any, **kwargs: Any) -> Any:
    import paramiko

    from toolkit.transport import chacha

    transport = paramiko.Transport(
        sock, default_window_size=WINDOW, default_max_packet_size=MAX_PACKET, **kwargs
    )
    opts = transport.get_security_options()
    available = list(opts.ciphers)
    if chacha.install(transport):
        available.append(chacha.NAME)
    opts.ciphers = [c for c in CIPHERS if c in available] + [
        c for c in available if c not in CIPHERS
    ]
    return transport


def _make_policy(conn: SSHConnection) -> Any:
    """paramiko's RejectPolicy, except that a key ``conn.check_host_key`` accepts passes.

    paramiko asks this policy for every key because routerkit never loads keys into paramiko's
    own HostKeys: the decision is the injected check's alone, taken before auth.
    """
    import paramiko

    class CheckedPolicy(paramiko.RejectPolicy):
        def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:  # type: ignore[override]
            conn.hostkey = conn.verify_host_key(key.get_name(), key.get_base64())

    return CheckedPolicy()


def fetch_host_key(host: str, port: int, timeout: float = 10.0) -> tuple[str, str]:
    """The host key a server presents, as (type, base64), without authenticating or trusting."""
    import paramiko

    logging.getLogger("paramiko").addHandler(_NULL_LOG)
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise HostUnreachableError(
            f"TCP: cannot reach {host}:{port}: {exc.strerror or exc}"
        ) from None
    transport = paramiko.Transport(sock)
    try:
        transport.start_client(timeout=timeout)
        key = transport.get_remote_server_key()
        return key.get_name(), key.get_base64()
    except (paramiko.SSHException, EOFError, OSError) as exc:
        raise HostUnreachableError(f"ssh: no SSH handshake with {host}:{port} ({exc})") from None
    finally:
        transport.close()
