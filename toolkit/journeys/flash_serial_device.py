"""What the serial flash does at the U-Boot prompt: loads, slot I/O, the switch.

Every command goes through the U-Boot driver (:mod:`toolkit.target.uboot`) and its one command
runner: typed without Enter, its echo checked (on a noisy line a flipped bit in
``virtio write 0x50000000 0x14800 0x200`` could turn the block number into one inside the
*active* slot, so a wrong echo gets Ctrl-C and is typed again, never run), the exit status read
between nonce markers, and a damaged answer run again (every command the flash sends is
idempotent: set, load, write or read the same thing). Reads of device state (``printenv``,
``md.b``) are asked until two answers agree. Everything board-specific (commands, addresses,
slots) comes from the board profile.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from toolkit.boards import Board, Slot
from toolkit.errors import (
    DeviceCommandError,
    DeviceError,
    DeviceTimeout,
    TransferError,
    VerifyError,
)
from toolkit.protocol import xymodem
from toolkit.protocol.console import Console
from toolkit.target.uboot import UBoot

if TYPE_CHECKING:
    from toolkit.journeys.flash_serial_plan import Chunk

_TOTAL = re.compile(r"## Total Size\s*=\s*0x[0-9a-fA-F]+\s*=\s*(\d+) Bytes")
#: ``md.b`` pieces: small enough to come through a noisy line whole, see :meth:`Device.dump`.
DUMP_PIECE = 256
DUMP_TRIES = 8
#: A piece that did not come through whole this many times is read as two halves (a noisier
#: line needs shorter answers), down to one ``md.b`` line of 16 bytes.
DUMP_SPLIT_AFTER = 2
DUMP_MIN_PIECE = 16
_MD_LINE = re.compile(r"^[0-9a-fA-F]{8}:((?: [0-9a-fA-F]{2}){1,16})", re.M)


#: The only variables the flasher takes from a device's state.env (the ones boot.scr imports).
STATE_VARS = ("rk_active", "rk_tries")
_STATE_KEY = re.compile(r"rk_[a-z_]+")
_STATE_VALUE = re.compile(r"[A-Za-z0-9]{1,16}")


def parse_state_env(text: str) -> dict[str, str]:
    """The ``rk_*=value`` pairs of a state.env (or of ``printenv`` output), and nothing else.

    Keys other than ``rk_`` + lowercase letters and values other than 1-16 letters or digits
    (``B; reset``, an ESC sequence, a 4 KiB line) are dropped, not trusted or repaired.
    """
    state: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and _STATE_KEY.fullmatch(key) and _STATE_VALUE.fullmatch(value):
            state[key] = value
    return state


@dataclass
class Device:
    """U-Boot on one board, seen through the flash journey's eyes."""

    uboot: UBoot
    board: Board
    # X/YMODEM block size: 1024 until a transfer fails, then 128 for the rest of the session
    # (on a noisy line each bit error costs U-Boot's 2 s flush; a small block catches fewer).
    serial_block: int = 1024

    @property
    def console(self) -> Console:
        return self.uboot.console

    @property
    def load_addr(self) -> int:
        return int(str(self.board.require("flash.load_addr")), 0)

    @property
    def scratch_addr(self) -> int:
        return int(str(self.board.get("flash.scratch_addr", hex(self.load_addr + (128 << 20)))), 0)

    @property
    def copy_addr(self) -> int | None:
        """RAM that holds the active slot during a delta reflash (None: the board has no room
        to spare, so every chunk is sent)."""
        value = self.board.get("flash.copy_addr")
        return None if value is None else int(str(value), 0)

    # --- commands ------------------------------------------------------------------------

    def run(self, cmd: str, timeout: float = 30.0) -> str:
        """Run ``cmd`` through the U-Boot driver; its output; status != 0 raises
        :class:`~toolkit.errors.DeviceCommandError`."""
        return self.uboot.run(cmd, timeout)

    def recover(self) -> None:
        """Drop whatever half-typed line or garbage is there and get a synced prompt."""
        self.uboot.recover()

    def crc32(self, addr: int, length: int) -> int:
        return self.uboot.crc32(addr, length, timeout=60.0)

    def crc32_is(self, addr: int, length: int, expected: int) -> bool:
        """True if RAM holds ``expected``; a mismatch is asked twice (noise on the answer)."""
        return self.uboot.crc32_is(addr, length, expected, timeout=60.0)

    # --- slots -------------------------------------------------------------------------

    def _blocks(self, slot: Slot, offset: int, length: int) -> tuple[int, int]:
        size = self.board.block_size
        if offset % size:
            raise ValueError(f"offset {offset} is not block aligned")
        return slot.start_block + offset // size, -(-length // size)

    def write_slot(self, slot: Slot, offset: int, length: int, addr: int | None = None) -> None:
        """Write RAM at ``addr`` (default: load_addr) to ``slot`` at byte ``offset``."""
        block, count = self._blocks(slot, offset, length)
        if offset + length > slot.size_bytes(self.board.block_size):
            raise ValueError("write past the end of the slot")
        cmd = str(self.board.require("flash.write")).format(
            addr=hex(self.load_addr if addr is None else addr), block=block, count=count
        )
        self.run(cmd, timeout=60.0 + length / 1e6)

    def slot_crc_is(self, slot: Slot, offset: int, length: int, expected: int) -> bool:
        """Read the slot region back into scratch RAM and compare its crc32."""
        block, count = self._blocks(slot, offset, length)
        cmd = str(self.board.require("flash.read")).format(
            addr=hex(self.scratch_addr), block=block, count=count
        )
        self.run(cmd, timeout=60.0 + length / 1e6)
        return self.crc32_is(self.scratch_addr, length, expected)

    def read_slot(self, slot: Slot, length: int, addr: int) -> None:
        """Read the first ``length`` bytes of ``slot`` (whole blocks) into RAM at ``addr``."""
        block, count = self._blocks(slot, 0, length)
        cmd = str(self.board.require("flash.read")).format(addr=hex(addr), block=block, count=count)
        self.run(cmd, timeout=60.0 + length / 1e6)

    def chunk_crcs(self, slot: Slot, chunks: Sequence[Chunk], addr: int) -> dict[int, int]:
        """The crc32 of each chunk's range as ``slot`` holds it now, by chunk index: the slot
        is read into RAM at ``addr`` once, then U-Boot sums the ranges there (a few per line).
        A range whose sum did not come back legibly is left out, so it looks changed."""
        if not chunks:
            return {}
        self.read_slot(slot, max(chunk.end for chunk in chunks), addr)
        sums = self.uboot.crc32_many([(addr + c.offset, c.length) for c in chunks])
        return {
            c.index: sums[(addr + c.offset, c.length)]
            for c in chunks
            if (addr + c.offset, c.length) in sums
        }

    def rescan(self) -> None:
        cmd = self.board.get("flash.rescan")
        if cmd:
            self.run(str(cmd), timeout=30.0)

    # --- A/B state -----------------------------------------------------------------------

    def _fat(self) -> str:
        iface = self.board.require("flash.interface")
        return f"{iface} {self.board.get('flash.device', '0')}:{self.board.require('flash.bootstate.partition')}"

    def active_slot(self) -> str:
        """``rk_active`` from state.env on the boot partition (A when there is none yet).

        Only ``rk_active`` and ``rk_tries`` are imported, as boot.scr does: state.env sits on
        a FAT anyone holding the board can write, and a plain ``env import`` of it would set
        ``bootcmd``, ``preboot`` or anything else in the U-Boot the flasher is driving.
        A value that is not exactly one of the board's slots counts as boot.scr counts it:
        slot A.
        """
        state = str(self.board.get("flash.bootstate.file", "state.env"))
        self.run("setenv rk_active; setenv rk_tries")
        try:
            self.run(f"fatload {self._fat()} {self.scratch_addr:#x} {state}")
            self.run(f"env import -t {self.scratch_addr:#x} ${{filesize}} {' '.join(STATE_VARS)}")
            values = parse_state_env(self.uboot.read("printenv rk_active"))
        except DeviceCommandError:
            return "A"  # boot.scr's rule: no state file (or no rk_active in it) means slot A
        slot = values.get("rk_active", "A")
        if slot not in self.board.slots:
            return "A"
        # printenv's text came through the console, which strips terminal escapes: let
        # U-Boot compare the raw value, as boot.scr will ("B<ESC>[2J" is not B there).
        try:
            self.run(f'test "${{rk_active}}" = "{slot}"')
        except DeviceCommandError:
            return "A"
        return slot

    def switch_to(self, slot: str) -> None:
        """Write ``rk_active=slot``, ``rk_tries=0`` to state.env, then read it back."""
        state = str(self.board.get("flash.bootstate.file", "state.env"))
        addr = f"{self.scratch_addr:#x}"
        self.run(f"setenv rk_active {slot}; setenv rk_tries 0")
        self.run(f"env export -t {addr} rk_active rk_tries")
        self.run(f"fatwrite {self._fat()} {addr} {state} ${{filesize}}", timeout=30.0)
        if self.active_slot() != slot:
            raise VerifyError(f"state.env does not say slot {slot} after writing it")

    def slot_metadata(self, slot: Slot) -> dict[str, object] | None:
        """The metadata JSON of the image in ``slot`` (None if there is no image)."""
        self.run(str(self.board.require("flash.read")).format(
            addr=hex(self.scratch_addr), block=slot.start_block, count=1))  # fmt: skip
        head = self.dump(self.scratch_addr, 8)
        if head[:4] != b"\xd0\x0d\xfe\xed":
            return None
        fit_size = int.from_bytes(head[4:8], "big")
        bs = self.board.block_size
        first = fit_size // bs
        if fit_size + 4096 > slot.size_bytes(bs):
            return None
        self.run(str(self.board.require("flash.read")).format(
            addr=hex(self.scratch_addr), block=slot.start_block + first, count=4096 // bs + 1))  # fmt: skip
        # Read only as much as the JSON needs (a few hundred bytes), up to 4 KiB.
        start = self.scratch_addr + fit_size % bs
        raw = b""
        while len(raw) < 4096:
            raw += self.dump(start + len(raw), DUMP_PIECE)
            try:
                value, _ = json.JSONDecoder().raw_decode(raw.decode("utf-8", "replace"))
            except ValueError:
                continue
            return value if isinstance(value, dict) else None
        return None

    def dump(self, addr: int, length: int) -> bytes:
        """RAM bytes through ``md.b`` (U-Boot has no binary upload), in small pieces each
        checked against U-Boot's own ``crc32`` of that RAM.

        A hex dump is ~4.7 characters per byte: a 4 KiB dump catches a flipped bit about
        every other time at a bit-error rate of 1e-5, so asking for the whole dump until two
        answers agree almost never ends on a noisy line. A 256-byte piece is clean ~9 times
        in 10 at 1e-4, and its crc32 says whether this answer is the one (a wrong dump that
        matches a wrong crc is a 2^-32 event). A piece that fails twice is read as two halves
        (at 3e-4 a 256-byte dump is rarely clean; a 16-byte line mostly is)."""
        data = bytearray()
        for offset in range(0, length, DUMP_PIECE):
            data += self._dump_piece(addr + offset, min(DUMP_PIECE, length - offset))
        return bytes(data)

    def _dump_piece(self, addr: int, length: int) -> bytes:
        last = ""
        for attempt in range(DUMP_TRIES):
            if attempt == DUMP_SPLIT_AFTER and length > DUMP_MIN_PIECE:
                half = max(DUMP_MIN_PIECE, length // 2 // DUMP_MIN_PIECE * DUMP_MIN_PIECE)
                return self._dump_piece(addr, half) + self._dump_piece(addr + half, length - half)
            result = self.uboot.run_status(f"md.b {addr:#x} {length:#x}", timeout=30.0)
            last = result.output
            piece = bytearray()
            for match in _MD_LINE.finditer(result.output):
                piece += bytes.fromhex(match.group(1).replace(" ", ""))
            if result.ok and len(piece) >= length:
                try:
                    if self.uboot.crc32(addr, length) == zlib.crc32(bytes(piece[:length])):
                        return bytes(piece[:length])
                except DeviceError:
                    pass  # the crc32 answer itself was garbled: dump and ask again
        raise DeviceCommandError(
            f"could not read {length} bytes at {addr:#x} cleanly in {DUMP_TRIES} tries "
            "(a noisy line?)",
            last_output=last,
        )

    # --- loads into RAM ----------------------------------------------------------------

    def load_serial(
        self, data: bytes, addr: int, protocol: str, progress: xymodem.Progress | None
    ) -> int:
        """Send ``data`` to RAM by ``loady``/``loadx``; returns bytes put on the line."""
        command = {"ymodem": "loady", "xmodem": "loadx"}[protocol]
        if not self.uboot.type_checked(f"{command} {addr:#x}"):
            self.recover()
            raise TransferError(f"could not type {command} (line noise?)")
        self.console.write(b"\n")
        try:
            self.console.expect("download", timeout=5.0)
        except DeviceTimeout as exc:
            self.recover()
            raise TransferError(
                f"U-Boot did not start {command}", last_output=exc.last_output
            ) from None
        _no_nagle(self.console)
        try:
            with self.console.binary():
                sender = xymodem.send_ymodem if protocol == "ymodem" else xymodem.send_xmodem
                stats = sender(  # type: ignore[operator]
                    self.console, data, start_timeout=10.0, progress=progress,
                    max_seconds=10.0 + len(data) / 4000, block_size=self.serial_block,
                )  # fmt: skip
        except TransferError:
            self.serial_block = 128
            self.abort_transfer()
            raise
        except KeyboardInterrupt:
            self.abort_transfer()
            raise
        # U-Boot says "## Total Size = 0x... = N Bytes" (or why it stopped) and gives the prompt back.
        said = self.uboot.wait_prompt(10.0)
        if said is None:
            said = self.console.tail()
            self.recover()
        elif "incomplete" in said or "aborted" in said:
            self.recover()
        total = _TOTAL.search(said)
        if protocol == "ymodem" and (total is None or int(total.group(1)) != len(data)):
            got = total.group(1) if total else "no"
            raise TransferError(
                f"U-Boot's loady reports {got} bytes received, {len(data)} were sent",
                last_output=said,
            )
        return int(stats.wire)

    def abort_transfer(self) -> None:
        """Cancel a running loadx/loady and get the prompt back (Ctrl-C, a broken link)."""
        try:
            xymodem.cancel(self.console)
            time.sleep(0.2)
            self.recover()
        except Exception:  # noqa: BLE001 - best effort while already failing
            pass


def _no_nagle(console: Console) -> None:
    """A ``socket://`` link sends each frame at once (TCP_NODELAY). Without it, the second
    frame of a window waits for the TCP ACK of the first: up to 40 ms of delayed ACK."""
    sock = getattr(getattr(console.transport, "serial", None), "_socket", None)
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
