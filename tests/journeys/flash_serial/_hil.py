"""Helpers for the hil tests: targets through the proxy, getting to U-Boot, what runs, slots."""

from __future__ import annotations

import re
import zlib
from pathlib import Path
from typing import Any

from toolkit.boards import load_board
from toolkit.journeys.flash_serial_device import Device
from toolkit.protocol.console import Console
from toolkit.sample.qmp import QMPClient
from toolkit.target.uboot import UBoot
from toolkit.targets import QEMU_GUEST_IP, QEMU_HOST_IP, Target
from toolkit.transport import open_serial


def target_for(state: Any, serial_url: str | None = None) -> Target:
    return Target(
        name=state.name, board=state.board, serial_url=serial_url or state.serial_url,
        power={"kind": "qmp", "socket": state.qmp, "sample": state.name},
        tftp_dir=state.tftp_dir, tftp_server_ip=QEMU_HOST_IP, device_ip=QEMU_GUEST_IP,
        sample=state.name,
    )  # fmt: skip


def uboot_console(state: Any, url: str) -> tuple[Console, Device]:
    """Reset the sample and stop it at a synced U-Boot prompt, through ``url``."""
    board = load_board(state.board)
    console = Console(open_serial(url), name="test console")
    with QMPClient(Path(state.qmp)) as qmp:
        qmp.system_reset()
    uboot = UBoot(console, board)
    uboot.interrupt_autoboot()
    device = Device(uboot, board)
    device.rescan()
    return console, device


def slot_crc(device: Device, slot: str, length: int) -> int:
    """crc32 of the first ``length`` bytes of ``slot`` as the device reads them."""
    board = device.board
    s = board.slot(slot)
    cmd = str(board.require("flash.read")).format(
        addr=hex(device.scratch_addr), block=s.start_block, count=-(-length // board.block_size)
    )
    device.run(cmd, timeout=60)
    return device.crc32(device.scratch_addr, length)


def running(state: Any, *, reset: bool = True, timeout: float = 120.0) -> tuple[str, str]:
    """(version, slot) the sample runs after a boot that boot.scr decides.

    The autoboot countdown is skipped and ``boot`` typed (the same ``bootcmd``, 2 s sooner);
    the version comes from ``/etc/firmware-version`` and the slot from the kernel command line
    (``fwinfo`` would also hash both slots: seconds per call, and the journey already runs it).
    ``reset=False``: the sample was just powered on and waits for its first console client.
    """
    from toolkit.target.shell import LinuxShell

    board = load_board(state.board)
    with Console(open_serial(state.serial_url), name="boot check") as console:
        if reset:
            with QMPClient(Path(state.qmp)) as qmp:
                qmp.system_reset()
        UBoot(console, board).interrupt_autoboot()
        console.sendline(str(board.get("console.boot_command", "boot")))
        shell = LinuxShell(console, board)
        shell.wait_boot(timeout=timeout)
        out = shell.check("cat /etc/firmware-version; cat /proc/cmdline", timeout=30)
    version = out.strip().splitlines()[0].strip()
    slot = re.search(r"\brk\.slot=([A-Za-z0-9]+)", out)
    assert slot is not None, f"no rk.slot= on the kernel command line: {out!r}"
    return version, slot.group(1)


def known_running(holder: dict[str, Any]) -> tuple[str, str]:
    """What the module's sample runs: remembered from the last boot a test checked, or booted."""
    if holder.get("known") is None:
        holder["known"] = running(holder["state"])
    return tuple(holder["known"])  # type: ignore[return-value]


def crc(data: bytes) -> int:
    return zlib.crc32(data)
