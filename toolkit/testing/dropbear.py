"""A light SSH "device" on loopback: a real dropbear running the firmware's real on-device scripts.

Used by tests and benchmarks where booting QEMU would be too slow (a fleet of eight, fault
injection): the SSH server is the same dropbear the firmware ships, and ``sysupgrade``,
``fwinfo`` and ``selftest`` are the scripts from ``firmware/rootfs``, run on the host with their
``RK_*`` overrides pointing at plain files instead of ``/dev/vda2``. What is simulated is only
what a host cannot do: the "reboot" (dropbear and its sessions are killed, the slot chosen by
``state.env`` becomes the running one, and dropbear starts again after ``reboot_delay``).

dropbear looks up root's ``authorized_keys`` (and ``/etc/shadow`` for passwords) through the
password database, so each device runs in a private mount namespace (``unshare -m``) where a
temporary directory is bound over ``/root``, ``/tmp`` (or a small tmpfs, to test "no space"),
``/proc/sys/kernel/random/boot_id`` (so a reboot is visible) and, with a password, ``/etc/shadow``.
Nothing outside the namespace changes. Needs root (or unprivileged user namespaces).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from toolkit import resources
from toolkit.boards import DEFAULT_BOARD
from toolkit.errors import ToolMissingError

SLOT_BYTES = 32 * 1024 * 1024
SFTP_SERVER = "/usr/lib/openssh/sftp-server"

_REBOOT = """#!/bin/sh
# Simulated reboot: leave a marker for the supervisor, then drop every SSH session and the
# server itself, as a real reboot would.
touch "$RK_DEVICE_DIR/reboot-requested"
master=$(cat "$RK_DEVICE_DIR/dropbear.pid" 2>/dev/null)
[ -n "$master" ] || exit 0
for child in $(cat /proc/"$master"/task/*/children 2>/dev/null); do kill -9 "$child" 2>/dev/null; done
kill -9 "$master" 2>/dev/null
exit 0
"""


def available() -> str | None:
    """Why a loopback device cannot run here, or None if it can."""
    for tool in ("dropbear", "dropbearkey", "unshare"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    probe = subprocess.run(_unshare() + ["true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot create a mount namespace: {probe.stderr.strip()}"
    return None


def _unshare() -> list[str]:
    return ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-r", "-m"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LoopbackDevice:
    """One device. ``start()`` → SSH on ``127.0.0.1:port`` as root with ``client_key``.

    Faults for tests: ``sysupgrade=False`` (a device without it), ``tmp_kib`` (a small /tmp),
    ``password`` (password login), ``bad_sha256`` (the first N ``sha256sum`` runs lie),
    :meth:`new_host_key` (the device's key changes without a flash).
    """

    def __init__(
        self,
        workdir: Path,
        client_pubkey: Path | str,
        *,
        board: str = DEFAULT_BOARD,
        version: str = "0.0.0",
        sysupgrade: bool = True,
        tmp_kib: int | None = None,
        password: str | None = None,
        bad_sha256: int = 0,
        reboot_delay: float = 0.5,
        window: int | None = None,
    ) -> None:
        self.dir = Path(workdir)
        self.client_pubkey = Path(client_pubkey)
        self.board = board
        self.version = version
        self.sysupgrade = sysupgrade
        self.tmp_kib = tmp_kib
        self.password = password
        self.bad_sha256 = bad_sha256
        self.reboot_delay = reboot_delay
        self.window = window
        self.port = 0
        self.boots = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopping = False
        self._supervisor: threading.Thread | None = None
        self._lock = threading.Lock()

    # --- set-up --------------------------------------------------------------------------

    def _prepare(self) -> None:
        d = self.dir
        for sub in ("home/.ssh", "tmp", "boot", "bin"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(d / "home", 0o700)
        os.chmod(d / "home/.ssh", 0o700)
        shutil.copyfile(self.client_pubkey, d / "home/.ssh/authorized_keys")
        os.chmod(d / "home/.ssh/authorized_keys", 0o600)
        os.chmod(d / "tmp", 0o1777)
        if not (d / "hostkey").exists():
            self.new_host_key(restart=False)
        for slot in ("A", "B"):
            path = d / f"slot{slot}.img"
            if not path.exists():
                with open(path, "wb") as fh:
                    fh.truncate(SLOT_BYTES)
        if not (d / "boot/state.env").exists():
            (d / "boot/state.env").write_text("rk_active=A\nrk_tries=0\n")
        (d / "firmware-version").write_text(self.version + "\n")
        (d / "cmdline").write_text("console=ttyAMA0 rk.slot=A\n")
        (d / "boot_id").write_text(str(uuid.uuid4()) + "\n")
        (d / "drop_caches").write_text("")
        # What the firmware running on it trusts (sysupgrade checks signatures): the keys this
        # machine trusts, as a device flashed from here would.
        from toolkit.firmware.keys import trusted_keys

        trusted = d / "trusted-keys"
        shutil.rmtree(trusted, ignore_errors=True)
        trusted.mkdir()
        for key in trusted_keys().values():
            shutil.copyfile(key.path, trusted / f"{key.keyid}.pub")
        # The firmware's own scripts, copied into the device: its private mount namespace
        # hides /tmp (and the checkout may live there, as CI clones often do).
        shutil.copytree(resources.rootfs_dir(), d / "rootfs", dirs_exist_ok=True)
        scripts = {"fwinfo": "sbin/fwinfo"}
        if self.sysupgrade:
            scripts["sysupgrade"] = "sbin/sysupgrade"
        for name, rel in scripts.items():
            self._script(name, f'exec sh {shlex.quote(str(d / "rootfs" / rel))} "$@"\n')
        self._script("reboot", _REBOOT.split("\n", 1)[1])
        # The firmware's selftest probes eth0 and /dev/vda*, which a host does not have.
        self._script(
            "selftest",
            (
                'printf \'{"board": "%s", "version": "%s", "status": "ok", "ports": {}, '
                '"storage": {"slots": "files"}, "note": "loopback light device: no hardware to test"}\\n\' '
                '"$RK_BOARD" "$(cat "$RK_VERSION_FILE")"\n'
            ),
        )
        if self.bad_sha256:
            (d / "bad-sha256").write_text(str(self.bad_sha256))
            # Lies only about uploads (fwinfo and sysupgrade hash slots and stdin too).
            self._script(
                "sha256sum",
                (
                    'n=$(cat "$RK_DEVICE_DIR/bad-sha256" 2>/dev/null || echo 0)\n'
                    'case "$1" in /tmp/*) ;; *) n=0 ;; esac\n'
                    'if [ "$n" -gt 0 ]; then echo $((n - 1)) > "$RK_DEVICE_DIR/bad-sha256"\n'
                    '  echo "0000000000000000000000000000000000000000000000000000000000000000  $1"; exit 0; fi\n'
                    'exec /usr/bin/sha256sum "$@"\n'
                ),
            )
        if self.password:
            hashed = subprocess.run(
                ["openssl", "passwd", "-6", "-stdin"],
                input=self.password,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            lines = [
                ln
                for ln in Path("/etc/shadow").read_text().splitlines()
                if not ln.startswith("root:")
            ]
            (d / "shadow").write_text(
                f"root:{hashed}:19000:0:99999:7:::\n" + "\n".join(lines) + "\n"
            )
            os.chmod(d / "shadow", 0o640)

    def _script(self, name: str, body: str) -> None:
        path = self.dir / "bin" / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(0o755)

    def new_host_key(self, *, restart: bool = True) -> str:
        """Give the device a new host key (a reset or a MITM, as the client sees it)."""
        key = self.dir / "hostkey"
        with contextlib.suppress(FileNotFoundError):
            key.unlink()
        proc = subprocess.run(
            ["dropbearkey", "-t", "ed25519", "-f", str(key)], capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise ToolMissingError(f"dropbearkey failed: {proc.stderr.strip()}")
        if restart and self._proc is not None:
            self.reboot()
        return self.host_key_line()

    def next_host_key(self) -> str:
        """Prepare the key the device will present after its next reboot (a reflash with a
        new image's key); return its public line."""
        nxt = self.dir / "hostkey.next"
        with contextlib.suppress(FileNotFoundError):
            nxt.unlink()
        subprocess.run(
            ["dropbearkey", "-t", "ed25519", "-f", str(nxt)], capture_output=True, check=True
        )
        out = subprocess.run(
            ["dropbearkey", "-y", "-f", str(nxt)], capture_output=True, text=True
        ).stdout
        return next(line for line in out.splitlines() if line.startswith("ssh-"))

    def host_key_line(self) -> str:
        """``ssh-ed25519 AAAA…`` of the current host key (what ``dropbearkey -y`` prints)."""
        out = subprocess.run(
            ["dropbearkey", "-y", "-f", str(self.dir / "hostkey")], capture_output=True, text=True
        ).stdout
        return next(line for line in out.splitlines() if line.startswith("ssh-"))

    def _env(self) -> dict[str, str]:
        d = self.dir
        return {
            "PATH": f"{d / 'bin'}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/root",
            "LANG": "C",
            "RK_DEVICE_DIR": str(d),
            "RK_LIB": str(d / "rootfs" / "lib/routerkit/common.sh"),
            "RK_CONF": "/nonexistent",
            "RK_BOARD": self.board,
            "RK_DEV_A": str(d / "slotA.img"),
            "RK_DEV_B": str(d / "slotB.img"),
            "RK_BOOT_DEV": str(d / "slotA.img"),
            "RK_BOOT_DIR": str(d / "boot"),
            "RK_CMDLINE": str(d / "cmdline"),
            "RK_VERSION_FILE": str(d / "firmware-version"),
            "RK_REBOOT": str(d / "bin/reboot"),
            "RK_TRUSTED_KEYS": str(d / "trusted-keys"),
            "RK_SIGNIFY": shutil.which("signify-openbsd") or "signify-openbsd",
        }

    def _command(self) -> list[str]:
        d = self.dir
        q = shlex.quote(str(d))
        # /tmp is replaced, and the device's own files may live under /tmp (pytest's tmp_path):
        # keep a handle on them at /mnt/rkdev first, then bind them back at their old path.
        tmp = (
            f"mount -t tmpfs -o size={self.tmp_kib}k tmpfs /tmp"
            if self.tmp_kib
            else "mount --bind /mnt/rkdev/tmp /tmp"
        )
        mounts = [
            "mount -t tmpfs tmpfs /mnt",
            "mkdir /mnt/rkdev",
            f"mount --bind {q} /mnt/rkdev",
            tmp,
            f"mkdir -p {q}",
            f"mount --bind /mnt/rkdev {q}",
            f"mount --bind {shlex.quote(str(d / 'home'))} /root",
            f"mount --bind {shlex.quote(str(d / 'boot_id'))} /proc/sys/kernel/random/boot_id",
            # the real sysupgrade drops the page cache before its read-back: not the host's
            f"mount --bind {shlex.quote(str(d / 'drop_caches'))} /proc/sys/vm/drop_caches",
            # dropbear resets PATH to its default: put the device's commands first in it
            f"mount --bind {shlex.quote(str(d / 'bin'))} /usr/local/sbin",
        ]
        # The firmware has neither an SFTP server nor scp: hide the host's (an empty,
        # non-executable file in their place).
        for hidden in (SFTP_SERVER, "/usr/bin/scp"):
            if Path(hidden).exists():
                mounts.append(f"mount --bind {shlex.quote(str(d / 'drop_caches'))} {hidden}")
        if self.password:
            mounts.append(f"mount --bind {shlex.quote(str(d / 'shadow'))} /etc/shadow")
        args = [
            "dropbear",
            "-F",
            "-E",
            "-e",
            "-m",
            "-p",
            f"127.0.0.1:{self.port}",
            "-r",
            str(d / "hostkey"),
            "-P",
            str(d / "dropbear.pid"),
        ]
        if not self.password:
            args.append("-s")
        if self.window:
            args += ["-W", str(self.window)]
        script = " && ".join(mounts) + " && exec " + " ".join(shlex.quote(a) for a in args)
        return _unshare() + ["sh", "-c", script]

    # --- lifecycle -----------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> int:
        """Start the device; return its SSH port once it accepts connections."""
        reason = available()
        if reason:
            raise ToolMissingError(f"cannot run a loopback dropbear device: {reason}")
        self._prepare()
        self.port = self.port or free_port()
        self._stopping = False
        self._boot(timeout)
        self._supervisor = threading.Thread(
            target=self._supervise, daemon=True, name=f"device-{self.port}"
        )
        self._supervisor.start()
        return self.port

    def _boot(self, timeout: float) -> None:
        log = open(self.dir / "dropbear.log", "ab")  # noqa: SIM115 - handed to the child
        with self._lock:
            self._proc = subprocess.Popen(
                self._command(), env=self._env(), stdout=log, stderr=log, stdin=subprocess.DEVNULL
            )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ToolMissingError(f"dropbear exited at start; see {self.dir / 'dropbear.log'}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s,
            ):
                s.settimeout(2)
                if s.recv(4).startswith(b"SSH-"):
                    self.boots += 1
                    return
            time.sleep(0.02)
        raise ToolMissingError(f"dropbear did not answer on port {self.port} within {timeout} s")

    def _supervise(self) -> None:
        while not self._stopping:
            proc = self._proc
            if proc is None:
                return
            proc.wait()
            marker = self.dir / "reboot-requested"
            if self._stopping or not marker.exists():
                return
            marker.unlink()
            time.sleep(self.reboot_delay)
            self._come_up()
            if self._stopping:
                return
            try:
                self._boot(10.0)
            except ToolMissingError:
                return

    def _come_up(self) -> None:
        """What boot.scr and /init do at boot: boot the active slot, mark it good."""
        d = self.dir
        state = dict(
            line.split("=", 1) for line in (d / "boot/state.env").read_text().split() if "=" in line
        )
        slot = state.get("rk_active", "A")
        (d / "cmdline").write_text(f"console=ttyAMA0 rk.slot={slot}\n")
        (d / "boot/state.env").write_text(f"rk_active={slot}\nrk_tries=0\n")
        info = self.fwinfo()
        version = info.get("slots", {}).get(slot, {}).get("version")
        if version:
            (d / "firmware-version").write_text(version + "\n")
        (d / "boot_id").write_text(str(uuid.uuid4()) + "\n")
        if (d / "hostkey.next").exists():
            os.replace(d / "hostkey.next", d / "hostkey")

    def fwinfo(self) -> dict[str, Any]:
        """The real ``fwinfo`` run against this device's files (host side, for tests)."""
        env = dict(
            self._env(), PATH="/usr/sbin:/usr/bin:/sbin:/bin"
        )  # not the device's fault injectors
        out = subprocess.run(
            ["sh", str(resources.rootfs_dir() / "sbin/fwinfo")],
            env=env,
            capture_output=True,
            text=True,
        )
        try:
            data = json.loads(out.stdout)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def install(self, image: Path, slot: str = "A") -> None:
        """Put ``image`` into ``slot`` as if flashed at the factory, and boot from it."""
        with open(self.dir / f"slot{slot}.img", "r+b") as fh:
            fh.write(Path(image).read_bytes())
        (self.dir / "boot/state.env").write_text(f"rk_active={slot}\nrk_tries=0\n")
        self._come_up()

    def reboot(self, wait: bool = True, timeout: float = 15.0) -> None:
        """Reboot now (as the firmware's reboot would); ``wait`` until SSH answers again."""
        boots = self.boots
        (self.dir / "reboot-requested").touch()
        self._kill_server()
        deadline = time.monotonic() + timeout
        while wait and self.boots == boots and time.monotonic() < deadline:
            time.sleep(0.05)

    def _kill_server(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(OSError):
            for child in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(child), 9)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()

    def stop(self) -> None:
        """Stop the device and every session it started."""
        self._stopping = True
        self._kill_server()
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)
        if self._supervisor is not None:
            self._supervisor.join(timeout=5)

    def __enter__(self) -> LoopbackDevice:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def make_image(
    version: str,
    out: Path,
    *,
    board: str = DEFAULT_BOARD,
    payload_bytes: int = 256 * 1024,
    seed: str | None = None,
) -> Path:
    """A small, correctly signed v1 image (random payload in a real FIT) for light devices.

    It passes ``verify_image`` and the on-device ``sysupgrade`` like a real build, in
    milliseconds; it boots nothing, which a loopback device does not need. The payload is
    derived from ``seed`` (default: the version), so two versions can share it, as nightlies
    share their kernel.
    """
    from toolkit.boards import load_board
    from toolkit.firmware import fit, image

    profile = load_board(board)
    # Deterministic per version: the same version always gives the same image.
    seed_bytes = (seed or version).encode()
    payload = b"".join(
        __import__("hashlib").sha256(seed_bytes + i.to_bytes(4, "big")).digest()
        for i in range(-(-payload_bytes // 32))
    )[:payload_bytes]
    its = fit.its_source(
        description=f"routerkit light-device image {version}",
        kernel="kernel",
        initramfs="initramfs",
        load="0x40400000",
    ).replace('compression = "gzip"', 'compression = "none"')
    blob = fit.make_fit(its, {"kernel": payload, "initramfs": payload[:4096]}, epoch=1_700_000_000)
    metadata: dict[str, Any] = {
        "board": profile.id,
        "supported_devices": profile.compatible,
        "version": version,
        "compat_version": str(profile.require("board.compat_version")),
        "build_date": "2023-11-14T22:13:20Z",
        "source_revision": "light-device",
    }
    data = image.seal(blob, metadata)
    path = out if out.suffix == ".img" else out / f"{profile.id}-{version}.img"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
