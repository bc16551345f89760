"""A whole board in memory for the serial flash: U-Boot, a disk with A/B slots, then Linux.

:class:`FakeBoard` holds the state a power cycle keeps (the disk, with the board profile's
slots, and ``state.env`` on the boot partition) and a serial line (:attr:`FakeBoard.transport`)
whose other end is, in turn:

- U-Boot (:class:`toolkit.testing.fake.FakeUBoot`, with a countdown after each power cycle or
  ``reset``) that also knows what the flash sends: ``printenv NAME``, ``setenv``, ``${var}``,
  ``test``, ``fatload``/``fatwrite`` of ``state.env``, ``env import``/``env export -t``,
  ``virtio scan|read|write`` against the in-memory disk, ``md.b``, ``crc32`` over RAM, and
  ``loady`` receiving real YMODEM (CRC-16 checked, duplicate blocks ACKed, bad ones NAKed);
- after ``boot``, Linux (:class:`toolkit.testing.fake_shell.FakeShell`) running the slot
  ``state.env`` names, whose ``/sbin/fwinfo``, ``/etc/firmware-version`` and
  ``rk-settings hostkey|authorize`` are computed from the disk and the device's settings, never
  scripted: a slot that does not hold the image reports what it does hold.

Faults for the flash's retry paths: ``corrupt_loads`` (that many ``loady`` transfers arrive
intact on the line but get one byte flipped in RAM afterwards). :meth:`FakeBoard.console` and
:meth:`FakeBoard.power` are the serial flash's ``console`` and ``power`` factories.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from toolkit.boards import DEFAULT_BOARD, Board, load_board
from toolkit.protocol import xymodem
from toolkit.protocol.console import Console
from toolkit.target.power import Power
from toolkit.testing.fake import FakeTransport, FakeUBoot
from toolkit.testing.fake_shell import FakeShell

_VAR = re.compile(r"\$\{(\w+)\}")
_FIT_MAGIC = b"\xd0\x0d\xfe\xed"


class _YmodemReceiver:
    """The receiving end of one ``loady``: CRC-16 blocks in, ACK/NAK out (U-Boot's xyzModem)."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.data = bytearray()
        self.size: int | None = None
        self.expected = 1  # the next data block number
        self.eot = False
        self.done = False

    def feed(self, data: bytes) -> bytes:
        """Bytes from the host; the receiver's answers."""
        self.buf += data
        out = bytearray()
        while self.buf and not self.done:
            head = self.buf[0]
            if head == xymodem.EOT:
                del self.buf[:1]
                self.eot = True
                out.append(xymodem.ACK)
                continue
            if head == xymodem.CAN:
                del self.buf[:1]
                self.done = True
                break
            if head not in (xymodem.SOH, xymodem.STX):
                del self.buf[:1]  # line noise between frames
                continue
            length = 3 + (128 if head == xymodem.SOH else 1024) + 2
            if len(self.buf) < length:
                break
            frame, self.buf = bytes(self.buf[:length]), self.buf[length:]
            out += self._block(frame)
        return bytes(out)

    def _block(self, frame: bytes) -> bytes:
        seq, inverse, body = frame[1], frame[2], frame[3:-2]
        crc = int.from_bytes(frame[-2:], "big")
        if seq != 0xFF - inverse or xymodem.crc16_fast(body) != crc:
            return bytes([xymodem.NAK])
        if seq == 0:
            if self.eot:  # the empty batch-end header
                self.done = True
            elif self.size is None:
                name, _, rest = body.partition(b"\0")
                self.size = int(rest.split(b"\0")[0] or b"0")
            return bytes([xymodem.ACK])
        if seq == (self.expected - 1) & 0xFF:
            return bytes([xymodem.ACK])  # a block sent again (its ACK was lost): keep one copy
        if seq != self.expected & 0xFF:
            return bytes([xymodem.NAK])
        self.data += body
        self.expected += 1
        return bytes([xymodem.ACK])

    @property
    def payload(self) -> bytes:
        return bytes(self.data[: self.size if self.size is not None else len(self.data)])


@dataclass
class _BoardUBoot(FakeUBoot):
    """FakeUBoot plus what the serial flash needs (see the module docstring)."""

    board: FakeBoard | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.receiver: _YmodemReceiver | None = None
        self.load_addr = 0

    def on_write(self, data: bytes) -> None:
        if self.receiver is None:
            super().on_write(data)
            return
        self._rx += self.receiver.feed(data)
        if self.receiver.done:
            self._finish_load()

    def _type(self, char: str) -> None:
        if char in "\r\n" and self.board is not None:
            argv = self._line.split()
            if argv[:1] in (["boot"], ["reset"]):
                self.lines.append(self._line)
                self._line = ""
                self._rx += b"\r\n"
                if argv[0] == "boot":
                    self.board.enter_boot()
                else:
                    self.board.power_cycle()  # U-Boot's reset: the board starts over
                return
            if argv[:1] == ["loady"] and len(argv) == 2:
                self.lines.append(self._line)
                self._line = ""
                self.load_addr = int(argv[1], 16)
                self.receiver = _YmodemReceiver()
                self._rx += (
                    f"\r\n## Ready for binary (ymodem) download to 0x{self.load_addr:08X} "
                    "at 115200 bps...\r\nC"
                ).encode()
                return
        super()._type(char)

    def _finish_load(self) -> None:
        assert self.receiver is not None and self.board is not None
        data = self.receiver.payload
        self.receiver = None
        ram = bytearray(data)
        if self.board.corrupt_loads and ram:
            self.board.corrupt_loads -= 1
            ram[len(ram) // 2] ^= 0x01  # intact on the line, one bit wrong in RAM
        self.memory[self.load_addr] = bytes(ram)
        self.env["filesize"] = f"{len(data):x}"
        self._last_status = 0
        # After a pause, as U-Boot does: a sender reading the last ACK must not swallow it.
        self.feed(
            f"\r\n## Total Size      = 0x{len(data):08x} = {len(data)} Bytes\r\n{self.prompt}".encode(),
            delay=0.05,
        )

    def _execute(self, line: str) -> str:
        return super()._execute(_VAR.sub(lambda m: self.env.get(m.group(1), ""), line))


class FakePower(Power):
    """The fake board's power switch (a ``power`` factory's product)."""

    kind = "fake"
    can_cycle = True

    def __init__(self, board: FakeBoard) -> None:
        self.board = board

    @property
    def description(self) -> str:
        return "fake board power"

    def cycle(self) -> None:
        self.board.power_cycle()


class FakeBoard:
    """One simulated board (see the module docstring)."""

    def __init__(
        self,
        board: str = DEFAULT_BOARD,
        *,
        bootdelay: float = 1.0,
        host_key: str | None = None,
    ) -> None:
        self.profile: Board = load_board(board)
        self.bootdelay = bootdelay
        self.block_size = self.profile.block_size
        self.disk = bytearray(int(self.profile.get("flash.disk_size_mib", 80)) << 20)
        self.files: dict[str, bytes] = {}  # the boot partition's FAT
        if host_key is None:
            from toolkit.testing.fake_ssh import ed25519_host_key  # (keeps paramiko's kin out)

            host_key = " ".join(ed25519_host_key())
        self.host_key = host_key
        self.authorized_keys: list[str] = []
        self.corrupt_loads = 0
        self.power_cycles = 0
        self.boots: list[str] = []  # the slot each Linux boot ran
        self.uboot: _BoardUBoot | None = None
        self.shell: FakeShell | None = None
        self.running_slot: str | None = None
        self.transport = _Line(self)

    # --- what a test sets up and looks at ---------------------------------------------------

    def install(self, slot: str, image: bytes, *, active: bool = True) -> None:
        """Put ``image`` into ``slot`` (as a factory would) and make it the active one."""
        start = self.slot_offset(slot)
        self.disk[start : start + len(image)] = image
        if active:
            self.files["state.env"] = f"rk_active={slot}\nrk_tries=0\n".encode()

    def slot_offset(self, slot: str) -> int:
        return self.profile.slot(slot).start_block * self.block_size

    def slot_bytes(self, slot: str, length: int) -> bytes:
        start = self.slot_offset(slot)
        return bytes(self.disk[start : start + length])

    def active_slot(self) -> str:
        """What boot.scr would boot: ``rk_active`` from state.env, A without one."""
        for line in self.files.get("state.env", b"").decode("latin-1").splitlines():
            key, _, value = line.strip().partition("=")
            if key == "rk_active" and value in self.profile.slots:
                return value
        return "A"

    def slot_metadata(self, slot: str) -> dict[str, Any] | None:
        """The metadata JSON right after the FIT in ``slot``, as the disk holds it."""
        start = self.slot_offset(slot)
        head = self.disk[start : start + 8]
        if head[:4] != _FIT_MAGIC:
            return None
        fit_size = int.from_bytes(head[4:8], "big")
        raw = bytes(self.disk[start + fit_size : start + fit_size + 4096])
        try:
            value, _ = json.JSONDecoder().raw_decode(raw.decode("utf-8", "replace"))
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def fwinfo(self) -> dict[str, Any]:
        slots: dict[str, Any] = {}
        for name in self.profile.slots:
            meta = self.slot_metadata(name)
            slots[name] = {"version": meta.get("version")} if meta else {"empty": True}
        running = self.running_slot or "A"
        meta = self.slot_metadata(running) or {}
        return {
            "board": meta.get("board", self.profile.id),
            "version": meta.get("version", ""),
            "running_slot": running,
            "active_slot": self.active_slot(),
            "slots": slots,
        }

    # --- factories for the serial flash ------------------------------------------------------

    def console(self, target: Any, journal: Any) -> Console:
        """A ``console`` factory: this board's line, the transcript in the journal."""
        return Console(
            self.transport,
            transcript_path=journal.files_dir / "console.log",
            name=f"{target.name} console",
        )

    def power(self, target: Any, *, ask: Callable[[str], None] | None = None) -> FakePower:
        """A ``power`` factory (the signature of :func:`toolkit.target.power.from_target`)."""
        return FakePower(self)

    # --- what the device does ----------------------------------------------------------------

    def power_cycle(self) -> None:
        """Power-on (or ``reset``): U-Boot starts its countdown again; RAM and Linux are gone."""
        self.power_cycles += 1
        self.restart()

    def restart(self) -> None:
        """A restart from the first stage (``reset``, ``reboot``, power-on)."""
        self.shell = None
        self.running_slot = None
        self.uboot = _BoardUBoot(
            bootdelay=self.bootdelay, board=self, commands=self._uboot_commands()
        )

    def enter_boot(self) -> None:
        """``boot``: run the active slot's Linux up to its shell prompt."""
        self.uboot = None
        self.running_slot = self.active_slot()
        self.boots.append(self.running_slot)
        self.shell = FakeShell(commands=self._linux)
        self.shell.feed(
            b"Starting kernel ...\r\n\r\n[    0.000000] Booting Linux on physical CPU 0x0\r\n"
            + self.shell.prompt.encode()
            + b"\x1b[6n"
        )

    def _uboot_commands(self) -> dict[str, Callable[[list[str]], tuple[str, int]]]:
        return {
            "printenv": self._printenv,
            "setenv": self._setenv,
            "test": self._test,
            "virtio": self._virtio,
            "md.b": self._md,
            "fatload": self._fatload,
            "fatwrite": self._fatwrite,
            "env": self._env,
        }

    def _ub(self) -> _BoardUBoot:
        assert self.uboot is not None
        return self.uboot

    def _printenv(self, argv: list[str]) -> tuple[str, int]:
        env = self._ub().env
        if len(argv) == 1:
            body = "".join(f"{k}={v}\n" for k, v in sorted(env.items()))
            return body + f"\nEnvironment size: {len(body)}/65532 bytes\n", 0
        out, status = "", 0
        for name in argv[1:]:
            if name in env:
                out += f"{name}={env[name]}\n"
            else:
                out += f'## Error: "{name}" not defined\n'
                status = 1
        return out, status

    def _setenv(self, argv: list[str]) -> tuple[str, int]:
        if len(argv) < 2:
            return "Usage: setenv name value\n", 1
        if len(argv) == 2:
            self._ub().env.pop(argv[1], None)
        else:
            self._ub().env[argv[1]] = " ".join(argv[2:])
        return "", 0

    def _test(self, argv: list[str]) -> tuple[str, int]:
        if len(argv) == 4 and argv[2] == "=":
            return "", int(argv[1] != argv[3])
        return "", 1

    def _virtio(self, argv: list[str]) -> tuple[str, int]:
        if argv[1:2] == ["scan"]:
            return "", 0
        if len(argv) != 5 or argv[1] not in ("read", "write"):
            return "virtio - virtio block devices sub-system\n", 1
        addr, block, count = (int(a, 16) for a in argv[2:])
        start, length = block * self.block_size, count * self.block_size
        if start + length > len(self.disk):
            return f"virtio {argv[1]}: beyond the end of the disk\n", 1
        if argv[1] == "read":
            self._ub().memory[addr] = bytes(self.disk[start : start + length])
        else:
            self.disk[start : start + length] = self._ub()._ram(addr, length)
        verb = "read" if argv[1] == "read" else "write"
        return (
            f"\nvirtio {verb}: device 0 block # {block}, count {count} ... {count} blocks "
            f"{verb}: OK\n",
            0,
        )

    def _md(self, argv: list[str]) -> tuple[str, int]:
        addr, length = int(argv[1], 16), int(argv[2], 16)
        data = self._ub()._ram(addr, length)
        lines = []
        for at in range(0, length, 16):
            row = data[at : at + 16]
            text = "".join(chr(b) if 32 <= b < 127 else "." for b in row)
            lines.append(f"{addr + at:08x}: {' '.join(f'{b:02x}' for b in row)}    {text}\n")
        return "".join(lines), 0

    def _fat_name(self, argv: list[str], at: int) -> str | None:
        part = str(self.profile.require("flash.bootstate.partition"))
        if len(argv) <= at or not argv[2].endswith(f":{part}"):
            return None
        return argv[at]

    def _fatload(self, argv: list[str]) -> tuple[str, int]:
        name = self._fat_name(argv, 4)
        if name is None or name not in self.files:
            return f"** Unable to read file {name} **\n", 1
        data = self.files[name]
        self._ub().memory[int(argv[3], 16)] = data
        self._ub().env["filesize"] = f"{len(data):x}"
        return f"{len(data)} bytes read in 1 ms\n", 0

    def _fatwrite(self, argv: list[str]) -> tuple[str, int]:
        name = self._fat_name(argv, 4)
        if name is None or len(argv) != 6:
            return "Usage: fatwrite <interface> <dev[:part]> <addr> <filename> [<bytes>]\n", 1
        size = int(argv[5], 16)
        self.files[name] = self._ub()._ram(int(argv[3], 16), size)
        return f"{size} bytes written in 1 ms\n", 0

    def _env(self, argv: list[str]) -> tuple[str, int]:
        env = self._ub().env
        if argv[1:3] == ["import", "-t"] and len(argv) >= 5:
            text = self._ub()._ram(int(argv[3], 16), int(argv[4], 16)).decode("latin-1")
            wanted = set(argv[5:])
            for line in text.split("\n"):
                key, sep, value = line.strip("\0\r").partition("=")
                if sep and (not wanted or key in wanted):
                    env[key] = value
            return "", 0
        if argv[1:3] == ["export", "-t"] and len(argv) >= 4:
            names = argv[4:] or sorted(env)
            blob = "".join(f"{k}={env[k]}\n" for k in names if k in env).encode() + b"\0"
            self._ub().memory[int(argv[3], 16)] = blob
            env["filesize"] = f"{len(blob):x}"
            return "", 0
        return "env - environment handling commands\n", 1

    def _linux(self, cmd: str) -> tuple[str, int]:
        """The Linux side: the few programs the flash runs, answered from the board's state."""
        argv = shlex.split(cmd)
        if argv == ["/sbin/fwinfo"]:
            return json.dumps(self.fwinfo()) + "\n", 0
        if argv == ["reboot"]:
            self.restart()  # Linux is gone; U-Boot counts down again
            return "", 0
        if argv == ["cat", "/etc/firmware-version"]:
            return f"{self.fwinfo()['version']}\n", 0
        if argv[:2] == ["rk-settings", "hostkey"]:
            digest = hashlib.sha256(self.host_key.encode()).hexdigest()
            return f"{self.host_key}\nsha256 {digest}\n", 0
        if argv[:2] == ["rk-settings", "authorize"] and len(argv) >= 4:
            line, digest = argv[2], argv[3]
            if hashlib.sha256(line.encode()).hexdigest() != digest:
                return "rk-settings: the key line does not match its sha256\n", 1
            if line not in self.authorized_keys:
                self.authorized_keys.append(line)
            return f"authorized {digest}\n", 0
        return f"sh: {argv[0] if argv else cmd}: not found\n", 127


class _Line(FakeTransport):
    """The board's serial line: bytes go to whoever runs now (U-Boot, Linux, or nobody)."""

    def __init__(self, board: FakeBoard) -> None:
        super().__init__()
        self.board = board

    def _device(self) -> FakeTransport | None:
        return self.board.uboot if self.board.uboot is not None else self.board.shell

    def on_write(self, data: bytes) -> None:
        device = self._device()
        if device is not None:  # powered off: the bytes are lost
            device.write(data)
            self._rx += device.read(1 << 20, 0.0)

    def read(self, max_bytes: int, timeout: float) -> bytes:
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            device = self._device()
            if device is not None:
                pending = device.read(1 << 20, 0.0)
                if pending:
                    self.feed(pending)
            data = super().read(max_bytes, 0.0)
            left = deadline - time.monotonic()
            if data or left <= 0:
                return data
            time.sleep(min(0.005, left))
