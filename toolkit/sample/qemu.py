"""Building the QEMU command line of the virtual sample from its board profile.

Everything machine-specific comes from the profile's ``[qemu]`` section (QEMU binary, machine,
cpu, memory, U-Boot binary, the disk and network devices); the wiring (serial, QMP, user
network with TFTP and SSH, the drive) is the same for every virtual board and follows the facts
in DESIGN §4.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from toolkit import paths
from toolkit.boards import Board
from toolkit.errors import ToolMissingError
from toolkit.record import atomic_write

QEMU_BINARY = "qemu-system-aarch64"
#: QEMU's virt machine maps pflash0 as a 64 MiB bank; the image must fill it exactly.
PFLASH_SIZE = 64 * 1024 * 1024
SETUP_HINT = "run `make setup` to install it"


@dataclass(frozen=True)
class QemuSpec:
    """Everything one QEMU run needs besides the board profile."""

    disk: Path
    qmp: Path
    tftp_dir: Path
    ssh_port: int
    serial: str  # "socket" or "rfc2217"
    serial_port: int | None = None  # TCP port of the chardev server (serial="socket")
    paused: bool = False  # start with -S; QMP `cont` lets it run


def find_qemu(board: Board) -> str:
    """The QEMU binary for ``board`` (``[qemu] binary``), or ToolMissingError."""
    name = str(board.get("qemu.binary", QEMU_BINARY))
    found = shutil.which(name)
    if not found:
        raise ToolMissingError(
            f"{name} is not installed (Debian package qemu-system-arm)", hint=SETUP_HINT
        )
    return found


def uboot_pflash(board: Board) -> Path:
    """Stock U-Boot padded to the pflash size, cached by the binary's sha256.

    QEMU refuses a pflash image whose size is not the bank size, so the ~1 MB u-boot.bin is
    zero-padded. The copy is read-only in QEMU (pflash writes are broken in QEMU 7.2 anyway).
    """
    src = Path(str(board.get("qemu.uboot", "/usr/lib/u-boot/qemu_arm64/u-boot.bin")))
    try:
        raw = src.read_bytes()
    except FileNotFoundError:
        raise ToolMissingError(
            f"U-Boot for the virtual sample is missing: {src} (Debian package u-boot-qemu)",
            hint=SETUP_HINT,
        ) from None
    if len(raw) > PFLASH_SIZE:
        raise ToolMissingError(f"{src} is larger than the 64 MiB pflash bank")
    digest = hashlib.sha256(raw).hexdigest()[:16]
    target = paths.cache_dir() / "sample" / f"u-boot-{digest}.pflash"
    if not target.is_file() or target.stat().st_size != PFLASH_SIZE:
        atomic_write(target, raw + bytes(PFLASH_SIZE - len(raw)))
    return target


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now.

    There is a window between closing our socket and QEMU binding the port; the caller retries
    with a new port when QEMU fails to bind (another engineer's process may have taken it).
    """
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def machine_args(board: Board) -> list[str]:
    """The options that shape the emulated hardware, hence the device tree QEMU generates
    (``toolkit.sample.dtb`` dumps it with exactly these). The firmware in pflash is one of
    them: with firmware, ``virt`` swaps the pl061 GPIO (and its gpio-keys node) for ACPI's GED,
    and Linux hangs probing a pl061 that a tree dumped without firmware promises."""
    return [
        "-machine", str(board.get("qemu.machine", "virt")),
        "-cpu", str(board.get("qemu.cpu", "cortex-a57")),
        "-m", str(int(board.get("qemu.memory_mib", 1024))),
        "-smp", str(int(board.get("qemu.cpus", 1))),
        "-nographic",
        "-monitor", "none",
        "-nodefaults",
        "-no-user-config",
        "-drive", f"if=pflash,format=raw,readonly=on,file={uboot_pflash(board)}",
    ]  # fmt: skip


def verified_boot_args(board: Board) -> list[str]:
    """``-dtb`` with the control DTB that makes U-Boot require signed FIT configurations
    (``[qemu] verified_boot = false`` in a profile boots with QEMU's own tree instead)."""
    if not board.get("qemu.verified_boot", True):
        return []
    from toolkit.sample.dtb import control_dtb

    return ["-dtb", str(control_dtb(board))]


def build_command(board: Board, spec: QemuSpec) -> list[str]:
    """The full argv for one run of the virtual sample."""
    cmd = [
        find_qemu(board),
        *machine_args(board),
        *verified_boot_args(board),
        "-name", f"routerkit-{spec.qmp.parent.name}",
        "-drive", f"if=none,file={spec.disk},format=raw,id=d0",
        "-device", f"{board.get('qemu.disk_device', 'virtio-blk-device')},drive=d0",
        "-netdev",
        f"user,id=n0,tftp={spec.tftp_dir},hostfwd=tcp:127.0.0.1:{spec.ssh_port}-:22",
        "-device", f"{board.get('qemu.net_device', 'virtio-net-device')},netdev=n0",
        "-qmp", f"unix:{spec.qmp},server=on,wait=off",
    ]  # fmt: skip
    if spec.serial == "socket":
        if spec.serial_port is None:
            raise ValueError("serial=socket needs a serial_port")
        # wait=on: QEMU does not start the guest until the first client connects, so the boot
        # transcript is complete. nodelay=on: no 40 ms Nagle stall after short writes (EOT/ACK).
        cmd += [
            "-chardev",
            f"socket,id=ser0,host=127.0.0.1,port={spec.serial_port},server=on,wait=on,nodelay=on",
            "-serial", "chardev:ser0",
        ]  # fmt: skip
    elif spec.serial == "rfc2217":
        cmd += ["-serial", "pty"]
    else:
        raise ValueError(f"unknown serial mode {spec.serial!r}")
    if spec.paused:
        cmd.append("-S")
    return cmd


def is_qemu_process(pid: int, qmp: Path) -> bool:
    """True when ``pid`` is alive and is the QEMU that owns ``qmp`` (not a recycled PID)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    argv = raw.split(b"\0")
    if not argv or b"qemu-system" not in os.path.basename(argv[0]):
        return False
    if _is_zombie(pid):
        return False
    return f"unix:{qmp},".encode() in raw


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    # Field 3 (after the parenthesised command name) is the state letter.
    return stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X")
