"""A read-only TFTP server that routerkit runs on the bench (RFC 1350, 2347, 2348, 2349, 7440).

U-Boot's ``tftpboot`` asks for ``blksize`` (RFC 2348), ``tsize`` (RFC 2349), ``timeout`` and,
with ``tftpwindowsize`` set, ``windowsize`` (RFC 7440). Large blocks and a window of many
blocks per ACK are what make TFTP fast: with the RFC 1350 defaults (512 bytes, one block per
ACK) every 512 bytes cost a round trip.

One thread listens on the server port; each read request gets its own socket (its "TID") and
thread, as RFC 1350 requires. Write requests are refused: the server only serves files from
``root`` (and optional in-memory ``files``), never outside it.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

RRQ, WRQ, DATA, ACK, ERROR, OACK = 1, 2, 3, 4, 5, 6
ERR_UNDEFINED, ERR_NOT_FOUND, ERR_ACCESS, ERR_ILLEGAL, ERR_OPTION = 0, 1, 2, 4, 8
MAX_BLKSIZE = 65464  # RFC 2348
MAX_WINDOW = 65535  # RFC 7440
_HEAD = struct.Struct("!HH")


@dataclass
class TftpStats:
    transfers: int = 0
    completed: int = 0
    bytes_sent: int = 0  # payload bytes, retransmissions included
    retransmits: int = 0
    errors: list[str] = field(default_factory=list)


def parse_request(packet: bytes) -> tuple[int, str, str, dict[str, str]]:
    """``(opcode, filename, mode, options)`` of a RRQ/WRQ; ValueError when malformed."""
    if len(packet) < 4:
        raise ValueError("short request")
    opcode = struct.unpack("!H", packet[:2])[0]
    if opcode not in (RRQ, WRQ):
        raise ValueError(f"opcode {opcode} is not a request")
    parts = packet[2:].split(b"\0")
    if len(parts) < 3 or parts[-1] != b"":
        raise ValueError("request is not NUL-terminated")
    fields = [p.decode("ascii", "replace") for p in parts[:-1]]
    filename, mode = fields[0], fields[1].lower()
    options: dict[str, str] = {}
    rest = fields[2:]
    for i in range(0, len(rest) - 1, 2):
        options[rest[i].lower()] = rest[i + 1]
    return opcode, filename, mode, options


def error_packet(code: int, message: str) -> bytes:
    return struct.pack("!HH", ERROR, code) + message.encode("ascii", "replace") + b"\0"


def negotiate(options: Mapping[str, str], size: int) -> tuple[dict[str, str], int, int, float]:
    """The options we accept: (OACK options, blksize, windowsize, timeout). Unknown ones are ignored."""
    accepted: dict[str, str] = {}
    blksize, window, timeout = 512, 1, 1.0
    for name, value in options.items():
        try:
            number = int(value)
        except ValueError:
            continue
        if name == "blksize" and number >= 8:
            blksize = min(number, MAX_BLKSIZE)
            accepted[name] = str(blksize)
        elif name == "windowsize" and number >= 1:
            window = min(number, MAX_WINDOW)
            accepted[name] = str(window)
        elif name == "timeout" and 1 <= number <= 255:
            timeout = float(number)
            accepted[name] = str(number)
        elif name == "tsize":
            accepted[name] = str(size)
    return accepted, blksize, window, timeout


class TftpServer:
    """Serve ``root`` read-only on ``host:port`` (port 0 picks a free one).

    ``files`` maps extra names to bytes (served before looking in ``root``); the flash journey
    uses it to serve image chunks without writing them to disk.
    """

    def __init__(
        self,
        root: Path | None,
        host: str = "127.0.0.1",
        port: int = 0,
        files: Mapping[str, bytes] | None = None,
        retries: int = 6,
    ) -> None:
        self.root = Path(root).resolve() if root is not None else None
        self.files: dict[str, bytes] = dict(files or {})
        self.retries = retries
        self.stats = TftpStats()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((host, port))
        self.host, self.port = self._sock.getsockname()[:2]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # --- life cycle --------------------------------------------------------------------

    def start(self) -> TftpServer:
        self._thread = threading.Thread(target=self._serve, name=f"tftp-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._sock.close()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def __enter__(self) -> TftpServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def add_file(self, name: str, data: bytes) -> None:
        with self._lock:
            self.files[name.lstrip("/")] = data

    # --- serving -----------------------------------------------------------------------

    def _serve(self) -> None:
        self._sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                packet, peer = self._sock.recvfrom(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(
                target=self._handle, args=(packet, peer), name="tftp-transfer", daemon=True
            ).start()

    def _lookup(self, filename: str) -> bytes:
        name = filename.lstrip("/")
        with self._lock:
            if name in self.files:
                return self.files[name]
        if self.root is None:
            raise FileNotFoundError(name)
        path = (self.root / name).resolve()
        if path != self.root and self.root not in path.parents:
            raise PermissionError(name)
        return path.read_bytes()

    def _handle(self, packet: bytes, peer: tuple[str, int]) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((self.host, 0))
            self._transfer(sock, packet, peer)
        except OSError as exc:  # the peer went away; nothing to tell it
            self._record_error(f"{peer}: {exc}")
        finally:
            sock.close()

    def _record_error(self, text: str) -> None:
        with self._lock:
            self.stats.errors.append(text)

    def _transfer(self, sock: socket.socket, packet: bytes, peer: tuple[str, int]) -> None:
        try:
            opcode, filename, _mode, options = parse_request(packet)
        except ValueError as exc:
            sock.sendto(error_packet(ERR_ILLEGAL, str(exc)), peer)
            return
        if opcode == WRQ:
            sock.sendto(error_packet(ERR_ACCESS, "read-only server"), peer)
            return
        try:
            data = self._lookup(filename)
        except PermissionError:
            sock.sendto(error_packet(ERR_ACCESS, "outside the served directory"), peer)
            return
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            sock.sendto(error_packet(ERR_NOT_FOUND, "file not found"), peer)
            return
        with self._lock:
            self.stats.transfers += 1
        accepted, blksize, window, timeout = negotiate(options, len(data))
        session = _Session(sock, peer, data, blksize, window, timeout, self.retries, self)
        if accepted and not session.send_oack(accepted):
            return
        if session.run():
            with self._lock:
                self.stats.completed += 1


class _Session:
    """One read transfer: windows of DATA blocks, go-back-N on timeout or a lower ACK."""

    def __init__(
        self,
        sock: socket.socket,
        peer: tuple[str, int],
        data: bytes,
        blksize: int,
        window: int,
        timeout: float,
        retries: int,
        server: TftpServer,
    ) -> None:
        self.sock, self.peer, self.data = sock, peer, data
        self.blksize, self.window, self.timeout, self.retries = blksize, window, timeout, retries
        self.server = server
        # Blocks 1..last; a file of a multiple of blksize ends with an empty block.
        self.last = len(data) // blksize + 1
        self.view = memoryview(data)

    def _recv_ack(self, deadline: float) -> int | None:
        """The next ACK's 16-bit block number from our peer, or None at the deadline."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                packet, addr = self.sock.recvfrom(2048)
            except TimeoutError:
                return None
            if addr != self.peer:
                # RFC 1350: a packet from a wrong TID gets an error and does not disturb us.
                self.sock.sendto(error_packet(5, "unknown transfer ID"), addr)
                continue
            if len(packet) >= 4:
                opcode, number = struct.unpack("!HH", packet[:4])
                if opcode == ACK:
                    return int(number)
                if opcode == ERROR:
                    raise ConnectionAbortedError(
                        packet[4:].split(b"\0")[0].decode("ascii", "replace")
                    )

    def send_oack(self, accepted: dict[str, str]) -> bool:
        body = b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in accepted.items())
        packet = struct.pack("!H", OACK) + body
        for _ in range(self.retries):
            self.sock.sendto(packet, self.peer)
            try:
                number = self._recv_ack(time.monotonic() + self.timeout)
            except ConnectionAbortedError as exc:
                self.server._record_error(f"peer refused options: {exc}")
                return False
            if number == 0:
                return True
        return False

    def _send_window(self, first: int, top: int) -> int:
        """DATA ``first``..``top`` back to back; returns the payload bytes sent.

        The per-packet cost is what limits a Python server (a window per ACK round trip), so
        each packet is gathered from a 4-byte header and a view of the file (``sendmsg``):
        no slice and no concatenation is copied.
        """
        view, size, sock, peer, pack = self.view, self.blksize, self.sock, self.peer, _HEAD.pack
        sent = 0
        for n in range(first, top + 1):
            payload = view[(n - 1) * size : n * size]
            sock.sendmsg((pack(DATA, n & 0xFFFF), payload), (), 0, peer)
            sent += len(payload)
        return sent

    def run(self) -> bool:
        acked = 0  # highest block (absolute, not wrapped) the peer confirmed
        tries = 0
        while acked < self.last:
            top = min(acked + self.window, self.last)
            sent = self._send_window(acked + 1, top)
            with self.server._lock:
                self.server.stats.bytes_sent += sent
            progressed = self._await(acked, top)
            if progressed is None:
                tries += 1
                with self.server._lock:
                    self.server.stats.retransmits += 1
                if tries > self.retries:
                    self.server._record_error(f"{self.peer}: timed out at block {acked + 1}")
                    return False
                continue
            if progressed > acked:
                tries = 0
            acked = progressed
        return True

    def _await(self, acked: int, top: int) -> int | None:
        """Wait for an ACK within the window just sent; returns the new absolute ACK.

        A repeated ACK of ``acked`` means the peer lost the window's first block (U-Boot
        re-ACKs the last good block when a window has a hole, or on its own timeout): resend at
        once, but only if it came well after our window went out. An immediate duplicate is the
        echo of a duplicate block, and answering those doubles every block from then on
        (the Sorcerer's Apprentice bug of RFC 1350).
        """
        sent_at = time.monotonic()
        deadline = sent_at + self.timeout
        while True:
            try:
                number = self._recv_ack(deadline)
            except ConnectionAbortedError as exc:
                self.server._record_error(f"{self.peer}: {exc}")
                return self.last  # the peer gave up: stop quietly
            if number is None:
                return None
            # Map the 16-bit number into (top - 65536, top]: block numbers wrap at 65536.
            candidate = top - ((top - number) & 0xFFFF)
            if acked < candidate <= top:
                # A lower ACK inside the window means the peer lost a block: the next window
                # starts right after it (RFC 7440 §4).
                return candidate
            if candidate == acked and time.monotonic() - sent_at > 0.05:
                return acked
            # Otherwise a stale ACK of an earlier window: ignore it.


def main(argv: list[str]) -> None:  # pragma: no cover - manual use
    """``python -m toolkit.protocol.tftp DIR [PORT]``: serve DIR on 127.0.0.1 until Ctrl-C."""
    server = TftpServer(Path(argv[0]), "127.0.0.1", int(argv[1]) if len(argv) > 1 else 69).start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":  # pragma: no cover
    import sys

    main(sys.argv[1:])
