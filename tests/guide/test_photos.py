"""The photo pipeline: no metadata survives, pixels come out upright, bad files are refused."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageStat

from tests.guide.photofactory import (
    CANARIES,
    camera_photo,
    jpeg_bytes,
    make_canary,
    scene,
    truncated,
)
from toolkit.errors import NotFoundError, PhotoError
from toolkit.guide.photos import FolderWatch, PhotoJob, heic_supported, process_one, process_photos

# EXIF orientation -> the transpose that makes the stored pixels upright (EXIF spec, 2.32 §4.6.4)
UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _diff(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute pixel difference (0..255) after bringing b to a's size."""
    b = b.convert("RGB").resize(a.size)
    return sum(ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b)).mean) / 3


def _assert_clean(path: Path) -> None:
    img = Image.open(path)
    assert img.format == "JPEG"
    assert not img.getexif(), "EXIF survived"
    assert "exif" not in img.info
    assert "xmp" not in img.info and "XML:com.adobe.xmp" not in img.info
    assert "icc_profile" not in img.info
    assert "comment" not in img.info
    data = path.read_bytes()
    for canary in CANARIES:
        assert canary not in data, f"canary {canary!r} found in the output bytes"
    assert b"Exif\x00" not in data and b"http://ns.adobe.com/xap" not in data


@pytest.mark.parametrize("orientation", [2, 3, 4, 5, 6, 7, 8])
def test_canary_photo_leaves_without_metadata_and_upright(tmp_path: Path, orientation: int) -> None:
    src = tmp_path / f"canary{orientation}.jpg"
    raw = make_canary(src, orientation, icc=orientation == 6)
    data = src.read_bytes()
    assert all(c in data for c in CANARIES)  # the canaries really are in the input
    out = tmp_path / "out.jpg"
    result = process_one(PhotoJob(src, out), longest_side=400)
    _assert_clean(out)
    got = Image.open(out)
    reference = raw.transpose(UPRIGHT[orientation])
    assert got.size == (400, 300) if reference.width > reference.height else got.size == (300, 400)
    assert (result.width, result.height) == got.size
    right = _diff(reference, got)
    wrong = min(
        _diff(raw.transpose(t), got) for t in Image.Transpose if t is not UPRIGHT[orientation]
    )
    # A correct result is a few levels off (JPEG, resampling); a wrong turn is tens of levels off.
    assert right < 6 < wrong, (right, wrong)


def test_original_hash_is_recorded_and_original_untouched(tmp_path: Path) -> None:
    import hashlib

    src = tmp_path / "c.jpg"
    make_canary(src, 6)
    before = src.read_bytes()
    result = process_one(PhotoJob(src, tmp_path / "o.jpg"))
    assert result.sha256 == hashlib.sha256(before).hexdigest()
    assert src.read_bytes() == before and result.original_bytes == len(before)


def test_small_photo_is_not_enlarged(tmp_path: Path) -> None:
    src = tmp_path / "s.jpg"
    scene(300, 200).save(src)
    result = process_one(PhotoJob(src, tmp_path / "o.jpg"), longest_side=1600)
    assert (result.width, result.height) == (300, 200)


def test_not_an_image_is_refused_clearly(tmp_path: Path) -> None:
    src = tmp_path / "notes.jpg"
    src.write_text("this is a shopping list, not a photo\n")
    with pytest.raises(PhotoError, match="not an image"):
        process_one(PhotoJob(src, tmp_path / "o.jpg"))
    assert not (tmp_path / "o.jpg").exists()


def test_truncated_photo_is_refused(tmp_path: Path) -> None:
    full = tmp_path / "full.jpg"
    camera_photo(full, size=(800, 600))
    cut = tmp_path / "cut.jpg"
    truncated(full, cut, keep=0.4)
    with pytest.raises(PhotoError, match="truncated"):
        process_one(PhotoJob(cut, tmp_path / "o.jpg"))


def test_empty_and_missing_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(PhotoError, match="empty"):
        process_one(PhotoJob(tmp_path / "empty.jpg", tmp_path / "o.jpg"))
    with pytest.raises(PhotoError, match="no such file"):
        process_one(PhotoJob(tmp_path / "nope.jpg", tmp_path / "o.jpg"))


def test_transparent_png_becomes_jpeg_on_white(tmp_path: Path) -> None:
    src = tmp_path / "a.png"
    Image.new("RGBA", (50, 40), (255, 0, 0, 0)).save(src)
    process_one(PhotoJob(src, tmp_path / "o.jpg"))
    assert Image.open(tmp_path / "o.jpg").getpixel((10, 10)) > (240, 240, 240)  # type: ignore[operator]


def test_batch_runs_in_parallel_and_reports_each_bad_photo(tmp_path: Path) -> None:
    jobs = []
    for i in range(4):
        src = tmp_path / f"p{i}.jpg"
        make_canary(src, [3, 6, 8, 1][i])
        jobs.append(PhotoJob(src, tmp_path / "out" / f"p{i}.jpg"))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    jobs.insert(2, PhotoJob(bad, tmp_path / "out" / "bad.jpg"))
    done: list[int] = []
    results = process_photos(jobs, longest_side=320, workers=2, on_done=lambda d, t: done.append(d))
    assert [type(r).__name__ for r in results] == ["ProcessedPhoto"] * 2 + ["PhotoError"] + [
        "ProcessedPhoto"
    ] * 2
    assert done == [1, 2, 3, 4, 5]
    for r in results:
        if not isinstance(r, PhotoError):
            _assert_clean(r.target)


@pytest.mark.skipif(not heic_supported(), reason="pillow-heif is not installed")
def test_heic_from_a_phone_is_converted(tmp_path: Path) -> None:
    import pillow_heif

    src = tmp_path / "phone.heic"
    pillow_heif.from_pillow(scene(320, 240)).save(str(src), quality=90)
    result = process_one(PhotoJob(src, tmp_path / "o.jpg"))
    assert (result.width, result.height) == (320, 240)
    _assert_clean(tmp_path / "o.jpg")


def test_watched_folder_reports_only_new_settled_photos(tmp_path: Path) -> None:
    (tmp_path / "old.jpg").write_bytes(jpeg_bytes(scene(20, 20)))
    watch = FolderWatch(tmp_path, settle=0.2)
    assert watch.poll() == []
    new = tmp_path / "new.jpg"
    new.write_bytes(jpeg_bytes(scene(20, 20))[:50])  # the sync client is still writing
    (tmp_path / "notes.txt").write_text("not a photo")
    t0 = time.monotonic()
    assert watch.poll(now=t0) == []
    new.write_bytes(jpeg_bytes(scene(20, 20)))  # finished, size changed
    assert watch.poll(now=t0 + 0.1) == []
    assert watch.poll(now=t0 + 0.5) == [new]
    assert watch.poll(now=t0 + 1.0) == []  # reported once


def test_watching_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        FolderWatch(tmp_path / "DCIM")
