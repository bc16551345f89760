"""Flash every target of a lab in parallel: threads over the one SSH flash journey.

No second SSH stack: each worker runs :func:`toolkit.journeys.flash.flash` with ``via="ssh"``
(same host-key rules, same retries, one session journal per target). fabric's ThreadingGroup
would add a second connection model whose host-key policy must be overridden anyway (it
hard-codes AutoAddPolicy); a thread pool over our own code is smaller and keeps the rules in
one place.

A fleet may mix boards: it takes one image per board, and each target gets the image whose
signed ``supported_devices`` match its board (the ``board`` of its lab entry) — the same rule
:func:`~toolkit.firmware.verify.verify_image` applies. Each image is read and verified once on
the host, before any target is touched, and exactly those verified bytes are what every
target of its board is sent. Two images for one board are refused (nothing is flashed); a
target whose board has no image fails on its own, untouched, and the others go on.

A failure on one target never stops the others. The fleet itself has a journal (kind
``fleet``) keyed by the lab file and the images' sha256: rerunning an interrupted fleet
continues that journal and skips targets it records as done with the image they would get
now, unless ``force``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.errors import BoardMismatchError, ConfigError, RouterkitError
from toolkit.events import NullReporter, Reporter
from toolkit.journeys.flash import FlashOptions
from toolkit.record import Journal
from toolkit.targets import Target

if TYPE_CHECKING:
    from toolkit.boards import Board
    from toolkit.firmware.verify import VerifiedImage


@dataclass
class TargetOutcome:
    name: str
    status: str  # done | skipped | failed
    ok: bool
    seconds: float = 0.0
    version_before: str | None = None
    version_after: str | None = None
    slot: str | None = None
    session: str | None = None
    error: str | None = None
    error_class: str | None = None
    exit_code: int = 0
    board: str | None = None
    #: The image this target was given (None: its board has none among the fleet's images).
    image: str | None = None
    image_sha256: str | None = None
    image_version: str | None = None


@dataclass
class FleetImage:
    """One image of a fleet run: read once, its signature checked, then verified for a board.

    ``boards`` are the lab's boards it serves, ``targets`` the targets of this run it went to.
    """

    path: Path
    sha256: str
    version: str
    supported_devices: list[str]
    boards: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    #: The bytes read (signature checked, not yet the rest).
    raw: bytes = field(default=b"", repr=False, compare=False)
    #: What :func:`~toolkit.firmware.verify.verify_image` passed; its ``data`` is what is sent.
    verified: VerifiedImage | None = field(default=None, repr=False, compare=False)

    @property
    def data(self) -> bytes:
        """The verified bytes: what a target of this image is sent."""
        if self.verified is None:
            raise RuntimeError(f"{self.path} is sent before it was verified")
        return self.verified.data

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "version": self.version,
            "supported_devices": list(self.supported_devices),
            "boards": list(self.boards),
            "targets": list(self.targets),
        }


@dataclass
class FleetResult:
    ok: bool
    lab: str
    #: The image and its sha256 when the fleet had exactly one (as before several were
    #: allowed); None with several: see ``images``.
    image: str | None
    image_sha256: str | None
    session: str
    parallel: int
    seconds: float
    targets: list[TargetOutcome] = field(default_factory=list)
    images: list[FleetImage] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        codes = {t.exit_code for t in self.targets if not t.ok}
        if not codes:
            return 0
        return codes.pop() if len(codes) == 1 else 1

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "images"}
        data["images"] = [image.to_dict() for image in self.images]
        data["exit_code"] = self.exit_code
        return data


def fleet_key(lab: Path, *image_sha256: str) -> str:
    """The identity of a fleet run: the lab file and the set of images (order does not count)."""
    return f"{Path(lab).resolve()}#{'+'.join(sorted(image_sha256))}"


def _find_journal(key: str) -> Journal | None:
    """The newest fleet journal of this lab + images."""
    for journal in sorted(Journal.all(), key=lambda j: j.id, reverse=True):
        header = journal.header
        if header.get("kind") == "fleet" and header.get("fleet_key") == key:
            return journal
    return None


def done_targets(journal: Journal) -> dict[str, str | None]:
    """Targets a fleet journal records as flashed (the last word per target counts), each with
    the sha256 of the image it was given (None in journals of one-image fleets that predate
    several images: there, the fleet's one image)."""
    state: dict[str, tuple[bool, str | None]] = {}
    for rec in journal.events("fleet_target"):
        if rec.get("status") in ("done", "failed"):
            sha = rec.get("image_sha256")
            state[str(rec.get("target"))] = (rec.get("status") == "done", sha and str(sha))
    return {name: sha for name, (ok, sha) in state.items() if ok}


def read_images(paths: Sequence[Path]) -> list[FleetImage]:
    """Read each image once and check its signature, so that its ``supported_devices`` can be
    believed when images are matched to boards. Raises the image's error (format, signature)."""
    import hashlib

    from toolkit.firmware import verify as verifymod
    from toolkit.firmware.image import parse

    images = []
    for path in paths:
        raw = verifymod.read_image(path)
        parsed = parse(raw)
        verifymod.check_signature(parsed)
        meta = parsed.metadata
        images.append(
            FleetImage(
                path=Path(path),
                sha256=hashlib.sha256(raw).hexdigest(),
                version=str(meta["version"]),
                supported_devices=[str(d) for d in meta["supported_devices"]],
                raw=raw,
            )
        )
    return images


def _names(images: Sequence[FleetImage]) -> str:
    return ", ".join(
        f"{i.path.name} ({'/'.join(i.supported_devices) or 'no device'})" for i in images
    )


def match_images(images: Sequence[FleetImage], boards: Sequence[Board]) -> dict[str, FleetImage]:
    """Board id -> the one image whose ``supported_devices`` meet the board's ``compatible``.

    Two images for one board (for one of ``boards``, or naming the same device) raise
    ConfigError: which one a target should get would be a guess. Boards without an image are
    left out; images without a board serve nobody.
    """
    for i, first in enumerate(images):
        for second in images[i + 1 :]:
            shared = [d for d in first.supported_devices if d in second.supported_devices]
            if shared:
                raise ConfigError(
                    f"two images for board {shared[0]}: {first.path} ({first.version}) and "
                    f"{second.path} ({second.version}); give one image per board"
                )
    plan: dict[str, FleetImage] = {}
    for board in boards:
        fits = [i for i in images if set(i.supported_devices) & set(board.compatible)]
        if len(fits) > 1:
            raise ConfigError(
                f"two images for board {board.id}: "
                + " and ".join(f"{i.path} ({i.version})" for i in fits)
                + "; give one image per board"
            )
        if fits:
            plan[board.id] = fits[0]
            if board.id not in fits[0].boards:
                fits[0].boards.append(board.id)
    return plan


def _failed(name: str, t0: float, exc: BaseException, **extra: Any) -> TargetOutcome:
    known = isinstance(exc, RouterkitError)
    return TargetOutcome(
        name,
        "failed",
        ok=False,
        seconds=round(time.monotonic() - t0, 3),
        error=str(exc) if known else f"{type(exc).__name__}: {exc}",
        error_class=type(exc).__name__,
        exit_code=exc.exit_code if isinstance(exc, RouterkitError) else 1,
        **extra,
    )


def flash_fleet(
    image: Path | Sequence[Path],
    lab: Path,
    *,
    options: FlashOptions | None = None,
    parallel: int = 4,
    force: bool = False,
    only: list[str] | None = None,
    reporter_for: Callable[[str], Reporter] | None = None,
    resolve: Callable[[Path, str], Target] | None = None,
) -> FleetResult:
    """Flash ``image`` (one path, or several: one per board) onto every target of ``lab`` (or
    those in ``only``), ``parallel`` at once; each target gets the image for its board.

    Raises before touching any target if an image fails its checks or two images are for
    one board (ConfigError). ``reporter_for(name)`` gives each target its own Reporter (the
    CLI's live line per target). ``resolve`` maps a lab entry to a Target (default
    :func:`toolkit.targets.from_lab`).
    """
    from toolkit.boards import load_board
    from toolkit.firmware.verify import verify_image
    from toolkit.journeys.flash import flash
    from toolkit.lab import load_lab
    from toolkit.targets import from_lab

    start = time.monotonic()
    paths = [Path(image)] if isinstance(image, str | Path) else [Path(p) for p in image]
    if not paths:
        raise ConfigError("no image to flash (give one image per board)")
    lab_obj = load_lab(lab)  # a malformed lab.toml fails here: file, line, key
    names = list(lab_obj.targets)
    if only:
        unknown = [n for n in only if n not in lab_obj.targets]
        if unknown:
            lab_obj.target(unknown[0])  # raises NotFoundError naming the known targets
        names = [n for n in names if n in only]

    # Read once: every target gets these bytes (each flash verifies them again, against what
    # it runs, before sending), even if a file is replaced while the fleet runs.
    images = read_images(paths)
    boards: dict[str, Board] = {}
    board_errors: dict[str, RouterkitError] = {}  # an unknown board fails its targets only
    for entry in lab_obj.targets.values():  # every target, so --target never changes the plan
        if entry.board not in boards and entry.board not in board_errors:
            try:
                boards[entry.board] = load_board(entry.board)
            except RouterkitError as exc:
                board_errors[entry.board] = exc
    plan = match_images(images, list(boards.values()))
    for fleet_image in images:  # once per image, for the first board it serves
        if fleet_image.boards:
            fleet_image.verified = verify_image(
                fleet_image.path, boards[fleet_image.boards[0]], data=fleet_image.raw
            )

    digests = [i.sha256 for i in images]
    key = fleet_key(lab, *digests)
    journal = _find_journal(key)
    if journal is None:
        journal = Journal.create(
            "fleet",
            board=None,
            fleet_key=key,
            lab=str(lab),
            image=str(paths[0]) if len(paths) == 1 else None,
            image_sha256=digests[0] if len(paths) == 1 else None,
            images=[i.to_dict() for i in images],
            targets=names,
        )
    board_of = {n: lab_obj.targets[n].board for n in names}
    done = done_targets(journal)
    already = {
        n
        for n in names
        if n in done
        and board_of[n] in plan
        and done[n] in (None, plan[board_of[n]].sha256)  # done with the image it gets now
    }
    journal.append(
        "fleet_run",
        parallel=parallel,
        force=force,
        targets=names,
        skipping=sorted(already) if not force else [],
        plan={n: plan[b].sha256 if b in plan else None for n, b in board_of.items()},
    )
    base = replace(options or FlashOptions(), via="ssh", interactive=False)
    resolve = resolve or from_lab
    several = len(images) > 1

    def one(name: str) -> TargetOutcome:
        reporter = reporter_for(name) if reporter_for else NullReporter()
        board = board_of[name]
        chosen = plan.get(board)
        given: dict[str, Any] = {"board": board}
        if chosen is not None:
            given.update(
                image=str(chosen.path), image_sha256=chosen.sha256, image_version=chosen.version
            )
        if name in already and not force:
            reporter.message("already flashed by this fleet run; skipped (--force flashes again)")
            journal.append("fleet_target", target=name, status="skipped", **given)
            return TargetOutcome(name, "skipped", ok=True, **given)
        t0 = time.monotonic()
        journal.append("fleet_target", target=name, status="started", **given)
        outcome: TargetOutcome
        if chosen is None:  # never resolved, never connected: nothing of it is touched
            problem = board_errors.get(board) or BoardMismatchError(
                f"no image for board {board} among {_names(images)}",
                hint=f"add an image built with --board {board}",
            )
            outcome = _failed(name, t0, problem, **given)
            reporter.message(outcome.error or "", level="error")
        else:
            if several:
                reporter.message(f"{chosen.path.name} ({chosen.version})")
            try:
                target = resolve(lab, name)
                result = flash(chosen.path, target, base, reporter, data=chosen.data)
            except Exception as exc:  # a bug on one target must not take the fleet down either
                outcome = _failed(name, t0, exc, **given)
            else:
                outcome = TargetOutcome(
                    name,
                    "done",
                    ok=True,
                    seconds=round(time.monotonic() - t0, 3),
                    version_before=result.version_before,
                    version_after=result.version_after,
                    slot=result.slot,
                    session=result.session,
                    **given,
                )
        journal.append(
            "fleet_target",
            **{k: v for k, v in asdict(outcome).items() if k != "name"},
            target=name,
        )
        return outcome

    with ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="fleet") as pool:
        results = list(pool.map(one, names))
    for fleet_image in images:
        fleet_image.targets = [t.name for t in results if t.image_sha256 == fleet_image.sha256]
    fleet = FleetResult(
        ok=all(r.ok for r in results),
        lab=str(lab),
        image=str(paths[0]) if len(paths) == 1 else None,
        image_sha256=digests[0] if len(paths) == 1 else None,
        session=journal.id,
        parallel=parallel,
        seconds=round(time.monotonic() - start, 3),
        targets=results,
        images=images,
    )
    journal.append(
        "fleet", ok=fleet.ok, seconds=fleet.seconds, failed=[r.name for r in results if not r.ok]
    )
    return fleet
