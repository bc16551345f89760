"""Photo pipeline: routerkit vs a plain Pillow script doing the same work, side by side.

40 generated 12-megapixel JPEGs (4000 × 3000, smooth shapes plus sensor-like noise, EXIF with an
orientation tag and a serial number) are written once into a temp dir. Then, interleaved
(peer, ours, peer, ours, ...), median of ``--runs``:

- peer: what a competent script without routerkit writes for the same result: for each photo
  ``Image.open`` → ``thumbnail((1600, 1600))`` → ``ImageOps.exif_transpose`` → ``save``
  (JPEG, quality 82), on as many worker processes as ours. Same output size, same cores, same
  page cache. (``thumbnail`` asks ``draft`` for twice the target size, its default
  ``reducing_gap=2.0``, so for 4000 → 1600 libjpeg decodes at full size: that is Pillow's
  default, what such a script gets.)
- ours: ``toolkit.guide.photos.process_photos`` (all cores, DCT-scaled decode, bilinear
  resize to the upload size, upright, metadata stripped by rebuilding from pixels, sha256 of
  each original recorded, optimized Huffman tables, atomic writes).

A comment line is a profile of ours on this machine: milliseconds per photo in each stage (one
process, a few photos), and how much of it the peer does too. It says where the time goes
when the ratio misses its goal. Another compares the quality of both uploads: PSNR against a
reference resized the slow way (full decode, Lanczos), so a faster pipeline that got there by
blurring or blocking more would show it.

Run: ``.venv/bin/python benchmarks/photos.py [--count 40] [--runs 3] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SIZE = (4000, 3000)
LONGEST = 1600
QUALITY = 82


def _make(args: tuple[str, int]) -> int:
    from tests.guide.photofactory import camera_photo, noise_layer

    path, seed = args
    global _NOISE
    if "_NOISE" not in globals():
        _NOISE = noise_layer(SIZE)  # once per worker: it is the slow part of generating
    camera_photo(Path(path), size=SIZE, seed=seed, noise=_NOISE)
    return Path(path).stat().st_size


def generate(directory: Path, count: int) -> list[Path]:
    paths = [directory / f"IMG_{i:04d}.jpg" for i in range(count)]
    with ProcessPoolExecutor() as pool:
        list(pool.map(_make, [(str(p), i) for i, p in enumerate(paths)]))
    return paths


def _peer_one(args: tuple[str, str]) -> int:
    from PIL import Image, ImageOps

    source, target = args
    with Image.open(source) as img:
        img.thumbnail((LONGEST, LONGEST))
        ImageOps.exif_transpose(img).save(target, "JPEG", quality=QUALITY)
    return Path(target).stat().st_size


def peer(paths: list[Path], out: Path, workers: int) -> tuple[float, int]:
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        sizes = list(pool.map(_peer_one, [(str(p), str(out / p.name)) for p in paths]))
    return time.perf_counter() - start, sum(sizes)


def ours(paths: list[Path], out: Path, workers: int) -> tuple[float, int]:
    from toolkit.guide.photos import PhotoJob, ProcessedPhoto, process_photos

    start = time.perf_counter()
    results = process_photos([PhotoJob(p, out / p.name) for p in paths], workers=workers)
    seconds = time.perf_counter() - start
    bad = [r for r in results if not isinstance(r, ProcessedPhoto)]
    if bad:
        raise SystemExit(f"photos: pipeline rejected {len(bad)} photos: {bad[0]}")
    return seconds, sum(r.bytes for r in results if isinstance(r, ProcessedPhoto))


def profile(paths: list[Path]) -> dict[str, float]:
    """Milliseconds per photo of each stage of ours, replayed with the same Pillow calls as
    ``clean_image`` in one process (so the stages add up to one photo's cost on one core)."""
    from PIL import Image

    from toolkit.guide.photos import _upright

    stages: dict[str, list[float]] = {}

    def lap(name: str, t0: float) -> float:
        now = time.perf_counter()
        stages.setdefault(name, []).append((now - t0) * 1000)
        return now

    for p in paths:
        t = time.perf_counter()
        data = p.read_bytes()
        t = lap("read", t)
        hashlib.sha256(data).hexdigest()
        t = lap("sha256", t)
        img = Image.open(io.BytesIO(data))
        scale = LONGEST / max(img.size)
        img.draft("RGB", (int(img.width * scale), int(img.height * scale)))
        img.load()
        t = lap("decode (DCT-scaled)", t)
        turn = _upright(img)
        scale = LONGEST / max(img.size)
        img = img.resize(
            (round(img.width * scale), round(img.height * scale)),
            Image.Resampling.BILINEAR,
            reducing_gap=2.0,
        )
        t = lap("resize", t)
        if turn is not None:
            img = img.transpose(turn)
        t = lap("upright", t)
        clean = Image.new(img.mode, img.size)
        clean.paste(img)
        img = clean
        t = lap("rebuild from pixels", t)
        out = io.BytesIO()
        img.save(out, "JPEG", quality=QUALITY, optimize=True)
        lap("encode (optimized)", t)
    return {name: statistics.median(values) for name, values in stages.items()}


def psnr(paths: list[Path], outputs: Path) -> float:
    """Mean PSNR (dB) of the JPEGs in ``outputs`` against a reference made the slow, careful
    way from the same original: full-size decode, Lanczos to the output's size, upright."""
    import math

    from PIL import Image, ImageChops, ImageOps, ImageStat

    values = []
    for p in paths:
        with Image.open(outputs / p.name) as got, Image.open(p) as full:
            full.load()
            upright = ImageOps.exif_transpose(full)
            ref = upright.resize(got.size, Image.Resampling.LANCZOS)
            diff = ImageChops.difference(ref.convert("RGB"), got.convert("RGB"))
            mse = sum(ImageStat.Stat(diff).sum2) / (3 * got.width * got.height)
            values.append(10 * math.log10(255**2 / max(mse, 1e-9)))
    return statistics.mean(values)


def interleaved(
    fns: dict[str, Callable[[], tuple[float, int]]], runs: int
) -> dict[str, tuple[float, int]]:
    got: dict[str, list[tuple[float, int]]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            got[name].append(fn())
    return {
        name: (statistics.median(s for s, _ in values), values[-1][1])
        for name, values in got.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="generate into (and keep) this folder")
    args = parser.parse_args()
    workers = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="rk-bench-photos-") as tmp:
        src = args.keep or Path(tmp) / "src"
        src.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        paths = sorted(src.glob("IMG_*.jpg"))[: args.count]
        if len(paths) < args.count:
            paths = generate(src, args.count)
        print(
            f"# {len(paths)} photos {SIZE[0]}x{SIZE[1]} ready in {time.perf_counter() - t0:.1f} s, "
            f"{workers} cores, load {os.getloadavg()[0]:.2f}",
            file=sys.stderr,
        )
        originals = sum(p.stat().st_size for p in paths)
        (Path(tmp) / "peer").mkdir()
        (Path(tmp) / "ours").mkdir()
        for p in paths:  # warm the page cache for both contenders alike
            p.read_bytes()
        med = interleaved(
            {
                "peer": lambda: peer(paths, Path(tmp) / "peer", workers),
                "ours": lambda: ours(paths, Path(tmp) / "ours", workers),
            },
            args.runs,
        )
        stages = profile(paths[:4])
        quality = {who: psnr(paths[:3], Path(tmp) / who) for who in ("ours", "peer")}
    (ours_s, ours_bytes), (peer_s, peer_bytes) = med["ours"], med["peer"]
    n = len(paths)
    print(
        f"photos_{n}x12mp: ours {ours_s:.2f} s, peer {peer_s:.2f} s, ratio {ours_s / peer_s:.2f} "
        f"(ours/peer, lower is better; peer: Pillow thumbnail({LONGEST}) + exif_transpose + save "
        f"q{QUALITY} on {workers} processes, the same output size and cores; median of "
        f"{args.runs} interleaved runs)"
    )
    print(
        f"photos_upload_bytes: ours {ours_bytes / 1e6:.1f} MB, peer {peer_bytes / 1e6:.1f} MB, "
        f"ratio {ours_bytes / peer_bytes:.3f} (ours/peer, lower is better; originals "
        f"{originals / 1e6:.1f} MB)"
    )
    shared = ("read", "decode (DCT-scaled)", "resize", "upright", "encode (optimized)")
    total = sum(stages.values())
    print(
        "# photos_profile (ms per photo, one core): "
        + ", ".join(f"{k} {v:.0f}" for k, v in stages.items())
        + f"; total {total:.0f}, of which the peer does the same kind of work for "
        f"{sum(stages[k] for k in shared):.0f} (only sha256 and the rebuild are ours alone)"
    )

    print(
        f"# photos_quality (PSNR in dB of the uploads against a Lanczos resize of the full "
        f"decode, {min(3, n)} photos, higher is closer): ours {quality['ours']:.2f}, "
        f"peer {quality['peer']:.2f}"
    )


if __name__ == "__main__":
    main()
