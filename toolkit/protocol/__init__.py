"""Protocols: dialogues built on a Transport.

``Console`` (expect/sendline with deadlines, escape stripping, transcript, raw binary I/O) is the
base; ``UBoot`` (autoboot interrupt, prompt sync, ``run``/``run_ok``/``crc32``/``env``) and
``LinuxShell`` (``run`` with exit status, ``check``) sit on top of it. Transfers (XMODEM/YMODEM,
TFTP) and sysupgrade-over-SSH live next to them in their own modules.
"""

from __future__ import annotations

from toolkit.protocol.console import CommandResult, Console, ExpectMatch, Pattern, strip_terminal
from toolkit.protocol.shell import LinuxShell
from toolkit.protocol.uboot import UBoot

__all__ = [
    "CommandResult",
    "Console",
    "ExpectMatch",
    "LinuxShell",
    "Pattern",
    "UBoot",
    "strip_terminal",
]
