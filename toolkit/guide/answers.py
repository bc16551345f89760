"""Non-interactive assembly: a :class:`Prompter` that answers from a file (CI, demos, scripts).

Format (YAML or JSON; paths are relative to the answers file)::

    board: es-virt                  # optional; must match --board
    defaults:
      confirm: true                 # answer to confirmations not listed (default: no answer = error)
      on_check_fail: stop           # retry | waive | skip | stop   (default: stop)
      photos_from: photos/          # unlisted photos take the next unused image here, by name
    steps:
      unbox:
        photos: {parts-laid-out: photos/parts.jpg}   # a path, a glob (newest match), or "-" (stdin)
        confirm: {parts-complete: true, no-damage: true}
      serial:
        skip: "no USB-serial adapter yet"
      power-on:
        on_check_fail: waive

The compact form ``{"confirm_all": true, "photos": ["a.jpg", "b.jpg", ...]}`` (used by
``routerkit demo``) confirms everything and hands out the listed photos in order, one per request.

A question the file does not answer raises :class:`ConsentRequired` naming the step and field,
never blocks. ``on_check_fail: retry`` tries a check up to 3 times, then stops.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, BinaryIO

from toolkit.errors import ConfigError, ConsentRequired, PhotoError
from toolkit.guide.checks import CheckResult
from toolkit.guide.model import CheckSpec, PhotoSpec
from toolkit.guide.photos import PHOTO_SUFFIXES, expand
from toolkit.guide.prompts import FailAction, PhotoInput, StepView

_ACTIONS = {a.value: a for a in FailAction}
MAX_RETRIES = 3
_TOP = ("board", "defaults", "steps", "confirm_all", "photos")


def load_answers(path: Path) -> dict[str, Any]:
    """Read an answers file; ConfigError names the file and what is wrong."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: answers file not found") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise ConfigError(
            f"{path}{where}: not valid YAML/JSON: {getattr(err, 'problem', err)}"
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with 'steps' and 'defaults'")
    for key in data:
        if key not in _TOP:
            raise ConfigError(f"{path}: unknown field {key!r} (allowed: {', '.join(_TOP)})")
    if not isinstance(data.get("photos") or [], list):
        raise ConfigError(f"{path}: photos: expected a list of paths")
    for key in ("defaults", "steps"):
        if not isinstance(data.get(key) or {}, dict):
            raise ConfigError(f"{path}: {key}: expected a mapping")
    action = (data.get("defaults") or {}).get("on_check_fail", "stop")
    if action not in _ACTIONS:
        raise ConfigError(f"{path}: defaults.on_check_fail: one of {', '.join(_ACTIONS)}")
    return data


class AnswersPrompter:
    """Answers every question of the assembly from an answers file."""

    def __init__(
        self, path: Path, *, board: str | None = None, stdin: BinaryIO | None = None
    ) -> None:
        self.path = Path(path)
        self.base = self.path.resolve().parent
        self.data = load_answers(self.path)
        if board and self.data.get("board") not in (None, board):
            raise ConfigError(
                f"{path}: board: answers are for {self.data['board']!r}, not {board!r}"
            )
        self.defaults: dict[str, Any] = dict(self.data.get("defaults") or {})
        if "confirm_all" in self.data:
            self.defaults.setdefault("confirm", bool(self.data["confirm_all"]))
        self._queue = [str(p) for p in self.data.get("photos") or []]
        self.steps: dict[str, Any] = self.data.get("steps") or {}
        self._stdin = stdin
        self._stdin_used = False
        self._used: set[Path] = set()
        self._retries: dict[tuple[str, str], int] = {}

    def _step(self, view: StepView) -> dict[str, Any]:
        entry = self.steps.get(view.step.id) or {}
        if not isinstance(entry, dict):
            raise ConfigError(f"{self.path}: steps.{view.step.id}: expected a mapping")
        return entry

    # -- Prompter --

    def show_step(self, view: StepView) -> None:
        pass

    def skip_reason(self, view: StepView) -> str | None:
        reason = self._step(view).get("skip")
        if reason in (None, False):
            return None
        return str(reason) if reason is not True else "skipped (answers file)"

    def photo(self, view: StepView, spec: PhotoSpec, problem: PhotoError | None) -> PhotoInput:
        if problem is not None:
            raise problem  # the same answer would be rejected again
        given = (self._step(view).get("photos") or {}).get(spec.id)
        if given == "-":
            return self._from_stdin(view, spec)
        if given is not None:
            matches = [p for p in expand(str(given), self.base) if p.resolve() not in self._used]
            if not matches:
                raise PhotoError(
                    f"{self.path}: steps.{view.step.id}.photos.{spec.id}: nothing matches {given!r}"
                )
            chosen = (
                max(matches, key=lambda p: p.stat().st_mtime) if len(matches) > 1 else matches[0]
            )
            self._used.add(chosen.resolve())
            return PhotoInput(path=chosen, source="answers")
        while self._queue:
            for queued in expand(self._queue.pop(0), self.base):
                if queued.resolve() not in self._used:
                    self._used.add(queued.resolve())
                    return PhotoInput(path=queued, source="answers")
        folder = self.defaults.get("photos_from")
        if folder:
            directory = (self.base / str(folder)).expanduser()
            if not directory.is_dir():
                raise PhotoError(f"{self.path}: defaults.photos_from: no folder {directory}")
            for candidate in sorted(directory.iterdir()):
                if (
                    candidate.suffix.lower() in PHOTO_SUFFIXES
                    and candidate.resolve() not in self._used
                ):
                    self._used.add(candidate.resolve())
                    return PhotoInput(path=candidate, source="answers")
            raise PhotoError(
                f"{self.path}: defaults.photos_from: no unused photo left in {directory} for {view.step.id}/{spec.id}"
            )
        raise ConsentRequired(
            f"{self.path}: steps.{view.step.id}.photos.{spec.id}: no photo given ({spec.shows})"
        )

    def _from_stdin(self, view: StepView, spec: PhotoSpec) -> PhotoInput:
        if self._stdin_used:
            raise ConfigError(
                f"{self.path}: steps.{view.step.id}.photos.{spec.id}: stdin ('-') can give only one photo"
            )
        self._stdin_used = True
        stream = self._stdin or sys.stdin.buffer
        return PhotoInput(data=stream.read(), source="stdin")

    def confirm(self, view: StepView, check: CheckSpec) -> bool:
        answers = self._step(view).get("confirm") or {}
        value = answers.get(check.id, self.defaults.get("confirm"))
        if value is None:
            raise ConsentRequired(
                f"{self.path}: steps.{view.step.id}.confirm.{check.id}: no answer ({check.prompt})"
            )
        return bool(value)

    def check_failed(
        self, view: StepView, check: CheckSpec, result: CheckResult, bug_command: str
    ) -> tuple[FailAction, str]:
        name = self._step(view).get("on_check_fail", self.defaults.get("on_check_fail", "stop"))
        action = _ACTIONS.get(str(name))
        if action is None:
            raise ConfigError(
                f"{self.path}: steps.{view.step.id}.on_check_fail: one of {', '.join(_ACTIONS)}"
            )
        if action is FailAction.RETRY:
            key = (view.step.id, check.id)
            self._retries[key] = self._retries.get(key, 1) + 1
            if self._retries[key] > MAX_RETRIES:
                return FailAction.STOP, f"{check.id} still failing after {MAX_RETRIES} attempts"
        return action, f"{check.id} failed: {result.detail} (answers file: {name})"
