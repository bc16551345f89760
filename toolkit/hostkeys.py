"""routerkit's own SSH host-key store and the rules for accepting a key.

Two files in ``paths.config_dir()``:

``known_hosts``
    OpenSSH format, one line per device, keyed by the device's **identity** (board and target
    name, e.g. ``es-virt/default``) rather than by address: a virtual sample gets a new
    loopback port at every boot, and a bench's DHCP addresses move. OpenSSH can use the same
    file: ``ssh -o UserKnownHostsFile=<file> -o HostKeyAlias=es-virt/default -p PORT root@HOST``.
``hostkeys.json``
    What the known_hosts line cannot say: how and when each key was trusted, the address it
    was last seen at, and the fingerprints it replaced.

The rules (:func:`check`) — a key is accepted only when

- it is the stored key of that identity; or
- the identity is unknown (first contact) **and** the key equals the one read over the
  device's serial console (:func:`read_console_host_keys`, integrity-checked), or the person
  confirmed it (``routerkit hosts trust``, ``verify --accept-new-hostkey``; ``flash`` honours
  its ``--accept-new-hostkey`` only for the device coming back from that flash); or
- the identity's key changed **right after a flash by routerkit** and the new key equals the
  one read over the serial console, or the user passed ``--accept-new-hostkey`` for that flash.

Images announce no host key: a device makes its own at first boot and keeps it across
upgrades, so a reflash normally keeps the key. Any other change is refused: it may be a
man-in-the-middle, or someone else reflashed the device. Nothing is ever accepted silently;
every acceptance is recorded with its reason.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from toolkit import paths
from toolkit.errors import ConfigError, HostKeyError, NotFoundError
from toolkit.record import atomic_write, utcnow

KNOWN_HOSTS = "known_hosts"
META = "hostkeys.json"
_IDENTITY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@\[\]-]{0,120}$")


def fingerprint(key_b64: str) -> str:
    """OpenSSH's ``SHA256:`` fingerprint of a public key blob given in base64."""
    blob = base64.b64decode(key_b64)
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def parse_key_line(line: str) -> tuple[str, str]:
    """``ssh-ed25519 AAAA… [comment]`` (as in metadata or ``dropbearkey -y``) → (type, base64)."""
    parts = line.strip().split()
    for i, word in enumerate(parts[:-1]):
        if word.startswith(("ssh-", "ecdsa-", "rsa-")):
            b64 = parts[i + 1]
            try:
                base64.b64decode(b64, validate=True)
            except ValueError:
                break
            return word, b64
    raise ConfigError(f"not an SSH public key line: {line[:60]!r}")


def identity_of(board: str, name: str) -> str:
    """The identity a target's key is stored under."""
    ident = f"{board}/{name}"
    if not _IDENTITY.match(ident):
        ident = re.sub(r"[^A-Za-z0-9_.:/@\[\]-]", "_", ident)[:120]
    return ident


#: How stale a key's "last seen" note may get before a connection rewrites it (seconds).
SEEN_EVERY = 600.0


def _recent(stamp: str | None) -> bool:
    from datetime import UTC, datetime

    if not stamp:
        return False
    try:
        then = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return False
    return 0 <= (datetime.now(UTC) - then).total_seconds() < SEEN_EVERY


@dataclass
class HostKey:
    identity: str
    keytype: str
    key: str  # base64 blob
    fingerprint: str
    source: str  # how it was trusted: serial-console, image-metadata, accept-new-hostkey, user
    added: str
    host: str | None = None
    port: int | None = None
    last_seen: str | None = None
    replaced: list[str] = field(default_factory=list)  # fingerprints this key replaced

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def matches(self, keytype: str, key: str) -> bool:
        return self.keytype == keytype and self.key == key


class HostKeyStore:
    """The known_hosts + metadata pair. Safe across threads and processes (a file lock)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.dir = Path(directory) if directory is not None else paths.config_dir()
        self.known_hosts = self.dir / KNOWN_HOSTS
        self.meta_path = self.dir / META

    def _lock(self) -> Any:
        import filelock

        self.dir.mkdir(parents=True, exist_ok=True)
        return filelock.FileLock(str(self.dir / ".hostkeys.lock"), timeout=30)

    def _load(self) -> dict[str, HostKey]:
        try:
            raw = json.loads(self.meta_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raw = {}
        except ValueError as exc:
            raise ConfigError(f"{self.meta_path}: not valid JSON ({exc})") from None
        keys = {
            ident: HostKey(**{k: v for k, v in rec.items() if k in HostKey.__dataclass_fields__})
            for ident, rec in raw.get("keys", {}).items()
        }
        # known_hosts is the authority for the key itself: an edit there (ssh-keygen -R, a
        # hand-removed line) wins over the metadata.
        lines = self._known_hosts_lines()
        for ident in list(keys):
            if ident not in lines:
                del keys[ident]
            elif not keys[ident].matches(*lines[ident]):
                keytype, b64 = lines[ident]
                keys[ident] = HostKey(
                    ident, keytype, b64, fingerprint(b64), "known_hosts", utcnow()
                )
        for ident, (keytype, b64) in lines.items():
            keys.setdefault(
                ident, HostKey(ident, keytype, b64, fingerprint(b64), "known_hosts", utcnow())
            )
        return keys

    def _known_hosts_lines(self) -> dict[str, tuple[str, str]]:
        out: dict[str, tuple[str, str]] = {}
        try:
            text = self.known_hosts.read_text(encoding="utf-8")
        except FileNotFoundError:
            return out
        for line in text.splitlines():
            parts = line.split()
            if len(parts) >= 3 and not line.lstrip().startswith("#"):
                out[parts[0]] = (parts[1], parts[2])
        return out

    def _save(self, keys: dict[str, HostKey]) -> None:
        head = "# routerkit known_hosts: one line per device identity (use with ssh -o HostKeyAlias=ID)\n"
        body = "".join(
            f"{k.identity} {k.keytype} {k.key}\n"
            for k in sorted(keys.values(), key=lambda k: k.identity)
        )
        atomic_write(self.known_hosts, (head + body).encode())
        self._save_meta(keys)

    def _save_meta(self, keys: dict[str, HostKey]) -> None:
        meta = {"format": 1, "keys": {k.identity: k.to_dict() for k in keys.values()}}
        atomic_write(self.meta_path, (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode())

    # --- queries and edits -------------------------------------------------------------

    def get(self, identity: str) -> HostKey | None:
        """The trusted key of ``identity``, if any."""
        return self._load().get(identity)

    def list(self) -> list[HostKey]:
        return sorted(self._load().values(), key=lambda k: k.identity)

    def trust(
        self,
        identity: str,
        keytype: str,
        key: str,
        *,
        source: str,
        host: str | None = None,
        port: int | None = None,
    ) -> HostKey:
        """Store (or replace) the key of ``identity``; remember what it replaced."""
        with self._lock():
            keys = self._load()
            old = keys.get(identity)
            replaced = list(old.replaced) if old else []
            if old and not old.matches(keytype, key):
                replaced.append(old.fingerprint)
            record = HostKey(
                identity=identity,
                keytype=keytype,
                key=key,
                fingerprint=fingerprint(key),
                source=source,
                added=utcnow() if not (old and old.matches(keytype, key)) else old.added,
                host=host,
                port=port,
                last_seen=utcnow(),
                replaced=replaced,
            )
            keys[identity] = record
            self._save(keys)
            return record

    def seen(self, identity: str, host: str, port: int, stored: HostKey | None = None) -> None:
        """Note the address a known key was last seen at (shown by `hosts list`).

        Called on every connection, so it writes only when the address changed or the note is
        older than SEEN_EVERY, and then only the metadata (known_hosts is unchanged): a fleet
        of eight used to queue three locked, fsynced rewrites of both files per flash.
        ``stored`` is the record the caller just read (saves reading the files again).
        """
        rec = stored if stored is not None else self._load().get(identity)
        if rec is None or (rec.host == host and rec.port == port and _recent(rec.last_seen)):
            return
        with self._lock():
            keys = self._load()
            rec = keys.get(identity)
            if rec is None:
                return
            rec.host, rec.port, rec.last_seen = host, port, utcnow()
            self._save_meta(keys)

    def forget(self, identity: str) -> HostKey:
        """Remove ``identity``'s key; the next contact is a first contact again."""
        with self._lock():
            keys = self._load()
            rec = keys.pop(identity, None)
            if rec is None:
                known = ", ".join(sorted(keys)) or "none"
                raise NotFoundError(f"no host key stored for {identity!r} (known: {known})")
            self._save(keys)
            return rec


@dataclass
class HostKeyContext:
    """What the caller knows besides the store, for :func:`check`.

    ``serial_keys`` is a callable so the (slow) serial console is asked only when the key is
    not already known.
    """

    after_flash: bool = False  # the device was just flashed by us: a key change may happen
    accept_new: bool = False  # the person confirmed a new key: first contact, or after_flash
    serial_keys: Callable[[], list[str]] | None = None  # key lines read over the serial console
    image_version: str | None = None


@dataclass(frozen=True)
class Decision:
    identity: str
    fingerprint: str
    how: str  # known | serial-console | accept-new-hostkey
    first_contact: bool
    changed: bool
    previous: str | None = None  # the fingerprint that was replaced

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _in(lines: list[str] | tuple[str, ...], keytype: str, key: str) -> bool:
    for line in lines:
        try:
            if parse_key_line(line) == (keytype, key):
                return True
        except ConfigError:
            continue
    return False


def check(
    store: HostKeyStore,
    identity: str,
    keytype: str,
    key: str,
    *,
    host: str,
    port: int,
    context: HostKeyContext | None = None,
) -> Decision:
    """Apply the rules of this module to a presented key. Accept (and store) or raise
    :class:`HostKeyError` with a message that says what may be going on."""
    ctx = context or HostKeyContext()
    fp = fingerprint(key)
    stored = store.get(identity)
    if stored is not None and stored.matches(keytype, key):
        store.seen(identity, host, port, stored)
        return Decision(identity, fp, "known", first_contact=False, changed=False)

    serial: list[str] | None = None
    if ctx.serial_keys is not None:
        try:
            serial = ctx.serial_keys()
        except Exception as exc:  # the console is a bonus here; its failure is reported below
            serial = None
            serial_error = str(exc)
        else:
            serial_error = ""
    else:
        serial_error = ""

    if stored is None:
        if serial is not None and serial:
            if _in(serial, keytype, key):
                store.trust(identity, keytype, key, source="serial-console", host=host, port=port)
                return Decision(identity, fp, "serial-console", first_contact=True, changed=False)
            raise HostKeyError(
                f"host key: {identity} at {host}:{port} presents {keytype} {fp}, but its serial "
                "console reports a different key. Something between you and the device answers "
                "in its place (a man-in-the-middle, or the wrong address): refused.",
                hint="check the address; nothing was sent",
            )
        if ctx.accept_new:  # an explicit confirmation of this first contact
            store.trust(identity, keytype, key, source="accept-new-hostkey", host=host, port=port)
            return Decision(identity, fp, "accept-new-hostkey", first_contact=True, changed=False)
        why = f" (the serial console could not be read: {serial_error})" if serial_error else ""
        raise HostKeyError(
            f"host key: first contact with {identity} at {host}:{port}, which presents "
            f"{keytype} {fp}. routerkit never trusts an unknown key silently{why}.",
            hint=f"compare the fingerprint with the device's (`rk-settings hostkey` on its "
            f"console), then `routerkit hosts trust {identity.split('/', 1)[-1]}`; or flash it "
            "over its serial console, which reads the key there",
        )

    # The key changed.
    if ctx.after_flash:
        how = None
        if serial and _in(serial, keytype, key):
            how = "serial-console"
        elif ctx.accept_new:
            how = "accept-new-hostkey"
        if how is not None:
            source = f"{how} after flashing {ctx.image_version}" if ctx.image_version else how
            store.trust(identity, keytype, key, source=source, host=host, port=port)
            return Decision(
                identity, fp, how, first_contact=False, changed=True, previous=stored.fingerprint
            )
        raise HostKeyError(
            f"host key: {identity} came back from the flash with key {fp}, but routerkit had "
            f"{stored.fingerprint} (devices keep their key across upgrades) and no serial console "
            "confirmed the new one. The device may have lost its settings, or someone is "
            "answering in its place: refused.",
            hint="check the device over its serial console; --accept-new-hostkey accepts it anyway",
        )
    confirm = ""
    if serial and _in(serial, keytype, key):
        confirm = (
            " Its serial console reports the same new key, so the device itself was "
            "probably reflashed or reset by someone else."
        )
    raise HostKeyError(
        f"host key CHANGED for {identity} at {host}:{port}: it presents {keytype} {fp}, "
        f"routerkit trusted {stored.fingerprint} (since {stored.added}, via {stored.source}). "
        "routerkit did not flash it since, so this is either a man-in-the-middle or someone else "
        f"reflashed the device.{confirm} Refused; nothing was sent.",
        hint=f"if you know why it changed: `routerkit hosts forget {identity.split('/', 1)[-1]}` "
        "then `routerkit hosts trust` it again",
    )


class _Shell(Protocol):
    def run(self, cmd: str, timeout: float = ...) -> Any: ...


#: Where firmware without ``rk-settings`` keeps its host keys (fallback of the reader).
LEGACY_HOST_KEY_FILES = (
    "/etc/dropbear/dropbear_ed25519_host_key",
    "/etc/dropbear/dropbear_ecdsa_host_key",
    "/etc/dropbear/dropbear_rsa_host_key",
)
CONSOLE_READS = 4


def read_console_host_keys(shell: _Shell, *, timeout: float = 20.0) -> list[str]:
    """The device's SSH host public key line(s), read over its serial console.

    This is the one place that reads a host key from a device. A serial line can garble
    a byte, and a garbled key must not look like a man-in-the-middle. ``shell`` is the shell
    driver (:class:`toolkit.target.shell.LinuxShell`), whose every answer is checked against a
    sha256 the device computed and read again on a mismatch; on top of that
    ``rk-settings hostkey`` prints the key line and the sha256 of that line, and a read counts
    only when they agree (else it is read again). Firmware without ``rk-settings`` is read
    until two reads agree.
    Raises :class:`DeviceCommandError` when no clean read comes within a few tries.
    """
    import hmac

    from toolkit.errors import DeviceCommandError

    last = ""
    previous: list[str] | None = None
    for _ in range(CONSOLE_READS):
        out = str(shell.run("rk-settings hostkey 2>&1", timeout=timeout).output)
        last = out
        lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
        if any("not found" in ln for ln in lines):
            files = " ".join(LEGACY_HOST_KEY_FILES)
            legacy = shell.run(
                f"for k in {files}; do if [ -f $k.pub ]; then cat $k.pub; "
                f"elif [ -f $k ]; then dropbearkey -y -f $k; fi; done",
                timeout=timeout,
            )
            last = str(legacy.output)
            keys = [
                ln.strip() for ln in last.splitlines() if ln.strip().startswith(("ssh-", "ecdsa-"))
            ]
            if keys and keys == previous:
                return keys
            previous = keys or None
            continue
        for i, line in enumerate(lines[:-1]):
            if not line.startswith(("ssh-", "ecdsa-")):
                continue
            check = lines[i + 1].split()
            if (
                len(check) == 2
                and check[0] == "sha256"
                and hmac.compare_digest(hashlib.sha256(line.encode()).hexdigest(), check[1])
            ):
                return [line]
    raise DeviceCommandError(
        f"could not read the SSH host key cleanly over the serial console in {CONSOLE_READS} "
        "tries (a noisy line, or firmware without rk-settings)",
        last_output=last,
    )
