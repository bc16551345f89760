"""One HIL target for one pytest session: which target, how to reach it, and what happened.

:class:`HilSession` is created cheaply when pytest starts and does nothing until a fixture
asks for the target. Then it resolves ``--routerkit-target`` (:func:`parse_spec`), starts or
acquires the target, and keeps for the whole session: its :class:`~toolkit.target.strategy.Strategy`,
an SSH connection, the flash of ``--routerkit-image`` (done once) and a console transcript
that the failure reports slice per test.

A target that cannot be set up (unreachable coordinator, busy place, dead sample) fails the
first test that asks for it with the reason, and every later one with "unusable since ...".
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.errors import ConfigError, NotFoundError, RouterkitError, TargetBrokenError
from toolkit.target.strategy import Status, Strategy

_SAMPLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,40}$")
_URL_SCHEMES = ("rfc2217", "socket")
SPEC_HELP = (
    "nothing (a virtual sample started for the session), lab.toml:NAME, rfc2217://HOST:PORT, "
    "socket://HOST:PORT, /dev/ttyX, labgrid:PLACE, or the name of a running virtual sample"
)


@dataclass(frozen=True)
class TargetSpec:
    """What ``--routerkit-target`` said, classified."""

    kind: str  # virtual | sample | lab | url | labgrid
    value: str
    raw: str


def parse_spec(raw: str | None) -> TargetSpec:
    """Classify a ``--routerkit-target`` value; ConfigError for anything we do not know."""
    text = (raw or "").strip()
    if not text:
        return TargetSpec("virtual", "", "")
    if text.startswith("labgrid:"):
        place = text.split(":", 1)[1]
        if not place:
            raise ConfigError("--routerkit-target labgrid: needs a place name (labgrid:PLACE)")
        return TargetSpec("labgrid", place, text)
    if re.match(r"^[^:]+\.toml:", text):
        return TargetSpec("lab", text, text)
    if "://" in text:
        scheme = text.split("://", 1)[0]
        if scheme not in _URL_SCHEMES:
            raise ConfigError(
                f"unknown --routerkit-target {text!r}: serial URL scheme {scheme}:// is not "
                f"supported (use {' or '.join(s + '://' for s in _URL_SCHEMES)})"
            )
        return TargetSpec("url", text, text)
    if text.startswith("/dev/"):
        return TargetSpec("url", text, text)
    if _SAMPLE_NAME.match(text):
        return TargetSpec("sample", text, text)
    raise ConfigError(f"unknown --routerkit-target {text!r}: use {SPEC_HELP}")


def validate_spec(spec: TargetSpec, board: str | None = None) -> None:
    """Cheap checks at session start, so a mistyped target fails once, before any test."""
    from toolkit import targets

    if spec.kind == "lab":
        targets.resolve(spec.value, board=board)
    elif spec.kind == "sample":
        from toolkit import sample

        state = sample.status(spec.value)
        if state is None or not state.running:
            raise NotFoundError(
                f"unknown --routerkit-target {spec.raw!r}: no running virtual sample has that "
                f"name (use {SPEC_HELP})"
            )


class HilSession:
    """The session's target (lazily set up), its strategy, SSH, flash and transcript."""

    def __init__(
        self,
        spec: TargetSpec,
        workdir: Path,
        *,
        board: str | None = None,
        shared_sample: Callable[[], Any] | None = None,
        flash_via: str = "auto",
    ) -> None:
        self.spec = spec
        self.workdir = workdir
        self.board_name = board
        self.flash_via = flash_via
        self.transcript_path = workdir / "console.log"
        self._shared_sample = shared_sample  # () -> H3's SharedSample holder
        self._holder: Any = None
        self._lease_cm: Any = None
        self.lease: Any = None
        self.strategy: Strategy | None = None
        self.setup_error: str | None = None
        self.fixed_target: Any = None  # a Target that does not change (all but virtual)
        self._ssh: Any = None
        self.flash_result: Any = None
        self.flash_error: str | None = None
        self.flash_journal: Any = None
        self.flashed_image_meta: dict[str, Any] | None = None
        self._forget_on_close: str | None = None
        self.closed = False

    # --- what the fixtures use ----------------------------------------------------------------

    @property
    def name(self) -> str:
        if self.spec.kind == "virtual":
            return self._holder.name if self._holder is not None else "virtual sample"
        return self.spec.raw

    @property
    def sample_state(self) -> Any:
        """The virtual sample's current ``SampleState`` (None for other targets)."""
        if self._holder is not None:
            return self._holder.state
        if self.fixed_target is not None and self.fixed_target.sample:
            from toolkit import sample

            return sample.status(self.fixed_target.sample)
        return None

    @property
    def target(self) -> Any:
        """The :class:`toolkit.targets.Target` (rebuilt for a virtual sample: its ports change
        when it is powered on again)."""
        if self._holder is not None:
            return target_of_state(self._holder.state)
        return self.fixed_target

    def ensure(self) -> Strategy:
        """Set the target up on first use; the strategy afterwards (or why it is unusable)."""
        if self.setup_error is not None:
            raise TargetBrokenError(
                f"target {self.name} is unusable: setting it up failed earlier: {self.setup_error}"
            )
        if self.closed:
            raise TargetBrokenError(f"target {self.name}: the session already ended")
        if self.strategy is None:
            try:
                self.strategy = self._open()
            except BaseException as exc:
                self.setup_error = str(exc) or type(exc).__name__
                self.close()
                raise
        elif self._holder is not None:
            self._revive()
        return self.strategy

    def release_console(self) -> None:
        """Let another program (or test) use the console port until the next request."""
        if self.strategy is not None:
            self.strategy.release()

    def ssh(self) -> Any:
        """An SSH connection (H8's :class:`~toolkit.transport.ssh.SSHConnection`), host key checked."""
        strategy = self.ensure()
        strategy.transition(Status.SSH)
        conn = self._ssh
        if conn is not None:
            try:
                if conn.transport.is_active():
                    return conn
            except RouterkitError:
                pass
            conn.close()
        self._ssh = self._open_ssh()
        return self._ssh

    def close(self) -> None:
        """Close the console and SSH, release the labgrid place. Never raises."""
        with contextlib.suppress(Exception):
            if self._ssh is not None:
                self._ssh.close()
        self._ssh = None
        with contextlib.suppress(Exception):
            if self.strategy is not None:
                self.strategy.release()
        if self._forget_on_close is not None:
            from toolkit.hostkeys import HostKeyStore

            with contextlib.suppress(Exception):
                HostKeyStore().forget(self._forget_on_close)
            self._forget_on_close = None
        if self._lease_cm is not None:
            cm, self._lease_cm = self._lease_cm, None
            with contextlib.suppress(Exception):
                cm.__exit__(None, None, None)
        self.closed = self.strategy is not None or self.setup_error is not None

    # --- setting the target up ------------------------------------------------------------

    def _open(self) -> Strategy:
        from toolkit import coordinator, targets
        from toolkit.boards import DEFAULT_BOARD
        from toolkit.target import power as power_mod

        self.workdir.mkdir(parents=True, exist_ok=True)
        status = Status.UNKNOWN
        if self.spec.kind == "virtual":
            assert self._shared_sample is not None, "the virtual target needs the shared sample"
            self._holder = self._shared_sample()
            status = self._start_virtual()
            power: power_mod.Power = power_mod.QMPPower(
                state=lambda: self._holder.state, on=self._power_on
            )
        elif self.spec.kind == "labgrid":
            self._lease_cm = coordinator.lease(self.spec.value)
            self.lease = self._lease_cm.__enter__()
            self.fixed_target = coordinator.target_for(self.lease, self.board_name or DEFAULT_BOARD)
            power = power_mod.from_target(self.fixed_target, lease=self.lease)
        elif self.spec.kind == "url":
            self.fixed_target = targets.resolve(
                self.spec.value, serial_url=self.spec.value, board=self.board_name
            )
            power = power_mod.Power()
        else:  # lab.toml:NAME or a running sample's name
            self.fixed_target = targets.resolve(self.spec.value, board=self.board_name)
            power = power_mod.from_target(self.fixed_target)
        target = self.target
        if not target.serial_url:
            raise ConfigError(f"target {target.name} has no serial console (serial_url)")
        from toolkit.boards import load_board

        return Strategy(
            load_board(target.board), power, url=lambda: self.target.serial_url,
            connect=_connect, transcript_path=self.transcript_path,
            ssh_address=self._ssh_address, name=target.name, status=status,
        )  # fmt: skip

    def _start_virtual(self) -> Status:
        """Start the session's sample without waiting: QEMU waits for our console, so the
        strategy sees the boot from power-on. A sample already running is in an unknown state."""
        from toolkit import sample

        holder = self._holder
        if holder.state is not None:
            current = sample.status(holder.state)
            if current is not None and current.running:
                holder.state = current
                return Status.UNKNOWN
        holder.ensure(wait="none")
        return Status.POWERED

    def _power_on(self) -> None:
        """QMPPower's "on" for a sample that was power-cut or stopped."""
        self._holder.ensure(wait="none")
        if self.strategy is not None:
            self.strategy.status = Status.POWERED

    def _revive(self) -> None:
        """A test stopped or power-cut the session's sample: power it on again."""
        from toolkit import sample

        assert self.strategy is not None
        current = sample.status(self._holder.state) if self._holder.state is not None else None
        if current is None or not current.running:
            self.strategy.release()
            if self.strategy.status is not Status.BROKEN:
                self._holder.ensure(wait="none")
                self.strategy.status = Status.POWERED

    def _ssh_address(self) -> tuple[str, int] | None:
        target = self.target
        if not target.ssh_host:
            return None
        return str(target.ssh_host), int(target.ssh_port or 22)

    def _open_ssh(self) -> Any:
        from toolkit.hostkeys import HostKeyContext, HostKeyStore
        from toolkit.target.ssh import connect_target

        target = self.target
        version = self.flashed_image_meta.get("version") if self.flashed_image_meta else None
        context = HostKeyContext(
            after_flash=version is not None, serial_keys=self._serial_host_keys,
            image_version=version,
        )  # fmt: skip
        # A throwaway session sample must not leave its key in the user's known_hosts.
        store = HostKeyStore(self.workdir / "hostkeys") if self._holder is not None else None
        return connect_target(target, context=context, store=store)

    def _serial_host_keys(self) -> list[str]:
        """The device's SSH host keys as its own serial console reports them."""
        from toolkit.hostkeys import read_console_host_keys

        assert self.strategy is not None
        return read_console_host_keys(self.strategy.shell())

    # --- the flash, once per session -------------------------------------------------------

    def flash_once(self, image: Path) -> Any:
        """Flash ``image`` the first time; later calls return that result (or its failure)."""
        if self.flash_error is not None:
            raise TargetBrokenError(
                f"flashing {image} failed earlier in this session: {self.flash_error}"
            )
        if self.flash_result is not None:
            return self.flash_result
        from toolkit.firmware.image import parse
        from toolkit.journeys.flash import FlashOptions, flash
        from toolkit.record import Journal

        strategy = self.ensure()
        target = self.target
        via = self.flash_via if self.flash_via != "auto" else auto_flash_path(target)
        try:
            strategy.transition(Status.SSH if via == "ssh" else Status.UBOOT)
            if via == "ssh":
                self._trust_for_flash()
            strategy.release()  # the journey opens the console itself when it needs it
            self.flash_journal = Journal.create("flash", board=target.board, target=target.name)
            self.flash_result = flash(
                image, target, FlashOptions(via=via), journal=self.flash_journal
            )
            self.flashed_image_meta = dict(parse(image).metadata)
        except BaseException as exc:
            self.flash_error = str(exc) or type(exc).__name__
            strategy.mark_broken(f"flashing {image.name} failed: {self.flash_error}")
            raise
        finally:
            if self._ssh is not None:
                self._ssh.close()  # the device rebooted: the old connection is gone
                self._ssh = None
        strategy.forget(Status.UNKNOWN)
        return self.flash_result

    def _trust_for_flash(self) -> None:
        """Let the flash journey's first SSH contact pass: store the host key the device's own
        serial console reports (DESIGN §5: a first-contact key is read over the console), in
        the store the journey uses. Done only when that store does not know the device yet."""
        from toolkit.hostkeys import HostKeyStore, identity_of, parse_key_line

        target = self.target
        identity = identity_of(target.board, target.name)
        store = HostKeyStore()
        if store.get(identity) is not None:
            return
        lines = self._serial_host_keys()
        if not lines:
            return  # the journey's own rules decide (and say why they refuse)
        keytype, key = parse_key_line(lines[0])
        store.trust(
            identity,
            keytype,
            key,
            source="serial-console",
            host=target.ssh_host,
            port=target.ssh_port,
        )
        if self._holder is not None:
            self._forget_on_close = identity  # a throwaway sample leaves no known_hosts entry

    def flash_record(self) -> dict[str, Any] | None:
        """The flash session's last ``flash`` record and where the journal is, if any."""
        if self.flash_journal is None:
            return None
        record = self.flash_journal.last("flash") or self.flash_journal.last("flash_started") or {}
        return {"session": self.flash_journal.id, "journal": str(self.flash_journal.dir), **record}


def auto_flash_path(target: Any) -> str:
    """Serial (U-Boot + the bench's TFTP) when the bench has a TFTP dir, as benches do; else SSH
    when the target has an address; else serial. On the virtual sample serial+TFTP takes ~40 s
    where SSH takes ~2 min (sysupgrade hashes both slots in the emulated CPU)."""
    import importlib.util

    has_serial_path = importlib.util.find_spec("toolkit.journeys.flash_serial") is not None
    if target.serial_url and target.tftp_dir and has_serial_path:
        return "serial"
    return "ssh" if target.ssh_host else "serial"


def target_of_state(state: Any) -> Any:
    """A Target for a SampleState held by this session (``targets.from_sample`` looks the
    sample up by name in the caller's data dir, which is not where the session keeps it).
    Its SSH key is the caller's routerkit key, the one the shared sample authorized."""
    from toolkit.identity import identity_path
    from toolkit.targets import QEMU_GUEST_IP, QEMU_HOST_IP, Target

    return Target(
        name=state.name, board=state.board, serial_url=state.serial_url, ssh_host=state.ssh_host,
        ssh_port=state.ssh_port, ssh_user="root", identity=str(identity_path()),
        power={"kind": "qmp", "socket": state.qmp, "sample": state.name},
        tftp_dir=state.tftp_dir, tftp_server_ip=QEMU_HOST_IP, device_ip=QEMU_GUEST_IP,
        sample=state.name,
    )  # fmt: skip


def _connect(url: str) -> Any:
    from toolkit.sample.watch import connect

    return connect(url, time.monotonic() + 10.0)
