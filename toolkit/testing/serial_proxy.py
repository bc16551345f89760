"""A fault-injecting TCP proxy for serial links: noise, drops, duplicates, cuts, a baud rate.

Put it between pyserial (``socket://``) and a serial server (QEMU's chardev socket, ser2net's
raw TCP port, a bench's terminal server) to see what your flashing does on a bad cable::

    proxy = SerialFaultProxy(("127.0.0.1", qemu_port), Faults(ber=1e-4, drop_rate=1e-5)).start()
    flash(..., serial_url=proxy.url)
    print(proxy.stats)

* ``ber``: bit error rate; each bit flips independently (geometric gaps, so it is cheap).
* ``drop_rate`` / ``dup_rate``: per byte, a byte vanishes / is sent twice (UART overruns).
* ``cut_after``: close the link after that many bytes went towards the device (a pulled cable).
  One-shot: the next connection runs clean unless ``cut_after`` is set again.
* ``rate``: bytes per second in each direction (11,520 for 115200 8N1): what a real line is.
  The virtual sample's UART has no baud pacing at all, so this is how its figures mean something.
* ``direction``: which way the noise goes, ``"both"``, ``"to_device"`` or ``"to_host"``.
* ``latency``: seconds every byte spends in transit, each way, without limiting the rate: what
  a USB-serial adapter adds (an FTDI chip holds received bytes up to its 16 ms latency timer).

Faults can be changed while it runs (``proxy.faults = Faults(...)``), e.g. noise only during a
transfer. One client at a time, like a real serial port; every client gets its own upstream
connection.
"""

from __future__ import annotations

import contextlib
import random
import select
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from types import TracebackType

_CATCH_UP = 0.02  # seconds a late slice may be made up for (below that, the line was never idle)


@dataclass(frozen=True)
class Faults:
    ber: float = 0.0
    drop_rate: float = 0.0
    dup_rate: float = 0.0
    cut_after: int | None = None
    rate: float | None = None
    direction: str = "both"  # where ber/drop/dup apply: both | to_device | to_host
    latency: float = 0.0  # one-way delay in seconds (a delay line, not a rate limit)


@dataclass
class ProxyStats:
    to_device: int = 0  # bytes that went towards the device
    to_host: int = 0
    flipped_bits: int = 0
    dropped: int = 0
    duplicated: int = 0
    cuts: int = 0
    connections: int = 0
    errors: list[str] = field(default_factory=list)


class _Noise:
    """Applies ber/drop/dup to a byte stream with geometric gaps between events."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.next_flip = -1  # bit position of the next flip, counted over the whole stream
        self.bits_seen = 0

    def _gap(self, p: float) -> int:
        if p <= 0:
            return 1 << 62
        if p >= 1:
            return 1
        import math

        return 1 + int(math.log(1.0 - self.rng.random()) / math.log(1.0 - p))

    def apply(self, data: bytes, faults: Faults, stats: ProxyStats) -> bytes:
        out = bytearray(data)
        if faults.ber > 0:
            if self.next_flip < self.bits_seen:
                self.next_flip = self.bits_seen + self._gap(faults.ber) - 1
            end = self.bits_seen + len(out) * 8
            while self.next_flip < end:
                pos = self.next_flip - self.bits_seen
                out[pos // 8] ^= 1 << (pos % 8)
                stats.flipped_bits += 1
                self.next_flip += self._gap(faults.ber)
            self.bits_seen = end
        if faults.drop_rate > 0 or faults.dup_rate > 0:
            result = bytearray()
            for byte in out:
                roll = self.rng.random()
                if roll < faults.drop_rate:
                    stats.dropped += 1
                    continue
                result.append(byte)
                if roll < faults.drop_rate + faults.dup_rate:
                    result.append(byte)
                    stats.duplicated += 1
            out = result
        return bytes(out)


class SerialFaultProxy:
    """Listen on ``host:port`` (0: a free port) and forward to ``upstream`` with faults."""

    def __init__(
        self,
        upstream: tuple[str, int],
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int | None = None,
    ) -> None:
        self.upstream = upstream
        self.faults = faults or Faults()
        self.stats = ProxyStats()
        self._rng = random.Random(seed)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, port))
        self._listener.listen(1)
        self.host, self.port = self._listener.getsockname()[:2]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._active: list[socket.socket] = []

    @property
    def url(self) -> str:
        """The pyserial URL of the proxy."""
        return f"socket://{self.host}:{self.port}"

    def start(self) -> SerialFaultProxy:
        self._thread = threading.Thread(target=self._accept_loop, name="fault-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self.cut()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def cut(self) -> None:
        """Pull the cable now: close the current connection (both sides)."""
        for sock in list(self._active):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> SerialFaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- forwarding --------------------------------------------------------------------

    def _accept_loop(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=10)
            except OSError as exc:
                self.stats.errors.append(f"upstream {self.upstream}: {exc}")
                client.close()
                continue
            self.stats.connections += 1
            self._pump(client, upstream)

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        """One thread per direction, so a paced direction never holds up the other's ACKs."""
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._active = [client, upstream]
        done = threading.Event()
        threads = [
            threading.Thread(
                target=self._one_way, args=(client, upstream, "to_device", done), daemon=True
            ),
            threading.Thread(
                target=self._one_way, args=(upstream, client, "to_host", done), daemon=True
            ),
        ]
        for thread in threads:
            thread.start()
        while not done.wait(0.2):
            if self._stop.is_set():
                break
        self._active = []
        for sock in (client, upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        for thread in threads:
            thread.join(timeout=2)

    def _one_way(
        self, src: socket.socket, dst: socket.socket, way: str, done: threading.Event
    ) -> None:
        noise = _Noise(random.Random(self._rng.random()))
        free_at = time.monotonic()  # when the paced line is idle again
        sent = 0
        in_transit: deque[tuple[float, bytes]] = deque()  # (due time, bytes) with a latency
        try:
            while not done.is_set():
                now = time.monotonic()
                while in_transit and in_transit[0][0] <= now:
                    dst.sendall(in_transit.popleft()[1])
                wait = 0.2 if not in_transit else max(0.0, in_transit[0][0] - now)
                ready, _, _ = select.select([src], [], [], wait)
                if not ready:
                    continue
                faults = self.faults
                data = src.recv(4096 if faults.rate is None else max(1, int(faults.rate / 200)))
                if not data:
                    return
                if faults.cut_after is not None and way == "to_device":
                    room = faults.cut_after - sent
                    if room <= len(data):
                        if room > 0:
                            dst.sendall(data[:room])
                            self.stats.to_device += room
                        self.stats.cuts += 1
                        self.faults = replace(faults, cut_after=None)  # one-shot
                        return
                if faults.direction in ("both", way):
                    data = noise.apply(data, faults, self.stats)
                if faults.rate:
                    # Hold each slice until a UART would have finished sending it. A line that
                    # was busy until just now keeps its schedule (a sleep that overslept is made
                    # up by the next slice, as a UART's FIFO would), so the pace is the rate.
                    now = time.monotonic()
                    free_at = (free_at if now - free_at < _CATCH_UP else now) + len(
                        data
                    ) / faults.rate
                    if free_at > now:
                        time.sleep(free_at - now)
                if data and faults.latency > 0:
                    in_transit.append((time.monotonic() + faults.latency, data))
                elif data:
                    dst.sendall(data)
                sent += len(data)
                if way == "to_device":
                    self.stats.to_device += len(data)
                else:
                    self.stats.to_host += len(data)
        except OSError as exc:
            if not done.is_set():
                self.stats.errors.append(f"{way}: {exc}")
        finally:
            done.set()
