"""Build-log and bug-report composition from journals, including incomplete ones."""

from __future__ import annotations

import io

from tests.community.fakes import assembly_session
from toolkit.community.bugreport import collect, signature
from toolkit.community.buildlog import compose
from toolkit.community.redact import Redactor
from toolkit.journeys.bug import prepare_bug
from toolkit.journeys.share import prepare_share
from toolkit.record import Journal

R = Redactor(b"s" * 32)


def test_build_log_has_steps_times_photos_and_firmware() -> None:
    j = assembly_session(photos=4, steps=2)
    log = compose(j, R)
    assert [s.status for s in log.steps] == ["done", "done"]
    assert [len(s.photos) for s in log.steps] == [2, 2]
    assert "### 1. Fit part 1 — 30.0 s ✓" in log.markdown
    assert "flash: ok, 1.0.0 → 1.1.0, via serial/tftp, slot B" in log.markdown
    assert "![Fit part 2, photo](step-step-2-1.jpg)" in log.markdown
    assert log.original_bytes > sum(len(b.data) for b in log.attachments)


def test_flash_session_recorded_after_assembly_is_folded_in() -> None:
    j = assembly_session(photos=1, steps=1, with_firmware=False)
    later = Journal.create("flash", board="es-virt")
    later.append(
        "flash",
        ok=True,
        via="ssh",
        path="cat",
        version_before="1.1.0",
        version_after="1.2.0",
        slot="A",
        bytes=1 << 20,
        seconds=4.0,
    )
    assert "1.1.0 → 1.2.0, via ssh/cat, slot A" in compose(j, R).markdown


def test_incomplete_journal_still_composes_with_warnings() -> None:
    j = Journal.create("assemble", board="es-virt")
    j.append("step_started", step="fan", title="Fan")
    j.append("photo", step="fan", path="files/photos/missing.jpg")
    j.append("photo", step="fan")
    j.append("step_skipped", step="ports", reason="no cable")
    j.append("mystery", anything=1)
    plan = prepare_share(j.id)
    assert [s.status for s in plan.log.steps] == ["started", "skipped"]  # type: ignore[union-attr]
    assert any("missing" in w for w in plan.warnings) and any(
        "no photos" in w for w in plan.warnings
    )
    assert [b.name for b in plan.blobs] == ["buildlog.html"]


def test_bug_context_names_failing_step_firmware_and_signature() -> None:
    j = assembly_session(photos=0, steps=2)
    j.append("step_started", step="step-3", title="Seat the fan")
    j.append("step_finished", step="step-3", ok=False, error="fan rpm 0", error_class="CheckFailed")
    ctx = collect(j)
    assert (ctx.board, ctx.hardware_rev, ctx.firmware, ctx.slot) == (
        "es-virt",
        "virt-1",
        "1.1.0",
        "B",
    )
    assert (ctx.step, ctx.error_class) == ("step-3", "CheckFailed")
    assert ctx.selftest == {"fan": "ok", "radio": "absent on the virtual sample"}
    assert ctx.signature == signature("es-virt", "1.1.0", "step-3", "CheckFailed")
    assert ctx.signature != signature("es-virt", "1.1.0", "step-3", "VerifyError")
    plan, _ = prepare_bug("Fan", session_id=j.id, remote=lambda cmd: f"output of {cmd}")
    assert ctx.signature in plan.item.body and "output of dmesg" in plan.item.body
    assert "### Selftest" in plan.item.body and "### Last verify" in plan.item.body


def test_explicit_step_overrides_the_guess() -> None:
    j = assembly_session(photos=0, steps=2)
    assert collect(j, step="step-1").step == "step-1"


def test_bug_without_any_session_is_still_reportable() -> None:
    plan, ctx = prepare_bug("Box arrived without screws")
    assert ctx.board == "unknown" and plan.warnings


def test_records_as_the_assembly_engine_writes_them_with_its_real_photo_pipeline() -> None:
    """The field names of toolkit.journeys.assemble and photos from toolkit.guide.photos."""
    from PIL import Image

    from tests.community.fakes import jpeg
    from toolkit.guide.photos import PhotoJob, process_photos

    j = Journal.create("assemble", board="es-virt")
    j.append("step_started", step="fan", index=3, total=9, title="Fit the fan")
    exif = Image.Exif()
    exif[0x010E] = "serial: ESPIPE0001"
    src = j.store_bytes("originals/fan-top.jpg", jpeg(2000, 1500, seed=4, exif=exif))
    (res,) = process_photos(
        [PhotoJob(src, j.files_dir / "photos" / "fan-top.jpg")], longest_side=800
    )
    assert not isinstance(res, Exception)
    j.append(
        "photo",
        step="fan",
        photo="fan-top",
        sha256=res.sha256,
        original=j.relpath(res.source),
        processed=j.relpath(res.target),
        bytes=res.bytes,
        original_bytes=res.original_bytes,
        width=res.width,
        height=res.height,
        source="path",
    )
    j.append(
        "check",
        step="fan",
        check="fan-spins",
        kind="fan_rpm",
        automatic=True,
        ok=False,
        detail="0 rpm",
        attempt=1,
        error_class="CheckFailed",
        error="0 rpm",
    )
    j.append("step_finished", step="fan", index=3, seconds=75.5)
    plan = prepare_share(j.id)
    (photo,) = [b for b in plan.blobs if b.mime == "image/jpeg"]
    with Image.open(io.BytesIO(photo.data)) as sent:  # rebuilt from pixels once more, same picture
        assert sent.size == (res.width, res.height) and not sent.getexif()
    assert b"ESPIPE0001" not in photo.data
    assert plan.original_bytes == res.original_bytes
    assert (
        "### 1. Fit the fan — 1 min 16 s ✓" in plan.item.body
        and "check `fan-spins`: failed 0 rpm" in plan.item.body
    )
    ctx = collect(j)
    assert (ctx.step, ctx.error_class) == ("fan", "CheckFailed")
