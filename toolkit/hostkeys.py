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
  device's serial console, or the user said ``--accept-new-hostkey`` (the fingerprint is
  shown), or the key is the one announced by an image we just flashed; or
- the identity's key changed **right after a flash** and the new key is the one the new
  image's signed metadata announces (``ssh_host_key``), or equals the key read over the serial
  console, or the user passed ``--accept-new-hostkey``.

Any other change is refused: it may be a man-in-the-middle, or someone else reflashed the
device. Nothing is ever accepted silently; every acceptance is recorded with its reason.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

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
                keys[ident] = HostKey(ident, keytype, b64, fingerprint(b64), "known_hosts", utcnow())
        for ident, (keytype, b64) in lines.items():
            keys.setdefault(ident, HostKey(ident, keytype, b64, fingerprint(b64), "known_hosts", utcnow()))
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
        body = "".join(f"{k.identity} {k.keytype} {k.key}\n" for k in sorted(keys.values(), key=lambda k: k.identity))
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
                identity=identity, keytype=keytype, key=key, fingerprint=fingerprint(key),
                source=source, added=utcnow() if not (old and old.matches(keytype, key)) else old.added,
                host=host, port=port, last_seen=utcnow(), replaced=replaced,
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

    after_flash: bool = False  # the device was just flashed by us: a key change is expected
    announced: tuple[str, ...] = ()  # public key lines of the image just flashed (ssh_host_key)
    accept_new: bool = False  # --accept-new-hostkey
    serial_keys: Callable[[], list[str]] | None = None  # key lines read over the serial console
    image_version: str | None = None


@dataclass(frozen=True)
class Decision:
    identity: str
    fingerprint: str
    how: str  # known | serial-console | image-metadata | accept-new-hostkey
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
        if ctx.after_flash and _in(ctx.announced, keytype, key):
            store.trust(identity, keytype, key, source=_image_source(ctx), host=host, port=port)
            return Decision(identity, fp, "image-metadata", first_contact=True, changed=False)
        if ctx.accept_new:
            store.trust(identity, keytype, key, source="accept-new-hostkey", host=host, port=port)
            return Decision(identity, fp, "accept-new-hostkey", first_contact=True, changed=False)
        why = f" (the serial console could not be read: {serial_error})" if serial_error else ""
        raise HostKeyError(
            f"host key: first contact with {identity} at {host}:{port}, which presents "
            f"{keytype} {fp}. routerkit never trusts an unknown key silently{why}.",
            hint=f"compare the fingerprint with the device's (e.g. `dropbearkey -y -f "
            f"/etc/dropbear/dropbear_ed25519_host_key` on its console), then "
            f"`routerkit hosts trust {identity.split('/', 1)[-1]}`, or pass --accept-new-hostkey",
        )

    # The key changed.
    if ctx.after_flash:
        how = None
        if _in(ctx.announced, keytype, key):
            how = "image-metadata"
        elif serial and _in(serial, keytype, key):
            how = "serial-console"
        elif ctx.accept_new:
            how = "accept-new-hostkey"
        if how is not None:
            source = _image_source(ctx) if how == "image-metadata" else how
            store.trust(identity, keytype, key, source=source, host=host, port=port)
            return Decision(identity, fp, how, first_contact=False, changed=True, previous=stored.fingerprint)
        raise HostKeyError(
            f"host key: {identity} came back from the flash with key {fp}, but the image "
            f"announced {_announced_fps(ctx)} and routerkit had {stored.fingerprint}. The device "
            "may not be running the image just flashed, or someone is answering in its place: refused.",
            hint="check the device over its serial console; --accept-new-hostkey accepts it anyway",
        )
    confirm = ""
    if serial and _in(serial, keytype, key):
        confirm = (" Its serial console reports the same new key, so the device itself was "
                   "probably reflashed or reset by someone else.")
    raise HostKeyError(
        f"host key CHANGED for {identity} at {host}:{port}: it presents {keytype} {fp}, "
        f"routerkit trusted {stored.fingerprint} (since {stored.added}, via {stored.source}). "
        "routerkit did not flash it since, so this is either a man-in-the-middle or someone else "
        f"reflashed the device.{confirm} Refused; nothing was sent.",
        hint=f"if you know why it changed: `routerkit hosts forget {identity.split('/', 1)[-1]}` "
        "then `routerkit hosts trust` it again",
    )


def _image_source(ctx: HostKeyContext) -> str:
    return f"image-metadata:{ctx.image_version}" if ctx.image_version else "image-metadata"


def _announced_fps(ctx: HostKeyContext) -> str:
    fps = []
    for line in ctx.announced:
        try:
            fps.append(fingerprint(parse_key_line(line)[1]))
        except ConfigError:
            continue
    return ", ".join(fps) or "no key"
