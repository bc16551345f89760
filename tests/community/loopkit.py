"""Helpers for the weekly-loop tests: a second tester on the real tracker, a real local TUF
channel with signed release notes, and bench sessions like flash/verify write them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.firmware.trust.bad_images.make_corpus import META, build_fit
from toolkit.community.outbox import Outbox
from toolkit.community.publishers import PublisherCache
from toolkit.community.publishers.roundup import RoundupPublisher
from toolkit.community.server import LocalTracker
from toolkit.firmware import keys
from toolkit.firmware.channel_repo import publish
from toolkit.firmware.image import seal
from toolkit.journeys.share import Plan, deliver, submit
from toolkit.record import Journal


def as_tester(tracker: LocalTracker, name: str) -> RoundupPublisher:
    """A publisher speaking for tester ``name`` (an account of its own on the tracker)."""
    info = tracker.running()
    assert info is not None, tracker.log_tail()
    return RoundupPublisher(info.url, tracker.issue_token(user_id=tracker.add_user(name)))


def send(plan: Plan, outbox: Outbox, pub: Any) -> dict[str, Any]:
    """Queue and deliver one plan through ``outbox`` with ``pub``; return the sent remote."""
    item = submit(plan, outbox)
    result = deliver(PublisherCache({"roundup": pub}), outbox, keys=[item.key])
    sent = [i for i in result.sent if i.key == item.key]
    assert sent, [i.last_error for i in result.pending + result.failed]
    assert sent[0].remote is not None
    return sent[0].remote


class Channel:
    """A real static TUF repository in ``root``; images signed by a key trusted here."""

    def __init__(self, root: Path) -> None:
        self.repo = root / "repo"
        self.keys = root / "channel-keys"
        self.images = root / "images"
        self.images.mkdir(parents=True, exist_ok=True)
        self.signer = keys.generate("loop-signer")
        self.fit = build_fit()

    def publish(self, version: str, notes: dict[str, Any] | None, **meta: Any) -> Any:
        when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        data = seal(self.fit, {**META, "version": version, "build_date": when, **meta}, self.signer)
        image = self.images / f"es-virt-{version}.img"
        image.write_bytes(data)
        return publish(image, "nightly", self.repo, keys_dir=self.keys, notes=notes)

    @property
    def root_json(self) -> Path:
        return self.repo / "metadata" / "1.root.json"


def bench(version: str, *, board: str = "es-virt") -> Journal:
    """A verify session after flashing ``version``: what `routerkit verify` records."""
    j = Journal.create("verify", board=board)
    j.append(
        "verify",
        ok=True,
        version=version,
        slot="B",
        seconds=3.2,
        selftest={"fan": {"rpm": 2100, "ok": True}, "wifi_psk": "hunter2-secret"},
    )
    return j
