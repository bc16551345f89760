"""Photo pipeline: routerkit vs a plain sequential Pillow loop, side by side in one run.

40 generated 12-megapixel JPEGs (4000 × 3000, smooth shapes plus sensor-like noise, EXIF with an
orientation tag and a serial number) are written once into a temp dir. Then:

- peer: for each photo, ``Image.open`` → ``ImageOps.exif_transpose`` → ``save`` (JPEG), one after
  the other — what a script without routerkit does;
- ours: ``toolkit.guide.photos.process_photos`` (all cores, DCT-scaled decode, resize to the
  upload size, metadata stripped, sha256 of each original).

Prints::

    photos_40x12mp: ours X s, peer Y s, ratio Z
    photos_upload_bytes: ours X MB, originals Y MB, ratio Z

Run: ``.venv/bin/python benchmarks/photos.py [--count 40] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SIZE = (4000, 3000)


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


def peer(paths: list[Path], out: Path) -> float:
    from PIL import Image, ImageOps

    start = time.perf_counter()
    for p in paths:
        with Image.open(p) as img:
            ImageOps.exif_transpose(img).save(out / p.name, "JPEG")
    return time.perf_counter() - start


def ours(paths: list[Path], out: Path) -> tuple[float, int]:
    from toolkit.guide.photos import PhotoJob, ProcessedPhoto, process_photos

    start = time.perf_counter()
    results = process_photos([PhotoJob(p, out / p.name) for p in paths])
    seconds = time.perf_counter() - start
    bad = [r for r in results if not isinstance(r, ProcessedPhoto)]
    if bad:
        raise SystemExit(f"pipeline rejected {len(bad)} photos: {bad[0]}")
    return seconds, sum(r.bytes for r in results if isinstance(r, ProcessedPhoto))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--keep", type=Path, help="generate into (and keep) this folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rk-bench-photos-") as tmp:
        src = args.keep or Path(tmp) / "src"
        src.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        paths = sorted(src.glob("IMG_*.jpg"))[: args.count]
        if len(paths) < args.count:
            paths = generate(src, args.count)
        print(
            f"# {len(paths)} photos {SIZE[0]}x{SIZE[1]} ready in {time.perf_counter() - t0:.1f} s, "
            f"{os.cpu_count()} cores",
            file=sys.stderr,
        )
        originals = sum(p.stat().st_size for p in paths)
        (Path(tmp) / "peer").mkdir()
        (Path(tmp) / "ours").mkdir()
        # Warm the page cache for both contenders alike.
        for p in paths:
            p.read_bytes()
        peer_s = peer(paths, Path(tmp) / "peer")
        ours_s, ours_bytes = ours(paths, Path(tmp) / "ours")
    print(
        f"photos_{len(paths)}x12mp: ours {ours_s:.2f} s, peer {peer_s:.2f} s, ratio {ours_s / peer_s:.2f}"
    )
    print(
        f"photos_upload_bytes: ours {ours_bytes / 1e6:.1f} MB, originals {originals / 1e6:.1f} MB, "
        f"ratio {ours_bytes / originals:.3f}"
    )


if __name__ == "__main__":
    main()
