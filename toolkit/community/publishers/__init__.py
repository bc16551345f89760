"""Publishers: where build logs and bug reports go, behind one small interface.

A publisher turns an outbox :class:`~toolkit.community.outbox.Item` into a post on a server
and must be **idempotent by the item's key**: ``publish`` first looks the key up on the server
and returns the existing post if there is one. That is what makes the outbox exactly-once.

Publishers are looked up by name (``roundup``, ``discourse``) and imported lazily, so httpx
is only loaded when something is actually uploaded.

A publisher built from the configuration (``from_config``) sets ``destination`` to where that
configuration points (see :func:`toolkit.community.config.destination`); the outbox sends an
item only to the destination it was previewed for. One built directly (tests, scripts) leaves
it ``None``: its caller chose the server.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from toolkit.errors import ConfigError

if TYPE_CHECKING:
    from toolkit.community.outbox import Item
    from toolkit.events import Reporter


@dataclass(frozen=True)
class Remote:
    """A post on a server: its id, human URL and anything else worth keeping."""

    id: str
    url: str
    title: str = ""
    extra: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "url": self.url, "title": self.title, **(self.extra or {})}


class Publisher(Protocol):
    name: str
    destination: str | None

    def publish(self, item: Item, reporter: Reporter) -> dict[str, Any]:
        """Create the post (or find it by key) and return ``Remote.to_json()``.
        Raise PublishRetryableError for transient trouble, another PublishError otherwise."""

    def find_by_signature(self, signature: str) -> list[Remote]:
        """Existing reports with this duplicate signature (newest first)."""

    def close(self) -> None: ...


NAMES: dict[str, tuple[str, str]] = {
    "roundup": ("toolkit.community.publishers.roundup", "RoundupPublisher"),
    "discourse": ("toolkit.community.publishers.discourse", "DiscoursePublisher"),
}


def get_publisher(name: str, **options: Any) -> Publisher:
    """Construct the publisher called ``name`` from ``options`` (or its configuration)."""
    if name not in NAMES:
        raise ConfigError(
            f"unknown publisher {name!r}", hint=f"choose one of: {', '.join(sorted(NAMES))}"
        )
    module, attr = NAMES[name]
    cls = getattr(importlib.import_module(module), attr)
    if options:
        return cls(**options)  # type: ignore[no-any-return]
    return cls.from_config()  # type: ignore[no-any-return]


class PublisherCache:
    """A name → publisher factory for :meth:`Outbox.drain` that builds each publisher once."""

    def __init__(self, overrides: dict[str, Publisher] | None = None) -> None:
        self._made: dict[str, Publisher] = dict(overrides or {})

    def __call__(self, name: str) -> Publisher:
        if name not in self._made:
            self._made[name] = get_publisher(name)
        return self._made[name]

    def close(self) -> None:
        for pub in self._made.values():
            pub.close()
