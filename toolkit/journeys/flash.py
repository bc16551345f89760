"""What both flash paths share: options, the result, and the entry point.

Both paths follow one plan (DESIGN §5): check → transfer → verify in RAM/tmp → write the
inactive slot → read back and verify → switch → reboot → verify the running version → record.
The serial path lives in :mod:`toolkit.journeys.flash_serial`, the SSH path in
:mod:`toolkit.journeys.flash_ssh`; :func:`flash` picks one and owns the session journal.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from toolkit.events import NullReporter, Reporter
from toolkit.record import Journal
from toolkit.targets import Target


@dataclass
class FlashOptions:
    via: str = "serial"  # "serial" | "ssh"
    path: str = "auto"  # serial: auto|tftp|ymodem|xmodem|gzip; ssh: auto|sftp|scp|cat
    allow_downgrade: bool = False
    force_board: bool = False
    keep_settings: bool = False
    accept_new_hostkey: bool = False  # only for the key the device comes back with
    #: Authorize a root login key in the device's settings: ``authorized_key`` (a public key
    #: line) or routerkit's own identity; ``authorize=False`` installs none (console only).
    authorize: bool = True
    authorized_key: str | None = None
    running_version: str | None = None  # known version on the device, if any
    interactive: bool = False  # may the journey ask the tester (e.g. "press reset now")?
    timeout: float | None = None  # overall boot/reconnect timeout override, seconds
    chunk_size: int | None = None  # serial: bytes per verified chunk
    #: Send only what the device does not already hold (see flash_serial and flash_ssh,
    #: "Delta"). None: where the image itself crosses the slow serial line (X/YMODEM, gzip);
    #: not over TFTP or SSH, whose networks outran the comparison in every measurement
    #: (benchmarks/delta_reflash.py) — ``True`` for a slow network.
    delta: bool | None = None


@dataclass
class FlashResult:
    ok: bool
    target: str
    board: str
    via: str
    path: str  # the transfer path actually used (tftp, ymodem, xmodem, sftp, scp, cat)
    image: str
    image_sha256: str
    version_before: str | None
    version_after: str | None
    slot: str | None  # the slot now running
    bytes: int  # payload bytes sent over the link in this run
    seconds: float
    resumed_from: int = 0  # byte offset a resumed transfer started from
    session: str = ""
    steps: dict[str, float] = field(default_factory=dict)  # step name -> seconds
    verify: dict[str, Any] | None = None  # the closing `verify` report
    image_size: int = 0  # bytes of the image
    reused_bytes: int = 0  # image bytes not sent: already on the device (delta reflash)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def flash(
    image: Path,
    target: Target,
    options: FlashOptions,
    reporter: Reporter | None = None,
    journal: Journal | None = None,
    *,
    data: bytes | None = None,
    console: Callable[[Target, Journal], Any] | None = None,
    power: Callable[..., Any] | None = None,
    connect: Callable[..., Any] | None = None,
) -> FlashResult:
    """Flash ``image`` onto ``target`` by ``options.via``, recording into ``journal``.

    The image is verified (signature, board, compat, hashes, size, downgrade) by the path's
    first step, before any byte reaches the device, and exactly the verified bytes are sent.
    ``data``: the image's bytes already in memory (a fleet reads the file once for all
    targets); they are verified like a file would be.
    ``console`` and ``power`` (serial) and ``connect`` (SSH) replace how the journey reaches
    the device (see :func:`toolkit.journeys.flash_serial.flash` and
    :func:`toolkit.journeys.flash_ssh.flash`); None keeps today's real ports and switches.
    """
    reporter = reporter or NullReporter()
    journal = journal or Journal.create("flash", board=target.board, target=target.name)
    journal.append(
        "flash_started",
        via=options.via,
        image=str(image),
        target=target.to_dict(),
        options=asdict(options),
    )
    start = time.monotonic()
    try:
        if options.via == "serial":
            from toolkit.journeys.flash_serial import flash as flash_serial

            result = flash_serial(
                image, target, options, reporter, journal, data=data, console=console, power=power
            )
        elif options.via == "ssh":
            from toolkit.journeys.flash_ssh import flash as flash_ssh

            result = flash_ssh(
                image, target, options, reporter, journal, data=data, connect=connect
            )
        else:
            from toolkit.errors import ConfigError

            raise ConfigError(f"unknown flash path --via {options.via!r} (serial or ssh)")
    except BaseException as exc:
        journal.append(
            "flash",
            ok=False,
            via=options.via,
            error=str(exc) or type(exc).__name__,
            error_class=type(exc).__name__,
            seconds=round(time.monotonic() - start, 3),
        )
        raise
    result.session = journal.id
    journal.append("flash", **result.to_dict())
    return result
