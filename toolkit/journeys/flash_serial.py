"""Flash over the serial console through U-Boot: fast, resumable, never bricking (DESIGN §5).

The journey is a pipeline of small named steps; each one is reported (``events.step``) and
recorded in the journal (``step`` records)::

    check image → power-cycle → interrupt autoboot → read U-Boot → read slots → plan
    → compare (delta) → transfer+write (chunks) → read back → switch slot → reset → boot
    → verify running

**Delta reflash.** Nightly N+1 mostly repeats what a slot already holds (the kernel lands at
the same offsets build after build). Before sending anything, the journey reads both slots into
RAM on the device and has U-Boot sum each chunk's range: a chunk the inactive slot already holds
is kept, one the active slot holds at the same offset is copied slot to slot on the device
(written from RAM, then read back and checked like any chunk), and only the rest crosses the
line. The whole written slot is then read back against the signed image exactly as after a
full flash, so a wrong sum can only cost time, never a wrong byte. On by default where the
image crosses the serial line (X/YMODEM, gzip), off for TFTP (its network outruns the sums on
the console); ``--delta``/``--no-delta`` decide.

Every change of the board's state (power-cycle to U-Boot, the fresh boot into the new slot,
the shell that checks it) goes through the target's one strategy
(:class:`toolkit.target.strategy.Strategy`), on the console this journey opened.

Safety argument: only the inactive slot is written; every chunk is checked in RAM and again
after it is written; the whole image is read back before ``state.env`` is switched; and the
switch is one small ``fatwrite`` which boot.scr survives being cut (no state: slot A; a bad
slot: fall back). So a failure, a Ctrl-C or a power cut at any point leaves a bootable sample.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit import events
from toolkit.boards import Board, Slot, load_board
from toolkit.errors import (
    DeviceError,
    Interrupted,
    PortError,
    TransferError,
    VerifyError,
)
from toolkit.journeys import flash_serial_plan as plan
from toolkit.journeys.flash import FlashOptions, FlashResult
from toolkit.journeys.flash_serial_device import Device
from toolkit.journeys.flash_serial_transfer import Loader, bench_has_tftp, make_loader
from toolkit.journeys.steps import Steps
from toolkit.protocol.console import Console
from toolkit.record import Journal
from toolkit.target.strategy import Status, Strategy
from toolkit.target.uboot import UBoot
from toolkit.targets import Target

if TYPE_CHECKING:
    from toolkit.target.power import Power

#: Opens the console a flash talks through: ``(target, journal) -> Console``.
ConsoleFactory = Callable[[Target, Journal], Console]
#: The power switch of a target, with the signature of
#: :func:`toolkit.target.power.from_target` (``ask`` is how to ask a person, or None).
PowerFactory = Callable[..., "Power"]

CHUNK_ATTEMPTS = 5  # load + crc32 in RAM + write + read back, per chunk
LOAD_FAILURES = 3  # of those, failed loads: a line that noisy will not get better by waiting


@dataclass
class _Run:
    """What the steps share."""

    image: Path
    target: Target
    options: FlashOptions
    reporter: events.Reporter
    journal: Journal
    board: Board
    data: bytes = b""
    sha256: str = ""
    version: str = ""
    console: Console | None = None
    device: Device | None = None
    strategy: Strategy | None = None
    active: str = "A"
    version_before: str | None = None
    sent: int = 0
    reused: int = 0  # image bytes not sent: already in the slot, or copied from the other one
    done: int = 0  # image bytes in the slot so far (the progress bar's position)
    resumed_from: int = 0
    path: str = ""
    transferring: bool = False  # a load may be running on the device: abort it on failure
    console_factory: ConsoleFactory | None = None
    power_factory: PowerFactory | None = None
    #: ``with run.step("name"):`` reports, times and journals a step (``run.step.seconds``).
    step: Steps = field(init=False)

    def __post_init__(self) -> None:
        self.step = Steps(self.reporter, self.journal)


def flash(
    image: Path,
    target: Target,
    options: FlashOptions,
    reporter: events.Reporter,
    journal: Journal,
    *,
    data: bytes | None = None,
    console: ConsoleFactory | None = None,
    power: PowerFactory | None = None,
) -> FlashResult:
    """Flash ``image`` onto ``target`` through its U-Boot console; see the module docstring.

    ``console`` opens the console (default :func:`serial_console`: the target's serial URL,
    its transcript in the journal) and ``power`` gives the target's power switch (default
    :func:`toolkit.target.power.from_target`); tests pass in-memory fakes
    (:mod:`toolkit.testing.fake_board`) to run a whole flash without a device.
    """
    run = _Run(image, target, options, reporter, journal, load_board(target.board))
    run.data = data or b""
    run.console_factory = console
    run.power_factory = power
    start = time.monotonic()
    with run.step("check image"):
        check_image(run)
    try:
        with run.step("open console"):
            open_console(run)
        with run.step("power-cycle"):
            power_cycle(run)
        with run.step("interrupt autoboot"):
            assert run.strategy is not None
            # --timeout also caps the wait for U-Boot (a board that never shows a prompt)
            run.strategy.transition(Status.UBOOT, timeout=_prompt_timeout(run))
        with run.step("read U-Boot"):
            record_uboot(run)
        with run.step("read slots"):
            read_slots(run)
        inactive = run.board.other_slot(run.active)
        assert run.device is not None
        write_inactive(run, inactive)
        with run.step("switch slot", f"{run.active} → {inactive.name}"):
            run.device.switch_to(inactive.name)
            run.journal.append("slot_switched", old=run.active, new=inactive.name)
        with run.step("reset and boot"):
            reset_and_boot(run)
        with run.step("verify running"):
            info = verify_running(run, inactive.name)
    except KeyboardInterrupt:
        _abort(run)
        raise Interrupted(
            "flash interrupted; the previous firmware still boots (the active slot was not touched)",
            hint="run the same command again to resume from the last verified chunk",
        ) from None
    except DeviceError as exc:
        if exc.last_output is None and run.console is not None:
            exc.last_output = run.console.tail()
        _abort(run)
        raise
    finally:
        _close(run)
    return FlashResult(
        ok=True, target=target.name, board=run.board.id, via="serial", path=run.path,
        image=str(image), image_sha256=run.sha256, version_before=run.version_before,
        version_after=str(info.get("version")), slot=str(info.get("running_slot")),
        bytes=run.sent, seconds=round(time.monotonic() - start, 3),
        resumed_from=run.resumed_from, steps=dict(run.step.seconds), verify=info,
        image_size=len(run.data), reused_bytes=run.reused,
    )  # fmt: skip


def write_inactive(run: _Run, inactive: Slot) -> None:
    """plan (with resume) → transfer+write in chunks → read back the whole image."""
    with run.step("plan"):
        chunks, start_index = plan_transfer(run, inactive)
    work: list[tuple[plan.Chunk, str | None]] = [(c, None) for c in chunks[start_index:]]
    delta = run.options.delta if run.options.delta is not None else run.path != "tftp"
    if delta and work:
        with run.step("compare (delta)"):
            work = compare_slots(run, inactive, chunks, start_index)
    with run.step("transfer and write", f"slot {inactive.name}"):
        transfer_and_write(run, inactive, work)
    with run.step("read back"):
        read_back(run, inactive)


def write_payload(
    console: Console,
    target: Target,
    data: bytes,
    slot: str,
    journal: Journal,
    options: FlashOptions | None = None,
    reporter: events.Reporter | None = None,
) -> tuple[int, int, str]:
    """Write any ``data`` into ``slot`` from a synced U-Boot prompt, resumably, and verify it.

    The middle of the journey without image checks, slot switch or reboot: for tests with
    small payloads and for benches that stage data. Returns (bytes sent, resumed_from, path).
    """
    run = _Run(
        Path("payload"),
        target,
        options or FlashOptions(),
        reporter or events.NullReporter(),
        journal,
        load_board(target.board),
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
    )
    run.console = console
    run.device = Device(UBoot(console, run.board), run.board)
    run.device.rescan()
    try:
        write_inactive(run, run.board.slot(slot))
    except KeyboardInterrupt:
        _abort(run)
        raise
    return run.sent, run.resumed_from, run.path


# --- steps ---------------------------------------------------------------------------------


def check_image(run: _Run) -> None:
    """Signature, board, compat, size and downgrade: before a single byte reaches the device."""
    from toolkit.firmware.verify import verify_image

    # The downgrade check against what the device really holds happens in read_slots, from
    # the device itself, before anything is written. Here only a version the caller knows
    # counts: journals of other sessions may describe another device, or this one before a
    # factory reset.
    running = run.options.running_version
    verified = verify_image(
        run.image, run.board, running_version=running, allow_downgrade=run.options.allow_downgrade,
        force_board=run.options.force_board, journal=run.journal, data=run.data or None,
    )  # fmt: skip
    # The bytes just verified are what gets sent: the file is never read again (it may have
    # been replaced since the check).
    run.data = verified.data
    run.sha256 = verified.sha256
    run.version = verified.version
    run.version_before = running


def serial_console(target: Target, journal: Journal) -> Console:
    """The target's serial port (``serial_url``) as a console, its transcript in ``journal``."""
    from toolkit.transport import open_serial

    if not target.serial_url:
        raise PortError(f"target {target.name} has no serial port", hint="pass --port URL")
    return Console(
        open_serial(target.serial_url),
        transcript_path=journal.files_dir / "console.log",
        name=f"{target.name} console",
    )


def open_console(run: _Run) -> None:
    """The console, and the target's strategy on it with the target's power switch
    (``toolkit.target.power``: QMP, a bench command, labgrid, or the tester's finger when this
    run may ask)."""
    from toolkit.target.power import from_target

    def ask(text: str) -> None:
        run.reporter.message(text, "action")

    power = (run.power_factory or from_target)(
        run.target, ask=ask if run.options.interactive else None
    )
    run.console = (run.console_factory or serial_console)(run.target, run.journal)
    run.device = Device(UBoot(run.console, run.board), run.board)
    run.strategy = Strategy.attached(run.console, run.board, power, name=run.target.name)


def power_cycle(run: _Run) -> None:
    """Power-cycle the board, so the flash starts from U-Boot as it comes up."""
    assert run.strategy is not None
    power = run.strategy.power
    try:
        run.strategy.power_cycle()
    finally:
        if power.last_run is not None:
            # A bench command's own output goes to the journal, never to the terminal.
            run.journal.append("power", kind=power.kind, **power.last_run.to_dict())


def record_uboot(run: _Run) -> None:
    """U-Boot's version and environment, for the journal only: best effort (on a noisy line
    two identical answers to ``printenv`` may never come, and the flash does not need them)."""
    assert run.device is not None
    from toolkit.errors import DeviceError

    try:
        version = run.device.uboot.version()
        env = run.device.uboot.env()
    except DeviceError as exc:
        run.journal.append("uboot_unread", error=str(exc))
        return
    run.journal.store_bytes("uboot-env.json", json.dumps(env, indent=1, sort_keys=True).encode())
    run.journal.append(
        "uboot", version=version.splitlines()[0] if version else "", env_keys=len(env)
    )


def read_slots(run: _Run) -> None:
    """Which slot runs now, and what version it holds (the downgrade check, from the device)."""
    assert run.device is not None
    from toolkit.firmware.versions import InvalidVersion, check_downgrade

    run.device.rescan()
    run.active = run.device.active_slot()
    meta = run.device.slot_metadata(run.board.slot(run.active))
    if meta and isinstance(meta.get("version"), str):
        run.version_before = str(meta["version"])
        run.journal.append(
            "running_version", version=run.version_before, slot=run.active, source="slot"
        )
        try:
            check_downgrade(
                run.version,
                run.version_before,
                allow=run.options.allow_downgrade,
                where=f"slot {run.active} holds",
                journal=run.journal,
            )
        except InvalidVersion as exc:
            run.journal.append("downgrade_unchecked", running=run.version_before, reason=str(exc))
    run.journal.append("slots", active=run.active, version_before=run.version_before)


def plan_transfer(run: _Run, slot: Slot) -> tuple[list[plan.Chunk], int]:
    """Chunks, and the first one still to send (after checking the resumable prefix on the device)."""
    assert run.device is not None
    requested = run.options.path
    run.path = plan.choose_path(requested, own_tftp=False, bench_tftp=bench_has_tftp(run.target))
    size = run.options.chunk_size or plan.DEFAULT_CHUNK.get(run.path, 256 << 10)
    chunks = plan.plan_chunks(run.data, size, run.board.block_size)
    records = plan.previous_chunks(
        run.target.name, run.board.id, run.sha256, slot.name, run.journal.id
    )
    count = plan.verified_prefix(records, chunks, run.sha256, slot.name)
    start = first_bad_chunk(run.device, slot, chunks, count, run.data) if count else 0
    for chunk in chunks[:start]:
        run.journal.append(
            "chunk",
            carried=True,
            **plan.chunk_record(chunk, run.sha256, slot.name, run.target.name, run.path),
        )
    run.resumed_from = chunks[start].offset if start < len(chunks) else len(run.data)
    run.journal.append(
        "plan", path=run.path, chunk_size=size, chunks=len(chunks), resume_chunk=start,
        resumed_from=run.resumed_from, slot=slot.name, image_sha256=run.sha256,
    )  # fmt: skip
    return chunks, start


def first_bad_chunk(
    device: Device, slot: Slot, chunks: list[plan.Chunk], count: int, data: bytes
) -> int:
    """The journal says ``count`` chunks are written; believe only what the device confirms."""
    end = chunks[count - 1].end
    if device.slot_crc_is(slot, 0, end, zlib.crc32(memoryview(data)[:end])):
        return count
    for chunk in chunks[:count]:
        if not device.slot_crc_is(slot, chunk.offset, chunk.length, chunk.crc32):
            return chunk.index
    return count


def compare_slots(
    run: _Run, slot: Slot, chunks: list[plan.Chunk], start: int
) -> list[tuple[plan.Chunk, str | None]]:
    """What to do with the image from ``chunks[start]`` on, piece by piece: ``present``
    (``slot`` already holds it), ``copy`` (the active slot holds it at the same offset; it is
    left in RAM at ``copy_addr``) or send (None). Pieces are :data:`plan.DELTA_GRAIN` or the
    transfer's chunk size, neighbours handled alike merged (:func:`plan.coalesce`)."""
    assert run.device is not None
    device = run.device
    size = max(c.length for c in chunks)
    grain = min(plan.DELTA_GRAIN, size)
    pieces = plan.plan_range(run.data, chunks[start].offset, grain, run.board.block_size)
    how: dict[int, str] = {}
    inactive = device.chunk_crcs(slot, pieces, device.scratch_addr)
    how.update({p.index: "present" for p in pieces if inactive.get(p.index) == p.crc32})
    rest = [p for p in pieces if p.index not in how]
    source = run.board.slot(run.active)
    copy_from = source.name if device.copy_addr is not None and source.name != slot.name else None
    if rest and copy_from is not None:
        assert device.copy_addr is not None
        active = device.chunk_crcs(source, rest, device.copy_addr)
        how.update({p.index: "copy" for p in rest if active.get(p.index) == p.crc32})
    work = plan.coalesce(pieces, how, size, run.data, first_index=start)
    counted = {
        kind: sum(c.length for c, k in work if k == kind) for kind in ("present", "copy", None)
    }
    run.journal.append(
        "delta", pieces=len(pieces), grain=grain, copy_from=copy_from,
        present_bytes=counted["present"], copy_bytes=counted["copy"],
        send_bytes=counted[None], image_size=len(run.data),
    )  # fmt: skip
    return work


def transfer_and_write(run: _Run, slot: Slot, work: list[tuple[plan.Chunk, str | None]]) -> None:
    """Each chunk of ``work`` in turn: kept (``present``) or copied on the device (``copy``,
    see :func:`compare_slots`; a copy that does not read back right is sent instead), else
    transferred."""
    assert run.device is not None
    total = len(run.data)
    run.done = work[0][0].offset if work else total
    to_send: list[plan.Chunk] = []
    for chunk, how in work:
        if how == "present" or (how == "copy" and copy_chunk(run, slot, chunk)):
            run.reused += chunk.length
            run.done += chunk.length
            run.reporter.progress("transfer and write", run.done, total)
            run.journal.append(
                "chunk", reused=how,
                **plan.chunk_record(chunk, run.sha256, slot.name, run.target.name, run.path),
            )  # fmt: skip
        else:
            to_send.append(chunk)
    if not to_send:
        return
    loader = make_loader(run.path, run.device, run.target, run.sha256[:8])
    run.journal.append("transfer", path=run.path, detail=loader.detail)
    run.transferring = True
    try:
        for chunk in to_send:
            write_chunk(run, loader, slot, chunk, total)
    finally:
        loader.close()
    run.transferring = False


def copy_chunk(run: _Run, slot: Slot, chunk: plan.Chunk) -> bool:
    """Write ``chunk`` from the copy of the active slot in RAM and read it back; False (the
    chunk will be sent instead) if it does not read back right."""
    assert run.device is not None and run.device.copy_addr is not None
    run.device.write_slot(
        slot, chunk.offset, chunk.length, addr=run.device.copy_addr + chunk.offset
    )
    if run.device.slot_crc_is(slot, chunk.offset, chunk.length, chunk.crc32):
        return True
    run.journal.append("chunk_retry", index=chunk.index, attempt=1, reason="copy read back")
    return False


def write_chunk(run: _Run, loader: Loader, slot: Slot, chunk: plan.Chunk, total: int) -> None:
    """Load, check in RAM, write, read back, check, record. Retried a few times."""
    assert run.device is not None
    payload = run.data[chunk.offset : chunk.end]

    def progress(done: int, _size: int) -> None:
        run.reporter.progress("transfer and write", run.done + done, total)

    failed_loads = 0
    for attempt in range(1, CHUNK_ATTEMPTS + 1):
        try:
            run.sent += loader.load(payload, f"{chunk.index:04d}.bin", progress)
        except TransferError as exc:
            run.journal.append("chunk_retry", index=chunk.index, attempt=attempt, reason=str(exc))
            failed_loads += 1
            if failed_loads >= LOAD_FAILURES:
                break
            continue
        if not run.device.crc32_is(run.device.load_addr, chunk.length, chunk.crc32):
            run.journal.append(
                "chunk_retry", index=chunk.index, attempt=attempt, reason="crc32 in RAM"
            )
            continue
        run.device.write_slot(slot, chunk.offset, chunk.length)
        if not run.device.slot_crc_is(slot, chunk.offset, chunk.length, chunk.crc32):
            run.journal.append(
                "chunk_retry", index=chunk.index, attempt=attempt, reason="read-back crc32"
            )
            continue
        run.journal.append(
            "chunk", **plan.chunk_record(chunk, run.sha256, slot.name, run.target.name, run.path)
        )
        run.done += chunk.length
        return
    raise TransferError(
        f"chunk {chunk.index} (bytes {chunk.offset}..{chunk.end}) failed {attempt} times; "
        "nothing was switched, the previous firmware still boots",
        hint="a noisy line? rerun to resume, or try another --path",
    )


def read_back(run: _Run, slot: Slot) -> None:
    assert run.device is not None
    expected = zlib.crc32(run.data)
    if not run.device.slot_crc_is(slot, 0, len(run.data), expected):
        raise VerifyError(
            f"slot {slot.name} does not read back as the image (crc32 {expected:08x}); not switching",
            hint="rerun the flash; the previous firmware still boots",
        )
    run.journal.append("read_back", slot=slot.name, crc32=f"{expected:08x}", length=len(run.data))


def reset_and_boot(run: _Run) -> None:
    """A fresh boot into the switched slot: ``reset``, skip the autoboot countdown, boot, and
    wait for the Linux shell."""
    assert run.strategy is not None
    limit = run.options.timeout or float(run.board.get("console.linux_boot_timeout", 90.0))
    run.strategy.transition(Status.LINUX, fresh=True, timeout=limit)


def verify_running(run: _Run, slot: str) -> dict[str, Any]:
    """``/sbin/fwinfo`` and ``/etc/firmware-version`` must name the new image and slot.

    Both are read through the shell driver, which checks each answer against a checksum the
    device computed: a flipped bit on the console is read again, never taken for the wrong
    version or board.
    """
    assert run.console is not None and run.strategy is not None
    shell = run.strategy.shell()
    info = shell.read_json("/sbin/fwinfo", timeout=30.0)
    if not isinstance(info, dict):
        raise VerifyError("fwinfo did not print a JSON object", last_output=str(info))
    version_file = shell.read_file("/etc/firmware-version").strip()
    info["firmware_version_file"] = version_file
    run.journal.append(
        "running_version",
        version=info.get("version"),
        slot=info.get("running_slot"),
        source="fwinfo",
    )
    if (
        info.get("version") != run.version
        or version_file != run.version
        or info.get("running_slot") != slot
    ):
        raise VerifyError(
            f"the sample runs {info.get('version')} from slot {info.get('running_slot')}, "
            f"expected {run.version} from slot {slot} (it fell back to the old slot?)",
            last_output=run.console.tail(),
        )
    info["ssh_host_key_trusted"] = trust_host_key(run, shell)
    from toolkit.journeys.flash_ssh import authorize_key

    with run.step("authorize key"):
        info["authorized_key"] = authorize_key(shell, run.options, run.journal, run.reporter)
    return dict(info)


def trust_host_key(run: _Run, shell: Any) -> bool:
    """Right after routerkit flashed the device, its SSH host key is read over the serial
    console (a channel an attacker on the network does not control; integrity-checked, so
    noise is re-read, never taken for an attack) and stored for this device. The key normally
    stays the same across upgrades (the device keeps it in its settings); a changed key is
    trusted here, and recorded with the one it replaced.
    """
    from toolkit import hostkeys
    from toolkit.errors import DeviceError

    try:
        lines = hostkeys.read_console_host_keys(shell)
    except DeviceError as exc:
        run.journal.append("host_key_unread", error=str(exc))
        run.reporter.message(
            f"the SSH host key could not be read over the console ({exc}); SSH will ask you "
            "to confirm it",
            level="warning",
        )
        return False
    keytype, key = hostkeys.parse_key_line(lines[0])
    identity = hostkeys.identity_of(run.board.id, run.target.name)
    store = hostkeys.HostKeyStore()
    stored = store.get(identity)
    if stored is None or not stored.matches(keytype, key):
        store.trust(
            identity, keytype, key, host=run.target.ssh_host, port=run.target.ssh_port,
            source=f"serial console after flashing {run.version}",
        )  # fmt: skip
    run.journal.append(
        "host_key_trusted",
        identity=identity,
        fingerprint=hostkeys.fingerprint(key),
        changed=stored is not None and not stored.matches(keytype, key),
    )
    return True


def _prompt_timeout(run: _Run) -> float | None:
    limit = float(run.board.get("console.interrupt_timeout", 30.0))
    return min(limit, run.options.timeout) if run.options.timeout else None


# --- failure handling ----------------------------------------------------------------------


def _abort(run: _Run) -> None:
    """Best effort: stop a transfer and leave U-Boot at a prompt (never touches a slot).

    Only when a load may be running: a board that never showed a prompt has nothing to stop,
    and trying would only make the user wait for more timeouts.
    """
    if run.device is not None and run.transferring:
        with contextlib.suppress(Exception):
            run.device.abort_transfer()


def _close(run: _Run) -> None:
    if run.console is not None:
        with contextlib.suppress(Exception):
            run.console.close()
