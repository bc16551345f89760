"""Scripted fake transports, shipped with the package so any test can simulate a device.

:class:`FakeTransport` has a receive queue (what the "device" says, optionally released after a
delay) and a transmit log (everything the host wrote). *Responders* watch the transmit stream,
fabric-watcher style: when a pattern appears in what the host wrote, the response is queued::

    fake = FakeTransport()
    fake.respond(b"\\n", b"\\r\\n=> ")
    fake.respond(rb"version\\n", b"version\\r\\nU-Boot 2023.01\\r\\n=> ")

:class:`FakeUBoot` goes further: a tiny U-Boot that prints a banner (late, garbled, or not at
all), counts down, stops on any key, echoes what is typed and runs a few commands (``version``,
``printenv``, ``setenv``, ``echo`` with ``$?``, ``crc32`` over a fake RAM, ``true``/``false``),
so the U-Boot dialogue can be tested without QEMU. Extra commands are plain functions.
"""

from __future__ import annotations

import heapq
import itertools
import re
import shlex
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from toolkit.errors import PortError
from toolkit.transport.base import TransportBase

ResponseFn = Callable[["re.Match[bytes]"], bytes | None]


@dataclass
class Responder:
    """When ``pattern`` appears in what the host wrote, queue ``response`` (after ``delay`` s).

    ``skip`` ignores the first N matches; ``times`` limits how often it answers (None: always).
    A callable response gets the match and may return ``None`` to stay silent.
    """

    pattern: re.Pattern[bytes]
    response: bytes | ResponseFn
    times: int | None = None
    skip: int = 0
    delay: float = 0.0
    hits: int = 0

    @property
    def active(self) -> bool:
        return self.times is None or self.hits < self.skip + self.times


class FakeTransport(TransportBase):
    """A scripted :class:`~toolkit.transport.base.Transport` (thread-safe)."""

    def __init__(self, *, echo: bool = False, responders: Iterable[Responder] = ()) -> None:
        self.echo = echo
        self.responders: list[Responder] = list(responders)
        self.writes: list[bytes] = []
        self.closed = False
        self._sent = bytearray()
        self._window = bytearray()  # transmit bytes not yet consumed by a responder match
        self._rx = bytearray()
        self._scheduled: list[tuple[float, int, bytes]] = []
        self._seq = itertools.count()
        self._dropped: str | None = None
        self._cond = threading.Condition()

    # --- the device side (used by tests) ------------------------------------------------

    def feed(self, data: bytes, *, delay: float = 0.0) -> int:
        """Queue ``data`` for the host to read, now or ``delay`` seconds from now.

        Returns a ticket for :meth:`cancel` (a delayed message the device no longer sends).
        """
        with self._cond:
            ticket = next(self._seq)
            if delay > 0:
                heapq.heappush(self._scheduled, (time.monotonic() + delay, ticket, bytes(data)))
            else:
                self._rx += data
            self._cond.notify_all()
            return ticket

    def cancel(self, ticket: int) -> None:
        """Withdraw a delayed :meth:`feed` that has not been released yet."""
        with self._cond:
            self._scheduled = [item for item in self._scheduled if item[1] != ticket]
            heapq.heapify(self._scheduled)

    def respond(
        self,
        pattern: bytes | re.Pattern[bytes],
        response: bytes | ResponseFn,
        *,
        times: int | None = None,
        skip: int = 0,
        delay: float = 0.0,
    ) -> Responder:
        """Add a responder. ``bytes`` patterns are regular expressions (use ``re.escape``)."""
        compiled = re.compile(pattern, re.DOTALL) if isinstance(pattern, bytes) else pattern
        responder = Responder(compiled, response, times=times, skip=skip, delay=delay)
        self.responders.append(responder)
        return responder

    def disconnect(self, reason: str = "cable unplugged") -> None:
        """Simulate a dropped link: every later read or write raises PortError."""
        with self._cond:
            self._dropped = reason
            self._cond.notify_all()

    @property
    def sent(self) -> bytes:
        """Everything the host has written so far (the transmit log)."""
        with self._cond:
            return bytes(self._sent)

    def pending(self) -> int:
        """Bytes queued and already released but not yet read by the host."""
        with self._cond:
            self._release_due()
            return len(self._rx)

    def on_write(self, data: bytes) -> None:
        """Hook for subclasses: called (lock held) with each chunk the host writes."""

    # --- the Transport primitives --------------------------------------------------------

    def read(self, max_bytes: int, timeout: float) -> bytes:
        """Return released bytes at once, else wait up to ``timeout`` for some."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            while True:
                self._check_link()
                self._release_due()
                if self._rx:
                    data = bytes(self._rx[: max(1, max_bytes)])
                    del self._rx[: len(data)]
                    return data
                now = time.monotonic()
                if now >= deadline:
                    return b""
                wake = deadline
                if self._scheduled:
                    wake = min(wake, self._scheduled[0][0])
                self._cond.wait(max(0.0, wake - now))

    def write(self, data: bytes) -> None:
        """Log ``data``, echo it if asked, and run the responders over the transmit stream."""
        with self._cond:
            self._check_link()
            data = bytes(data)
            self.writes.append(data)
            self._sent += data
            if self.echo:
                self._rx += data
            self.on_write(data)
            self._window += data
            self._run_responders()
            self._cond.notify_all()

    def close(self) -> None:
        """Mark closed; later reads/writes raise PortError like a closed pyserial port."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    # --- internals -----------------------------------------------------------------------

    def _check_link(self) -> None:
        if self.closed:
            raise PortError("fake transport is closed")
        if self._dropped is not None:
            raise PortError(f"fake serial link dropped: {self._dropped}")

    def _release_due(self) -> None:
        now = time.monotonic()
        while self._scheduled and self._scheduled[0][0] <= now:
            self._rx += heapq.heappop(self._scheduled)[2]

    def _run_responders(self) -> None:
        while True:
            best: tuple[int, int, Responder, re.Match[bytes]] | None = None
            for order, responder in enumerate(self.responders):
                if not responder.active:
                    continue
                match = responder.pattern.search(self._window)
                if match and (best is None or (match.start(), order) < best[:2]):
                    best = (match.start(), order, responder, match)
            if best is None:
                break
            _, _, responder, match = best
            responder.hits += 1
            reply: bytes | None = None
            if responder.hits > responder.skip:
                reply = (
                    responder.response(match)
                    if callable(responder.response)
                    else responder.response
                )
            del self._window[: max(match.end(), 1)]  # after the callable has seen the match
            if reply:
                if responder.delay > 0:
                    item = (time.monotonic() + responder.delay, next(self._seq), reply)
                    heapq.heappush(self._scheduled, item)
                else:
                    self._rx += reply
        if len(self._window) > 65536:  # unmatched chatter: keep only the recent part
            del self._window[:-4096]


# A command of the fake U-Boot: gets argv (argv[0] is the command), returns (output, status).
FakeCommand = Callable[[list[str]], tuple[str, int]]

DEFAULT_BANNER = (
    "\r\n\r\nU-Boot 2023.01+dfsg-2 (Jan 01 2024 - 00:00:00 +0000)\r\n\r\n"
    "DRAM:  1 GiB\r\nCore:  51 devices, 14 uclasses, devicetree: board\r\n"
    "In:    pl011@9000000\r\nOut:   pl011@9000000\r\nErr:   pl011@9000000\r\n"
    "Net:   eth0: virtio-net#32\r\n"
)


@dataclass
class FakeUBoot(FakeTransport):
    """A small simulated U-Boot on a fake serial line.

    Timeline from construction: after ``boot_delay`` s the ``banner`` appears (``None``: no
    banner; pass noise to garble it), then "Hit any key to stop autoboot" counts down for
    ``bootdelay`` s; a key during the countdown gives the prompt. Keys before the countdown are
    lost (as on a UART that is not yet set up); after it the board "boots Linux" and ignores
    input. ``at_prompt=True`` starts directly at an idle prompt with no output at all.
    """

    prompt: str = "=> "
    banner: str | None = DEFAULT_BANNER
    boot_delay: float = 0.0
    bootdelay: float = 2.0
    at_prompt: bool = False
    version_text: str = (
        "U-Boot 2023.01+dfsg-2 (Jan 01 2024 - 00:00:00 +0000)\r\n\r\naarch64-linux-gnu-gcc 12.2.0"
    )
    env: dict[str, str] = field(default_factory=lambda: {"bootdelay": "2", "arch": "arm"})
    memory: dict[int, bytes] = field(default_factory=dict)
    commands: Mapping[str, FakeCommand] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(echo=False)
        self.state = "prompt" if self.at_prompt else "booting"
        self.lines: list[str] = []  # every command line executed, for assertions
        self._line = ""
        self._last_status = 0
        t0 = time.monotonic()
        self._countdown_at = t0 + self.boot_delay
        self._autoboot_at = self._countdown_at + self.bootdelay
        self._autoboot_ticket = -1
        if not self.at_prompt:
            text = (self.banner or "") + "Hit any key to stop autoboot:  2 "
            self.feed(text.encode(), delay=self.boot_delay)
            booting = b"\b\b\b 0 \r\nScanning for boot devices...\r\nStarting kernel ...\r\n"
            self._autoboot_ticket = self.feed(booting, delay=self.boot_delay + self.bootdelay)

    def _state_now(self) -> str:
        if self.state == "booting":
            now = time.monotonic()
            if now >= self._autoboot_at:
                self.state = "linux"
            elif now >= self._countdown_at:
                return "countdown"
        return self.state

    def on_write(self, data: bytes) -> None:
        for byte in data:
            state = self._state_now()
            if state == "countdown":
                self.state = "prompt"
                self._scheduled = [i for i in self._scheduled if i[1] != self._autoboot_ticket]
                heapq.heapify(self._scheduled)
                self._rx += b"\b\b\b 0 \r\n" + self.prompt.encode()
            elif state == "prompt":
                self._type(chr(byte))

    def _type(self, char: str) -> None:
        if char in "\r\n":
            line, self._line = self._line, ""
            self._rx += b"\r\n"
            self._rx += self._execute(line).encode() + self.prompt.encode()
        elif char == "\x03":
            self._line = ""
            self._rx += b"<INTERRUPT>\r\n" + self.prompt.encode()
        elif char in "\x08\x7f":
            if self._line:
                self._line = self._line[:-1]
                self._rx += b"\x08 \x08"
        else:
            self._line += char
            self._rx += char.encode("latin-1")

    def _execute(self, line: str) -> str:
        """Run a hush-style ``a; b`` line; ``$?`` expands to the previous status."""
        if line.strip():
            self.lines.append(line)
        out = []
        for part in line.split(";"):
            try:
                argv = shlex.split(part.replace("$?", str(self._last_status)))
            except ValueError:
                return "syntax error\r\n"
            if not argv:
                continue
            text, self._last_status = self._command(argv)
            out.append(text)
        return "".join(out)

    def _command(self, argv: list[str]) -> tuple[str, int]:
        name = argv[0]
        if name in self.commands:
            text, status = self.commands[name](argv)
            return text.replace("\n", "\r\n"), status
        if name == "version":
            return self.version_text + "\r\n", 0
        if name == "echo":
            return " ".join(argv[1:]) + "\r\n", 0
        if name in ("true", "false"):
            return "", int(name == "false")
        if name == "setenv" and len(argv) >= 2:
            self.env[argv[1]] = " ".join(argv[2:])
            return "", 0
        if name == "printenv":
            body = "".join(f"{k}={v}\r\n" for k, v in sorted(self.env.items()))
            return body + f"\r\nEnvironment size: {len(body)}/65532 bytes\r\n", 0
        if name == "crc32" and len(argv) == 3:
            addr, length = int(argv[1], 16), int(argv[2], 16)
            data = self._ram(addr, length)
            crc = zlib.crc32(data)
            return f"crc32 for {addr:08x} ... {addr + length - 1:08x} ==> {crc:08x}\r\n", 0
        return f"Unknown command '{name}' - try 'help'\r\n", 1

    def _ram(self, addr: int, length: int) -> bytes:
        """Bytes of the fake RAM (zero where nothing was stored)."""
        buf = bytearray(length)
        for base, blob in self.memory.items():
            lo, hi = max(addr, base), min(addr + length, base + len(blob))
            if lo < hi:
                buf[lo - addr : hi - addr] = blob[lo - base : hi - base]
        return bytes(buf)
