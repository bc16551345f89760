"""Serial transfer into U-Boot's loady/loadx: raw line capacity vs routerkit vs lrzsz `sz`.

All on one bare U-Boot in QEMU, side by side, 256 KiB random payload, median of 3:
  * raw: junk bytes into `loady` (its header hunt discards them) until a valid block 0 is
    ACKed: what the guest UART takes with no protocol;
  * ours: routerkit's YMODEM sender (no wait for U-Boot's late second "C");
  * xmodem: the PyPI `xmodem` package (XMODEM-1K/CRC) into `loadx`;
  * sz: lrzsz `sz --ymodem` behind a relay, timed from the same first "C" as ours;
then ours and the raw line through the 115200-baud throttling proxy (11,520 B/s), with and
without 16 ms of USB-adapter latency (48 KiB, median of 3, interleaved too), and the gzip
path's effective rate on a compressible payload (one run) against the throttled line.
"""

from __future__ import annotations

import gzip
import os
import selectors
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _uboot_qemu import BareUBoot, bare_uboot  # noqa: E402

from toolkit.protocol import xymodem  # noqa: E402
from toolkit.testing import Faults, SerialFaultProxy  # noqa: E402

SIZE = 256 << 10
ADDR = 0x50000000


def _start(ub: BareUBoot, command: str) -> None:
    ub.sock.sendall(f"{command} {ADDR:#x}\n".encode())
    ub.expect(b"download", 10)


def _check(ub: BareUBoot, data: bytes) -> None:
    ub.expect(b"\n=> ", 20)
    out = ub.cmd(f"crc32 {ADDR:#x} {len(data):#x}")
    if f"==> {zlib.crc32(data):08x}" not in out:
        raise SystemExit(f"payload corrupted: {out}")


def raw_rate(ub: BareUBoot, n: int) -> float:
    _start(ub, "loady")
    start = time.monotonic()
    ub.sock.sendall(b"U" * n)
    stats = xymodem.send_ymodem(ub.link(), b"x" * 100)
    elapsed = time.monotonic() - start
    ub.expect(b"\n=> ", 20)
    return (n + stats.wire) / elapsed


def ours_rate(ub: BareUBoot, data: bytes, window: int = 2) -> float:
    _start(ub, "loady")
    start = time.monotonic()
    xymodem.send_ymodem(ub.link(), data, window=window)
    elapsed = time.monotonic() - start
    _check(ub, data)
    return len(data) / elapsed


def xmodem_rate(ub: BareUBoot, data: bytes) -> float:
    _start(ub, "loadx")
    start = time.monotonic()
    xymodem.send_xmodem(ub.link(), data)
    elapsed = time.monotonic() - start
    _check(ub, data)
    return len(data) / elapsed


def sz_rate(ub: BareUBoot, data: bytes) -> float:
    """lrzsz ``sz --ymodem`` from the same start as ours: U-Boot's first ``C``.

    QEMU's chardev takes one client, so ``sz`` cannot have its own connection; it runs on pipes
    behind a relay in this process. ``sz`` is started (untimed, like our import) before
    ``loady`` is typed; the clock starts when U-Boot's "download" banner arrives, exactly as
    for ours, and the bytes that came with the banner (the first ``C``) are handed to ``sz``.
    The relay forwards whatever has arrived the moment it arrives (no fixed-count reads, so it
    holds no ACK back), and the clock stops when ``sz`` has sent its batch end and exited.
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "payload.bin"
        path.write_bytes(data)
        proc = subprocess.Popen(
            ["sz", "--ymodem", "-k", "-q", str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            bufsize=0,
        )
        assert proc.stdin is not None and proc.stdout is not None
        to_sz, from_sz = proc.stdin.fileno(), proc.stdout.fileno()
        try:
            _start(ub, "loady")
            start = time.monotonic()
            first, ub.pending = ub.pending, b""
            if first:
                os.write(to_sz, first)
            ub.sock.settimeout(None)
            done = False
            with selectors.DefaultSelector() as sel:
                sel.register(ub.sock, selectors.EVENT_READ)
                sel.register(from_sz, selectors.EVENT_READ)
                while not done:
                    if time.monotonic() - start > 300:
                        raise SystemExit("sz: no end within 300 s")
                    for key, _ in sel.select(timeout=1.0):
                        if key.fileobj is ub.sock:
                            chunk = ub.sock.recv(65536)
                            if not chunk:
                                raise SystemExit("sz: QEMU closed the console")
                            os.write(to_sz, chunk)
                        else:
                            chunk = os.read(from_sz, 65536)
                            if not chunk:  # sz sent its batch end and closed its output
                                done = True
                                break
                            ub.sock.sendall(chunk)
            elapsed = time.monotonic() - start
            if proc.wait(timeout=10) != 0:
                raise SystemExit(f"sz exited {proc.returncode}")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    # U-Boot's summary and prompt may have gone to sz on its way out: sync the prompt anew.
    ub.prompt()
    out = ub.cmd(f"crc32 {ADDR:#x} {len(data):#x}")
    if f"==> {zlib.crc32(data):08x}" not in out:
        raise SystemExit(f"sz payload corrupted: {out}")
    return len(data) / elapsed


def interleaved(fns: dict[str, Callable[[], float]], runs: int = 3) -> dict[str, float]:
    """Median of ``runs`` of each, taken in turns: a machine whose load drifts during the run
    (2 cores shared by a whole team) shifts every contender alike."""
    got: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            got[name].append(fn())
    return {name: statistics.median(values) for name, values in got.items()}


def main() -> None:
    data = os.urandom(SIZE)
    with bare_uboot() as ub:
        rates = interleaved({
            "raw": lambda: raw_rate(ub, SIZE), "ours": lambda: ours_rate(ub, data),
            "stop-and-wait": lambda: ours_rate(ub, data, window=1), "xmodem": lambda: xmodem_rate(ub, data),
            "sz": lambda: sz_rate(ub, data),
        }, runs=int(os.environ.get("RUNS", "3")))  # fmt: skip
        raw, ours, saw, xm = rates["raw"], rates["ours"], rates["stop-and-wait"], rates["xmodem"]
        sz = rates["sz"]
        print(
            f"# serial raw line capacity into loady: {raw / 1e3:.1f} kB/s (junk bytes, no protocol; the reference below)"
        )
        print(
            f"serial ymodem payload vs raw line: ours {ours / 1e3:.1f} kB/s, peer(raw line) {raw / 1e3:.1f} kB/s, ratio {ours / raw:.2f} (ours/peer, higher is better)"
        )
        print(
            f"serial ymodem window 2 vs stop-and-wait: ours {ours / 1e3:.1f} kB/s, peer {saw / 1e3:.1f} kB/s, ratio {ours / saw:.2f} (ours/peer, higher is better)"
        )
        print(
            f"serial ymodem vs lrzsz sz: ours {ours / 1e3:.1f} kB/s, peer {sz / 1e3:.1f} kB/s, ratio {ours / sz:.2f} (ours/peer, higher is better; both timed from U-Boot's first C; sz waits for the late second C, as YMODEM says)"
        )
        print(
            f"serial ymodem vs xmodem package: ours {ours / 1e3:.1f} kB/s, peer {xm / 1e3:.1f} kB/s, ratio {ours / xm:.2f} (ours/peer, higher is better)"
        )
        # The same line at a real 115200 baud: a throttling proxy in front of the chardev.
        ub.sock.close()
        with SerialFaultProxy(("127.0.0.1", ub.port), Faults(rate=11_520)) as proxy:
            ub.port_direct, ub.port = ub.port, proxy.port
            ub.sock = ub.connect()
            ub.prompt()
            small = data[: 48 << 10]
            plain, usb_latency = Faults(rate=11_520), Faults(rate=11_520, latency=0.016)

            def through(faults: Faults, fn: Callable[[], float]) -> Callable[[], float]:
                def run() -> float:
                    proxy.faults = faults
                    return fn()

                return run

            # A USB-serial adapter adds latency each way (FTDI: up to its 16 ms latency timer):
            # a stop-and-wait sender pays it twice per 1 KiB block, a window hides it.
            paced_rates = interleaved({
                "line": through(plain, lambda: raw_rate(ub, 48 << 10)),
                "ours": through(plain, lambda: ours_rate(ub, small)),
                "saw": through(plain, lambda: ours_rate(ub, small, window=1)),
                "usb": through(usb_latency, lambda: ours_rate(ub, small)),
                "usb_saw": through(usb_latency, lambda: ours_rate(ub, small, window=1)),
            }, runs=int(os.environ.get("RUNS", "3")))  # fmt: skip
            proxy.faults = plain
            line, paced, paced_saw = paced_rates["line"], paced_rates["ours"], paced_rates["saw"]
            usb, usb_saw = paced_rates["usb"], paced_rates["usb_saw"]
            print(
                f"serial ymodem at 115200 baud: ours {paced:.0f} B/s, peer(raw line) {line:.0f} B/s, ratio {paced / line:.2f} (ours/peer, higher is better)"
            )
            # The goal is against the line rate itself (esptool ~91%, loady/128 B ~67%).
            print(
                f"serial ymodem at 115200 vs the nominal line: ours {paced:.0f} B/s, peer(11,520 B/s) 11520 B/s, ratio {paced / 11_520:.2f} (ours/peer, higher is better)"
            )
            print(
                f"serial ymodem at 115200, window 2 vs stop-and-wait: ours {paced:.0f} B/s, peer {paced_saw:.0f} B/s, ratio {paced / paced_saw:.2f} (ours/peer, higher is better)"
            )
            print(
                f"serial ymodem at 115200 + 16 ms USB latency, window 2 vs stop-and-wait: ours {usb:.0f} B/s, peer {usb_saw:.0f} B/s, ratio {usb / usb_saw:.2f} (ours/peer, higher is better)"
            )
            text = (b"routerkit compressible firmware block " * 4000)[: 128 << 10]
            packed = gzip.compress(text, mtime=0)
            _start(ub, "loady")
            start = time.monotonic()
            xymodem.send_ymodem(ub.link(), packed)
            ub.expect(b"\n=> ", 20)
            ub.cmd(f"unzip {ADDR:#x} 0x58000000 {len(text):#x}")
            elapsed = time.monotonic() - start
            out = ub.cmd(f"crc32 0x58000000 {len(text):#x}")
            if f"==> {zlib.crc32(text):08x}" not in out:
                raise SystemExit(f"gzip path corrupted: {out}")
            effective = len(text) / elapsed
            print(
                f"serial gzip path effective rate at 115200: ours {effective:.0f} B/s, peer(raw line) {line:.0f} B/s, ratio {effective / line:.2f} (ours/peer, higher is better)"
            )
            ub.sock.close()
            ub.port = ub.port_direct


if __name__ == "__main__":
    main()
