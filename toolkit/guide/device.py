"""Connect automatic checks to a real device: the virtual sample (the embedded default).

:func:`sample_device` turns a running virtual sample (``toolkit.sample`` state: ``serial_url``,
QMP socket) into a :class:`toolkit.guide.checks.Device`: the console is the sample's serial line
(``toolkit.transport.open_serial``), reset is QMP ``system_reset`` (``toolkit.target.power``)
and the shell is reached through the target's strategy (``toolkit.target.strategy``) and run by
the Linux shell driver on that console (every answer checksummed on the device), so no
SSH host key is involved. A sample that is not running gives a Device whose checks fail with
the reason, instead of an exception.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from toolkit.boards import Board, load_board
from toolkit.guide.checks import Device


class _TransportLink:
    """Adapts a ``toolkit.transport`` Transport to the checks' SerialLink."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport

    def read_available(self, timeout: float) -> bytes:
        return bytes(self.transport.read(65536, timeout))

    def write(self, data: bytes) -> None:
        self.transport.write(data)

    def close(self) -> None:
        self.transport.close()


def sample_device(
    name: Any = "default", board: Board | None = None, *, transcript: Path | None = None
) -> Device:
    """A Device for the virtual sample ``name`` (a sample name or a ``SampleState``).
    ``transcript``: where the shell checks' console transcript (and its asciicast recording
    beside it) is kept, e.g. the assembly session's ``console.log``."""
    from toolkit import sample

    shown = getattr(name, "name", name)
    try:
        state = sample.status(name)
    except Exception as err:  # a damaged state file must not crash the assembly
        return Device(
            description=f"virtual sample {shown!r}",
            unavailable=f"cannot read the sample's state: {err}",
        )
    if state is None or not state.running:
        return Device(
            description=f"virtual sample {shown!r}",
            unavailable=f"the virtual sample {shown!r} is not running (start it with `routerkit sample up`)",
        )
    board = board or load_board(state.board)
    url = state.serial_url

    def open_console() -> _TransportLink:
        from toolkit.transport import open_serial

        return _TransportLink(open_serial(url))

    from toolkit.target.power import QMPPower

    power = QMPPower(state.qmp, name=str(shown))

    def shell(command: str, timeout: float) -> tuple[int, str]:
        from toolkit.errors import DeviceError
        from toolkit.protocol.console import Console
        from toolkit.target.strategy import Status, Strategy
        from toolkit.transport import open_serial

        if not state.firmware:
            raise DeviceError(
                "the virtual sample has no firmware on its disk yet, so no Linux to run it in",
                hint="flash an image first (`routerkit flash`)",
            )
        deadline = time.monotonic() + timeout
        with Console(
            open_serial(url), transcript_path=transcript, name=f"sample {shown}"
        ) as console:
            # The target's strategy finds the shell wherever the sample is: already at a
            # shell, booting (after an earlier check's reset), or left at U-Boot's prompt.
            strategy = Strategy.attached(console, board, power, name=f"sample {shown}")
            strategy.transition(Status.LINUX, timeout=timeout)
            result = strategy.shell().run(command, timeout=max(5.0, deadline - time.monotonic()))
            return result.exit_status, result.output

    return Device(
        description=f"virtual sample {shown!r}",
        open_console=open_console,
        reset=power.cycle,
        shell=shell,
        console_settings=dict(board.get("console", {}) or {}),
    )
