"""The bisect journey: find the first bad build of a channel on a real bench.

``git bisect run`` for *signed binary builds*: the channel's builds between a known good and a
known bad one (TUF-verified, in version order) are flashed one at a time, the middle one
first; each is booted (the flash journey verifies the running version) and a command is run
on the host: exit 0 means good, 125 skip (as with ``git bisect run``), anything else bad. A
build that cannot be fetched, flashed or booted is a *skip*, never a *bad*: the bench, not the
behaviour, failed. About log2(n) flashes name the first bad build.

Everything is recorded in the session journal (``bisect_started`` with the build list,
``bisect_step_started``/``bisect_step`` per build, ``bisect_done``), and the journal *is* the
state: after Ctrl-C or a power cut, running the same bisect again continues the unfinished
session, repeating no finished step (an unfinished one is redone: its flash may have been cut).
Each step's flash records and console recordings land in the same session.

:class:`Bisection` is the pure planner; :class:`Bench` says how a step reaches the device
(:class:`ChannelBench`: pull from the channel, flash with :func:`toolkit.journeys.flash.flash`,
run the command), so tests drive the whole loop with a fake bench.
"""

from __future__ import annotations

import math
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from toolkit.errors import (
    ConfigError,
    ConsentRequired,
    Interrupted,
    RouterkitError,
    ToolMissingError,
)
from toolkit.events import NullReporter, Reporter, step
from toolkit.record import Journal

GOOD, BAD, SKIP = "good", "bad", "skip"
SKIP_EXIT = 125  # like `git bisect run`: "this build cannot be tested"
KIND = "bisect"

# Errors that say nothing about the build but about the set-up: they stop the bisect.
_FATAL = (ConfigError, ToolMissingError, ConsentRequired, Interrupted)


@dataclass(frozen=True)
class Build:
    """One build of the channel: its version and what the channel says about it."""

    version: str
    notes: dict[str, Any] | None = None
    sha256: str = ""


@dataclass(frozen=True)
class Verdict:
    """Where a bisection stands: ``next`` to test, or (when ``next`` is None) the answer."""

    next: str | None
    last_good: str
    first_bad: str
    #: builds between the two that were skipped: the first bad one may be any of them
    undecided: tuple[str, ...] = ()

    @property
    def done(self) -> bool:
        return self.next is None


class Bisection:
    """The planner: ``versions`` oldest first, the first known good and the last known bad."""

    def __init__(self, versions: Sequence[str]) -> None:
        if len(versions) < 2:
            raise ConfigError("a bisect needs a good and a bad build")
        self.versions = list(versions)

    def verdict(self, results: dict[str, str]) -> Verdict:
        """The next build to test given ``results`` (version → good/bad/skip), or the answer.

        The first build is good and the last bad by definition. The range is the highest good
        build below the lowest bad one; among the untested builds strictly inside it, the one
        nearest the middle is next (skipped builds are stepped around).
        """
        index = {v: i for i, v in enumerate(self.versions)}
        n = len(self.versions)
        bads = [index[v] for v, r in results.items() if r == BAD and v in index]
        hi = min([n - 1, *bads])
        goods = [index[v] for v, r in results.items() if r == GOOD and index.get(v, n) < hi]
        lo = max([0, *goods])
        inside = range(lo + 1, hi)
        candidates = [i for i in inside if self.versions[i] not in results]
        if not candidates:
            skipped = tuple(self.versions[i] for i in inside)
            return Verdict(None, self.versions[lo], self.versions[hi], skipped)
        middle = (lo + hi) / 2
        pick = min(candidates, key=lambda i: (abs(i - middle), i))
        return Verdict(self.versions[pick], self.versions[lo], self.versions[hi])

    def worst_case_flashes(self) -> int:
        """Flashes a bisection needs at most without skips: ceil(log2(number of answers))."""
        return math.ceil(math.log2(len(self.versions) - 1)) if len(self.versions) > 2 else 0


@dataclass
class StepOutcome:
    """What one step found out about a build."""

    result: str  # good | bad | skip
    reason: str = ""
    exit_code: int | None = None
    flash_seconds: float = 0.0
    test_seconds: float = 0.0
    log: str | None = None  # the command's output, in the session


class Bench(Protocol):
    """How a bisect reaches the device; :class:`ChannelBench` is the real one."""

    def builds(self) -> list[Build]:
        """Every build the channel lists for the board, oldest first."""
        ...

    def install(self, build: Build, journal: Journal, reporter: Reporter) -> None:
        """Fetch, flash and boot ``build``; raises a RouterkitError when it cannot."""
        ...

    def test(self, build: Build, journal: Journal, log: Path) -> int:
        """Run the test against the running ``build``; its exit status."""
        ...

    def describe(self) -> dict[str, Any]:
        """What identifies this bisect for a resume (channel, board, target, command)."""
        ...


@dataclass
class BisectSummary:
    session: str
    channel: str
    board: str
    target: str
    command: list[str]
    good: str
    bad: str
    builds: list[str]
    first_bad: str
    last_good: str
    undecided: list[str]
    first_bad_notes: dict[str, Any] | None
    steps: list[dict[str, Any]]
    flashes: int  # flashes this bisect did (all runs of it, resumed ones included)
    worst_case_flashes: int  # ceil(log2(answers)): the bound without skips
    linear_flashes: int  # what testing the builds one by one from the good end would need
    seconds: float  # wall time of all runs
    runs: int  # 1 + number of resumes
    exact: bool = True  # False when skipped builds leave the answer among several

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _identity(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: spec.get(k) for k in ("channel", "board", "target", "command", "good", "bad")}


def resumable(spec: dict[str, Any]) -> Journal | None:
    """The newest unfinished bisect session with the same channel, board, target, command,
    good and bad builds, if any."""
    wanted = _identity(spec)
    for journal in reversed(Journal.all()):
        if journal.header.get("kind") != KIND:
            continue
        started = journal.last("bisect_started")
        if started is None or _identity(started) != wanted:
            continue
        return None if journal.last("bisect_done") is not None else journal
    return None


def _between(builds: list[Build], good: str, bad: str) -> list[Build]:
    from toolkit.firmware.versions import InvalidVersion, parse_version

    versions = [b.version for b in builds]
    listed = len(builds)
    for name, version in (("good", good), ("bad", bad)):
        if version not in versions:
            raise ConfigError(
                f"the {name} build {version} is not in the channel ({listed} builds listed)",
                hint="`routerkit firmware list --all` shows the history the channel keeps",
            )
    try:
        low, high = parse_version(good), parse_version(bad)
        if not low < high:
            raise ConfigError(f"the good build {good} must be older than the bad build {bad}")
        return [b for b in builds if low <= parse_version(b.version) <= high]
    except InvalidVersion as exc:
        raise ConfigError(f"cannot order the channel's versions: {exc}") from None


def bisect(
    bench: Bench,
    good: str,
    bad: str,
    *,
    reporter: Reporter | None = None,
    journal: Journal | None = None,
    fresh: bool = False,
) -> BisectSummary:
    """Bisect the builds between ``good`` and ``bad`` on ``bench``; resumes an unfinished
    identical bisect unless ``fresh`` (or ``journal`` names the session to continue)."""
    reporter = reporter or NullReporter()
    spec = {**bench.describe(), "good": good, "bad": bad}
    if journal is None and not fresh:
        journal = resumable(spec)
    if journal is not None and journal.last("bisect_started") is not None:
        started = journal.last("bisect_started") or {}
        if _identity(started) != _identity(spec):
            raise ConfigError(
                f"session {journal.id} bisects something else",
                hint="run without --session to start a new bisect",
            )
        builds = [Build(**b) for b in started["builds"]]
        journal.append("bisect_resumed", runs=len(journal.events("bisect_resumed")) + 2)
    else:
        with step(reporter, "channel", f"builds between {good} and {bad}"):
            builds = _between(bench.builds(), good, bad)
        if journal is None:
            journal = Journal.create(KIND, board=spec.get("board"), target=spec.get("target"))
        journal.append("bisect_started", **spec, builds=[asdict(b) for b in builds])
    plan = Bisection([b.version for b in builds])
    by_version = {b.version: b for b in builds}
    run_start = time.monotonic()
    try:
        while True:
            results = {r["version"]: r["result"] for r in journal.events("bisect_step")}
            verdict = plan.verdict(results)
            if verdict.done:
                break
            build = by_version[str(verdict.next)]
            left = verdict_range(plan, verdict)
            journal.append("bisect_step_started", version=build.version, remaining=left)
            with step(reporter, f"bisect {build.version}", f"{left} builds left to tell apart"):
                outcome = _run_step(bench, build, journal, reporter)
            journal.append("bisect_step", version=build.version, **asdict(outcome))
    finally:
        journal.append("bisect_run", seconds=round(time.monotonic() - run_start, 3))
    summary = summarize(journal)
    journal.append("bisect_done", **summary.to_dict())
    return summary


def verdict_range(plan: Bisection, verdict: Verdict) -> int:
    """How many builds are still possible answers (for progress messages)."""
    versions = plan.versions
    return versions.index(verdict.first_bad) - versions.index(verdict.last_good)


def _run_step(bench: Bench, build: Build, journal: Journal, reporter: Reporter) -> StepOutcome:
    start = time.monotonic()
    try:
        bench.install(build, journal, reporter)
    except _FATAL:
        raise
    except RouterkitError as exc:
        return StepOutcome(
            SKIP,
            reason=f"could not flash or boot it: {type(exc).__name__}: {exc}",
            flash_seconds=round(time.monotonic() - start, 3),
        )
    flashed = time.monotonic()
    index = len(journal.events("bisect_step_started"))
    log = journal.files_dir / f"bisect-{index:02d}-{_safe(build.version)}.log"
    code = bench.test(build, journal, log)
    done = time.monotonic()
    result = GOOD if code == 0 else SKIP if code == SKIP_EXIT else BAD
    reason = {GOOD: "the command passed", SKIP: "the command said skip (exit 125)"}.get(
        result, f"the command failed (exit {code})"
    )
    return StepOutcome(
        result,
        reason=reason,
        exit_code=code,
        flash_seconds=round(flashed - start, 3),
        test_seconds=round(done - flashed, 3),
        log=journal.relpath(log) if log.exists() else None,
    )


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text)[:60]


def summarize(journal: Journal) -> BisectSummary:
    """The bisect's answer and history, from its journal alone."""
    started = journal.last("bisect_started")
    if started is None:
        raise ConfigError(f"session {journal.id} is not a bisect")
    builds = [Build(**b) for b in started["builds"]]
    plan = Bisection([b.version for b in builds])
    steps = journal.events("bisect_step")
    results = {s["version"]: s["result"] for s in steps}
    verdict = plan.verdict(results)
    notes = next((b.notes for b in builds if b.version == verdict.first_bad), None)
    versions = plan.versions
    first_bad_at = versions.index(verdict.first_bad)
    keep = ("version", "result", "reason", "exit_code", "flash_seconds", "test_seconds", "log")
    return BisectSummary(
        session=journal.id,
        channel=str(started.get("channel")),
        board=str(started.get("board")),
        target=str(started.get("target")),
        command=list(started.get("command") or []),
        good=str(started.get("good")),
        bad=str(started.get("bad")),
        builds=versions,
        first_bad=verdict.first_bad,
        last_good=verdict.last_good,
        undecided=list(verdict.undecided),
        first_bad_notes=notes,
        steps=[{k: s.get(k) for k in keep} for s in steps],
        flashes=len(journal.events("bisect_step_started")),
        worst_case_flashes=plan.worst_case_flashes(),
        # one by one from the good end: every build up to and including the first bad one
        linear_flashes=min(first_bad_at, len(versions) - 2) if first_bad_at else 0,
        seconds=round(sum(float(r.get("seconds", 0)) for r in journal.events("bisect_run")), 3),
        runs=1 + len(journal.events("bisect_resumed")),
        exact=not verdict.undecided or not verdict.done,
    )


# --- the real bench -------------------------------------------------------------------------


@dataclass
class ChannelBench:
    """Builds from a TUF channel, flashed onto ``target`` with the flash journey, tested by
    running ``command`` on this machine (with ``ROUTERKIT_BISECT_*`` in its environment)."""

    channel: str
    target: Any  # toolkit.targets.Target
    command: list[str]
    via: str = "ssh"
    url: str | None = None
    root: Path | None = None
    cache: Path | None = None
    timeout: float | None = None  # flash: boot/reconnect timeout
    test_timeout: float | None = None
    authorized_key: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    transfer_path: str = "auto"
    chunk_size: int | None = None
    #: how the flash reaches the device (see :func:`toolkit.journeys.flash.flash`); None: the
    #: target's real ports and switches
    console: Callable[..., Any] | None = None
    power: Callable[..., Any] | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "board": self.target.board,
            "target": self.target.name,
            "command": list(self.command),
            "via": self.via,
        }

    def builds(self) -> list[Build]:
        from toolkit.firmware.channels import list_images

        images = list_images(
            self.channel, self.target.board, url=self.url, root=self.root, cache=self.cache
        )
        out = []
        for image in reversed(images):  # oldest first
            out.append(Build(image.version, image.notes, image.sha256))
        return out

    def install(self, build: Build, journal: Journal, reporter: Reporter) -> None:
        from toolkit.errors import ChannelError
        from toolkit.firmware.channels import pull
        from toolkit.journeys.flash import FlashOptions, flash

        pulled = pull(
            self.channel,
            self.target.board,
            url=self.url,
            root=self.root,
            cache=self.cache,
            version=build.version,
            allow_downgrade=True,  # a bisect walks back in time on purpose
            reporter=reporter,
        )
        if build.sha256 and pulled.image.sha256 != build.sha256:
            raise ChannelError(
                f"the channel now serves other bytes for {build.version} than when the bisect "
                "started"
            )
        options = FlashOptions(
            via=self.via,
            path=self.transfer_path,
            allow_downgrade=True,
            timeout=self.timeout,
            authorized_key=self.authorized_key,
            chunk_size=self.chunk_size,
        )
        flash(
            pulled.path,
            self.target,
            options,
            reporter,
            journal,
            console=self.console,
            power=self.power,
        )

    def test(self, build: Build, journal: Journal, log: Path) -> int:
        """Run the command on the target the bisect just flashed: ``ROUTERKIT_TARGET`` names
        it as ``--target`` does, so routerkit's pytest plugin (which takes it for
        ``--routerkit-target``) and ``routerkit`` commands reach that same device; a labgrid
        place the bisect holds is theirs to use (``coordinator.HELD_ENV``)."""
        from toolkit.coordinator import HELD_ENV

        env = dict(os.environ)
        env.update(self.env)
        env.update(
            {
                "ROUTERKIT_BISECT_VERSION": build.version,
                "ROUTERKIT_BISECT_SESSION": journal.id,
                "ROUTERKIT_TARGET": self.target.spec,
                "ROUTERKIT_BOARD": self.target.board,
            }
        )
        if self.target.labgrid_place:
            env[HELD_ENV] = self.target.labgrid_place
        if self.target.ssh_host:
            env["ROUTERKIT_SSH_HOST"] = str(self.target.ssh_host)
            env["ROUTERKIT_SSH_PORT"] = str(self.target.ssh_port)
        log.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "wb") as out:
            try:
                proc = subprocess.run(
                    self.command,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    timeout=self.test_timeout,
                    check=False,
                )
            except FileNotFoundError:
                raise ConfigError(f"cannot run {self.command[0]!r}: no such program") from None
            except subprocess.TimeoutExpired:
                out.write(f"\n[routerkit: no answer within {self.test_timeout} s]\n".encode())
                return 1  # a hang is a failure of the behaviour: bad
        return proc.returncode


@dataclass(frozen=True)
class BugMaterial:
    """What ``routerkit bug --from-bisect`` files: a title, the session, files to attach."""

    title: str
    session: str
    attach: tuple[Path, ...]


def bug_material(session_id: str | None = None) -> BugMaterial:
    """Title and attachments for a report on a bisect's answer (default: the newest bisect):
    the summary (JSON, redacted like every attachment) and the first bad build's test output.
    The session's console recording is attached by the bug journey itself."""
    import json

    from toolkit.errors import NotFoundError

    journal = Journal.open(session_id) if session_id else Journal.latest(kind=KIND)
    if journal is None or journal.last("bisect_started") is None:
        raise NotFoundError("no bisect session to report on", hint="run `routerkit bisect` first")
    summary = summarize(journal)
    data = json.dumps(summary.to_dict(), indent=1, default=str).encode()
    files = [journal.store_bytes("bisect-summary.json", data)]
    failing = next(
        (s for s in summary.steps if s["version"] == summary.first_bad and s.get("log")), None
    )
    if failing is not None and (journal.dir / str(failing["log"])).is_file():
        files.append(journal.dir / str(failing["log"]))
    if summary.undecided:
        title = (
            f"Regression on {summary.board}: first bad build is one of "
            f"{', '.join([*summary.undecided, summary.first_bad])} (last good {summary.last_good})"
        )
    else:
        title = (
            f"Regression on {summary.board} from {summary.first_bad} "
            f"(last good {summary.last_good})"
        )
    return BugMaterial(title, journal.id, tuple(files))
