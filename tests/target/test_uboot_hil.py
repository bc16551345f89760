"""The U-Boot dialogue against the real thing: Debian's stock U-Boot in QEMU, over socket://.

No firmware is needed to reach U-Boot: it runs from pflash and, with no disk, would go on to try
network boot. The interrupt must stop it anyway.
"""

from __future__ import annotations

import socket
import subprocess
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from toolkit.boards import load_board
from toolkit.errors import DeviceCommandError, PortError
from toolkit.protocol.console import Console
from toolkit.target.uboot import UBoot
from toolkit.transport import SerialTransport

pytestmark = pytest.mark.hil


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def uboot_qemu(tmp_path: Path) -> Iterator[tuple[Console, subprocess.Popen[bytes]]]:
    board = load_board("es-virt")
    flash = tmp_path / "flash.bin"
    flash.write_bytes(Path(board.require("qemu.uboot")).read_bytes())
    subprocess.run(["truncate", "-s", "64M", str(flash)], check=True)
    port = _free_port()
    qemu_log = (tmp_path / "qemu.log").open("wb")
    # -netdev user with restrict=on: U-Boot sees a NIC (and would try DHCP boot) but the guest
    # cannot reach anything; virtio-net-device (MMIO) needs no option ROM.
    proc = subprocess.Popen(
        ["qemu-system-aarch64", "-machine", "virt", "-cpu", "cortex-a57", "-m", "1024",
         "-nographic", "-monitor", "none",
         "-drive", f"if=pflash,format=raw,readonly=on,file={flash}",
         "-chardev", f"socket,id=ser0,host=127.0.0.1,port={port},server=on,wait=on",
         "-serial", "chardev:ser0",
         "-netdev", "user,id=n0,restrict=on", "-device", "virtio-net-device,netdev=n0"],
        stdin=subprocess.DEVNULL, stdout=qemu_log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    console: Console | None = None
    try:
        deadline = time.monotonic() + 20
        while console is None:
            try:
                console = Console(
                    SerialTransport(f"socket://127.0.0.1:{port}"),
                    transcript_path=tmp_path / "console.log",
                    name="es-virt",
                )
            except PortError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield console, proc
    finally:
        if console is not None:
            console.close()
        proc.kill()
        proc.wait(timeout=10)
        qemu_log.close()


def test_uboot_in_qemu_interrupts_autoboot_and_runs_commands(
    uboot_qemu: tuple[Console, subprocess.Popen[bytes]],
) -> None:
    console, _ = uboot_qemu
    uboot = UBoot(console, load_board("es-virt"))
    uboot.interrupt_autoboot()
    assert uboot.version().startswith("U-Boot ")

    # Fill RAM with a known pattern and check U-Boot's crc32 against ours.
    uboot.run_ok("mw.b 0x50000000 0x5a 0x1000")
    assert uboot.crc32(0x50000000, 0x1000) == zlib.crc32(b"\x5a" * 0x1000)

    assert uboot.run_status("false").exit_status == 1
    with pytest.raises(DeviceCommandError):
        uboot.run("sha256sum 0x50000000 0x10")  # Debian's qemu_arm64 U-Boot has none
    assert uboot.env()["bootcmd"]
    assert "Hit any key to stop autoboot" in console.transcript_text()
