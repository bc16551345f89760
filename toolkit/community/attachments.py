"""Files a tester attaches to a report: each is either redacted text, a rebuilt picture, or refused.

Classification is by content, never by the file name (a ``.txt`` can be a tarball, a ``.jpg``
a config dump):

1. **picture** — anything Pillow (or pillow-heif) decodes as a raster image is rebuilt from its
   pixels by :func:`toolkit.guide.photos.clean_image`, the same function the photo pipeline
   uses, and sent as JPEG or PNG (``fan.heic`` leaves as ``fan.jpg``).
2. **text** — UTF-8 (or UTF-16 with a BOM, or GB18030 as old Chinese firmware writes it), with
   only a sprinkling of undecodable bytes (a serial console at the wrong baud rate), is
   redacted like every other text and sent as UTF-8.
3. **anything else** (archives, firmware images, PDFs, a picture too damaged to rebuild) cannot
   be checked for keys or serials, so it is refused with :class:`AttachmentRefused` — unless the
   tester says ``raw=True`` (``--raw``): then it is sent unchanged and the result carries a loud
   warning for the CLI to show.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from toolkit.community.buildlog import Blob
from toolkit.community.redact import Redactor
from toolkit.errors import AttachmentRefused, NotFoundError, PhotoError

# control characters that plain text (logs, consoles, configs) legitimately contains
_TEXT_CONTROLS = set("\t\n\r\x1b\x08\x07\x0c\x0b")


@dataclass(frozen=True)
class Prepared:
    """One attachment ready to upload, what it was taken for, and a warning if it is raw."""

    blob: Blob
    kind: str  # "image", "text" or "raw"
    warning: str | None = None


def decode_text(data: bytes) -> str | None:
    """``data`` as text if it looks like text (see the module docstring), else None."""
    if not data:
        return ""
    for bom, codec in (
        (b"\xef\xbb\xbf", "utf-8-sig"),
        (b"\xff\xfe", "utf-16"),
        (b"\xfe\xff", "utf-16"),
    ):
        if data.startswith(bom):
            try:
                return data.decode(codec)
            except UnicodeDecodeError:
                return None
    if b"\0" in data:
        return None
    text = data.decode("utf-8", errors="replace")
    if _odd(text) > _allowed(text):
        # not UTF-8 with a little line noise: maybe GB18030/GBK, as older Chinese firmware
        # writes its exports. Strict, so random binary (which has 0x80/0xFF bytes) fails.
        # Tried second so a UTF-8 log with one stray byte is never misread as GB18030.
        try:
            text = data.decode("gb18030")
        except UnicodeDecodeError:
            return None
    return text if _odd(text) <= _allowed(text) else None


def _odd(text: str) -> int:
    """Characters plain text does not contain: undecodable bytes and most control characters."""
    return sum(1 for ch in text if ch == "\ufffd" or (ord(ch) < 32 and ch not in _TEXT_CONTROLS))


def _allowed(text: str) -> int:
    return max(4, len(text) // 50)


def _safe_name(name: str, redactor: Redactor) -> str:
    name = redactor.text(name).replace("/", "_").replace("\\", "_").strip() or "attachment"
    return name


def prepare_attachment(path: Path, redactor: Redactor, *, raw: bool = False) -> Prepared:
    """Read ``path`` and make it safe to upload (or refuse it). See the module docstring."""
    from toolkit.guide.photos import DAMAGED, clean_image, image_format

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise NotFoundError(f"cannot read attachment {path}: {exc.strerror or exc}") from exc
    name = _safe_name(path.name, redactor)
    kind = image_format(data)
    if kind not in (None, DAMAGED):
        try:
            clean = clean_image(data, what=name)
        except PhotoError as err:
            problem = f"it looks like a picture but cannot be rebuilt ({err})"
        else:
            image_name = str(Path(name).with_suffix(clean.suffix))
            return Prepared(Blob(image_name, clean.data, clean.mime), "image")
    else:
        # text before "damaged picture": a log that happens to start with "BM" is still a log
        text = decode_text(data)
        if text is not None:
            return Prepared(Blob(name, redactor.text(text).encode(), "text/plain"), "text")
        problem = (
            "it looks like a damaged picture that cannot be rebuilt"
            if kind == DAMAGED
            else "it is neither text nor a picture routerkit can rebuild"
        )
    if not raw:
        raise AttachmentRefused(
            f"attachment {path.name} refused: {problem}, so it cannot be checked for keys, passwords or serials",
            hint="attach a text export or a photo instead, or pass --raw to send it unchanged",
        )
    warning = (
        f"RAW attachment {name} ({len(data):,} bytes) is sent UNCHANGED: "
        "routerkit did not check it for Wi-Fi keys, passwords, serials or photo GPS"
    )
    return Prepared(Blob(name, data, "application/octet-stream"), "raw", warning)
