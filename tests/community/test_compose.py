"""Build-log and bug-report composition from journals, including incomplete ones."""

from __future__ import annotations

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
    later.append("flash", ok=True, via="ssh", path="cat", version_before="1.1.0", version_after="1.2.0", slot="A",
                 bytes=1 << 20, seconds=4.0)
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
    assert any("missing" in w for w in plan.warnings) and any("no photos" in w for w in plan.warnings)
    assert [b.name for b in plan.blobs] == ["buildlog.html"]


def test_bug_context_names_failing_step_firmware_and_signature() -> None:
    j = assembly_session(photos=0, steps=2)
    j.append("step_started", step="step-3", title="Seat the fan")
    j.append("step_finished", step="step-3", ok=False, error="fan rpm 0", error_class="CheckFailed")
    ctx = collect(j)
    assert (ctx.board, ctx.hardware_rev, ctx.firmware, ctx.slot) == ("es-virt", "virt-1", "1.1.0", "B")
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
