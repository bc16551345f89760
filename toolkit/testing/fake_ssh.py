"""An in-memory SSH device: whole SSH journeys in unit tests, no network, no dropbear.

:class:`FakeSSHDevice` is a scripted model of a routerkit device as SSH sees it: files, two
A/B slots, a boot id, the firmware's ``fwinfo``/``selftest`` (JSON), ``rk-settings authorize``
and a ``sysupgrade`` that checks the uploaded image, "writes" it to the inactive slot,
switches and reboots (the device is unreachable for ``reboot_seconds``, then runs a new boot
from the new slot). :meth:`FakeSSHDevice.connect` has the signature of
:func:`toolkit.target.ssh.connect_target`, so it is the ``connect`` factory a journey
takes::

    device = FakeSSHDevice(version="1.0.0")
    device.connect(target, accept_new=True).close()      # first contact, as `hosts trust`
    result = flash_ssh.flash(image, target, options, reporter, journal, connect=device.connect)
    assert device.running_version == "1.1.0"

:class:`FakeSSHConnection` is an :class:`~toolkit.transport.ssh.SSHConnection` whose ``run``,
``upload`` and ``close`` talk to the model: ``run`` returns the same
:class:`~toolkit.transport.ssh.RunResult`, the host key is decided by the real
:func:`toolkit.hostkeys.check` (``conn.hostkey``), and a reboot drops every open connection.

Commands are read by a deliberately tiny shell: ``;``, ``&&``, ``||``, ``|``, ``if/then/else/fi``,
``NAME=value``, ``NAME=$(...)``, ``$NAME``/``${NAME:-default}`` and the ``2>&1``/``2>/dev/null``
redirections; programs are plain functions in :attr:`FakeSSHDevice.programs` (replace one to
script a fault). Knobs for the usual faults: ``drop_uploads`` (the link drops mid-upload),
``corrupt_uploads`` (the device stores a flipped byte), ``tmp_free_kib``, ``host_key``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shlex
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.boards import DEFAULT_BOARD
from toolkit.errors import (
    HostUnreachableError,
    SSHError,
    TransferError,
)
from toolkit.transport.ssh import RunResult, SSHConnection
from toolkit.transport.ssh_upload import Progress, UploadResult

if TYPE_CHECKING:
    from toolkit.hostkeys import HostKeyContext

BOOT_ID = "/proc/sys/kernel/random/boot_id"

#: A program of the model: (device, argv, stdin) -> (exit status, stdout, stderr).
Program = Callable[["FakeSSHDevice", list[str], str], tuple[int, str, str]]


@dataclass
class Slot:
    """What one A/B slot holds, as ``fwinfo`` reports it."""

    version: str
    fit_sha256: str
    fit_size: int
    ok: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "fit_sha256": self.fit_sha256,
            "fit_size": self.fit_size,
            "ok": self.ok,
        }


def ed25519_host_key(fill: int = 0x42) -> tuple[str, str]:
    """A well-formed (type, base64) ed25519 public host key; a different ``fill``, another key."""
    # The wire form: string "ssh-ed25519", string <32 key bytes>.
    blob = b"".join(len(p).to_bytes(4, "big") + p for p in (b"ssh-ed25519", bytes([fill]) * 32))
    return "ssh-ed25519", base64.b64encode(blob).decode()


class FakeSSHDevice:
    """A scripted routerkit device behind SSH (thread-safe; see the module docstring)."""

    def __init__(
        self,
        *,
        board: str = DEFAULT_BOARD,
        version: str = "1.0.0",
        running_slot: str = "A",
        tmp_free_kib: int = 64 * 1024,
        host_key: tuple[str, str] | None = None,
        reboot_seconds: float = 0.2,
        programs: dict[str, Program] | None = None,
    ) -> None:
        self.board = board
        self.slots: dict[str, Slot | None] = {"A": None, "B": None}
        self.slots[running_slot] = Slot(version, hashlib.sha256(version.encode()).hexdigest(), 0)
        self.running_slot = running_slot
        self.active_slot = running_slot
        self.rk_tries = 0
        self.tmp_free_kib = tmp_free_kib
        self.host_key = host_key or ed25519_host_key()
        self.reboot_seconds = reboot_seconds
        self.files: dict[str, bytes] = {"/etc/firmware-version": f"{version}\n".encode()}
        self.authorized_keys: list[str] = []
        self.boot_id = str(uuid.uuid4())
        self.boots = 1
        self.down_until = 0.0
        self.drop_uploads = 0
        self.corrupt_uploads = 0
        self.commands: list[str] = []  # every command line run, in order
        self.programs: dict[str, Program] = dict(_BUILTINS)
        self.programs.update(programs or {})
        self._lock = threading.RLock()

    # --- the model ---------------------------------------------------------------------

    @property
    def running_version(self) -> str | None:
        slot = self.slots.get(self.running_slot)
        return slot.version if slot else None

    def install(self, image: bytes | Path, slot: str = "A") -> Slot:
        """Put a routerkit image into ``slot`` and make it the running one (no reboot)."""
        data = image if isinstance(image, bytes) else Path(image).read_bytes()
        written = self.write_slot(slot, data)
        self.running_slot = self.active_slot = slot
        self.files["/etc/firmware-version"] = f"{written.version}\n".encode()
        return written

    def write_slot(self, slot: str, data: bytes) -> Slot:
        """Parse ``data`` as a routerkit image and store it in ``slot`` (ImageFormatError if not)."""
        from toolkit.firmware import image

        parsed = image.parse(data)
        fit_sha = hashlib.sha256(data[: parsed.fit_size]).hexdigest()
        meta = parsed.metadata
        written = Slot(
            str(meta.get("version", "")),
            str(meta.get("fit_sha256", "")),
            parsed.fit_size,
            ok=meta.get("fit_sha256") == fit_sha,
        )
        self.slots[slot] = written
        return written

    def reboot(self) -> None:
        """Boot again from the active slot: a new boot id, every connection dropped."""
        with self._lock:
            self.running_slot = self.active_slot
            version = self.running_version or ""
            self.files["/etc/firmware-version"] = f"{version}\n".encode()
            self.files = {p: d for p, d in self.files.items() if not p.startswith("/tmp/")}
            self.boot_id = str(uuid.uuid4())
            self.boots += 1
            self.down_until = time.monotonic() + self.reboot_seconds

    @property
    def reachable(self) -> bool:
        return time.monotonic() >= self.down_until

    def fwinfo(self) -> dict[str, Any]:
        slots = {name: (s.to_json() if s else {"empty": True}) for name, s in self.slots.items()}
        return {
            "board": self.board,
            "version": self.running_version or "",
            "running_slot": self.running_slot,
            "active_slot": self.active_slot,
            "rk_tries": self.rk_tries,
            "slots": slots,
        }

    def read(self, path: str) -> bytes | None:
        if path == BOOT_ID:
            return f"{self.boot_id}\n".encode()
        return self.files.get(path)

    def tmp_used_kib(self) -> int:
        return sum(len(d) for p, d in self.files.items() if p.startswith("/tmp/")) // 1024

    # --- SSH -----------------------------------------------------------------------------

    def connect(
        self,
        target: Any,
        *,
        accept_new: bool = False,
        context: HostKeyContext | None = None,
        reporter: Any = None,
        connect_timeout: float = 10.0,
        connect: bool = True,
    ) -> FakeSSHConnection:
        """A connection to this device for ``target``: the signature of
        :func:`toolkit.target.ssh.connect_target`, host key checked the same way."""
        from toolkit.hostkeys import HostKeyContext, identity_of
        from toolkit.target.ssh import announcer, host_key_check

        identity = identity_of(target.board, target.name)
        host, port = str(target.ssh_host or "fake-device"), int(target.ssh_port or 22)
        check = host_key_check(
            identity, host, port, context=context or HostKeyContext(accept_new=accept_new)
        )
        conn = FakeSSHConnection(
            host=host,
            port=port,
            user=target.ssh_user or "root",
            identity=identity,
            check_host_key=check,
            connect_timeout=connect_timeout,
            on_hostkey=announcer(identity, reporter),
            device=self,
        )
        return conn.connect() if connect else conn

    def execute(self, command: str, stdin: str = "") -> tuple[int, str, str]:
        """Run one command line through the model's tiny shell."""
        with self._lock:
            self.commands.append(command)
            return _Shell(self).script(command, stdin)


@dataclass
class FakeSSHConnection(SSHConnection):
    """An :class:`SSHConnection` to a :class:`FakeSSHDevice` (lazy, like the real one)."""

    device: FakeSSHDevice | None = None
    _boot: int | None = field(default=None, init=False, repr=False)

    @property
    def transport(self) -> Any:
        raise SSHError("ssh: an in-memory fake connection has no paramiko transport")

    def _model(self) -> FakeSSHDevice:
        if self.device is None:
            raise SSHError("ssh: FakeSSHConnection needs a device")
        return self.device

    def connect(self) -> FakeSSHConnection:
        device = self._model()
        if self._boot is not None:
            if self._boot != device.boots:
                raise SSHError(f"ssh: the connection to {self.where} was lost")
            return self
        if not device.reachable:
            raise HostUnreachableError(
                f"TCP: cannot reach {self.host}:{self.port}: Connection refused"
            )
        self.hostkey = self.verify_host_key(*device.host_key)
        self._boot = device.boots
        return self

    def close(self) -> None:
        self._boot = None

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
        self.connect()
        device = self._model()
        boots = device.boots
        status, out, err = device.execute(command, (input or b"").decode(errors="replace"))
        if device.boots != boots:  # the command rebooted the device: its session died with it
            status, err = -1, err + "\n(connection lost: the device rebooted)"
            self._boot = None
        if on_line is not None:
            for line in (out + err).splitlines():
                on_line(line)
        result = RunResult(command, status, out, err)
        if check:
            result.check(what, self.where)
        return result

    def upload(
        self,
        source: Path | bytes,
        dest: str,
        *,
        method: str = "auto",
        progress: Progress | None = None,
        streams: int | None = None,
    ) -> UploadResult:
        self.connect()
        device = self._model()
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
        start = time.monotonic()
        used = "sftp" if method == "auto" else method
        with device._lock:
            if device.drop_uploads > 0:
                device.drop_uploads -= 1
                self._boot = None
                if progress is not None:
                    progress(len(data) // 2, len(data))
                raise TransferError(f"upload: the connection to {self.where} was lost mid-transfer")
            if (
                dest.startswith("/tmp/")
                and device.tmp_used_kib() + len(data) // 1024 > device.tmp_free_kib
            ):
                raise TransferError(f"upload: no space left on device writing {dest}")
            stored = data
            if device.corrupt_uploads > 0 and data:
                device.corrupt_uploads -= 1
                stored = bytes([data[0] ^ 0x01]) + data[1:]
            device.files[dest] = stored
        if progress is not None:
            progress(len(data), len(data))
        return UploadResult(used, len(data), time.monotonic() - start, 1)


# --- the tiny shell ----------------------------------------------------------------------


def _split_top(text: str, seps: tuple[str, ...]) -> list[tuple[str, str]]:
    """Split ``text`` at ``seps`` outside quotes and ``$( )``; [(piece, separator before it)]."""
    parts: list[tuple[str, str]] = []
    quote = ""
    depth = 0
    start, before = 0, ""
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = ""
            elif ch == "\\" and quote == '"':
                i += 1
        elif ch in "'\"":
            quote = ch
        elif text.startswith("$(", i):
            depth += 1
            i += 1
        elif ch == ")" and depth:
            depth -= 1
        elif depth == 0:
            sep = next((s for s in seps if text.startswith(s, i)), None)
            if sep is not None and not (sep == "|" and text.startswith("||", i)):
                parts.append((text[start:i].strip(), before))
                start, before = i + len(sep), sep
                i += len(sep)
                continue
        i += 1
    parts.append((text[start:].strip(), before))
    return parts


class _Shell:
    def __init__(self, device: FakeSSHDevice) -> None:
        self.device = device
        self.env: dict[str, str] = {}

    def script(self, command: str, stdin: str) -> tuple[int, str, str]:
        pieces = [p for p, _ in _split_top(command, (";", "\n")) if p]
        return self.block(pieces, stdin)

    def block(self, pieces: list[str], stdin: str) -> tuple[int, str, str]:
        status, out, err = 0, "", ""
        i = 0
        while i < len(pieces):
            piece = pieces[i]
            if piece.startswith("if "):
                i, (status, o, e) = self.if_block(pieces, i, stdin)
            else:
                status, o, e = self.and_or(piece, stdin)
                i += 1
            out, err = out + o, err + e
        return status, out, err

    def if_block(self, pieces: list[str], i: int, stdin: str) -> tuple[int, tuple[int, str, str]]:
        cond = [pieces[i][3:]]
        then: list[str] = []
        other: list[str] = []
        current = cond
        i += 1
        while i < len(pieces) and pieces[i] != "fi":
            piece = pieces[i]
            for word, branch in (("then", then), ("else", other)):
                if piece == word or piece.startswith(word + " "):
                    current, piece = branch, piece[len(word) :].strip()
            if piece:
                current.append(piece)
            i += 1
        status, out, err = self.block(cond, stdin)
        chosen = self.block(then if status == 0 else other, stdin)
        return i + 1, (chosen[0], out + chosen[1], err + chosen[2])

    def and_or(self, text: str, stdin: str) -> tuple[int, str, str]:
        status, out, err = 0, "", ""
        for piece, sep in _split_top(text, ("&&", "||")):
            if (sep == "&&" and status != 0) or (sep == "||" and status == 0):
                continue
            status, o, e = self.pipeline(piece, stdin)
            out, err = out + o, err + e
        return status, out, err

    def pipeline(self, text: str, stdin: str) -> tuple[int, str, str]:
        status, data, err = 0, stdin, ""
        for piece, _ in _split_top(text, ("|",)):
            status, data, e = self.simple(piece, data)
            err += e
        return status, data, err

    def simple(self, text: str, stdin: str) -> tuple[int, str, str]:
        merge = " 2>&1" in text
        quiet = " 2>/dev/null" in text
        text = text.replace(" 2>&1", "").replace(" 2>/dev/null", "").strip()
        assign = re.fullmatch(r"(\w+)=(.*)", text, re.S)
        if assign:
            value = assign.group(2)
            sub = re.fullmatch(r"\$\((.*)\)", value, re.S)
            if sub:
                status, out, _ = self.block(
                    [p for p, _ in _split_top(sub.group(1), (";",)) if p], ""
                )
                self.env[assign.group(1)] = out.strip()
                return status, "", ""
            self.env[assign.group(1)] = " ".join(shlex.split(self.expand(value)))
            return 0, "", ""
        argv = shlex.split(self.expand(text))
        if not argv:
            return 0, "", ""
        status, out, err = self.exec(argv, stdin)
        if merge:
            out, err = out + err, ""
        if quiet:
            err = ""
        return status, out, err

    def expand(self, text: str) -> str:
        text = re.sub(
            r"\$\{(\w+):-([^}]*)\}", lambda m: self.env.get(m.group(1)) or m.group(2), text
        )
        return re.sub(r"\$(\w+)", lambda m: self.env.get(m.group(1), ""), text)

    def exec(self, argv: list[str], stdin: str) -> tuple[int, str, str]:
        name = argv[0].rsplit("/", 1)[-1]
        program = self.device.programs.get(name)
        if program is None or ("/" in argv[0] and not _installed(self.device, argv[0])):
            return 127, "", f"sh: {argv[0]}: not found\n"
        return program(self.device, argv, stdin)


#: Device programs found by ``command -v`` at these paths (the rest are shell built-ins).
_PATHS = {
    "sysupgrade": "/sbin/sysupgrade",
    "fwinfo": "/sbin/fwinfo",
    "selftest": "/usr/bin/selftest",
    "rk-settings": "/sbin/rk-settings",
}


def _installed(device: FakeSSHDevice, path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return name in device.programs and _PATHS.get(name, path) == path or path.startswith("/bin/")


def _command(device: FakeSSHDevice, argv: list[str], stdin: str) -> tuple[int, str, str]:
    for name in argv[2:] if argv[1:2] == ["-v"] else []:
        if "/" in name:
            if _installed(device, name):
                return 0, name + "\n", ""
        elif name in device.programs:
            return 0, _PATHS.get(name, name) + "\n", ""
    return 1, "", ""


def _cat(device: FakeSSHDevice, argv: list[str], stdin: str) -> tuple[int, str, str]:
    if len(argv) == 1:
        return 0, stdin, ""
    out, err, status = "", "", 0
    for path in argv[1:]:
        data = device.read(path)
        if data is None:
            status, err = 1, err + f"cat: can't open '{path}': No such file or directory\n"
        else:
            out += data.decode(errors="replace")
    return status, out, err


def _lines(argv: list[str], stdin: str, tail: bool) -> tuple[int, str, str]:
    count = int(argv[argv.index("-n") + 1]) if "-n" in argv else 10
    lines = stdin.splitlines(keepends=True)
    return 0, "".join(lines[-count:] if tail else lines[:count]), ""


def _df(device: FakeSSHDevice, argv: list[str], stdin: str) -> tuple[int, str, str]:
    free = max(0, device.tmp_free_kib - device.tmp_used_kib())
    total = device.tmp_free_kib + 1024
    used = total - free
    return (
        0,
        (
            "Filesystem 1024-blocks Used Available Capacity Mounted on\n"
            f"tmpfs {total} {used} {free} {used * 100 // total}% {argv[-1]}\n"
        ),
        "",
    )


def _rm(device: FakeSSHDevice, argv: list[str], stdin: str) -> tuple[int, str, str]:
    for path in (a for a in argv[1:] if not a.startswith("-")):
        device.files.pop(path, None)
    return 0, "", ""


def _sha256sum(device: FakeSSHDevice, argv: list[str], stdin: str) -> tuple[int, str, str]:
    data = device.read(argv[1]) if len(argv) > 1 else None
    if data is None:
        return 1, "", f"sha256sum: {argv[1:2]}: No such file or directory\n"
    return 0, f"{hashlib.sha256(data).hexdigest()}  {argv[1]}\n", ""


def _fwinfo(device: FakeSSHDevice, argv: list[str], stdin: str) -> tuple[int, str, str]:
    return 0, json.dumps(device.fwinfo()) + "\n", ""


def _selftest(device: FakeSSHDevice, argv: list[str], stdin: str) -> tuple[int, str, str]:
    return 0, json.dumps({"status": "ok", "version": device.running_version}) + "\n", ""


def _rk_settings(device: FakeSSHDevice, argv: list[str], stdin: str) -> tuple[int, str, str]:
    if argv[1:2] != ["authorize"] or len(argv) != 4:
        return 2, "", "usage: rk-settings authorize LINE SHA256\n"
    line, digest = argv[2], argv[3]
    from toolkit import identity

    if identity.line_sha256(line) != digest:
        return 1, "", "rk-settings: the key line does not match its sha256\n"
    if line not in device.authorized_keys:
        device.authorized_keys.append(line)
    return 0, f"authorized {digest}\n", ""


def _sysupgrade(device: FakeSSHDevice, argv: list[str], stdin: str) -> tuple[int, str, str]:
    from toolkit.errors import ImageFormatError

    paths = [a for a in argv[1:] if not a.startswith("-")]
    data = device.read(paths[0]) if paths else None
    if data is None:
        return 1, "", f"sysupgrade: no image at {paths[:1]}\n"
    target = "B" if device.running_slot == "A" else "A"
    try:
        written = device.write_slot(target, data)
    except ImageFormatError as exc:
        return 1, "", f"sysupgrade: not a routerkit image: {exc}\n"
    if not written.ok:
        device.slots[target] = None
        return 1, "", "sysupgrade: FIT sha256 does not match the metadata\n"
    device.active_slot = target
    device.rk_tries = 0
    out = f"FIT sha256 ok\nwriting slot {target}\nread back ok\nswitching to slot {target}\nrebooting\n"
    device.reboot()
    return 0, out, ""


def _const(status: int) -> Program:
    return lambda device, argv, stdin: (status, "", "")


def _test(device: FakeSSHDevice, argv: list[str], stdin: str) -> tuple[int, str, str]:
    args = argv[1:-1] if argv[-1] == "]" else argv[1:]
    if len(args) == 2 and args[0] in ("-r", "-e", "-f"):
        return (0 if device.read(args[1]) is not None else 1), "", ""
    return 1, "", ""


_BUILTINS: dict[str, Program] = {
    "command": _command,
    "cat": _cat,
    "echo": lambda device, argv, stdin: (0, " ".join(argv[1:]) + "\n", ""),
    "head": lambda device, argv, stdin: _lines(argv, stdin, tail=False),
    "tail": lambda device, argv, stdin: _lines(argv, stdin, tail=True),
    "df": _df,
    "rm": _rm,
    "sha256sum": _sha256sum,
    "true": _const(0),
    "false": _const(1),
    "[": _test,
    "test": _test,
    "fwinfo": _fwinfo,
    "selftest": _selftest,
    "rk-settings": _rk_settings,
    "sysupgrade": _sysupgrade,
}
