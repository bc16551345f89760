"""The photo pipeline: upright, metadata-free, upload-sized JPEGs — in parallel on all cores.

:func:`clean_image` is the one place where a picture is made safe to leave the machine; the
pipeline below, bug-report attachments (``toolkit.community.attachments``) and the build log's
photos all call it. For each photo the pipeline reads the original and hashes it (sha256,
recorded in the journal); ``clean_image`` decodes it completely (a truncated file is rejected,
not half-kept), shrinks it to a configurable longest side, turns it upright (EXIF orientation,
read once, applied to the shrunk pixels), converts it to sRGB and re-encodes it as a *new*
image built from pixels only.

Metadata policy — nothing of the original's metadata survives:
- EXIF (including GPS, serial numbers, maker notes), XMP, IPTC, comments, PNG text chunks:
  never passed to ``save``; the output image is rebuilt from raw pixels so no ``info``
  dictionary can leak (Pillow copies ``info`` through transpose/resize, and newer Pillows
  write ``info["xmp"]``).
- ICC profiles: a photo with a profile (Display P3 on phones) is *converted* to sRGB and the
  profile is dropped. Keeping the profile would keep colours right too, but profiles carry
  device descriptions; converting keeps the colours without carrying anything over.
- Formats are recognised by content (JPEG, MPO, PNG, WebP, TIFF, HEIC/HEIF with pillow-heif,
  AVIF, GIF, BMP...); of a multi-frame file only the first frame is kept.

Speed: JPEGs are decoded with ``draft()``, which lets libjpeg scale by 1/2, 1/4 or 1/8 during
the DCT, so a 12-megapixel photo meant for a 1600 px upload is never decoded at full size; the
rest of the decode is libjpeg's Huffman decoding, which no scale avoids (see
``benchmarks/photos.py`` for the per-stage profile). Pool workers keep a few freed image
blocks for the next photo instead of returning them to the kernel and faulting fresh pages in.
"""

from __future__ import annotations

import contextlib
import functools
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


# Raster formats a phone, a camera or a screenshot tool writes. Detection is by content, and
# only these decoders are asked: Pillow also has decoders for text-like formats (XBM, XPM,
# EPS) and header-less ones (TGA) that would claim a config file or a log as a "picture".
IMAGE_FORMATS = (
    "JPEG",
    "MPO",
    "PNG",
    "WEBP",
    "TIFF",
    "HEIF",
    "AVIF",
    "GIF",
    "BMP",
    "DIB",
    "ICO",
    "JPEG2000",
    "QOI",
    "PSD",
    "PCX",
    "SGI",
    "SUN",
    "ICNS",
    "DDS",
)
# Sources whose pixels are lossless: a rebuilt copy stays PNG so screenshots keep sharp text.
_LOSSLESS_SOURCES = {
    "PNG",
    "GIF",
    "BMP",
    "DIB",
    "ICO",
    "QOI",
    "PCX",
    "SGI",
    "SUN",
    "ICNS",
    "DDS",
    "TIFF",
}


@dataclass(frozen=True)
class CleanImage:
    """A picture rebuilt from its pixels: JPEG or PNG bytes with no metadata at all."""

    data: bytes
    format: str  # "JPEG" or "PNG"
    width: int
    height: int
    source_format: str  # what it was: "HEIF", "WEBP", "TIFF"...
    frames: int  # frames in the source; only the first one is kept

    @property
    def mime(self) -> str:
        return "image/jpeg" if self.format == "JPEG" else "image/png"

    @property
    def suffix(self) -> str:
        return ".jpg" if self.format == "JPEG" else ".png"


@functools.cache
def _formats() -> list[str]:
    from PIL import Image

    _register_heif()
    Image.init()
    return [f for f in IMAGE_FORMATS if f in Image.OPEN]  # HEIF only when pillow-heif is there


DAMAGED = "damaged"


def image_format(data: bytes) -> str | None:
    """The picture format of ``data`` judged by its content (not its name): ``"JPEG"``,
    ``"HEIF"``…; :data:`DAMAGED` when a decoder claimed it but could not read its header
    (a truncated photo); None when it is no picture at all."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data), formats=_formats()) as im:
            return str(im.format)
    except UnidentifiedImageError:
        return None
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError):
        return DAMAGED


# The formats Pillow registers without loading every plugin (``Image.preinit``). A photo in one
# of them is opened without importing pillow-heif and all of Pillow's plugins, which costs a
# pool worker more than decoding a photo; anything else is asked of the whole list.
_COMMON_FORMATS = ("JPEG", "PNG")


def _open(data: bytes) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(io.BytesIO(data), formats=_COMMON_FORMATS)
    except UnidentifiedImageError:
        return Image.open(io.BytesIO(data), formats=_formats())


# EXIF orientation (EXIF 2.32, Orientation tag 274) -> the transpose that shows the stored
# pixels the way the camera was held; 1 (and a missing or odd value) needs none.
_UPRIGHT = {
    2: "FLIP_LEFT_RIGHT",
    3: "ROTATE_180",
    4: "FLIP_TOP_BOTTOM",
    5: "TRANSPOSE",
    6: "ROTATE_270",
    7: "TRANSVERSE",
    8: "ROTATE_90",
}


def _upright(img: Any) -> Any:
    """The ``Image.Transpose`` that turns ``img`` upright, or None. Pillow's ``getexif`` reads
    the tag from EXIF (JPEG, PNG eXIf, WebP, AVIF, TIFF tags) and, failing that, from XMP."""
    from PIL import Image

    orientation = img.getexif().get(0x0112)
    name = _UPRIGHT.get(orientation) if isinstance(orientation, int) else None
    return Image.Transpose[name] if name else None


def clean_image(
    data: bytes,
    *,
    longest_side: int | None = None,
    quality: int = 90,
    output: str = "auto",
    what: str = "image",
) -> CleanImage:
    """Rebuild a picture from its pixels: the ONE way a picture leaves this machine.

    The photo pipeline, bug-report attachments and build-log photos all come through here.
    Steps: decode completely (truncation is an error, not half an image), take the first frame
    of a multi-frame file (MPO, animated GIF/WebP, multi-page TIFF), shrink it to
    ``longest_side``, turn it upright by its EXIF orientation, convert an ICC-tagged picture
    to sRGB, then copy the pixels into a *new* image and encode that. Nothing of
    the original's EXIF, GPS, XMP, IPTC, ICC, comments or PNG text chunks is passed to
    ``save``, and the new image has no ``info`` for Pillow to carry over by itself.

    ``output``: ``"JPEG"`` always gives JPEG (transparency flattened onto white);
    ``"auto"`` keeps lossless sources and anything transparent as PNG, the rest JPEG.
    ``what`` names the picture in error messages. Raises :class:`PhotoError`.
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise PhotoError(f"{what}: empty file, not a photo")
    try:
        opened = _open(data)
        source_format = str(opened.format)
        frames = int(getattr(opened, "n_frames", 1) or 1)
        if opened.format in ("JPEG", "MPO") and longest_side and max(opened.size) > longest_side:
            # Ask libjpeg for the smallest DCT scale (1/2, 1/4, 1/8) that still gives at least
            # the target size; draft() wants both sides, so pass the target with the aspect.
            scale = longest_side / max(opened.size)
            opened.draft("RGB", (int(opened.width * scale), int(opened.height * scale)))
        opened.load()  # decodes everything now: truncation raises here, not later
    except UnidentifiedImageError:
        raise PhotoError(f"{what}: not an image (or a format this routerkit cannot read)") from None
    except Image.DecompressionBombError as err:
        raise PhotoError(f"{what}: refused, too many pixels ({err})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise PhotoError(f"{what}: damaged or truncated image ({err})") from None
    try:
        icc = opened.info.get("icc_profile")
        turn = _upright(opened)  # read before anything drops the tag
        img: Image.Image = opened
        if longest_side and max(img.size) > longest_side:
            scale = longest_side / max(img.size)
            size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
            # Bilinear (a tent filter widened to the scale, so it still averages): after the
            # DCT-scaled decode the remaining factor is under 2, where bicubic's sharper kernel
            # is lost again in the q82 encode: measured against a Lanczos resize of the full
            # decode, the encoded outputs are within 0.1 dB PSNR (bilinear a hair closer), 11 %
            # smaller, and the resize takes two thirds of bicubic's time.
            img = img.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
        if turn is not None:
            # Upright after the shrink: the same pixels, turned on the smaller picture.
            img = img.transpose(turn)
        alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
            img.mode == "P" and "transparency" in img.info
        )
        fmt = (
            "JPEG"
            if output == "JPEG"
            else ("PNG" if alpha or source_format in _LOSSLESS_SOURCES else "JPEG")
        )
        if alpha:
            rgba = img.convert("RGBA")
            if fmt == "JPEG":
                img = Image.new("RGB", rgba.size, (255, 255, 255))
                img.paste(rgba, mask=rgba.getchannel("A"))
            else:
                img = rgba
        elif img.mode not in ("RGB", "L"):
            img = img.convert("RGB")
        if icc and img.mode in ("RGB", "RGBA"):
            img = _to_srgb(img, icc)
        # A new image given only the pixels: no info, no exif, no xmp, no icc can ride along
        # (Image.new starts with an empty info; paste copies pixel values and nothing else).
        clean = Image.new(img.mode, img.size)
        clean.paste(img)
        out = io.BytesIO()
        if fmt == "JPEG":
            # optimize: ~8 % smaller for ~20 ms; progressive would cost twice that for ~2 % more.
            clean.save(out, "JPEG", quality=quality, optimize=True)
        else:
            clean.save(out, "PNG")
    except (OSError, ValueError) as err:
        raise PhotoError(f"{what}: cannot process: {err}") from None
    finally:
        opened.close()
    return CleanImage(out.getvalue(), fmt, clean.width, clean.height, source_format, frames)


def _to_srgb(img: Any, icc: bytes) -> Any:
    from PIL import ImageCms

    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        dst = ImageCms.createProfile("sRGB")
        return ImageCms.profileToProfile(img, src, dst, outputMode=img.mode)
    except (ImageCms.PyCMSError, OSError, ValueError):
        return img  # a broken profile: keep the pixels as they are, drop the profile anyway


def process_one(
    job: PhotoJob, longest_side: int = DEFAULT_LONGEST_SIDE, quality: int = DEFAULT_QUALITY
) -> ProcessedPhoto:
    """Process one photo (runs in a worker process). Raises PhotoError for bad input."""
    try:
        data = job.source.read_bytes()
    except FileNotFoundError:
        raise PhotoError(f"{job.source}: no such file") from None
    except IsADirectoryError:
        raise PhotoError(f"{job.source}: is a folder, not a photo") from None
    except OSError as err:
        raise PhotoError(f"{job.source}: cannot read: {err.strerror or err}") from None
    digest = hashlib.sha256(data).hexdigest()
    clean = clean_image(
        data, longest_side=longest_side, quality=quality, output="JPEG", what=str(job.source)
    )
    _atomic_bytes(job.target, clean.data)
    return ProcessedPhoto(
        job.source, job.target, digest, len(data), len(clean.data), clean.width, clean.height
    )


def _atomic_bytes(path: Path, data: bytes) -> None:
    from toolkit.record import atomic_write

    atomic_write(path, data)


def _worker(args: tuple[PhotoJob, int, int]) -> ProcessedPhoto | PhotoError:
    # Errors are returned, not raised, so one bad photo does not hide the others' results.
    try:
        return process_one(*args)
    except PhotoError as err:
        return err


def _die_with(parent: int) -> None:
    """Pool worker setup: die with the routerkit that started us. A worker of a routerkit killed
    with SIGKILL (or a power cut of the laptop's session) otherwise waits forever on its queue."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes
        import signal

        pr_set_pdeathsig = 1  # <linux/prctl.h>
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the line above took effect
        os._exit(0)


# Freed image blocks a pool worker keeps for the next photo. Pillow returns every freed block to
# the kernel by default (PILLOW_BLOCKS_MAX=0), so each photo's decoded, shrunk and rebuilt
# pictures (12 + 8 + 8 MB for a 12-megapixel photo) are page-faulted in afresh; keeping four
# blocks, at most 64 MiB per worker while the pool lives, saves that.
_WORKER_IMAGE_BLOCKS = 4


def _keep_image_blocks() -> None:
    with contextlib.suppress(ImportError, AttributeError, ValueError):
        from PIL import Image

        if Image.core.get_blocks_max() < _WORKER_IMAGE_BLOCKS:
            Image.core.set_blocks_max(_WORKER_IMAGE_BLOCKS)


def _worker_setup(parent: int) -> None:
    _die_with(parent)
    _keep_image_blocks()


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
    with ProcessPoolExecutor(
        max_workers=min(workers, len(jobs)), initializer=_worker_setup, initargs=(os.getpid(),)
    ) as pool:
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
            raise NotFoundError(
                f"photo folder {directory} does not exist", hint="create it or fix --watch"
            )
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
