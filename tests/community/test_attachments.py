"""Attachments: every picture format leaves rebuilt from pixels (no EXIF, GPS, XMP, ICC or
text chunks, upright), text is redacted, any other binary is refused unless ``--raw``."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from PIL import Image, ImageChops, ImageStat, features

from tests.guide.photofactory import scene
from toolkit.cli import root
from toolkit.community.attachments import decode_text, prepare_attachment
from toolkit.community.redact import Redactor
from toolkit.errors import AttachmentRefused, PhotoError
from toolkit.guide.photos import clean_image, heic_supported, image_format

SALT = b"a" * 32
SERIAL = "MARKER-SERIAL-4242"
MAKE = "MarkerPhoneCam"
XMP_TEXT = "MARKER-XMP-Kitchen-Table"
COMMENT = "MARKER-COMMENT-wpa_passphrase=InPhoto"
GPS_LAT = (52.0, 31.0, 12.0)
XMP = (
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
    '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
    f'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:description>{XMP_TEXT}</dc:description>'
    '</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
).encode()
MARKERS = [SERIAL.encode(), MAKE.encode(), XMP_TEXT.encode(), COMMENT.encode(), b"MARKER-"]
# stored pixels for EXIF orientation 6 ("turn 90° clockwise to display"): the scene turned back
UPRIGHT = scene(96, 64)
STORED_6 = UPRIGHT.transpose(Image.Transpose.ROTATE_90)


def _exif(orientation: int | None = 6) -> Image.Exif:
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    exif[0x010F] = MAKE
    exif[0x010E] = f"serial: {SERIAL}"
    exif.get_ifd(0x8769)[0xA431] = SERIAL  # BodySerialNumber
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", GPS_LAT, "W", (0.0, 7.0, 39.0)
    return exif


def _jpeg() -> bytes:
    from PIL import ImageCms

    out = io.BytesIO()
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    STORED_6.save(out, "JPEG", quality=95, exif=_exif(), xmp=XMP, comment=COMMENT, icc_profile=icc)
    return out.getvalue()


def _png() -> bytes:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", COMMENT)
    info.add_text("Software", MAKE, zip=True)  # zTXt
    info.add_itxt("XML:com.adobe.xmp", XMP.decode())  # iTXt, where XMP lives in PNG
    out = io.BytesIO()
    STORED_6.save(out, "PNG", pnginfo=info, exif=_exif())  # exif= writes an eXIf chunk
    return out.getvalue()


def _webp() -> bytes:
    out = io.BytesIO()
    STORED_6.save(out, "WEBP", quality=95, exif=_exif(), xmp=XMP)
    return out.getvalue()


def _tiff() -> bytes:
    from PIL import TiffImagePlugin

    tags = TiffImagePlugin.ImageFileDirectory_v2()
    tags[274] = 6  # Orientation
    tags[270] = f"serial: {SERIAL}"  # ImageDescription
    tags[305] = MAKE  # Software
    tags[700] = XMP  # XMP packet
    tags[34853] = {1: "N", 2: GPS_LAT, 3: "W", 4: (0.0, 7.0, 39.0)}  # the GPS IFD
    out = io.BytesIO()
    STORED_6.save(out, "TIFF", tiffinfo=tags)
    return out.getvalue()


def test_planted_metadata_really_is_in_the_inputs() -> None:
    """So that 'nothing survives' means something: GPS and XMP are readable in each input."""
    for fmt in ("JPEG", "PNG", "WEBP", "TIFF", "HEIF", "AVIF", "MPO"):
        data = FORMATS[fmt][0]()
        with Image.open(io.BytesIO(data)) as im:
            assert im.getexif().get_ifd(0x8825).get(2) == GPS_LAT, fmt
        assert XMP_TEXT.encode() in data or fmt == "MPO", fmt


def _heic() -> bytes:
    import pillow_heif

    pillow_heif.register_heif_opener()
    out = io.BytesIO()
    # no orientation tag: libheif applies rotation itself, pillow-heif drops the tag on read
    UPRIGHT.save(out, "HEIF", quality=95, exif=_exif(None).tobytes(), xmp=XMP)
    return out.getvalue()


def _avif() -> bytes:
    out = io.BytesIO()
    STORED_6.save(out, "AVIF", quality=95, exif=_exif(), xmp=XMP)
    return out.getvalue()


def _gif() -> bytes:
    out = io.BytesIO()
    second = Image.new("RGB", UPRIGHT.size, (0, 0, 0))
    UPRIGHT.save(
        out, "GIF", save_all=True, append_images=[second], comment=COMMENT, duration=100, loop=0
    )
    return out.getvalue()


def _bmp() -> bytes:
    out = io.BytesIO()
    UPRIGHT.save(out, "BMP")
    return out.getvalue()


def _mpo() -> bytes:
    out = io.BytesIO()
    STORED_6.save(
        out, "MPO", save_all=True, append_images=[STORED_6.copy()], exif=_exif(), quality=95
    )
    return out.getvalue()


# format -> (maker, turned by EXIF orientation 6, carries planted metadata)
FORMATS: dict[str, tuple[Any, bool, bool]] = {
    "JPEG": (_jpeg, True, True),
    "PNG": (_png, True, True),
    "WEBP": (_webp, True, True),
    "TIFF": (_tiff, True, True),
    "HEIF": (_heic, False, True),
    "AVIF": (_avif, True, True),
    "GIF": (_gif, False, True),
    "BMP": (_bmp, False, False),
    "MPO": (_mpo, True, True),
}


def _diff(a: Image.Image, b: Image.Image) -> float:
    b = b.convert("RGB").resize(a.size)
    return sum(ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b)).mean) / 3


def _assert_clean(data: bytes) -> Image.Image:
    for marker in MARKERS:
        assert marker not in data, f"{marker!r} survived in the output bytes"
    assert (
        b"Exif\x00\x00" not in data
        and b"http://ns.adobe.com/xap" not in data
        and b"adobe:ns:meta" not in data
    )
    im = Image.open(io.BytesIO(data))
    assert im.format in ("JPEG", "PNG")
    assert not im.getexif(), "EXIF survived"
    assert not im.getexif().get_ifd(0x8825), "GPS survived"
    for key in (
        "exif",
        "xmp",
        "XML:com.adobe.xmp",
        "icc_profile",
        "comment",
        "Comment",
        "Software",
        "photoshop",
    ):
        assert key not in im.info, f"{key} survived"
    if im.format == "PNG":
        assert not im.text, f"text chunks survived: {im.text}"  # type: ignore[attr-defined]
    im.load()
    return im


def test_every_format_is_checked() -> None:
    """A missing decoder is a failure, not a skip: HEIC comes with the `heic` extra."""
    assert heic_supported(), "pillow-heif is not installed (pip install routerkit[heic])"
    assert features.check("webp") and features.check("avif")


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_picture_is_rebuilt_without_metadata_and_upright(fmt: str, tmp_path: Path) -> None:
    make, turned, planted = FORMATS[fmt]
    data = make()
    assert image_format(data) == fmt
    if planted:
        assert any(m in data for m in MARKERS[:4]), "the markers really are in the input"
    src = tmp_path / f"photo.{fmt.lower()}"
    src.write_bytes(data)
    prepared = prepare_attachment(src, Redactor(SALT))
    assert prepared.kind == "image" and prepared.warning is None
    assert prepared.blob.mime in ("image/jpeg", "image/png")
    assert prepared.blob.name == "photo" + (
        ".jpg" if prepared.blob.mime == "image/jpeg" else ".png"
    )
    im = _assert_clean(prepared.blob.data)
    assert im.size == UPRIGHT.size, "orientation lost" if turned else "size changed"
    right = _diff(UPRIGHT, im)
    wrong = min(_diff(UPRIGHT.transpose(t), im) for t in Image.Transpose)
    assert right < 8, right  # the same picture (give or take lossy encodes)
    assert right <= wrong


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_shrunk_picture_is_upright_at_the_asked_size_and_clean(fmt: str) -> None:
    """Shrinking and turning together: the longest side is the asked one on the upright
    picture (a turned photo is not shrunk by its stored width), in every format."""
    make, _, _ = FORMATS[fmt]
    clean = clean_image(make(), longest_side=48, output="JPEG")
    im = _assert_clean(clean.data)
    assert im.size == (clean.width, clean.height) == (48, 32), im.size
    small = UPRIGHT.resize(im.size, Image.Resampling.LANCZOS)
    right = _diff(small, im)
    wrong = min(_diff(small.transpose(t), im) for t in Image.Transpose)
    assert right < 10 and right <= wrong, (right, wrong)


def test_lossless_sources_stay_png_and_photos_become_jpeg() -> None:
    assert clean_image(_png()).format == "PNG" and clean_image(_bmp()).format == "PNG"
    assert clean_image(_jpeg()).format == "JPEG" and clean_image(_heic()).format == "JPEG"
    transparent = io.BytesIO()
    Image.new("RGBA", (8, 8), (255, 0, 0, 0)).save(transparent, "WEBP", lossless=True)
    assert clean_image(transparent.getvalue()).format == "PNG"  # transparency kept, as PNG
    assert clean_image(_png(), output="JPEG").format == "JPEG"


def test_multi_frame_picture_keeps_the_first_frame() -> None:
    clean = clean_image(_gif())
    assert clean.frames == 2
    with Image.open(io.BytesIO(clean.data)) as im:
        assert getattr(im, "n_frames", 1) == 1
        assert _diff(UPRIGHT, im) < 8


def test_picture_is_recognised_by_content_not_by_name(tmp_path: Path) -> None:
    disguised = tmp_path / "notes.txt"
    disguised.write_bytes(_webp())
    prepared = prepare_attachment(disguised, Redactor(SALT))
    assert prepared.kind == "image" and prepared.blob.name == "notes.jpg"
    _assert_clean(prepared.blob.data)
    text = tmp_path / "photo.jpg"
    text.write_text("option key 'NotAPhotoKey1'\n")
    prepared = prepare_attachment(text, Redactor(SALT))
    assert prepared.kind == "text" and b"NotAPhotoKey1" not in prepared.blob.data


@pytest.mark.parametrize("keep", [600, 2000])  # cut in the metadata, cut in the pixels
def test_damaged_picture_is_refused(tmp_path: Path, keep: int) -> None:
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(_jpeg()[:keep])
    with pytest.raises(AttachmentRefused, match="cannot be rebuilt"):
        prepare_attachment(cut, Redactor(SALT))
    with pytest.raises(PhotoError, match="truncated"):
        clean_image(cut.read_bytes())


def test_text_with_console_noise_is_text_and_redacted(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    log.write_bytes(
        b"U-Boot 2023.01\r\n\xfe\xff\x1b[0m wpa_passphrase=ConsolePw1\n"
        + b"booting kernel...\n" * 20
    )
    prepared = prepare_attachment(log, Redactor(SALT))
    assert prepared.kind == "text" and prepared.blob.mime == "text/plain"
    assert b"ConsolePw1" not in prepared.blob.data and b"booting kernel" in prepared.blob.data
    assert decode_text("密码：x".encode("utf-16")) == "密码：x"
    assert decode_text(b"\x1f\x8b\x08\x00" + os.urandom(200)) is None


def _binary(tmp_path: Path) -> Path:
    import gzip

    blob = tmp_path / "overlay-backup.tar.gz"
    blob.write_bytes(gzip.compress(b"option key 'InTheTarball'\n" * 10))
    return blob


def test_binary_is_refused_without_raw_and_sent_unchanged_with_it(tmp_path: Path) -> None:
    blob = _binary(tmp_path)
    with pytest.raises(AttachmentRefused) as err:
        prepare_attachment(blob, Redactor(SALT))
    assert err.value.exit_code == 46 and "--raw" in str(err.value)
    prepared = prepare_attachment(blob, Redactor(SALT), raw=True)
    assert prepared.kind == "raw" and prepared.blob.data == blob.read_bytes()
    assert prepared.warning and "UNCHANGED" in prepared.warning


def test_cli_bug_refuses_a_binary_in_one_line_and_takes_it_with_raw(tmp_path: Path) -> None:
    blob = _binary(tmp_path)
    photo = tmp_path / "fan.webp"
    photo.write_bytes(_webp())
    runner = CliRunner()
    res = runner.invoke(
        root,
        [
            "bug",
            "Fan is loud",
            "--attach",
            str(blob),
            "--attach",
            str(photo),
            "--no-device",
            "--preview",
            "--json",
        ],
    )
    assert res.exit_code == 46, res.output
    assert (
        "Traceback" not in res.output
        and res.exception is None
        or isinstance(res.exception, SystemExit)
    )
    errors = [line for line in res.stderr.splitlines() if "refused" in line]
    assert len(errors) == 1 and "overlay-backup.tar.gz" in errors[0] and "--raw" in errors[0]
    res = runner.invoke(
        root,
        [
            "bug",
            "Fan is loud",
            "--attach",
            str(blob),
            "--attach",
            str(photo),
            "--raw",
            "--no-device",
            "--preview",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    kinds = {a["name"]: a["mime"] for a in out["attachments"]}
    assert kinds == {"overlay-backup.tar.gz": "application/octet-stream", "fan.jpg": "image/jpeg"}
    assert any("UNCHANGED" in w for w in out["warnings"])
    assert "UNCHANGED" in res.stderr  # the preview shows the warning loudly


def test_text_that_starts_like_a_bitmap_is_still_text(tmp_path: Path) -> None:
    log = tmp_path / "bmc.log"
    log.write_text("BMC boot: option password 'BmcPw-1'\n")
    prepared = prepare_attachment(log, Redactor(SALT))
    assert prepared.kind == "text" and b"BmcPw-1" not in prepared.blob.data


def test_utf8_log_with_a_stray_byte_is_not_misread_as_gb18030() -> None:
    text = decode_text("无线密码：Secret1\n".encode() + b"\xfe" + b" ok\n" * 10)
    assert text is not None and "无线密码" in text
