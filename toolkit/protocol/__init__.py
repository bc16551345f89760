"""Protocols: dialogues built on a Transport.

``Console`` (expect/sendline with deadlines, escape stripping, transcript, raw binary I/O) is the
base every dialogue talks through. The device dialogues built on it (the one command runner, the
U-Boot driver and the Linux shell driver) are the target model's: :mod:`toolkit.target.runner`,
:mod:`toolkit.target.uboot`, :mod:`toolkit.target.shell`. Transfers (XMODEM/YMODEM, TFTP) live
here in their own modules.
"""

from __future__ import annotations

from toolkit.protocol.console import CommandResult, Console, ExpectMatch, Pattern, strip_terminal

__all__ = [
    "CommandResult",
    "Console",
    "ExpectMatch",
    "Pattern",
    "strip_terminal",
]
