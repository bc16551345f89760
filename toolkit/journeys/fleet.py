"""Flash every target of a lab in parallel: threads over the one SSH flash journey.

No second SSH stack: each worker runs :func:`toolkit.journeys.flash.flash` with ``via="ssh"``
(same host-key rules, same retries, one session journal per target). fabric's ThreadingGroup
would add a second connection model whose host-key policy must be overridden anyway (it
hard-codes AutoAddPolicy); a thread pool over our own code is smaller and keeps the rules in
one place.

A failure on one target never stops the others. The fleet itself has a journal (kind
``fleet``) keyed by the lab file and the image's sha256: rerunning an interrupted fleet
continues that journal and skips targets it records as done, unless ``force``.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from toolkit.errors import RouterkitError
from toolkit.events import NullReporter, Reporter
from toolkit.journeys.flash import FlashOptions
from toolkit.record import Journal
from toolkit.targets import Target


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


@dataclass
class FleetResult:
    ok: bool
    lab: str
    image: str
    image_sha256: str
    session: str
    parallel: int
    seconds: float
    targets: list[TargetOutcome] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        codes = {t.exit_code for t in self.targets if not t.ok}
        if not codes:
            return 0
        return codes.pop() if len(codes) == 1 else 1

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["exit_code"] = self.exit_code
        return data


def fleet_key(lab: Path, image_sha256: str) -> str:
    return f"{Path(lab).resolve()}#{image_sha256}"


def _find_journal(key: str) -> Journal | None:
    """The newest fleet journal of this lab + image that has not finished every target."""
    for journal in sorted(Journal.all(), key=lambda j: j.id, reverse=True):
        header = journal.header
        if header.get("kind") == "fleet" and header.get("fleet_key") == key:
            return journal
    return None


def done_targets(journal: Journal) -> set[str]:
    """Targets a fleet journal records as flashed (the last word per target counts)."""
    state: dict[str, bool] = {}
    for rec in journal.events("fleet_target"):
        if rec.get("status") in ("done", "failed"):
            state[str(rec.get("target"))] = rec.get("status") == "done"
    return {name for name, ok in state.items() if ok}


def flash_fleet(
    image: Path,
    lab: Path,
    *,
    options: FlashOptions | None = None,
    parallel: int = 4,
    force: bool = False,
    only: list[str] | None = None,
    reporter_for: Callable[[str], Reporter] | None = None,
    resolve: Callable[[Path, str], Target] | None = None,
) -> FleetResult:
    """Flash ``image`` onto every target of ``lab`` (or those in ``only``), ``parallel`` at once.

    ``reporter_for(name)`` gives each target its own Reporter (the CLI's live line per target).
    ``resolve`` maps a lab entry to a Target (default :func:`toolkit.targets.from_lab`).
    """
    from toolkit.journeys.flash import flash
    from toolkit.lab import load_lab
    from toolkit.targets import from_lab

    start = time.monotonic()
    lab_obj = load_lab(lab)  # a malformed lab.toml fails here: file, line, key
    names = list(lab_obj.targets)
    if only:
        unknown = [n for n in only if n not in lab_obj.targets]
        if unknown:
            lab_obj.target(unknown[0])  # raises NotFoundError naming the known targets
        names = [n for n in names if n in only]
    from toolkit.firmware.verify import read_image

    # Read once: every target gets these bytes (each flash verifies them before sending),
    # even if the file is replaced while the fleet runs.
    image_bytes = read_image(image)
    digest = hashlib.sha256(image_bytes).hexdigest()
    key = fleet_key(lab, digest)
    journal = _find_journal(key)
    if journal is None:
        journal = Journal.create(
            "fleet",
            board=None,
            fleet_key=key,
            lab=str(lab),
            image=str(image),
            image_sha256=digest,
            targets=names,
        )
    already = done_targets(journal)
    journal.append(
        "fleet_run",
        parallel=parallel,
        force=force,
        targets=names,
        skipping=sorted(already & set(names)) if not force else [],
    )
    base = replace(options or FlashOptions(), via="ssh", interactive=False)
    resolve = resolve or from_lab
    outcomes: dict[str, TargetOutcome] = {}
    lock = threading.Lock()

    def one(name: str) -> TargetOutcome:
        reporter = reporter_for(name) if reporter_for else NullReporter()
        if name in already and not force:
            reporter.message("already flashed by this fleet run; skipped (--force flashes again)")
            outcome = TargetOutcome(name, "skipped", ok=True)
            journal.append("fleet_target", target=name, status="skipped")
            return outcome
        t0 = time.monotonic()
        journal.append("fleet_target", target=name, status="started")
        try:
            target = resolve(lab, name)
            result = flash(Path(image), target, base, reporter, data=image_bytes)
        except RouterkitError as exc:
            outcome = TargetOutcome(
                name,
                "failed",
                ok=False,
                seconds=round(time.monotonic() - t0, 3),
                error=str(exc),
                error_class=type(exc).__name__,
                exit_code=exc.exit_code,
            )
        except Exception as exc:  # a bug on one target must not take the fleet down
            outcome = TargetOutcome(
                name,
                "failed",
                ok=False,
                seconds=round(time.monotonic() - t0, 3),
                error=f"{type(exc).__name__}: {exc}",
                error_class=type(exc).__name__,
                exit_code=1,
            )
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
            )
        journal.append(
            "fleet_target", **{k: v for k, v in asdict(outcome).items() if k != "name"}, target=name
        )
        with lock:
            outcomes[name] = outcome
        return outcome

    with ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="fleet") as pool:
        results = list(pool.map(one, names))
    fleet = FleetResult(
        ok=all(r.ok for r in results),
        lab=str(lab),
        image=str(image),
        image_sha256=digest,
        session=journal.id,
        parallel=parallel,
        seconds=round(time.monotonic() - start, 3),
        targets=results,
    )
    journal.append(
        "fleet", ok=fleet.ok, seconds=fleet.seconds, failed=[r.name for r in results if not r.ok]
    )
    return fleet
