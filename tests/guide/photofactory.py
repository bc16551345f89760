"""Generated test photos: canaries full of metadata, and realistic noisy "camera" JPEGs."""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

CANARY_SERIAL = "CANARY-SN-7f3a9c"
CANARY_MAKE = "CanaryCam"
CANARY_XMP = "CANARY-XMP-LOCATION-Baker-Street"
CANARY_MAKERNOTE = b"CANARY-MAKERNOTE-0042"
CANARY_COMMENT = b"CANARY-COMMENT-home-lab"
CANARIES = [
    CANARY_SERIAL.encode(),
    CANARY_MAKE.encode(),
    CANARY_XMP.encode(),
    CANARY_MAKERNOTE,
    CANARY_COMMENT,
]
# GPS 51°30'26"N 0°7'39"W as rationals: a real-looking position in the EXIF GPS IFD.
GPS_LAT = (51.0, 30.0, 26.0)

XMP_PACKET = (
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    '<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
    f'tiff:Orientation="1"><dc:description>{CANARY_XMP}</dc:description></rdf:Description>'
    '</rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
).encode()


def scene(width: int = 640, height: int = 480) -> Any:
    """An asymmetric picture: each quadrant a different colour, plus a marker in one corner,
    so any wrong rotation or mirror is a large pixel difference."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), (30, 30, 30))
    draw = ImageDraw.Draw(img)
    w2, h2 = width // 2, height // 2
    draw.rectangle([0, 0, w2, h2], fill=(220, 40, 40))
    draw.rectangle([w2, 0, width, h2], fill=(40, 200, 60))
    draw.rectangle([0, h2, w2, height], fill=(40, 60, 220))
    draw.rectangle([w2, h2, width, height], fill=(230, 220, 40))
    draw.ellipse(
        [width // 64, height // 64, width // 64 + width // 5, height // 64 + height // 5],
        fill=(255, 255, 255),
    )
    return img


def canary_exif(orientation: int) -> Any:
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation
    exif[0x010F] = CANARY_MAKE  # Make
    exif[0x0110] = "Model-CANARY"  # Model
    ifd = exif.get_ifd(0x8769)  # Exif IFD
    ifd[0xA431] = CANARY_SERIAL  # BodySerialNumber
    ifd[0x927C] = CANARY_MAKERNOTE  # MakerNote
    ifd[0x9003] = "2026:11:22 07:00:00"  # DateTimeOriginal
    gps = exif.get_ifd(0x8825)  # GPS IFD
    gps[1] = "N"
    gps[2] = GPS_LAT
    gps[3] = "W"
    gps[4] = (0.0, 7.0, 39.0)
    return exif


def make_canary(
    path: Path, orientation: int, size: tuple[int, int] = (640, 480), icc: bool = False
) -> Any:
    """Write a JPEG whose raw pixels are ``scene()`` and whose metadata is full of canaries.
    Returns the raw (stored) image."""
    raw = scene(*size)
    kwargs: dict[str, Any] = {
        "exif": canary_exif(orientation),
        "xmp": XMP_PACKET,
        "comment": CANARY_COMMENT,
    }
    if icc:
        from PIL import ImageCms

        kwargs["icc_profile"] = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    raw.save(path, "JPEG", quality=95, **kwargs)
    return raw


def noise_layer(size: tuple[int, int] = (4000, 3000), sigma: float = 18) -> Any:
    """Sensor-like RGB noise centred on 128 (slow to make: build once, reuse with offsets)."""
    from PIL import Image, ImageChops

    grey = Image.effect_noise(size, sigma)
    w, h = size
    return Image.merge(
        "RGB",
        [grey, ImageChops.offset(grey, w // 3, h // 5), ImageChops.offset(grey, w // 7, h // 2)],
    )


def camera_photo(
    path: Path,
    size: tuple[int, int] = (4000, 3000),
    seed: int = 0,
    quality: int = 92,
    noise: Any = None,
) -> None:
    """A photo-like JPEG: smooth shapes plus sensor-like noise (flat colour would compress to
    nothing and make byte figures meaningless). Pass ``noise`` (from :func:`noise_layer`) to
    make many photos quickly; each photo shifts it differently."""
    from PIL import Image, ImageChops, ImageDraw, ImageFilter

    rng = random.Random(seed)
    small = (max(1, size[0] // 4), max(1, size[1] // 4))
    base = Image.linear_gradient("L").resize(small).convert("RGB")
    tint = Image.new(
        "RGB", small, (rng.randrange(60, 200), rng.randrange(60, 200), rng.randrange(60, 200))
    )
    img = ImageChops.multiply(base, tint)
    draw = ImageDraw.Draw(img)
    for _ in range(25):
        x, y = rng.randrange(small[0]), rng.randrange(small[1])
        r = rng.randrange(max(2, small[0] // 30), max(3, small[0] // 6))
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        if rng.random() < 0.5:
            draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
        else:
            draw.rectangle([x - r, y - r // 2, x + r, y + r // 2], fill=colour)
    img = img.filter(ImageFilter.GaussianBlur(1)).resize(size, Image.Resampling.BILINEAR)
    if noise is None or noise.size != size:
        noise = noise_layer(size)
    shifted = ImageChops.offset(noise, rng.randrange(size[0]), rng.randrange(size[1]))
    img = ImageChops.add(img, shifted, scale=1.0, offset=-128)
    exif = Image.Exif()
    exif[0x0112] = rng.choice([1, 3, 6, 8])
    exif[0x010F] = "BenchCam"
    exif.get_ifd(0x8769)[0xA431] = f"BENCH-{seed:04d}"
    img.save(path, "JPEG", quality=quality, exif=exif)


def truncated(src: Path, dest: Path, keep: float = 0.5) -> None:
    data = src.read_bytes()
    dest.write_bytes(data[: int(len(data) * keep)])


def jpeg_bytes(img: Any) -> bytes:
    out = io.BytesIO()
    img.save(out, "JPEG")
    return out.getvalue()
