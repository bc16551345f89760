"""Fake sessions for the community tests: journals written the way the assembly, flash and
verify journeys write them, with real JPEG photos made by Pillow."""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

from toolkit.record import Journal


def jpeg(
    width: int,
    height: int,
    seed: int,
    *,
    quality: int = 90,
    exif: Any = None,
    comment: bytes | None = None,
) -> bytes:
    """A small, distinct JPEG (gradient + shapes; different for every seed)."""
    from PIL import Image, ImageDraw

    rnd = random.Random(seed)
    im = Image.new(
        "RGB", (width, height), (rnd.randrange(256), rnd.randrange(256), rnd.randrange(256))
    )
    draw = ImageDraw.Draw(im)
    for _ in range(12):
        x, y = rnd.randrange(width), rnd.randrange(height)
        draw.rectangle(
            [x, y, x + rnd.randrange(10, width // 2), y + rnd.randrange(10, height // 2)],
            fill=(rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)),
        )
    out = io.BytesIO()
    kw: dict[str, Any] = {"quality": quality}
    if exif is not None:
        kw["exif"] = exif
    if comment is not None:
        kw["comment"] = comment
    im.save(out, "JPEG", **kw)
    return out.getvalue()


def assembly_session(
    photos: int = 4,
    *,
    steps: int | None = None,
    board: str = "es-virt",
    with_firmware: bool = True,
    console: str = "U-Boot 2023.01\n=> boot\n",
    photo_px: tuple[int, int] = (320, 240),
    original_px: tuple[int, int] = (1280, 960),
) -> Journal:
    """An assembly session with ``photos`` photos spread over ``steps`` steps, plus flash and
    verify records like the other journeys write."""
    steps = steps or max(1, min(photos, 10))
    j = Journal.create("assemble", board=board, guide="es-virt")
    per_step = [photos // steps + (1 if i < photos % steps else 0) for i in range(steps)]
    n = 0
    for s in range(steps):
        sid = f"step-{s + 1}"
        j.append("step_started", step=sid, title=f"Fit part {s + 1}")
        for _ in range(per_step[s]):
            n += 1
            original = jpeg(*original_px, seed=n, quality=95)
            orig_path = j.store_bytes(f"originals/{n:03d}.jpg", original)
            processed = jpeg(*photo_px, seed=n, quality=85)
            path = j.store_bytes(f"photos/{n:03d}.jpg", processed)
            import hashlib

            j.append(
                "photo",
                step=sid,
                sha256=hashlib.sha256(original).hexdigest(),
                original=str(orig_path),
                path=j.relpath(path),
                bytes=len(processed),
                width=photo_px[0],
                height=photo_px[1],
            )
        j.append("check", step=sid, name="confirm", ok=True, detail="looks right")
        j.append("step_finished", step=sid, ok=True, seconds=30.0 + s)
    if with_firmware:
        j.append(
            "flash",
            ok=True,
            via="serial",
            path="tftp",
            version_before="1.0.0",
            version_after="1.1.0",
            slot="B",
            bytes=9_000_000,
            seconds=12.5,
            last_output=console,
        )
        j.append(
            "verify",
            ok=True,
            version_after="1.1.0",
            slot="B",
            seconds=3.2,
            selftest={"fan": "ok", "radio": "absent on the virtual sample"},
        )
    return j


def photo_files(j: Journal) -> list[Path]:
    return sorted((j.files_dir / "photos").glob("*.jpg"))
