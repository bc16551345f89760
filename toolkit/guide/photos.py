"""The photo pipeline: upright, metadata-free, upload-sized JPEGs — in parallel on all cores.

For each photo: read the original and hash it (sha256, recorded in the journal), decode it
completely (a truncated file is rejected, not half-kept), turn it upright
(``ImageOps.exif_transpose``), convert it to sRGB, shrink it to a configurable longest side and
re-encode it as a *new* JPEG built from pixels only.

Metadata policy — nothing of the original's metadata survives:
- EXIF (including GPS, serial numbers, maker notes), XMP, IPTC, comments: never passed to
  ``save``; the output image is rebuilt from raw pixels so no ``info`` dictionary can leak
  (Pillow copies ``info`` through transpose/resize, and newer Pillows write ``info["xmp"]``).
- ICC profiles: a photo with a profile (Display P3 on phones) is *converted* to sRGB and the
  profile is dropped. Keeping the profile would keep colours right too, but profiles carry
  device descriptions; converting keeps the colours without carrying anything over.

Speed: JPEGs are decoded with ``draft()``, which lets libjpeg scale by 1/2, 1/4 or 1/8 during
the DCT, so a 12-megapixel photo meant for a 1600 px upload is never decoded at full size.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.errors import NotFoundError, PhotoError

DEFAULT_LONGEST_SIDE = 1600
DEFAULT_QUALITY = 82
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".heic", ".heif", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class PhotoJob:
    source: Path  # the original, already stored in the session (kept as evidence)
    target: Path  # where the processed JPEG goes


@dataclass(frozen=True)
class ProcessedPhoto:
    source: Path
    target: Path
    sha256: str  # of the original file's bytes
    original_bytes: int
    bytes: int  # of the processed JPEG
    width: int
    height: int


def _register_heif() -> bool:
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


def heic_supported() -> bool:
    """True when pillow-heif is installed, so .heic photos from phones can be read."""
    return _register_heif()


def _to_srgb(img: Any, icc: bytes) -> Any:
    from PIL import ImageCms

    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        dst = ImageCms.createProfile("sRGB")
        return ImageCms.profileToProfile(img, src, dst, outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError):
        return img  # a broken profile: keep the pixels as they are, drop the profile anyway


def process_one(job: PhotoJob, longest_side: int = DEFAULT_LONGEST_SIDE,
                quality: int = DEFAULT_QUALITY) -> ProcessedPhoto:
    """Process one photo (runs in a worker process). Raises PhotoError for bad input."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    _register_heif()
    try:
        data = job.source.read_bytes()
    except FileNotFoundError:
        raise PhotoError(f"{job.source}: no such file") from None
    except IsADirectoryError:
        raise PhotoError(f"{job.source}: is a folder, not a photo") from None
    except OSError as err:
        raise PhotoError(f"{job.source}: cannot read: {err.strerror or err}") from None
    digest = hashlib.sha256(data).hexdigest()
    if not data:
        raise PhotoError(f"{job.source}: empty file, not a photo")
    img: Image.Image
    try:
        opened = Image.open(io.BytesIO(data))
        img = opened
        if opened.format == "JPEG" and longest_side and max(opened.size) > longest_side:
            # Ask libjpeg for the smallest DCT scale (1/2, 1/4, 1/8) that still gives at least
            # the target size; draft() wants both sides, so pass the target with the aspect.
            scale = longest_side / max(opened.size)
            opened.draft("RGB", (int(opened.width * scale), int(opened.height * scale)))
        opened.load()  # decodes everything now: truncation raises here, not later
    except UnidentifiedImageError:
        raise PhotoError(f"{job.source}: not an image (or a format this routerkit cannot read)") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise PhotoError(f"{job.source}: damaged or truncated image ({err})") from None
    try:
        icc = img.info.get("icc_profile")
        if longest_side and max(img.size) > longest_side:
            # Shrink before turning: the same result (resampling commutes with a quarter turn)
            # for a quarter of the pixels moved. The orientation tag rides along in info.
            scale = longest_side / max(img.size)
            size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
            # Bicubic: after the DCT-scaled decode the remaining factor is under 2, where it
            # is indistinguishable from Lanczos at half the cost.
            img = img.resize(size, Image.Resampling.BICUBIC, reducing_gap=2.0)
        img = ImageOps.exif_transpose(img)
        if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            img = Image.new("RGB", rgba.size, (255, 255, 255))
            img.paste(rgba, mask=rgba.getchannel("A"))
        elif img.mode not in ("RGB", "L"):
            img = img.convert("RGB")
        if icc and img.mode == "RGB":
            img = _to_srgb(img, icc)
        # A new image from raw pixels: no info, no exif, no xmp, no icc can ride along.
        clean = Image.frombytes(img.mode, img.size, img.tobytes())
        out = io.BytesIO()
        # optimize: ~8 % smaller for ~20 ms; progressive would cost twice that for ~2 % more.
        clean.save(out, "JPEG", quality=quality, optimize=True)
    except (OSError, ValueError) as err:
        raise PhotoError(f"{job.source}: cannot process: {err}") from None
    encoded = out.getvalue()
    _atomic_bytes(job.target, encoded)
    return ProcessedPhoto(job.source, job.target, digest, len(data), len(encoded), clean.width, clean.height)


def _atomic_bytes(path: Path, data: bytes) -> None:
    from toolkit.record import atomic_write

    atomic_write(path, data)


def _worker(args: tuple[PhotoJob, int, int]) -> ProcessedPhoto | PhotoError:
    # Errors are returned, not raised, so one bad photo does not hide the others' results.
    try:
        return process_one(*args)
    except PhotoError as err:
        return err


def process_photos(
    jobs: Sequence[PhotoJob],
    *,
    longest_side: int = DEFAULT_LONGEST_SIDE,
    quality: int = DEFAULT_QUALITY,
    workers: int | None = None,
    on_done: Callable[[int, int], None] | None = None,
) -> list[ProcessedPhoto | PhotoError]:
    """Process photos on all cores; results in the order of ``jobs`` (a PhotoError per bad one).

    A single photo is processed in this process: starting a pool costs more than it saves."""
    workers = workers or os.cpu_count() or 1
    args = [(job, longest_side, quality) for job in jobs]
    results: list[ProcessedPhoto | PhotoError] = []
    if len(jobs) <= 1 or workers == 1:
        for i, a in enumerate(args, 1):
            results.append(_worker(a))
            if on_done:
                on_done(i, len(jobs))
        return results
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
        for i, result in enumerate(pool.map(_worker, args), 1):
            results.append(result)
            if on_done:
                on_done(i, len(jobs))
    return results


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --- where photos come from -------------------------------------------------------------------


def expand(pattern: str, base: Path | None = None) -> list[Path]:
    """A path or a glob (``~`` expanded), relative to ``base``; files only, sorted by name."""
    import glob

    raw = os.path.expanduser(pattern)
    if base is not None and not os.path.isabs(raw):
        raw = str(base / raw)
    if glob.has_magic(raw):
        return sorted(Path(p) for p in glob.glob(raw) if os.path.isfile(p))
    return [Path(raw)]


def _is_photo_name(path: Path) -> bool:
    return path.suffix.lower() in PHOTO_SUFFIXES and not path.name.startswith(".")


class FolderWatch:
    """New photos appearing in a folder (a phone syncing into it).

    ``snapshot()`` remembers what is there; ``poll()`` returns files that appeared (or changed)
    since and whose size has stopped growing — a sync client writes a photo in pieces, and a
    half-written JPEG would be rejected as truncated."""

    def __init__(self, directory: Path, settle: float = 0.5) -> None:
        directory = Path(directory).expanduser()
        if not directory.is_dir():
            raise NotFoundError(f"photo folder {directory} does not exist", hint="create it or fix --watch")
        self.directory = directory
        self.settle = settle
        self._known: dict[Path, tuple[int, float]] = {}
        self._pending: dict[Path, tuple[int, float]] = {}  # path -> (size, first seen at that size)
        self.snapshot()

    def _scan(self) -> dict[Path, tuple[int, float]]:
        found = {}
        for entry in os.scandir(self.directory):
            path = Path(entry.path)
            if entry.is_file() and _is_photo_name(path):
                st = entry.stat()
                found[path] = (st.st_size, st.st_mtime)
        return found

    def snapshot(self) -> None:
        self._known = self._scan()
        self._pending.clear()

    def poll(self, now: float | None = None) -> list[Path]:
        """Settled new files, oldest first; each is reported once."""
        now = time.monotonic() if now is None else now
        ready = []
        for path, (size, mtime) in sorted(self._scan().items(), key=lambda kv: kv[1][1]):
            if self._known.get(path) == (size, mtime) or size == 0:
                continue
            seen = self._pending.get(path)
            if seen is None or seen[0] != size:
                self._pending[path] = (size, now)
                continue
            if now - seen[1] >= self.settle:
                ready.append(path)
                self._known[path] = (size, mtime)
                del self._pending[path]
        return ready


def total_bytes(paths: Iterable[Path]) -> int:
    return sum(Path(p).stat().st_size for p in paths)
