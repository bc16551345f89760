"""``routerkit firmware build``: the reference firmware of a board, reproducibly, in seconds.

Pipeline: guest packages (cached) → initramfs → the kernel as the board takes it (cached per
kernel) → FIT (``mkimage -f``, cached per input hash) → :func:`toolkit.firmware.image.seal`
(metadata + signature + footer). Same inputs give the same bytes: SOURCE_DATE_EPOCH fixes every timestamp,
and nothing depends on the build directory or the time of day. The image holds no secret: SSH
host keys are made on the device, root logins are granted by whoever flashes it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from toolkit import paths, resources
from toolkit.boards import DEFAULT_BOARD, Board, load_board
from toolkit.errors import BuildError
from toolkit.events import NullReporter, Reporter, step
from toolkit.firmware import fit as fitmod
from toolkit.firmware import initramfs as initramfsmod
from toolkit.firmware.guest import GuestRoot, GuestSpec, fetch_guest, need_tool

_RECIPE_FILES = ("build.py", "initramfs.py", "fit.py", "guest.py")


@dataclass(frozen=True)
class BuildResult:
    """What ``firmware build`` made. ``to_dict()`` is the ``--json`` output."""

    path: Path
    sha256: str
    version: str
    board: str
    size: int
    fit_size: int
    fit_sha256: str
    kernel_size: int  # gzip'ed kernel inside the FIT
    initramfs_size: int  # gzip'ed cpio inside the FIT
    kernel_abi: str
    signer: str
    development: bool  # --dev: the committed test key may log in (metadata "development")
    source_date_epoch: int
    seconds: float
    cached_fit: bool

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        return data


def firmware_cache() -> Path:
    path = paths.cache_dir() / "firmware"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _git(*args: str) -> str | None:
    """git in the source checkout; None when routerkit is installed from a wheel."""
    checkout = resources.checkout_root()
    if checkout is None:
        return None
    try:
        proc = subprocess.run(
            ["git", "-C", str(checkout), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else None


def default_epoch() -> int:
    """SOURCE_DATE_EPOCH, else the commit time of the checkout, else 0."""
    env = os.environ.get("SOURCE_DATE_EPOCH")
    if env and env.isdigit():
        return int(env)
    commit_time = _git("log", "-1", "--format=%ct")
    return int(commit_time) if commit_time and commit_time.isdigit() else 0


def default_revision() -> str:
    return os.environ.get("ROUTERKIT_SOURCE_REVISION") or _git("rev-parse", "HEAD") or "unknown"


def _kernel(
    guest: GuestRoot, kernel_format: str, reporter: Reporter, use_cache: bool = True
) -> tuple[bytes, str]:
    """The FIT's kernel data and its compression (:func:`fit.kernel_payload`); compressing is
    the slowest step, so the result is cached per guest kernel package and format."""
    kernel_pkg = f"linux-image-{guest.kernel_abi}"
    tag = hashlib.sha256(
        f"{kernel_pkg}={guest.packages.get(kernel_pkg)}:{kernel_format}".encode()
    ).hexdigest()
    cached = firmware_cache() / f"kernel-{guest.kernel_abi}-{tag[:12]}"
    compression = fitmod.kernel_compression(kernel_format)
    if use_cache and cached.exists():
        return cached.read_bytes(), compression
    with step(reporter, "kernel", f"{guest.kernel_abi} as {kernel_format}"):
        data = fitmod.kernel_payload(guest.kernel.read_bytes(), kernel_format)
    from toolkit.record import atomic_write

    atomic_write(cached, data)
    return data, compression


def _inputs_key(
    guest: GuestRoot,
    board: Board,
    version: str,
    epoch: int,
    trust: initramfsmod.DeviceTrust,
    files: tuple[tuple[str, bytes], ...] = (),
) -> str:
    """Hash of everything the FIT depends on: packages, on-device files, board, recipe code."""
    h = hashlib.sha256()
    for rel, data in files:
        h.update(b"extra:" + rel.encode() + b"\0" + hashlib.sha256(data).digest())
    from toolkit.firmware.fitkeys import signer_fit_key

    fit_key = signer_fit_key(trust.signing_keys)  # signs the FIT's configuration
    for part in (guest.digest, version, str(epoch), trust.digest(), fit_key.fingerprint):
        h.update(part.encode() + b"\0")
    h.update(board.path.read_bytes())
    here = Path(__file__).parent
    sources = [here / name for name in _RECIPE_FILES]
    # Named as in the checkout ("toolkit/firmware/x.py", "firmware/rootfs/init") wherever the
    # package lives, so an installed routerkit and the checkout share cached builds.
    named = [(f"toolkit/firmware/{path.name}", path) for path in sources]
    rootfs = resources.rootfs_dir()
    named += [
        (f"firmware/rootfs/{path.relative_to(rootfs)}", path)
        for path in sorted(p for p in rootfs.rglob("*") if p.is_file())
    ]
    for name, path in named:
        h.update(name.encode() + b"\0")
        h.update(str(os.access(path, os.X_OK)).encode() + path.read_bytes() + b"\0")
    busybox = subprocess.run([need_tool("busybox"), "--list-full"], capture_output=True, check=True)
    h.update(busybox.stdout)
    return h.hexdigest()


def build_fit(
    version: str,
    board: Board,
    *,
    epoch: int,
    trust: initramfsmod.DeviceTrust,
    reporter: Reporter | None = None,
    guest: GuestRoot | None = None,
    use_cache: bool = True,
    files: tuple[tuple[str, bytes], ...] = (),
) -> tuple[bytes, dict[str, Any]]:
    """The FIT of one version (cached by input hash) and its sizes."""
    reporter = reporter or NullReporter()
    guest = guest or fetch_guest(reporter, spec=GuestSpec.of(board))
    key = _inputs_key(guest, board, version, epoch, trust, files)
    cache = firmware_cache() / "fit"
    fit_path, info_path = cache / f"{key}.fit", cache / f"{key}.json"
    if use_cache:
        try:
            info = json.loads(info_path.read_text())
            info["cached"] = True
            fit = fit_path.read_bytes()
            os.utime(fit_path)  # pruning keeps what is used
            return fit, info
        except (OSError, ValueError):
            pass  # not built yet, or pruned by a concurrent build a moment ago
    with step(reporter, "initramfs", f"busybox + dropbear + modules for {guest.kernel_abi}"):
        initrd = initramfsmod.build_initramfs(guest, board, version, trust, epoch, files)
    kernel, compression = _kernel(
        guest, str(board.get("firmware.kernel_format", "image")), reporter, use_cache
    )
    with step(reporter, "FIT", "mkimage -f, configuration signed for U-Boot"):
        from toolkit.firmware.fitkeys import signer_fit_key

        fit_key = signer_fit_key(trust.signing_keys)
        its = fitmod.its_source(
            description=f"routerkit {board.id} {version}",
            kernel="kernel",
            initramfs="initramfs.cpio.gz",
            load=str(board.get("firmware.kernel_load", "0x40400000")),
            arch=guest.spec.debian.fit_arch,
            compression=compression,
            signed_by=fit_key.name,
        )
        fit = fitmod.make_fit(
            its, {"kernel": kernel, "initramfs.cpio.gz": initrd}, epoch, keys=[fit_key]
        )
    info = {
        "kernel_size": len(kernel),
        "initramfs_size": len(initrd),
        "kernel_abi": guest.kernel_abi,
        "cached": False,
    }
    from toolkit.record import atomic_write

    atomic_write(fit_path, fit)
    atomic_write(info_path, json.dumps(info).encode())
    prune(cache, "*.fit", keep=8)
    return fit, info


def prune(directory: Path, pattern: str, keep: int) -> None:
    """Drop all but the ``keep`` newest cache entries (each FIT or disk is 13-80 MB)."""
    entries = sorted(directory.glob(pattern), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[keep:]:
        for sibling in (old, old.with_suffix(".json")):
            sibling.unlink(missing_ok=True)


def _device_keys(signer: Any, extra: tuple[Path, ...]) -> tuple[tuple[str, bytes], ...]:
    """(keyid, signify public key file) for the signer, then each extra key, no duplicates."""
    from toolkit.firmware.signify import PublicKey

    keys = {signer.keyid: signer.public_key().to_bytes()}
    for path in extra:
        try:
            public = PublicKey.from_bytes(Path(path).read_bytes(), str(path))
        except OSError as exc:
            raise BuildError(f"--device-trust {path}: {exc.strerror or exc}") from None
        keys.setdefault(public.keyid, public.to_bytes())
    return tuple(keys.items())


def build_image(
    version: str,
    board: str | Board = DEFAULT_BOARD,
    *,
    out: Path | None = None,
    key: str | Path | None = None,
    reporter: Reporter | None = None,
    epoch: int | None = None,
    source_revision: str | None = None,
    use_cache: bool = True,
    refresh: bool = False,
    dev: bool = False,
    device_trust: tuple[Path, ...] = (),
    files: Mapping[str, bytes] | None = None,
) -> BuildResult:
    """Build and sign the reference firmware ``version`` for ``board``.

    ``out`` is a directory (the image is ``<board>-<version>.img`` in it) or a file path
    ending in ``.img``; default: the firmware cache. ``key`` is a secret key name or path
    (default: this machine's development key); the device will accept upgrades signed by that
    same key, and by the keys in ``device_trust`` (signify ``.pub`` files: how devices move to
    a new signing key, through an image signed by the old one). ``dev=True`` also lets the committed TEST client key log in as root: only with
    the development key, and marked in the metadata (``"development": true``), so that
    ``inspect`` and ``flash`` show and police it. ``use_cache=False`` rebuilds the kernel
    and FIT from the guest packages (the reproducibility test uses it); ``refresh=True``
    asks the Debian mirror for newer guest packages first. ``files`` (path in the image →
    content) are laid over the root filesystem last, like OpenWrt's ``files/`` overlay.
    """
    from toolkit.firmware import image as imagemod
    from toolkit.record import atomic_write

    start = time.monotonic()
    reporter = reporter or NullReporter()
    board_obj = board if isinstance(board, Board) else load_board(board)
    if not version or any(c.isspace() or c in '/"\\' for c in version):
        raise BuildError(f"invalid version {version!r}: no spaces, slashes or quotes")
    epoch = default_epoch() if epoch is None else epoch
    from toolkit.firmware.keys import dev_key, load_secret

    if dev and key is not None:
        raise BuildError(
            "--dev images (the committed test key may log in) are signed with the development "
            "key only, never with a named key",
            hint="drop --key, or drop --dev",
        )
    signer = load_secret(key) if key is not None else dev_key()
    trust = initramfsmod.DeviceTrust(
        signing_keys=_device_keys(signer, device_trust),
        dev_authorized_key=test_client_public_key() if dev else None,
    )
    guest = fetch_guest(reporter, refresh=refresh, spec=GuestSpec.of(board_obj))
    fit, info = build_fit(
        version,
        board_obj,
        epoch=epoch,
        trust=trust,
        reporter=reporter,
        guest=guest,
        use_cache=use_cache,
        files=tuple(sorted((str(k), bytes(v)) for k, v in (files or {}).items())),
    )
    metadata: dict[str, Any] = {
        "board": board_obj.id,
        "supported_devices": board_obj.compatible,
        "version": version,
        "compat_version": str(board_obj.require("board.compat_version")),
        "build_date": datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "source_revision": source_revision or default_revision(),
        "kernel": info["kernel_abi"],
        # The keys the device will accept sysupgrade images from (it checks them itself).
        "device_trusted_keys": [name for name, _ in trust.signing_keys],
    }
    if dev:
        metadata["development"] = True
    with step(reporter, "seal", "metadata + signature"):
        # None = the development key, so that its signature comment says so.
        data = imagemod.seal(fit, metadata, signer if key is not None else None)
    if out is None:
        # Content-addressed in the shared cache: two builds of one version with different
        # signers or host-key seeds (parallel test runs) must not overwrite each other.
        out = firmware_cache() / "images"
        name = f"{board_obj.id}-{version}-{hashlib.sha256(data).hexdigest()[:12]}.img"
        target = out / name
    else:
        target = out if out.suffix == ".img" else out / f"{board_obj.id}-{version}.img"
    if len(data) > board_obj.slot_size:
        from toolkit.errors import ImageTooLargeError

        raise ImageTooLargeError(
            f"image is {len(data)} bytes, the {board_obj.id} slot holds {board_obj.slot_size}"
        )
    atomic_write(target, data)
    if target.parent == firmware_cache() / "images":
        prune(target.parent, "*.img", keep=16)
    parsed = imagemod.parse(target)
    return BuildResult(
        path=target,
        sha256=hashlib.sha256(data).hexdigest(),
        version=version,
        board=board_obj.id,
        size=len(data),
        fit_size=len(fit),
        fit_sha256=hashlib.sha256(fit).hexdigest(),
        kernel_size=int(info["kernel_size"]),
        initramfs_size=int(info["initramfs_size"]),
        kernel_abi=str(info["kernel_abi"]),
        signer=str(parsed.metadata.get("signer", "")),
        development=dev,
        source_date_epoch=epoch,
        seconds=round(time.monotonic() - start, 3),
        cached_fit=bool(info.get("cached")),
    )


def test_client_public_key() -> bytes:
    """The committed TEST-ONLY client public key that ``--dev`` images authorize."""
    return resources.test_key("test_id_ed25519.pub").read_bytes()


test_client_public_key.__test__ = False  # type: ignore[attr-defined]


def sample_client_key() -> Path:
    """A 0600 copy of the committed TEST-ONLY client key (git does not keep 0600, and
    OpenSSH refuses a private key that others can read)."""
    src = resources.test_key("test_id_ed25519")
    dest = paths.data_dir() / "firmware" / "test_id_ed25519"
    data = src.read_bytes()
    if not dest.exists() or dest.read_bytes() != data:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, dest)
    shutil.copymode(dest, dest)
    return dest


# The name other modules know it by; ``__test__`` keeps pytest from collecting it as a test.
test_client_key = sample_client_key
sample_client_key.__test__ = False  # type: ignore[attr-defined]
