"""Guest Debian packages for the reference firmware, fetched without touching the host.

Which Debian architecture and which kernel flavour a board runs is the board profile's
``[firmware] arch`` and ``kernel_package`` (:class:`GuestSpec`); what an architecture means to
the build (its multiarch triplet, program interpreter, U-Boot's name for it, what ``uname -m``
says) is a fact about Debian, kept in :data:`ARCHES`.

A private apt configuration (``APT_CONFIG``) with ``APT::Architecture=<arch>`` and its own
``Dir::State``/``Dir::Cache`` under ``cache_dir()/guest/<arch>`` lets ``apt-get update`` and
``apt-get download`` work on any Debian host without ``dpkg --add-architecture``. The packages
are unpacked with ``dpkg-deb -x`` into one tree that the initramfs and FIT builders read.

The kernel ABI is never hard-coded: it is read from the kernel metapackage's dependency
(``linux-image-cloud-arm64`` → ``linux-image-6.1.0-N-cloud-arm64``). A manifest records what
was resolved, so a second build does no network I/O at all (``refresh=True`` asks the mirror
again).

Small ELF readers live here too (``NEEDED`` libraries, a kernel module's ``.modinfo``, 32- and
64-bit): they let the builder check that every library dropbear needs is really in the tree,
without depending on binutils being installed on the host.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from toolkit import paths
from toolkit.boards import Board
from toolkit.errors import BuildError, ToolMissingError
from toolkit.events import NullReporter, Reporter, step

#: Userland packages; their library dependencies are resolved from apt's metadata.
#: signify-openbsd: ``sysupgrade`` checks image signatures on the device itself.
USERLAND = ("busybox-static", "dropbear-bin", "signify-openbsd")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY_MIRROR = "http://deb.debian.org/debian-security"
_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


@dataclass(frozen=True)
class DebianArch:
    """What a Debian architecture means to the firmware build."""

    name: str
    #: multiarch triplet: libraries live in lib/<triplet>
    triplet: str
    #: the program interpreter (PT_INTERP) every dynamic binary names, in /lib
    loader: str
    #: U-Boot's ``arch`` property of a FIT image for this architecture
    fit_arch: str
    #: what ``uname -m`` prints on a device running it
    uname: str


#: The Debian architectures a virtual or real sample may run (Debian's facts, not a board's).
ARCHES = {
    "arm64": DebianArch("arm64", "aarch64-linux-gnu", "ld-linux-aarch64.so.1", "arm64", "aarch64"),
    "armhf": DebianArch("armhf", "arm-linux-gnueabihf", "ld-linux-armhf.so.3", "arm", "armv7l"),
}


@dataclass(frozen=True)
class GuestSpec:
    """Which guest packages a board needs: its Debian architecture and kernel metapackage."""

    arch: str = "arm64"
    kernel_package: str = "linux-image-cloud-arm64"

    @classmethod
    def of(cls, board: Board) -> GuestSpec:
        """The board profile's ``[firmware] arch`` and ``kernel_package``."""
        spec = cls(
            arch=str(board.get("firmware.arch", cls.arch)),
            kernel_package=str(board.get("firmware.kernel_package", cls.kernel_package)),
        )
        if spec.arch not in ARCHES:
            raise BuildError(
                f"{board.path}: firmware.arch {spec.arch!r} is not one routerkit builds for "
                f"(known: {', '.join(sorted(ARCHES))})"
            )
        if not spec.kernel_package.startswith("linux-image-"):
            raise BuildError(
                f"{board.path}: firmware.kernel_package {spec.kernel_package!r} is not a "
                "linux-image-* metapackage"
            )
        return spec

    @property
    def debian(self) -> DebianArch:
        return ARCHES[self.arch]

    @property
    def flavour(self) -> str:
        """The kernel flavour the ABI ends with (``cloud-arm64``, ``armmp``)."""
        return self.kernel_package.removeprefix("linux-image-")


@dataclass(frozen=True)
class GuestRoot:
    """The unpacked guest packages."""

    root: Path
    kernel_abi: str
    #: package name -> Debian version
    packages: dict[str, str]
    #: sha256 over the .deb files; changes whenever any input package changes
    digest: str
    spec: GuestSpec = GuestSpec()

    @property
    def kernel(self) -> Path:
        return self.root / "boot" / f"vmlinuz-{self.kernel_abi}"

    @property
    def modules_dir(self) -> Path:
        return self.root / "lib" / "modules" / self.kernel_abi


def need_tool(name: str) -> str:
    """Path of a host program, or ToolMissingError naming the make target that installs it."""
    found = shutil.which(name)
    if not found:
        raise ToolMissingError(f"{name} is not installed", hint="run `make setup`")
    return found


def _codename() -> str:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return "bookworm"
    match = re.search(r"^VERSION_CODENAME=\"?([a-z]+)", text, re.M)
    return match.group(1) if match else "bookworm"


class _Apt:
    """apt-get/apt-cache bound to a private configuration for one Debian architecture."""

    def __init__(self, base: Path, arch: str) -> None:
        self.base = base
        self.arch = arch
        self.conf = base / "apt.conf"

    def setup(self) -> None:
        for sub in (
            "state/lists/partial",
            "cache/archives/partial",
            "etc/sources.list.d",
            "etc/preferences.d",
            "etc/trusted.gpg.d",
        ):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        (self.base / "state" / "status").touch()
        suite = os.environ.get("ROUTERKIT_GUEST_SUITE", _codename())
        mirror = os.environ.get("ROUTERKIT_GUEST_MIRROR", DEFAULT_MIRROR)
        security = os.environ.get("ROUTERKIT_GUEST_SECURITY_MIRROR", DEFAULT_SECURITY_MIRROR)
        opts = f"[arch={self.arch} signed-by={_KEYRING}]"
        (self.base / "etc" / "sources.list").write_text(
            f"deb {opts} {mirror} {suite} main\n"
            f"deb {opts} {mirror} {suite}-updates main\n"
            f"deb {opts} {security} {suite}-security main\n"
        )
        b = self.base
        self.conf.write_text(
            f'APT::Architecture "{self.arch}";\n'
            f'APT::Architectures {{ "{self.arch}"; }};\n'
            f'Dir::State "{b}/state";\n'
            f'Dir::State::status "{b}/state/status";\n'
            f'Dir::Cache "{b}/cache";\n'
            f'Dir::Etc::sourcelist "{b}/etc/sources.list";\n'
            f'Dir::Etc::sourceparts "{b}/etc/sources.list.d";\n'
            f'Dir::Etc::preferencesparts "{b}/etc/preferences.d";\n'
            'Acquire::Languages "none";\n'
            # We run as whoever calls us; the _apt sandbox user cannot write into our cache.
            'APT::Sandbox::User "root";\n'
        )

    def run(self, *args: str, cwd: Path | None = None) -> str:
        env = dict(os.environ, APT_CONFIG=str(self.conf), LC_ALL="C")
        proc = subprocess.run(
            list(args), cwd=cwd, env=env, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise BuildError(
                f"{' '.join(args[:2])} failed for the {self.arch} guest packages: "
                f"{' / '.join(tail)}",
                hint="check the network to the Debian mirror (ROUTERKIT_GUEST_MIRROR)",
            )
        return proc.stdout


def _resolve(apt: _Apt, spec: GuestSpec) -> tuple[str, list[str]]:
    """Kernel ABI from the metapackage, and the package closure (Depends/Pre-Depends)."""
    show = apt.run("apt-cache", "show", "--no-all-versions", spec.kernel_package)
    flavour = re.escape(spec.flavour)
    match = re.search(rf"^Depends:.*?\b(linux-image-(\d[\w.+-]*-{flavour}))\b", show, re.M)
    if not match:
        raise BuildError(f"cannot find the kernel ABI in {spec.kernel_package}'s dependencies")
    kernel_pkg, abi = match.group(1), match.group(2)
    out = apt.run(
        "apt-cache",
        "depends",
        "--recurse",
        "--no-recommends",
        "--no-suggests",
        "--no-conflicts",
        "--no-breaks",
        "--no-replaces",
        "--no-enhances",
        *USERLAND,
    )
    names = {line.strip() for line in out.splitlines() if line and not line[0].isspace()}
    # "<virtual>" names are provided by a real package that is also in the list.
    packages = sorted(n for n in names if not n.startswith("<")) + [kernel_pkg]
    return abi, packages


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_guest(
    reporter: Reporter | None = None, *, refresh: bool = False, spec: GuestSpec | None = None
) -> GuestRoot:
    """Fetch (once) and unpack the guest packages of ``spec`` (default: arm64, the cloud
    kernel); later calls do no network I/O."""
    from filelock import FileLock

    reporter = reporter or NullReporter()
    spec = spec or GuestSpec()
    base = paths.cache_dir() / "guest" / spec.arch
    base.mkdir(parents=True, exist_ok=True)
    manifest_path = base / "manifest.json"
    debs = base / "debs"
    with FileLock(str(base / ".lock")):
        manifest = _load_manifest(manifest_path, debs, spec)
        if manifest is None or refresh:
            for tool in ("apt-get", "apt-cache", "dpkg-deb"):
                need_tool(tool)
            apt = _Apt(base / "apt", spec.arch)
            apt.setup()
            with step(reporter, "guest packages", f"apt-get update ({spec.arch})"):
                apt.run("apt-get", "update", "-q")
                abi, names = _resolve(apt, spec)
                debs.mkdir(exist_ok=True)
                before = set(debs.glob("*.deb"))
                apt.run("apt-get", "download", "-q", *names, cwd=debs)
                manifest = _record(manifest_path, debs, abi, names, before, spec)
        root = _unpack(base, debs, manifest, reporter, spec)
    return root


def _record(
    path: Path, debs: Path, abi: str, names: list[str], before: set[Path], spec: GuestSpec
) -> dict:
    packages: dict[str, dict[str, str]] = {}
    for deb in sorted(debs.glob("*.deb")):
        name, version = _deb_field(deb, "Package"), _deb_field(deb, "Version")
        if name in names and (name not in packages or deb not in before):
            packages[name] = {"version": version, "file": deb.name, "sha256": _sha256(deb)}
    missing = sorted(set(names) - set(packages))
    if missing:
        raise BuildError(f"apt-get download did not fetch: {', '.join(missing)}")
    manifest = {"kernel_abi": abi, "kernel_package": spec.kernel_package, "packages": packages}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    tmp.replace(path)
    return manifest


def _load_manifest(path: Path, debs: Path, spec: GuestSpec) -> dict | None:
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("kernel_package") != spec.kernel_package:
        return None  # another kernel flavour was asked for (or an older manifest format)
    packages = manifest.get("packages", {})
    if not all((debs / p["file"]).is_file() for p in packages.values()):
        return None
    if not set(USERLAND) <= set(packages):
        return None  # a package was added to USERLAND since this manifest was made
    return manifest


def _deb_field(deb: Path, field: str) -> str:
    out = subprocess.run(
        [need_tool("dpkg-deb"), "-f", str(deb), field], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def _unpack(
    base: Path, debs: Path, manifest: dict, reporter: Reporter, spec: GuestSpec
) -> GuestRoot:
    pkgs = manifest["packages"]
    digest = hashlib.sha256(
        "".join(f"{n}={pkgs[n]['sha256']}\n" for n in sorted(pkgs)).encode()
    ).hexdigest()
    root = base / f"root-{digest[:16]}"
    if not (root / ".complete").exists():
        with step(reporter, "unpack guest packages", f"{len(pkgs)} packages"):
            tmp = Path(tempfile.mkdtemp(prefix="root-", dir=base))
            for name in sorted(pkgs):
                subprocess.run(
                    [need_tool("dpkg-deb"), "-x", str(debs / pkgs[name]["file"]), str(tmp)],
                    check=True,
                    capture_output=True,
                )
            (tmp / ".complete").write_text(digest)
            if root.exists():
                shutil.rmtree(root)
            tmp.rename(root)
        for old in base.glob("root-*"):
            if old != root and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
    versions = {n: str(p["version"]) for n, p in pkgs.items()}
    return GuestRoot(
        root=root,
        kernel_abi=str(manifest["kernel_abi"]),
        packages=versions,
        digest=digest,
        spec=spec,
    )


# --- ELF readers (little-endian, 32- or 64-bit: what arm64 and armhf guests have) ----------


def _elf_class(data: bytes) -> int:
    """32 or 64, for a little-endian ELF file."""
    if data[:4] != b"\x7fELF" or data[4] not in (1, 2) or data[5] != 1:
        raise BuildError("not a little-endian ELF file")
    return 64 if data[4] == 2 else 32


def _sections(data: bytes) -> list[tuple[str, int, int, int, int]]:
    """(name, type, offset, size, link) for each section of an ELF32/ELF64 LE file."""
    if _elf_class(data) == 64:
        (shoff,) = struct.unpack_from("<Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
        header = "<IIQQQQII"
    else:
        (shoff,) = struct.unpack_from("<I", data, 0x20)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x2E)
        header = "<IIIIIIII"
    raw = [struct.unpack_from(header, data, shoff + i * shentsize) for i in range(shnum)]
    strtab_off, strtab_size = raw[shstrndx][4], raw[shstrndx][5]
    strtab = data[strtab_off : strtab_off + strtab_size]
    out = []
    for name_off, typ, _flags, _addr, off, size, link, _info in raw:
        name = strtab[name_off : strtab.index(b"\0", name_off)].decode()
        out.append((name, typ, off, size, link))
    return out


def elf_needed(path: Path) -> list[str]:
    """The DT_NEEDED sonames of a dynamically linked ELF file (like ``readelf -d``)."""
    data = path.read_bytes()
    sections = _sections(data)
    entry, width = ("<qQ", 16) if _elf_class(data) == 64 else ("<iI", 8)
    for _name, typ, off, size, link in sections:
        if typ != 6:  # SHT_DYNAMIC
            continue
        strtab_off = sections[link][2]
        needed = []
        for i in range(0, size, width):
            tag, val = struct.unpack_from(entry, data, off + i)
            if tag == 0:
                break
            if tag == 1:  # DT_NEEDED
                start = strtab_off + val
                needed.append(data[start : data.index(b"\0", start)].decode())
        return needed
    return []


def modinfo(path: Path) -> dict[str, str]:
    """Key/value pairs of a kernel module's ``.modinfo`` section (``depends``, ``name``...)."""
    data = path.read_bytes()
    for name, _typ, off, size, _link in _sections(data):
        if name == ".modinfo":
            info: dict[str, str] = {}
            for entry in data[off : off + size].split(b"\0"):
                key, sep, value = entry.decode(errors="replace").partition("=")
                if sep and key not in info:
                    info[key] = value
            return info
    return {}
