"""Firmware version ordering: semantic versions, with nightlies as pre-releases.

``packaging`` implements PEP 440, which rejects ``1.3.0-nightly.20261122``; firmware uses
SemVer-style strings, so this is a small SemVer 2.0 comparator:

* ``MAJOR.MINOR.PATCH`` (missing parts are 0, a leading ``v`` is ignored);
* ``-pre.release.ids`` sort *before* the release: ``1.3.0-nightly.20261122 < 1.3.0``;
  numeric identifiers compare as numbers (so nightly dates order correctly), alphanumeric
  ones as text, numbers before text, and a longer list wins a tie;
* ``+build`` metadata is ignored for ordering.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from toolkit.record import Journal

_VERSION = re.compile(
    r"^v?(\d{1,9})(?:\.(\d{1,9}))?(?:\.(\d{1,9}))?"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z.-]+)?$"
)


class InvalidVersion(ValueError):
    """Not a version string this module understands."""


@functools.total_ordering
@dataclass(frozen=True)
class Version:
    release: tuple[int, int, int]
    pre: tuple[int | str, ...]
    text: str

    def _key(self) -> tuple[tuple[int, int, int], int, tuple[tuple[int, int | str], ...]]:
        # A release (no pre) sorts after all its pre-releases.
        pre = tuple((0, p) if isinstance(p, int) else (1, p) for p in self.pre)
        return (self.release, 0 if self.pre else 1, pre)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    @property
    def major(self) -> int:
        return self.release[0]

    @property
    def is_prerelease(self) -> bool:
        return bool(self.pre)

    def __str__(self) -> str:
        return self.text


def parse_version(text: str) -> Version:
    """Parse a version string; raise InvalidVersion (a ValueError) if it is not one."""
    match = _VERSION.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise InvalidVersion(
            f"not a version: {text!r} (expected e.g. 1.2.0 or 1.3.0-nightly.20261122)"
        )
    release = (int(match[1]), int(match[2] or 0), int(match[3] or 0))
    pre: tuple[int | str, ...] = ()
    if match[4]:
        pre = tuple(int(p) if p.isdigit() else p for p in match[4].split("."))
    return Version(release, pre, text.strip())


def compare(a: str, b: str) -> int:
    """-1, 0 or 1 as version ``a`` is older than, equal to or newer than ``b``."""
    va, vb = parse_version(a), parse_version(b)
    return (va > vb) - (va < vb)


def compat_major(text: str) -> int:
    """The major number of a ``compat_version`` such as ``1.0``."""
    return parse_version(text).major


def check_downgrade(
    image: str, running: str | None, *, allow: bool, where: str = "the device runs",
    journal: Journal | None = None,
) -> str | None:  # fmt: skip
    """The one downgrade rule, for every path that learns what a device runs.

    An image older than ``running`` (pre-releases before their release, so a nightly of
    1.3.0 is older than 1.3.0) is refused with :class:`~toolkit.errors.DowngradeError`
    unless ``allow`` (``--allow-downgrade``); then the override is returned as a warning and,
    with a ``journal``, recorded there as an ``override`` record. An equal or newer image, or
    no known running version, passes (None). ``where`` says where ``running`` came from
    ("the device runs", "slot A holds"). An unparseable version raises :class:`InvalidVersion`:
    the caller decides whether that is the image's fault or a device that says nothing useful.
    """
    from toolkit.errors import DowngradeError

    if not running:
        return None
    if not parse_version(image) < parse_version(running):
        return None
    message = f"the image is {image}, {where} {running}"
    if not allow:
        raise DowngradeError(
            f"downgrade refused: {message}", hint="--allow-downgrade if you mean it"
        )
    warning = f"DOWNGRADE ALLOWED (--allow-downgrade): {message}"
    if journal is not None:
        journal.append("override", flag="allow_downgrade", message=warning)
    return warning
