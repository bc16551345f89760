"""The assembly journey: walk a guide step by step, take photos, run checks, record everything.

The journey never prints or reads the keyboard. Questions go to a :class:`Prompter` (the CLI
implements it with rich; :class:`toolkit.guide.answers.AnswersPrompter` answers from a file;
tests script one), progress goes to a :class:`toolkit.events.Reporter`, and the device is
reached through an injected ``device`` factory used only by automatic checks.

Resume: every fact is a journal record *before* the journey moves on (see
:mod:`toolkit.guide.state` for the record schema), so after Ctrl-C, a crash or a SIGKILL,
``resume`` replays the journal and continues at the exact step: photos already taken and
checks already passed are not asked again, and no record is written twice.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from toolkit.errors import PhotoError, SessionMismatch, SessionNotFound
from toolkit.events import NullReporter, Reporter
from toolkit.guide.checks import CheckRegistry, CheckResult, Device, default_registry
from toolkit.guide.model import Guide, PhotoSpec, Step
from toolkit.guide.photos import DEFAULT_LONGEST_SIDE, DEFAULT_QUALITY, PhotoJob, process_photos
from toolkit.guide.prompts import FailAction, PhotoInput, Prompter, StepView
from toolkit.guide.state import AssemblyState, StepState, replay
from toolkit.record import Journal

KIND = "assemble"


@dataclass
class PhotoOptions:
    longest_side: int = DEFAULT_LONGEST_SIDE
    quality: int = DEFAULT_QUALITY
    workers: int | None = None


@dataclass
class AssemblyResult:
    session_id: str
    finished: bool
    stopped: bool  # the tester chose to stop after a failed check
    steps_done: list[str] = field(default_factory=list)
    steps_skipped: list[str] = field(default_factory=list)
    photos: int = 0
    seconds: float = 0.0
    failed_checks: list[str] = field(default_factory=list)  # "step/check" not passed nor waived
    waived_checks: list[str] = field(default_factory=list)  # "step/check" failed, then waived


def bug_command(session_id: str, step: str, check: str) -> str:
    """The command that files a bug for a failed check (``routerkit bug`` is its own journey)."""
    return "routerkit bug " + " ".join(
        shlex.quote(a)
        for a in (f"assembly check {check} failed", "--session", session_id, "--step", step)
    )


# --- sessions ---------------------------------------------------------------------------------


def _unfinished(journal: Journal) -> bool:
    return journal.last("assembly_finished") is None


def open_session(
    board: str, guide: Guide, *, resume: bool = False, session_id: str | None = None
) -> tuple[Journal, bool]:
    """A new assembly session, or the one to resume. Returns (journal, resumed)."""
    if session_id:
        journal = Journal.open(session_id)
        head = journal.header
        if head.get("kind") != KIND:
            raise SessionMismatch(
                f"session {session_id} is a {head.get('kind')!r} session, not an assembly"
            )
        if head.get("board") != board:
            raise SessionMismatch(
                f"session {session_id} assembles board {head.get('board')!r}, not {board!r}",
                hint=f"resume it with --board {head.get('board')}",
            )
        return journal, True
    if resume:
        latest = Journal.latest(kind=KIND)
        if latest is None:
            raise SessionNotFound(
                "no assembly session to resume", hint="start one with `routerkit assemble`"
            )
        if latest.board != board:
            raise SessionMismatch(
                f"the last assembly session ({latest.id}) is for board {latest.board!r}, not {board!r}",
                hint=f"resume it with --board {latest.board}, or pick one with --session ID",
            )
        if not _unfinished(latest):
            raise SessionNotFound(f"the last assembly session ({latest.id}) is already complete")
        return latest, True
    journal = Journal.create(
        KIND,
        board=board,
        guide=str(guide.path),
        guide_title=guide.title,
        guide_sha256=guide.sha256,
        steps_total=len(guide.steps),
    )
    return journal, False


# --- the journey ------------------------------------------------------------------------------


class Assembly:
    """One run of the assembly journey over a session journal."""

    def __init__(
        self,
        journal: Journal,
        guide: Guide,
        prompter: Prompter,
        *,
        reporter: Reporter | None = None,
        device: Callable[[], Device] | None = None,
        registry: CheckRegistry | None = None,
        photos: PhotoOptions | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.journal = journal
        self.guide = guide
        self.prompter = prompter
        self.reporter: Reporter = reporter or NullReporter()
        self._device_factory = device
        self._device: Device | None = None
        self.registry = registry or default_registry()
        self.photo_options = photos or PhotoOptions()
        self.clock = clock
        self.state: AssemblyState = replay(journal.events(), guide)
        self._current: str | None = None

    # -- helpers --

    def _device_for_checks(self) -> Device:
        if self._device is None:
            self._device = (
                self._device_factory()
                if self._device_factory
                else Device(unavailable="no device connected to this assembly session")
            )
        return self._device

    def _view(self, step: Step, st: StepState, seg_start: float, resumed: bool) -> StepView:
        running = self.clock() - seg_start
        others = sum(s.seconds for sid, s in self.state.steps.items() if sid != step.id)
        return StepView(
            self.journal.id,
            self.guide,
            step,
            self.guide.index(step.id),
            len(self.guide.steps),
            others + st.seconds + running,
            st.seconds + running,
            resumed,
            tuple(st.photos),
            tuple(sorted(st.checks_ok)),
        )

    # -- run --

    def run(self) -> AssemblyResult:
        """Walk every step not yet done. Ctrl-C leaves a ``paused`` record and re-raises."""
        if self.state.finished:
            return self._result(stopped=False)
        if len(self.journal.events()) > 1:
            if self.journal.header.get("guide_sha256") not in (None, self.guide.sha256):
                self.reporter.message(
                    "the guide changed since this session started; continuing by step id", "warning"
                )
            nxt = self.state.current or next(
                (s.id for s in self.guide.steps if not self.state.step(s.id).done), None
            )
            self.journal.append(
                "resumed",
                step=nxt,
                index=self.guide.index(nxt) if nxt else None,
                guide_sha256=self.guide.sha256,
            )
        try:
            for step in self.guide.steps:
                if self.state.step(step.id).done:
                    continue
                self._current = step.id
                if self._run_step(step) == "stop":
                    self.journal.append(
                        "paused", step=step.id, reason="stopped after a failed check"
                    )
                    return self._result(stopped=True)
            self._current = None
        except KeyboardInterrupt:
            self.journal.append("paused", step=self._current, reason="interrupted")
            raise
        done = [s.id for s in self.guide.steps if self.state.step(s.id).finished]
        skipped = [s.id for s in self.guide.steps if self.state.step(s.id).skipped]
        self.journal.append(
            "assembly_finished",
            steps_done=len(done),
            steps_skipped=len(skipped),
            seconds=round(self.state.active_seconds(), 1),
        )
        self.state.finished = True
        return self._result(stopped=False)

    def _result(self, stopped: bool) -> AssemblyResult:
        st = self.state.steps
        failed = []
        for rec in self.journal.events("check"):
            key = f"{rec.get('step')}/{rec.get('check')}"
            passed = st.get(str(rec.get("step")), StepState()).checks_ok
            if not rec.get("ok") and rec.get("check") not in passed and key not in failed:
                failed.append(key)
        return AssemblyResult(
            self.journal.id,
            self.state.finished,
            stopped,
            [s.id for s in self.guide.steps if st[s.id].finished],
            [s.id for s in self.guide.steps if st[s.id].skipped],
            len(self.journal.events("photo")),
            round(self.state.active_seconds(), 1),
            failed,
            [f"{r.get('step')}/{r.get('check')}" for r in self.journal.events("check_waived")],
        )

    def _run_step(self, step: Step) -> str:
        st = self.state.step(step.id)
        resumed = st.started
        seg_start = self.clock()
        index = self.guide.index(step.id)
        self.prompter.show_step(self._view(step, st, seg_start, resumed))
        reason = self.prompter.skip_reason(self._view(step, st, seg_start, resumed))
        if reason:
            self._finish(step, st, seg_start, skipped=reason)
            return "skipped"
        if not st.started:
            self.journal.append(
                "step_started",
                step=step.id,
                index=index,
                total=len(self.guide.steps),
                title=step.title,
            )
            st.started = True
        self.reporter.step_started(f"step {index}/{len(self.guide.steps)}: {step.title}")
        self._take_photos(step, st, seg_start, resumed)
        outcome = self._run_checks(step, st, seg_start, resumed)
        if outcome == "stop":
            return "stop"
        if isinstance(outcome, str) and outcome.startswith("skip:"):
            self._finish(step, st, seg_start, skipped=outcome[5:])
            return "skipped"
        self._finish(step, st, seg_start)
        return "done"

    def _finish(
        self, step: Step, st: StepState, seg_start: float, skipped: str | None = None
    ) -> None:
        seconds = round(st.seconds + self.clock() - seg_start, 1)
        index = self.guide.index(step.id)
        if skipped is not None:
            self.journal.append(
                "step_skipped", step=step.id, index=index, reason=skipped, seconds=seconds
            )
            st.skipped = True
        else:
            self.journal.append("step_finished", step=step.id, index=index, seconds=seconds)
            st.finished = True
        st.seconds = seconds
        label = f"step {index}/{len(self.guide.steps)}: {step.title}"
        self.reporter.step_finished(
            label, skipped is None, seconds, f"skipped: {skipped}" if skipped else ""
        )

    # -- photos --

    def _store_original(self, step: Step, spec: PhotoSpec, given: PhotoInput) -> Path:
        base = f"photos/{step.id}/{spec.id}.orig"
        if given.data is not None:
            return self.journal.store_bytes(base + given.suffix, given.data)
        assert given.path is not None
        path = Path(given.path).expanduser()
        if path.is_dir():
            raise PhotoError(f"{path}: is a folder, not a photo")
        if not path.is_file():
            raise PhotoError(f"{path}: no such file")
        try:
            return self.journal.store_file(path, base + (path.suffix.lower() or ".bin"))
        except OSError as err:
            raise PhotoError(f"{path}: cannot read: {err.strerror or err}") from None

    def _take_photos(self, step: Step, st: StepState, seg_start: float, resumed: bool) -> None:
        problems: dict[str, PhotoError | None] = {
            p.id: None for p in step.photos if p.id not in st.photos
        }
        while problems:
            jobs: list[tuple[PhotoSpec, PhotoInput, PhotoJob]] = []
            for spec in step.photos:
                if spec.id not in problems:
                    continue
                given = self.prompter.photo(
                    self._view(step, st, seg_start, resumed), spec, problems[spec.id]
                )
                try:
                    original = self._store_original(step, spec, given)
                except PhotoError as err:
                    problems[spec.id] = err
                    self.reporter.message(str(err), "error")
                    continue
                target = self.journal.files_dir / "photos" / step.id / f"{spec.id}.jpg"
                jobs.append((spec, given, PhotoJob(original, target)))
            if not jobs:
                continue
            results = process_photos(
                [j[2] for j in jobs],
                longest_side=self.photo_options.longest_side,
                quality=self.photo_options.quality,
                workers=self.photo_options.workers,
            )
            for (spec, given, job), res in zip(jobs, results, strict=True):
                if isinstance(res, PhotoError):
                    problems[spec.id] = res
                    self.reporter.message(str(res), "error")
                    job.source.unlink(missing_ok=True)  # rejected: not evidence of anything
                    continue
                rec = self.journal.append(
                    "photo",
                    step=step.id,
                    photo=spec.id,
                    sha256=res.sha256,
                    original=self.journal.relpath(res.source),
                    processed=self.journal.relpath(res.target),
                    bytes=res.bytes,
                    original_bytes=res.original_bytes,
                    width=res.width,
                    height=res.height,
                    source=given.source,
                )
                st.photos[spec.id] = rec
                del problems[spec.id]
                self.reporter.message(
                    f"📷 {spec.id}: {res.width}×{res.height}, {res.bytes // 1024} KiB, "
                    f"no metadata (original sha256 {res.sha256[:12]}…)"
                )

    # -- checks --

    def _run_checks(self, step: Step, st: StepState, seg_start: float, resumed: bool) -> str | None:
        for check in step.checks:
            if check.id in st.checks_ok:
                continue
            while True:
                attempt = st.attempts.get(check.id, 0) + 1
                view = self._view(step, st, seg_start, resumed)
                if check.manual:
                    ok = self.prompter.confirm(view, check)
                    result = CheckResult(
                        ok, "confirmed by the tester" if ok else "the tester answered no"
                    )
                else:
                    label = f"check: {check.prompt}"
                    self.reporter.step_started(label, check.kind)
                    t0 = self.clock()
                    result = self.registry.run(check.kind, self._device_for_checks(), check.params)
                    self.reporter.step_finished(label, result.ok, self.clock() - t0, result.detail)
                extra: dict[str, object] = {"data": result.data} if result.data else {}
                if not result.ok:  # the bug reporter groups failures by error class
                    extra.update(error_class="CheckFailed", error=result.detail)
                self.journal.append(
                    "check",
                    step=step.id,
                    check=check.id,
                    kind=check.kind,
                    automatic=not check.manual,
                    ok=result.ok,
                    detail=result.detail,
                    attempt=attempt,
                    **extra,
                )
                st.attempts[check.id] = attempt
                if result.ok:
                    st.checks_ok.add(check.id)
                    break
                action, reason = self.prompter.check_failed(
                    view, check, result, bug_command(self.journal.id, step.id, check.id)
                )
                if action is FailAction.RETRY:
                    continue
                if action is FailAction.WAIVE:
                    self.journal.append(
                        "check_waived",
                        step=step.id,
                        check=check.id,
                        reason=reason or "waived by the tester",
                    )
                    st.checks_ok.add(check.id)
                    break
                if action is FailAction.SKIP:
                    return "skip:" + (reason or f"check {check.id} failed: {result.detail}")
                return "stop"
        return None


def run_assembly(
    board: str,
    guide: Guide,
    prompter: Prompter,
    *,
    resume: bool = False,
    session_id: str | None = None,
    reporter: Reporter | None = None,
    device: Callable[[], Device] | None = None,
    registry: CheckRegistry | None = None,
    photos: PhotoOptions | None = None,
    on_session: Callable[[Journal, bool], None] | None = None,
) -> AssemblyResult:
    """Open (or resume) a session and walk the guide. ``on_session`` sees the journal first."""
    journal, resumed = open_session(board, guide, resume=resume, session_id=session_id)
    if on_session:
        on_session(journal, resumed)
    return Assembly(
        journal, guide, prompter, reporter=reporter, device=device, registry=registry, photos=photos
    ).run()
