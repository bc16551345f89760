"""Getting one chunk into U-Boot's RAM: TFTP (ours or the bench's), YMODEM, XMODEM-1K, gzip.

Every loader puts the chunk at ``load_addr`` and returns the bytes it put on the wire; the
caller checks ``crc32`` over the exact length, so a loader never has to be trusted.

Why routerkit's own TFTP server works with the virtual sample: QEMU's user network answers
10.0.2.2:69 itself, but forwards a guest's UDP to any other address through the host's sockets,
so U-Boot with ``serverip`` = a random 127.x.y.z (through ``gatewayip`` 10.0.2.2) reaches a
server bound to that loopback address. U-Boot always asks port 69 (``CONFIG_TFTP_PORT`` unset),
so binding needs port 69; a random 127/8 address keeps parallel benches apart.
"""

from __future__ import annotations

import contextlib
import gzip
import random
import socket
from pathlib import Path
from typing import Protocol

from toolkit.errors import TransferError
from toolkit.journeys.flash_serial_device import Device
from toolkit.protocol import xymodem
from toolkit.protocol.tftp import TftpServer
from toolkit.targets import Target


class Loader(Protocol):
    path: str
    detail: str

    def load(self, data: bytes, name: str, progress: xymodem.Progress | None) -> int: ...

    def close(self) -> None: ...


class SerialLoader:
    """YMODEM (``loady``) or XMODEM-1K (``loadx``) over the console."""

    def __init__(self, device: Device, protocol: str) -> None:
        self.device = device
        self.path = protocol
        self.detail = f"{protocol} over the console (CRC-16)"

    def load(self, data: bytes, name: str, progress: xymodem.Progress | None) -> int:
        return self.device.load_serial(data, self.device.load_addr, self.path, progress)

    def close(self) -> None:
        pass


class GzipLoader:
    """gzip on the host, YMODEM to a second buffer, ``unzip`` into ``load_addr``."""

    def __init__(self, device: Device) -> None:
        self.device = device
        self.path = "gzip"
        self.detail = "gzip + YMODEM + unzip"

    def load(self, data: bytes, name: str, progress: xymodem.Progress | None) -> int:
        packed = gzip.compress(data, compresslevel=6, mtime=0)
        staging = self.device.load_addr + (64 << 20)
        sent = self.device.load_serial(packed, staging, "ymodem", progress)
        self.device.run(
            f"unzip {staging:#x} {self.device.load_addr:#x} {len(data):#x}", timeout=60.0
        )
        return sent

    def close(self) -> None:
        pass


class TftpLoader:
    """``tftpboot`` from routerkit's server (``own``) or the bench's directory."""

    def __init__(self, device: Device, target: Target, own: TftpServer | None, tag: str) -> None:
        self.device = device
        self.target = target
        self.server = own
        self.tag = tag
        self.path = "tftp"
        self.written: list[Path] = []
        if own is not None:
            self.server_ip = own.host
            self.detail = f"routerkit TFTP server {own.host}:{own.port}"
        else:
            self.server_ip = str(target.tftp_server_ip)
            self.detail = f"bench TFTP {self.server_ip} ({target.tftp_dir})"
        board = device.board
        env = {
            "ipaddr": target.device_ip or board.get("flash.tftp.device_ip", "10.0.2.15"),
            "serverip": self.server_ip,
            "netmask": board.get("flash.tftp.netmask", "255.255.255.0"),
            "tftpblocksize": board.get("flash.tftp.blocksize", 1468),
            # U-Boot ACKs once per window; a window must fit its RX ring (board profile).
            "tftpwindowsize": board.get("flash.tftp.windowsize", 8),
        }
        if own is not None and target.tftp_server_ip:
            env["gatewayip"] = target.tftp_server_ip
        for key, value in env.items():  # one short line each: fewer retypes on a noisy line
            device.run(f"setenv {key} {value}")

    def load(self, data: bytes, name: str, progress: xymodem.Progress | None) -> int:
        name = f"rk-{self.tag}-{name}"
        if self.server is not None:
            self.server.add_file(name, data)
        else:
            file = Path(str(self.target.tftp_dir)) / name
            file.write_bytes(data)
            self.written.append(file)
        output = self.device.run(
            f"tftpboot {self.device.load_addr:#x} {name}", timeout=30.0 + len(data) / 200_000
        )
        if f"Bytes transferred = {len(data)} " not in output:
            raise TransferError(f"TFTP did not deliver {name}", last_output=output)
        if progress is not None:
            progress(len(data), len(data))
        return len(data)

    def close(self) -> None:
        for file in self.written:
            file.unlink(missing_ok=True)
        if self.server is not None:
            self.server.stop()


def start_own_tftp(target: Target) -> TftpServer | None:
    """routerkit's TFTP server on a random 127.x.y.z:69 for a virtual target, or None.

    None when the target is not the virtual sample (a real bench needs its interface address
    in the lab file) or port 69 cannot be bound (not root, no CAP_NET_BIND_SERVICE).
    """
    if not target.is_virtual:
        return None
    rng = random.SystemRandom()
    for _ in range(8):
        host = f"127.{rng.randint(1, 254)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        with contextlib.suppress(OSError):
            return TftpServer(None, host=host, port=69).start()
    return None


def make_loader(path: str, device: Device, target: Target, tag: str) -> Loader:
    """The loader for ``path`` (already resolved from auto)."""
    if path in ("ymodem", "xmodem"):
        return SerialLoader(device, path)
    if path == "gzip":
        return GzipLoader(device)
    if path == "tftp":
        own = start_own_tftp(target)
        if own is None and not (target.tftp_dir and target.tftp_server_ip):
            raise TransferError(
                "--path tftp: this bench offers no TFTP server",
                hint="set tftp_dir/tftp_server_ip in lab.toml, or use --path ymodem",
            )
        return TftpLoader(device, target, own, tag)
    raise TransferError(f"unknown serial transfer path {path!r}")


def bench_has_tftp(target: Target) -> bool:
    return bool(target.tftp_dir and target.tftp_server_ip) or (target.is_virtual and _can_bind_69())


def _can_bind_69() -> bool:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((f"127.{random.randint(1, 254)}.0.1", 69))
        return True
    except OSError:
        return False
    finally:
        sock.close()


__all__ = ["Loader", "make_loader", "bench_has_tftp", "start_own_tftp"]
