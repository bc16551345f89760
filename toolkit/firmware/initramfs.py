"""The initramfs of the reference firmware: busybox, dropbear, virtio modules, our scripts.

Reproducible by construction: the tree is staged in a temp dir with fixed modes and mtimes
(SOURCE_DATE_EPOCH), packed by ``cpio --reproducible -R 0:0`` from a sorted file list, and
gzip'ed without a name or timestamp.

No secret goes in: the SSH host key is generated on the device at first boot and kept in its
settings (``/sbin/rk-settings``); root's ``authorized_keys`` is a link to the device's own list,
filled by whoever flashes it. The image carries only the public keys the device accepts
signatures from (``/etc/routerkit/trusted-keys``), and, in ``--dev`` builds only, the committed
test client key (``/etc/routerkit/dev-authorized-keys``).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from toolkit import resources
from toolkit.boards import Board
from toolkit.errors import BuildError
from toolkit.firmware.guest import ARCHES, GuestRoot, elf_needed, modinfo, need_tool

#: Programs copied from the guest packages, with their shared libraries: the SSH server, its
#: key generator (host keys are made on the device), and signify (sysupgrade checks signatures).
DROPBEAR = "usr/sbin/dropbear"
PROGRAMS = (DROPBEAR, "usr/bin/dropbearkey", "bin/signify-openbsd")
#: Where root's authorized_keys really lives (laid out at boot by ``rk-settings init``).
AUTHORIZED_KEYS_LINK = "/run/routerkit/authorized_keys"
DEFAULT_MODULES = ("virtio_mmio", "virtio_blk", "virtio_net", "vfat", "nls_cp437")


@dataclass(frozen=True)
class DeviceTrust:
    """What an image tells the device to trust. Public material only: every copy of an image
    is public, so an image carries no private key and no key that lets anyone log in.

    ``signing_keys``: (name, signify public key file bytes) that ``sysupgrade`` accepts.
    ``dev_authorized_key``: the committed TEST client key, only in ``--dev`` builds.
    """

    signing_keys: tuple[tuple[str, bytes], ...]
    dev_authorized_key: bytes | None = None

    def digest(self) -> str:
        h = hashlib.sha256()
        for name, data in self.signing_keys:
            h.update(name.encode() + b"\0" + data + b"\0")
        h.update(b"dev:" + (self.dev_authorized_key or b""))
        return h.hexdigest()


def module_load_order(guest: GuestRoot, wanted: list[str]) -> list[str]:
    """Paths (relative to the modules dir) of the wanted modules and their dependencies,
    dependencies first. Modules built into the kernel are skipped."""
    mdir = guest.modules_dir
    norm = lambda name: name.replace("-", "_")  # noqa: E731 - kernel treats - and _ alike
    builtin = set()
    builtin_file = mdir / "modules.builtin"
    if builtin_file.exists():
        builtin = {norm(Path(line).stem) for line in builtin_file.read_text().split()}
    index = {norm(p.name[: -len(".ko")]): p for p in sorted(mdir.glob("kernel/**/*.ko"))}
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        name = norm(name)
        if name in builtin or name in visiting:
            return
        path = index.get(name)
        if path is None:
            raise BuildError(f"kernel module {name} not found in {mdir} (nor built in)")
        rel = str(path.relative_to(mdir))
        if rel in order:
            return
        visiting.add(name)
        for dep in sorted(filter(None, modinfo(path).get("depends", "").split(","))):
            visit(dep)
        visiting.discard(name)
        order.append(rel)

    for name in wanted:
        visit(name)
    return order


def library_closure(guest: GuestRoot, binaries: list[Path]) -> dict[str, Path]:
    """soname -> file in the guest tree, for every library the binaries need (transitively)."""
    multiarch = f"lib/{guest.spec.debian.triplet}"
    search = [guest.root / multiarch, guest.root / "usr" / multiarch]
    found: dict[str, Path] = {}
    todo = [soname for b in binaries for soname in elf_needed(b)]
    while todo:
        soname = todo.pop()
        if soname in found:
            continue
        for directory in search:
            candidate = directory / soname
            if candidate.exists():
                found[soname] = candidate.resolve()
                todo.extend(elf_needed(found[soname]))
                break
        else:
            raise BuildError(
                f"library {soname} (needed by {', '.join(b.name for b in binaries)}) "
                "is not in the guest packages"
            )
    return found


def _busybox_applets() -> list[str]:
    """Applet paths (bin/ls, sbin/ip...). The host's busybox-static is the same Debian
    package built with the same configuration, and it can run here; the guest's one cannot."""
    out = subprocess.run(
        [need_tool("busybox"), "--list-full"], capture_output=True, text=True, check=True
    )
    return sorted(line.strip() for line in out.stdout.splitlines() if line.strip())


def linux_partition(board: Board, number: int) -> str:
    """Partition ``number`` of the board's flash as the running Linux names it: the profile's
    ``flash.linux_partition`` template (``{device}p{n}`` for NVMe and MMC), by default the
    disk's name followed by the number (``/dev/vda2``)."""
    disk = str(board.get("flash.linux_device", "/dev/vda"))
    template = str(board.get("flash.linux_partition", "{device}{n}"))
    return template.format(device=disk, n=number)


def _routerkit_conf(board: Board) -> str:
    boot = int(board.require("flash.bootstate.partition"))
    lines = [
        "# Generated from the board profile at build time; the environment overrides it.",
        f': "${{RK_BOARD:={board.id}}}"',
        f': "${{RK_BOOT_DEV:={linux_partition(board, boot)}}}"',
        f': "${{RK_STATE_FILE:={board.get("flash.bootstate.file", "state.env")}}}"',
        f': "${{RK_MAX_TRIES:={board.get("flash.bootstate.max_tries", 3)}}}"',
        # rk-settings keeps secrets only on the mounted boot partition, never on the RAM /boot.
        ': "${RK_SETTINGS_NEED_MOUNT:=1}"',
    ]
    for name, slot in sorted(board.slots.items()):
        lines.append(f': "${{RK_DEV_{name}:={linux_partition(board, slot.partition)}}}"')
    return "\n".join(lines) + "\n"


def stage(
    guest: GuestRoot,
    board: Board,
    version: str,
    trust: DeviceTrust,
    dest: Path,
    files: tuple[tuple[str, bytes], ...] = (),
) -> None:
    """Lay out the initramfs tree in ``dest`` (an empty directory).

    ``files``: (path in the image, content) laid over the tree last, like OpenWrt's ``files/``
    overlay (a script starting with ``#!`` is made executable)."""
    arch = guest.spec.debian
    multiarch = f"lib/{arch.triplet}"
    shutil.copytree(resources.rootfs_dir(), dest, dirs_exist_ok=True, symlinks=True)
    for sub in (
        "proc",
        "sys",
        "dev",
        "tmp",
        "run",
        "boot",
        "root/.ssh",
        "etc/routerkit/trusted-keys",
        "var/log",
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        multiarch,
    ):
        (dest / sub).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(guest.root / "bin" / "busybox", dest / "bin" / "busybox")
    for applet in _busybox_applets():
        link = dest / applet
        if not link.exists() and not link.is_symlink():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(os.path.relpath(dest / "bin" / "busybox", link.parent))
    programs = [guest.root / rel for rel in PROGRAMS]
    for rel, src in zip(PROGRAMS, programs, strict=True):
        if not src.is_file():
            raise BuildError(f"{rel} is missing from the guest packages")
        shutil.copyfile(src, dest / rel)
    for soname, src in sorted(library_closure(guest, programs).items()):
        shutil.copyfile(src, dest / multiarch / soname)
    # The program interpreter is /lib/<loader> (PT_INTERP of every binary of the architecture).
    (dest / "lib" / arch.loader).symlink_to(f"{arch.triplet}/{arch.loader}")
    if not (dest / multiarch / arch.loader).exists():
        raise BuildError(f"{arch.loader} missing from the guest libc6")

    kdir = f"lib/modules/{guest.kernel_abi}"
    wanted = [str(m) for m in board.get("firmware.modules", DEFAULT_MODULES)]
    order = module_load_order(guest, wanted)
    for rel in order:
        target = dest / kdir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(guest.modules_dir / rel, target)
    (dest / kdir / "routerkit.load").write_text("".join(f"{rel}\n" for rel in order))

    etc = dest / "etc"
    (etc / "firmware-version").write_text(version + "\n")
    board_json = {
        "id": board.id,
        "name": board.name,
        "hardware_rev": board.get("board.hardware_rev"),
        "compatible": board.compatible,
        "compat_version": board.get("board.compat_version"),
    }
    (etc / "board.json").write_text(json.dumps(board_json, indent=1, sort_keys=True) + "\n")
    (etc / "routerkit.conf").write_text(_routerkit_conf(board))
    (etc / "hostname").write_text(board.id + "\n")
    if not trust.signing_keys:
        raise BuildError("an image must name at least one signing key its device will trust")
    for name, data in trust.signing_keys:
        (etc / "routerkit" / "trusted-keys" / f"{name}.pub").write_bytes(data)
    if trust.dev_authorized_key is not None:
        (etc / "routerkit" / "dev-authorized-keys").write_bytes(trust.dev_authorized_key)
    (dest / "root" / ".ssh" / "authorized_keys").symlink_to(AUTHORIZED_KEYS_LINK)
    for rel, data in files:
        path = (dest / rel).resolve()
        if rel.startswith("/") or dest.resolve() not in path.parents:
            raise BuildError(f"extra file {rel!r} is not a path inside the image")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        path.write_bytes(data)
        os.chmod(path, 0o755 if data.startswith(b"#!") else 0o644)


_EXECUTABLE_DIRS = ("bin/", "usr/bin/", "usr/sbin/") + tuple(
    f"lib/{arch.triplet}/" for arch in ARCHES.values()
)


def _normalise(dest: Path, epoch: int) -> list[str]:
    """Fixed modes and mtimes; returns the sorted relative file list for cpio. Everything in
    bin/, sbin/ and a lib/<triplet>/ is executable (shared libraries are mapped executable)."""
    private = {"root", "root/.ssh"}
    names: list[str] = []
    for path in sorted(dest.rglob("*"), key=lambda p: str(p.relative_to(dest)).encode()):
        rel = str(path.relative_to(dest))
        names.append(rel)
        if not path.is_symlink():
            if path.is_dir():
                mode = 0o700 if rel in private else 0o755
            elif rel in private:
                mode = 0o600
            else:
                executable = os.access(path, os.X_OK) or rel.startswith(_EXECUTABLE_DIRS)
                mode = 0o755 if executable else 0o644
            os.chmod(path, mode)
        os.utime(path, (epoch, epoch), follow_symlinks=False)
    return names


def pack(dest: Path, epoch: int) -> bytes:
    """cpio newc of ``dest`` (sorted, uid/gid 0, fixed mtimes), gzip'ed without name/time."""
    names = _normalise(dest, epoch)
    os.utime(dest, (epoch, epoch))
    proc = subprocess.run(
        [need_tool("cpio"), "--quiet", "-o", "-H", "newc", "--reproducible", "-R", "0:0"],
        input=("\n".join(["."] + names) + "\n").encode(),
        cwd=dest,
        capture_output=True,
        check=False,
        env=dict(os.environ, LC_ALL="C"),
    )
    if proc.returncode != 0:
        raise BuildError(f"cpio failed: {proc.stderr.decode(errors='replace').strip()}")
    return gzip.compress(proc.stdout, compresslevel=6, mtime=0)


def build_initramfs(
    guest: GuestRoot,
    board: Board,
    version: str,
    trust: DeviceTrust,
    epoch: int,
    files: tuple[tuple[str, bytes], ...] = (),
) -> bytes:
    """The gzip'ed cpio of the reference firmware for one board and version."""
    with tempfile.TemporaryDirectory(prefix="rk-initramfs-") as tmp:
        dest = Path(tmp) / "root"
        dest.mkdir()
        stage(guest, board, version, trust, dest, files)
        return pack(dest, epoch)
