"""Bad input gets a clear error and loses nothing: 401, a different schema, 413, Ctrl-C."""

from __future__ import annotations

from typing import Any

import pytest

from tests.community.discourse_contract import DiscourseContract
from tests.community.fakes import assembly_session
from toolkit.community.outbox import Item, Outbox
from toolkit.community.publishers import PublisherCache
from toolkit.community.publishers.discourse import DiscoursePublisher
from toolkit.community.publishers.roundup import RoundupPublisher
from toolkit.errors import PublishAuthError, TrackerSchemaError
from toolkit.journeys.share import deliver, prepare_share, submit


def test_bad_token_is_an_auth_error_and_the_item_stays(roundup) -> None:
    journal = assembly_session(photos=1, steps=1)
    item = submit(prepare_share(journal.id))
    forged = RoundupPublisher(roundup.url, "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIzIn0.bm90LXNpZ25lZA")
    with pytest.raises(PublishAuthError):
        forged.find("issue", idempotency_key="x")
    result = deliver(PublisherCache({"roundup": forged}), keys=[item.key])
    assert [i.state for i in result.failed] == ["failed"] and "401" in (
        result.failed[0].last_error or ""
    )
    assert Outbox().get(item.key) is not None  # kept for `outbox retry` after `community login`


def test_tracker_without_routerkit_properties_is_a_schema_error(roundup) -> None:
    with pytest.raises(TrackerSchemaError, match="different schema"):
        roundup.find("issue", routerkit_missing_property="x")


def test_too_large_is_refused_then_shrunk_photos_go_through(tmp_path) -> None:
    forum = DiscourseContract(max_upload=20_000)
    try:
        journal = assembly_session(
            photos=2, steps=1, photo_px=(1600, 1200)
        )  # > 20 kB even re-encoded
        item = submit(prepare_share(journal.id, "discourse"))
        pub = DiscoursePublisher(forum.url, forum.api_key, username=forum.username)
        result = deliver(PublisherCache({"discourse": pub}), keys=[item.key])
        assert "PayloadTooLargeError" in (result.failed[0].last_error or "") and not forum.topics
        smaller = submit(
            prepare_share(journal.id, "discourse", max_photo_px=200)
        )  # same key, new payload
        assert smaller.key == item.key and smaller.state == "queued"
        assert deliver(PublisherCache({"discourse": pub}), keys=[item.key]).sent
        assert len(forum.topics) == 1
    finally:
        forum.close()


class Interrupting:
    name = "x"

    def publish(self, item: Item, reporter: Any) -> dict[str, Any]:
        raise KeyboardInterrupt

    def find_by_signature(self, s: str) -> list[Any]:
        return []

    def close(self) -> None:
        pass


def test_ctrl_c_during_upload_keeps_the_item_for_next_time(tmp_path) -> None:
    outbox = Outbox(tmp_path)
    outbox.enqueue(Item("k", "x", "bug", "t", {"body": "b"}))
    with pytest.raises(KeyboardInterrupt):
        outbox.drain(lambda name: Interrupting())
    assert outbox.get("k").state == "sending"  # type: ignore[union-attr]

    class Ok(Interrupting):
        def publish(self, item: Item, reporter: Any) -> dict[str, Any]:
            return {"id": "1", "url": "u"}

    assert [i.key for i in outbox.drain(lambda name: Ok()).sent] == ["k"]
