"""The boot watcher against the scripted FakeUBoot (no QEMU)."""

from __future__ import annotations

import time

import pytest

from toolkit.boards import load_board
from toolkit.errors import DeviceTimeout
from toolkit.protocol.console import Console
from toolkit.sample.qemu import free_port
from toolkit.sample.watch import watch_boot
from toolkit.target.strategy import wait_ssh_banner
from toolkit.testing.fake import FakeTransport, FakeUBoot


def test_late_banner_still_reaches_a_clean_prompt() -> None:
    fake = FakeUBoot(boot_delay=0.4, bootdelay=2.0)
    console = Console(fake)
    marks = watch_boot(
        console, load_board("es-virt"), "uboot", time.monotonic(), ssh_port=1, timeout=5
    )
    assert list(marks) == ["uboot_banner", "uboot_prompt"]
    assert marks["uboot_prompt"] >= marks["uboot_banner"]
    assert fake.state == "prompt"
    assert "Hit any key to stop autoboot" in console.transcript_text()


def test_no_banner_is_a_timeout_with_the_console_tail() -> None:
    fake = FakeTransport()
    fake.feed(b"garbage \x00\xff without any bootloader\r\n")
    with pytest.raises(DeviceTimeout) as info:
        watch_boot(Console(fake), load_board("es-virt"), "uboot", time.monotonic(), 1, timeout=0.3)
    assert "without any bootloader" in (info.value.last_output or "")


def test_ssh_wait_ignores_a_forward_with_nobody_behind_it() -> None:
    port = free_port()  # nothing listens: like QEMU's hostfwd before dropbear is up
    with pytest.raises(DeviceTimeout, match="no SSH server"):
        wait_ssh_banner("127.0.0.1", port, time.monotonic() + 0.5)
