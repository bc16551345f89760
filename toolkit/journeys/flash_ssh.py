"""Flash over SSH: OpenWrt's sysupgrade-over-SSH, made safe (DESIGN §5, issue 4).

check image (locally; refuse before any transfer) → connect (host key rules) → check device
(version, slot, boot id, sysupgrade present, free space in /tmp) → upload to /tmp → sha256 on
the device (a mismatch is retried once, then we stop with the device untouched) → sysupgrade
(validates again, writes the inactive slot, reads it back, switches, reboots) → wait for the
reboot and reconnect with back-off (the device keeps its host key across upgrades; a new key
is accepted only when its serial console confirms it, or with --accept-new-hostkey for this
flash) → verify → record. The flasher's public key is authorized in the device's own settings
(``rk-settings authorize``) on the way, unless ``--no-authorized-key``.

A dropped link during the upload reconnects and uploads again: nothing is written to flash
before the complete image has been checked on the device, by us and again by sysupgrade.
"""

from __future__ import annotations

import contextlib
import shlex
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from toolkit.errors import (
    AuthError,
    DeviceCommandError,
    DeviceTimeout,
    HostKeyError,
    HostUnreachableError,
    NoSpaceError,
    SSHError,
    TransferError,
    VerifyError,
)
from toolkit.events import Reporter
from toolkit.journeys.flash import FlashOptions, FlashResult
from toolkit.journeys.steps import Steps
from toolkit.journeys.verify import host_key_context
from toolkit.record import Journal
from toolkit.target.ssh import connect_target
from toolkit.targets import Target
from toolkit.transport.ssh import SSHConnection

#: Upload attempts when the link drops; sha256 mismatches get one retry (2 attempts).
#: Upload attempts over a failing link (each on a new connection, after 1 s, 2 s, 3 s...): a
#: device busy with a 13 MB upload in RAM has been seen to refuse new sessions for seconds. The
#: attempts go on until there were LINK_ATTEMPTS of them AND LINK_PATIENCE seconds have passed
#: since the first failure: an emulated 32-bit sample on a loaded machine refused sessions
#: for longer than four quick attempts.
LINK_ATTEMPTS = 4
LINK_PATIENCE = 30.0
LINK_BACKOFF_MAX = 5.0
SHA_ATTEMPTS = 2
#: Headroom kept free in /tmp beyond the image (sysupgrade's own temporary files).
TMP_HEADROOM = 256 * 1024
BOOT_ID = "/proc/sys/kernel/random/boot_id"
#: Reconnecting after the reboot: the first back-off step, and the poll interval while the
#: device's port refuses connections (cheap to ask; see _wait_for_reboot).
BACKOFF_START = 0.25
REFUSED_POLL = 0.1
#: Version and slot of the running firmware. `fwinfo` also hashes both slots (seconds of
#: device CPU: 2 x ~13 MB of sha256 in QEMU), which the check before a flash does not need, so
#: read them as fwinfo does, through the firmware's own helper library (whose RK_* paths the
#: loopback device overrides); firmware without that library still gets the full fwinfo.
_RUNNING = (
    'l="${RK_LIB:-/lib/routerkit/common.sh}"; if [ -r "$l" ]; then . "$l"; '
    'printf \'{"version": "%s", "running_slot": "%s"}\\n\' '
    '"$(cat "$RK_VERSION_FILE" 2>/dev/null)" "$(rk_running_slot)"; '
    "else f=$(command -v /sbin/fwinfo || command -v fwinfo) && $f; fi"
)


def flash(
    image: Path,
    target: Target,
    options: FlashOptions,
    reporter: Reporter,
    journal: Journal,
    *,
    data: bytes | None = None,
    connect: Callable[..., SSHConnection] | None = None,
) -> FlashResult:
    """Flash ``image`` onto ``target`` over SSH; see the module docstring for the plan.

    ``connect`` opens every SSH connection of the journey, with the signature of
    :func:`~toolkit.target.ssh.connect_target` (the default); tests pass an in-memory
    device's (:class:`toolkit.testing.fake_ssh.FakeSSHDevice`).
    """
    from toolkit.boards import load_board
    from toolkit.firmware.verify import verify_image
    from toolkit.journeys.verify import verify

    connect = connect or connect_target
    start = time.monotonic()
    steps = Steps(reporter, journal)
    board = load_board(target.board)
    with steps("check image", str(image)):
        checked = verify_image(
            image,
            board,
            running_version=options.running_version,
            allow_downgrade=options.allow_downgrade,
            force_board=options.force_board,
            journal=journal,
            data=data,
        )
        # The bytes just verified, never the file again: it may have been replaced since.
        data = checked.data
        digest = checked.sha256
    for warning in checked.warnings:
        reporter.message(warning, level="warning")

    with steps("connect", f"{target.ssh_user}@{target.ssh_host}:{target.ssh_port}"):
        # --accept-new-hostkey covers the key the device comes back with after THIS flash
        # only; the device we flash must already be trusted (or its console must confirm it).
        conn = connect(target, context=host_key_context(target), reporter=reporter)
    if conn.hostkey is not None:
        journal.append("hostkey", **conn.hostkey.to_dict())
    try:
        with steps("check device"):
            device = _inspect(conn, board, len(data))
        journal.append("device", **device)
        with steps("authorize key"):
            authorize_key(conn, options, journal, reporter)
        before = device.get("version")
        _check_downgrade(checked.version, before, options.allow_downgrade, journal)

        dest = f"{board.get('ssh.upload_dir', '/tmp').rstrip('/')}/routerkit-{digest[:12]}.img"
        delta: tuple[SSHConnection, _Upload] | None = None
        if options.delta:  # off unless asked: on a fast link hashing costs more than it saves
            delta = _upload_delta(
                conn, target, data, digest, dest, device, options, steps, reporter, journal,
                connect,
            )  # fmt: skip
        if delta is None:
            conn, upload = _upload_checked(
                conn, target, data, digest, dest, options, steps, reporter, journal, connect
            )
        else:
            conn, upload = delta

        with steps("sysupgrade", device["sysupgrade"]):
            args = "" if options.keep_settings else " -n"
            journal.append("sysupgrade_started", command=f"{device['sysupgrade']}{args} {dest}")
            # Its lines ("FIT sha256 ok", "writing slot B") show where a slow device is.
            result = conn.run(
                f"{shlex.quote(device['sysupgrade'])}{args} {shlex.quote(dest)}",
                timeout=600,
                what="sysupgrade",
                on_line=lambda line: reporter.message(line, level="debug"),
            )
            journal.append("sysupgrade", exit_status=result.exit_status, output=result.tail(30))
            if result.exit_status > 0:
                with contextlib.suppress(Exception):
                    conn.run(f"rm -f {shlex.quote(dest)}", timeout=15)
                raise DeviceCommandError(
                    f"sysupgrade refused the image (exit {result.exit_status}): {result.tail(2)}",
                    hint=f"the device still runs {before} from slot {device.get('running_slot')}",
                    last_output=result.tail(20),
                )
        conn.close()

        timeout = options.timeout or float(board.get("ssh.reboot_timeout", 120.0))
        with steps("reboot", f"waiting up to {timeout:.0f} s"):
            conn = _wait_for_reboot(
                target, device["boot_id"], checked, options, timeout, journal, connect
            )
        with steps("verify"):
            report = verify(target, via="ssh", reporter=reporter, journal=journal, ssh=conn)
    finally:
        conn.close()

    after = report.get("version")
    slot = report.get("running_slot")
    problems = list(report.get("problems", []))
    if after != checked.version:
        problems.insert(
            0,
            f"the device runs {after} from slot {slot}, not {checked.version}: "
            "the new firmware did not boot and the sample fell back",
        )
    result_obj = FlashResult(
        ok=not problems,
        target=target.name,
        board=board.id,
        via="ssh",
        path=upload.method,
        image=str(image),
        image_sha256=digest,
        version_before=before,
        version_after=after,
        slot=slot,
        bytes=upload.bytes_sent,
        seconds=round(time.monotonic() - start, 3),
        steps=steps.seconds,
        verify=report,
        image_size=len(data),
        reused_bytes=upload.reused,
    )
    if problems:
        journal.append("flash_problems", problems=problems)
        raise VerifyError(
            "flash finished but verify failed: " + "; ".join(problems),
            hint=f"session {journal.id} has the details",
        )
    return result_obj


def authorize_key(runner: Any, options: FlashOptions, journal: Journal, reporter: Reporter) -> bool:
    """Let the flasher's key log in as root (``rk-settings authorize LINE SHA256``): the
    routerkit identity, ``--authorized-key``'s key, or none with ``--no-authorized-key``.

    ``runner.run(cmd, timeout=...)`` is an SSH connection or a console shell; the device
    checks the sha256 of the line it received, so a line garbled on a serial console is
    refused there and typed again here. Firmware without ``rk-settings`` is left alone.
    """
    from toolkit import identity

    if not options.authorize:
        journal.append("authorized_key", installed=False, reason="--no-authorized-key")
        return False
    line = options.authorized_key or identity.public_line()
    digest = identity.line_sha256(line)
    out = ""
    for _ in range(3):
        result = runner.run(f"rk-settings authorize {shlex.quote(line)} {digest} 2>&1", timeout=30)
        out = str(result.output)
        if f"authorized {digest}" in out:
            journal.append(
                "authorized_key",
                installed=True,
                sha256=digest,
                key=" ".join(line.split()[:2])[:40] + "...",
            )
            return True
        if "not found" in out:
            journal.append("authorized_key", installed=False, reason="no rk-settings on the device")
            reporter.message("the device has no rk-settings: no key was authorized", level="debug")
            return False
    raise DeviceCommandError(
        "could not authorize your SSH key on the device (rk-settings refused it 3 times)",
        last_output=out,
    )


def _inspect(conn: SSHConnection, board: Any, size: int) -> dict[str, Any]:
    """What the device runs, whether it can be flashed, and whether the image fits in /tmp."""
    from toolkit.journeys.verify import _json_object

    upload_dir = board.get("ssh.upload_dir", "/tmp")
    sysupgrade = board.get("ssh.sysupgrade", "/sbin/sysupgrade")
    probe = conn.run(
        f"cat {BOOT_ID}; echo @@; command -v {shlex.quote(sysupgrade)} || command -v sysupgrade; "
        f"echo @@; df -Pk {shlex.quote(upload_dir)} | tail -n 1; echo @@; {_RUNNING}",
        timeout=60,
        what="device check",
    )
    parts = (probe.stdout + "@@@@@@").split("@@")
    boot_id, found, df_line, fwinfo = (p.strip() for p in parts[:4])
    if not found:
        raise DeviceCommandError(
            f"device has no sysupgrade ({sysupgrade} is missing and none is on its PATH)",
            hint="this firmware cannot be upgraded over SSH; flash it over serial (--via serial)",
        )
    fields = df_line.split()
    try:
        free_kib = int(fields[-3])
    except (IndexError, ValueError):
        raise DeviceCommandError(
            f"cannot read the free space of {upload_dir}: {df_line!r}"
        ) from None
    need_kib = (size + TMP_HEADROOM + 1023) // 1024
    if free_kib < need_kib:
        raise NoSpaceError(
            f"too little space in {upload_dir} on the device: {free_kib} KiB free, the image "
            f"needs {need_kib} KiB; nothing was sent",
            hint="reboot the device to clear /tmp, or free space there",
        )
    info = _json_object(fwinfo) or {}
    return {
        "boot_id": boot_id,
        "sysupgrade": found.splitlines()[0],
        "tmp_free_kib": free_kib,
        "version": info.get("version") or None,
        "running_slot": info.get("running_slot") or None,
    }


def _check_downgrade(new: str, running: str | None, allow: bool, journal: Journal) -> None:
    """The shared rule (``firmware.versions.check_downgrade``) against what the device said it
    runs; a device that reports no usable version is recorded, not refused."""
    from toolkit.firmware.versions import InvalidVersion, check_downgrade

    try:
        check_downgrade(new, running, allow=allow, journal=journal)
    except InvalidVersion as exc:
        journal.append("downgrade_unchecked", running=running, reason=str(exc))


class _Upload:
    def __init__(self, method: str, bytes_sent: int, reused: int = 0) -> None:
        self.method = method
        self.bytes_sent = bytes_sent
        self.reused = reused  # image bytes taken from the device's own slot (delta)


#: A delta upload compares the running slot with the image in pieces this large.
DELTA_PIECE = 256 << 10


def _upload_delta(
    conn: SSHConnection,
    target: Target,
    data: bytes,
    digest: str,
    dest: str,
    device: dict[str, Any],
    options: FlashOptions,
    steps: Steps,
    reporter: Reporter,
    journal: Journal,
    connect: Callable[..., SSHConnection],
) -> tuple[SSHConnection, _Upload] | None:
    """Put the image together at ``dest`` from the running slot and only the pieces it does
    not hold (a nightly over the one before it): the device sums its running slot in
    :data:`DELTA_PIECE` pieces (md5, :func:`_piece_digest`), the pieces that differ are uploaded (checked like any upload)
    and ``dd`` lays both out at ``dest``. The result must hash to the image's sha256, exactly as
    a full upload must; anything short of that (no slot device, no room in /tmp, a mismatch)
    returns None and the whole image is uploaded instead."""
    import hashlib

    slot = device.get("running_slot")
    need_kib = (2 * len(data) + TMP_HEADROOM + 1023) // 1024
    if slot not in ("A", "B") or int(device.get("tmp_free_kib") or 0) < need_kib:
        return None
    count = -(-len(data) // DELTA_PIECE)
    with steps("compare (delta)", f"slot {slot} in {count} pieces"):
        out = conn.run(
            f'. "${{RK_LIB:-/lib/routerkit/common.sh}}" && d=$(rk_slot_dev {slot}) && i=0 && '
            f"while [ $i -lt {count} ]; do dd if=$d bs={DELTA_PIECE} skip=$i count=1 "
            "2>/dev/null | md5sum; i=$((i+1)); done",
            timeout=300,
        )
    theirs = [line.split()[0] for line in out.stdout.splitlines() if line.strip()]
    if out.exit_status != 0 or len(theirs) != count:
        journal.append("delta_unavailable", reason=out.tail(2) or "no piece hashes")
        return None
    view = memoryview(data)
    same = {
        i for i in range(count)
        if (i + 1) * DELTA_PIECE <= len(data)  # a short last piece is always sent
        and _piece_digest(view[i * DELTA_PIECE : (i + 1) * DELTA_PIECE]) == theirs[i]
    }  # fmt: skip
    journal.append(
        "delta", copy_from=slot, pieces=count, piece=DELTA_PIECE,
        copy_bytes=len(same) * DELTA_PIECE, send_bytes=len(data) - len(same) * DELTA_PIECE,
        image_size=len(data),
    )  # fmt: skip
    if not same:
        return None
    blob = b"".join(
        view[i * DELTA_PIECE : (i + 1) * DELTA_PIECE] for i in range(count) if i not in same
    )
    part = f"{dest}.delta"
    conn, up = _upload_checked(
        conn, target, blob, hashlib.sha256(blob).hexdigest(), part, options, steps, reporter,
        journal, connect,
    )  # fmt: skip
    with steps("assemble (delta)"):
        script = [f"rm -f {shlex.quote(dest)}", '. "${RK_LIB:-/lib/routerkit/common.sh}"',
                  f"d=$(rk_slot_dev {slot})"]  # fmt: skip
        sent = 0
        for first, last, copied in _runs(count, same):
            source, skip = ("$d", first) if copied else (shlex.quote(part), sent)
            script.append(
                f"dd if={source} of={shlex.quote(dest)} bs={DELTA_PIECE} skip={skip} "
                f"seek={first} count={last - first + 1} conv=notrunc 2>/dev/null"
            )
            if not copied:
                sent += last - first + 1
        script.append(f"rm -f {shlex.quote(part)}")
        script.append(f"sha256sum {shlex.quote(dest)}")
        out = conn.run(" && ".join(script), timeout=300, what="assemble")
        got = (out.stdout.split() or [""])[0]
    if got != digest:
        journal.append("delta_mismatch", expected=digest, got=got)
        reporter.message(
            "the image put together on the device did not match; uploading all", "warning"
        )
        return None
    journal.append("upload_verified", sha256=got, delta=True)
    return conn, _Upload(f"{up.method}+delta", up.bytes_sent, reused=len(same) * DELTA_PIECE)


def _piece_digest(piece: memoryview) -> str:
    """MD5 of a piece, as the device's ``md5sum`` prints it: only to skip uploading what the
    slot already holds (twice as fast as sha256 on a router's CPU); what decides is the
    sha256 of the whole image put together on the device."""
    import hashlib

    return hashlib.md5(piece, usedforsecurity=False).hexdigest()


def _runs(count: int, same: set[int]) -> list[tuple[int, int, bool]]:
    """``range(count)`` as runs of neighbours alike: (first, last, in ``same``)."""
    runs: list[tuple[int, int, bool]] = []
    for i in range(count):
        if runs and runs[-1][2] == (i in same) and runs[-1][1] == i - 1:
            runs[-1] = (runs[-1][0], i, i in same)
        else:
            runs.append((i, i, i in same))
    return runs


def _upload_checked(
    conn: SSHConnection,
    target: Target,
    data: bytes,
    digest: str,
    dest: str,
    options: FlashOptions,
    steps: Steps,
    reporter: Reporter,
    journal: Journal,
    connect: Callable[..., SSHConnection] = connect_target,
) -> tuple[SSHConnection, _Upload]:
    """Upload until the device holds exactly ``data`` at ``dest``; return the live connection."""
    method = options.path if options.path in ("sftp", "scp", "cat") else "auto"
    sent = 0
    link_failures = 0
    first_failure = 0.0
    mismatches = 0
    used = method
    while True:
        try:
            with steps("upload", f"{len(data)} bytes to {dest}"):
                conn.run(f"rm -f {shlex.quote(dest)}", timeout=30)
                res = conn.upload(
                    data,
                    dest,
                    method=method,
                    progress=lambda done, total: reporter.progress("upload", done, total),
                )
                sent += res.bytes
                used = res.method
            journal.append(
                "upload",
                method=res.method,
                bytes=res.bytes,
                seconds=round(res.seconds, 3),
                streams=res.streams,
                dest=dest,
            )
            with steps("check upload", "sha256 on the device"):
                out = conn.run(f"sha256sum {shlex.quote(dest)}", timeout=120, what="sha256sum")
                got = (out.stdout.split() or [""])[0]
        except (TransferError, SSHError) as exc:
            if isinstance(exc, HostKeyError | AuthError):
                raise
            link_failures += 1
            journal.append("upload_failed", error=str(exc), attempt=link_failures)
            first_failure = first_failure or time.monotonic()
            patient = time.monotonic() - first_failure < LINK_PATIENCE
            if link_failures >= LINK_ATTEMPTS and not patient:
                raise TransferError(
                    f"upload failed {link_failures} times, last: {exc}; nothing was written to flash",
                    hint="check the network link to the device",
                ) from None
            reporter.message(
                f"upload interrupted ({exc}); reconnecting and retrying", level="warning"
            )
            conn.close()
            time.sleep(min(1.0 * link_failures, LINK_BACKOFF_MAX))
            conn = connect(target, context=host_key_context(target), reporter=reporter)
            continue
        if got == digest:
            journal.append("upload_verified", sha256=got)
            return conn, _Upload(used, sent)
        mismatches += 1
        journal.append("upload_mismatch", expected=digest, got=got, attempt=mismatches)
        if mismatches >= SHA_ATTEMPTS:
            with contextlib.suppress(Exception):
                conn.run(f"rm -f {shlex.quote(dest)}", timeout=30)
            raise VerifyError(
                f"sha256 of the uploaded image on the device is {got or 'unreadable'}, expected "
                f"{digest}, after {mismatches} uploads: stopped; nothing was written to flash and "
                "the upload was removed",
                hint="a failing link or device memory; try again, or flash over serial",
            )
        reporter.message(
            "sha256 on the device does not match; uploading once more", level="warning"
        )


def _wait_for_reboot(
    target: Target,
    old_boot_id: str,
    checked: Any,
    options: FlashOptions,
    timeout: float,
    journal: Journal,
    connect: Callable[..., SSHConnection] = connect_target,
) -> SSHConnection:
    """Reconnect with back-off until the device runs a new boot; check the new host key."""
    from toolkit.hostkeys import HostKeyContext
    from toolkit.journeys.verify import serial_host_keys

    serial = (lambda: serial_host_keys(target)) if target.serial_url else None
    context = HostKeyContext(
        after_flash=True,
        accept_new=options.accept_new_hostkey,
        serial_keys=serial,
        image_version=checked.version,
    )
    deadline = time.monotonic() + timeout
    delay = BACKOFF_START
    last = "no attempt yet"
    # Give the device a moment to actually go down: connecting in the gap between the
    # command's return and the reboot would only find the old boot.
    time.sleep(min(0.3, timeout))
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        conn = connect(
            target, context=context, connect=False, connect_timeout=max(1.0, min(5.0, left))
        )
        try:
            boot_id = conn.run(f"cat {BOOT_ID}", timeout=max(1.0, min(10.0, left))).stdout.strip()
            if boot_id and boot_id != old_boot_id:
                if conn.hostkey is not None:
                    journal.append("hostkey", **conn.hostkey.to_dict())
                journal.append("rebooted", boot_id=boot_id)
                return conn
            last = "the old system still answers (not rebooted yet)"
            conn.close()
        except (HostKeyError, AuthError):
            conn.close()
            raise
        except HostUnreachableError as exc:
            last = str(exc)
            conn.close()
            if last.startswith("TCP:") and "refused" in last:
                # Nothing listens yet: a refused connect costs nothing on either side, so
                # keep asking often instead of backing off past the moment SSH comes up.
                time.sleep(min(REFUSED_POLL, max(0.0, deadline - time.monotonic())))
                continue
        except Exception as exc:  # anything but a host-key/auth verdict means "not back yet"
            last = str(exc) or type(exc).__name__
            conn.close()
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 1.6, 3.0)
    raise _not_back(target, timeout, last)


def _not_back(target: Target, timeout: float, last: str) -> DeviceTimeout:
    from toolkit.journeys.verify import serial_answers

    try:
        with socket.create_connection((str(target.ssh_host), int(target.ssh_port)), timeout=3):
            tcp = f"TCP port {target.ssh_host}:{target.ssh_port} still accepts connections but SSH does not answer"
    except OSError as exc:
        tcp = f"TCP port {target.ssh_host}:{target.ssh_port} is unreachable ({exc.strerror or exc})"
    serial = serial_answers(target)
    return DeviceTimeout(
        f"the device did not come back within {timeout:.0f} s after sysupgrade: {tcp}; {serial}. "
        f"Last SSH error: {last}",
        hint="the A/B boot falls back to the previous slot after failed boots; power-cycle it "
        "and run `routerkit verify`",
    )
