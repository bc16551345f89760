"""The share card: one PNG made for social networks (1200×630, the Open Graph size).

A collage of the tester's own photos (the build log's, already rebuilt from their pixels: no
EXIF, no GPS), the board and sample number, the firmware version, the total assembly time and
its rank on the board's leaderboard, the display name (or "anonymous"), and a QR code that
opens the build log. Text is in English and Simplified Chinese, drawn with Noto Sans CJK
(Debian ``fonts-noto-cjk``, installed by ``make setup``).

The PNG is written from a fresh image with no text chunks, EXIF or ICC profile.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.errors import ToolMissingError
from toolkit.i18n import both, t

WIDTH, HEIGHT = 1200, 630
QR_PX = 230

#: Where Debian's fonts-noto-cjk puts its fonts (the .ttc holds SC, TC, JP and KR faces).
FONT_DIRS = (Path("/usr/share/fonts/opentype/noto"), Path("/usr/share/fonts/truetype/noto"))
FONT_FILES = {"regular": "NotoSansCJK-Regular.ttc", "bold": "NotoSansCJK-Bold.ttc"}
#: the face of the collection with Simplified Chinese glyph shapes
SC_INDEX = 2


@dataclass
class CardInfo:
    url: str
    board: str
    firmware: str | None
    assembly_seconds: float | None
    rank: tuple[int, int] | None = None  # (rank, entrants)
    sample: str | None = None
    display_name: str | None = None
    photos: list[bytes] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "photos"}


def font_path(weight: str = "regular") -> Path:
    """The CJK font file (a clear error naming the Debian package when it is missing)."""
    for directory in FONT_DIRS:
        path = directory / FONT_FILES[weight]
        if path.is_file():
            return path
    raise ToolMissingError(
        "no CJK font for the card (Noto Sans CJK)",
        hint="apt-get install fonts-noto-cjk (make setup installs it)",
    )


def _font(size: int, weight: str = "regular") -> Any:
    from PIL import ImageFont

    return ImageFont.truetype(str(font_path(weight)), size, index=SC_INDEX)


def _duration(seconds: float | None) -> str:
    if not seconds:
        return "—"
    s = int(round(seconds))
    return f"{s // 3600} h {s // 60 % 60:02d} min" if s >= 3600 else f"{s // 60} min {s % 60:02d} s"


def qr_image(url: str, px: int = QR_PX) -> Any:
    """A QR code of ``url`` (error correction M, quiet zone kept) scaled to ``px`` square."""
    import qrcode
    from PIL import Image

    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4, box_size=1)
    code.add_data(url)
    code.make(fit=True)
    matrix = code.get_matrix()  # booleans, quiet zone included
    n = len(matrix)
    small = Image.new("L", (n, n), 255)
    small.putdata([0 if cell else 255 for row in matrix for cell in row])
    scale = max(1, px // n)
    return small.resize((n * scale, n * scale), Image.Resampling.NEAREST)


def _collage(photos: list[bytes], size: tuple[int, int]) -> Any:
    """Up to four photos in a grid, each cropped to fill its cell."""
    from PIL import Image, ImageOps

    from toolkit.guide.photos import clean_image

    w, h = size
    canvas = Image.new("RGB", size, (32, 38, 46))
    pics = photos[:4]
    if not pics:
        return canvas
    cols = 1 if len(pics) == 1 else 2
    rows = 1 if len(pics) <= 2 else 2
    cw, ch = w // cols, h // rows
    for i, data in enumerate(pics):
        clean = clean_image(data, longest_side=max(cw, ch) * 2, output="JPEG", what="card photo")
        with Image.open(io.BytesIO(clean.data)) as im:
            cell = ImageOps.fit(im.convert("RGB"), (cw - 4, ch - 4))
        canvas.paste(cell, ((i % cols) * cw + 2, (i // cols) * ch + 2))
    return canvas


def _fit(draw: Any, xy: tuple[int, int], text: str, width: int, size: int, **kw: Any) -> int:
    """Draw ``text`` at the largest size up to ``size`` that fits ``width``; return its height."""
    weight = kw.pop("weight", "regular")
    while True:
        font = _font(size, weight)
        left, top, right, bottom = draw.textbbox(xy, text, font=font)
        if right - left <= width or size <= 14:
            draw.text(xy, text, font=font, **kw)
            return int(size * 1.45)
        size -= 2


def render(info: CardInfo) -> bytes:
    """The card as PNG bytes."""
    from PIL import Image, ImageDraw

    card = Image.new("RGB", (WIDTH, HEIGHT), (246, 247, 249))
    card.paste(_collage(list(info.photos or []), (560, HEIGHT)), (0, 0))
    draw = ImageDraw.Draw(card)
    qr = qr_image(info.url)
    qx, qy = WIDTH - qr.width - 30, HEIGHT - qr.height - 30
    card.paste(qr.convert("RGB"), (qx, qy))
    ink, soft, good = (20, 24, 30), (90, 98, 110), (8, 102, 11)
    x, y = 600, 36
    wide = WIDTH - x - 30
    y += _fit(draw, (x, y), info.board, wide, 46, fill=ink, weight="bold")
    if info.sample:
        y += _fit(draw, (x, y), both("sample {sample}", sample=info.sample), wide, 26, fill=soft)
    y += _fit(draw, (x, y), info.display_name or both("anonymous"), wide, 26, fill=soft)
    y += 8
    version = info.firmware or "?"
    y += _fit(draw, (x, y), both("firmware {version}", version=version), wide, 26, fill=ink)
    # from here on the QR code takes the right-hand side
    narrow = qx - x - 20
    time = _duration(info.assembly_seconds)
    y += _fit(
        draw, (x, y), t_en("assembled in {time}", time=time), narrow, 32, fill=ink, weight="bold"
    )
    y += _fit(draw, (x, y), t_zh("assembled in {time}", time=time), narrow, 28, fill=ink)
    if info.rank:
        rank, total = info.rank
        values = {"rank": rank, "total": total, "board": info.board}
        y += _fit(
            draw, (x, y), t_en("rank {rank} of {total} on {board}", **values), narrow, 26, fill=good
        )
        y += _fit(
            draw, (x, y), t_zh("rank {rank} of {total} on {board}", **values), narrow, 26, fill=good
        )
    bottom = HEIGHT - 100
    bottom += _fit(draw, (x, bottom), t_en("Scan for the build log"), narrow, 22, fill=soft)
    _fit(draw, (x, bottom), t_zh("Scan for the build log") + " · routerkit", narrow, 22, fill=soft)
    out = io.BytesIO()
    card.save(out, "PNG", optimize=True)  # no pnginfo, exif or icc_profile: nothing but pixels
    return out.getvalue()


def t_en(msgid: str, **values: object) -> str:
    return t(msgid, "en", **values)


def t_zh(msgid: str, **values: object) -> str:
    return t(msgid, "zh-CN", **values)
