"""The Discourse publisher against a contract server that follows Discourse's documented
API (auth headers, uploads.json, posts.json with external_id, 429 + Retry-After). No real
Discourse was run: this is what was tested."""

from __future__ import annotations

import pytest

from tests.community.discourse_contract import DiscourseContract
from tests.community.fakes import assembly_session
from toolkit.community.outbox import Outbox
from toolkit.community.publishers import PublisherCache
from toolkit.community.publishers.discourse import DiscoursePublisher
from toolkit.errors import PublishAuthError
from toolkit.events import NullReporter
from toolkit.journeys.bug import as_addition, duplicates, prepare_bug
from toolkit.journeys.share import deliver, prepare_share, submit


@pytest.fixture()
def forum():
    server = DiscourseContract(rate_limit=5, window=1.0)
    yield server
    server.close()


def _pub(forum: DiscourseContract, **kw) -> DiscoursePublisher:
    return DiscoursePublisher(
        forum.url, forum.api_key, username=forum.username, category=4, tags=["es"], **kw
    )


def test_build_log_becomes_one_topic_with_uploads_despite_429s(forum) -> None:
    journal = assembly_session(photos=6, steps=3)
    plan = prepare_share(journal.id, "discourse")
    item = submit(plan)
    pub = _pub(forum)
    result = deliver(PublisherCache({"discourse": pub}), keys=[item.key], wait=60)
    assert [i.key for i in result.sent] == [item.key], [i.last_error for i in result.pending]
    assert forum.rate_limited > 0  # the contract server did rate-limit us, and we waited
    (topic,) = forum.topics.values()
    assert topic["external_id"] == item.key and topic["category_id"] == 4 and "es" in topic["tags"]
    raw = topic["posts"][0]["raw"]
    assert raw.count("upload://") == 7  # 6 photos inline + the HTML page as an attachment link
    for blob in plan.blobs:
        assert any(data == blob.data for data in forum.upload_bytes.values()), blob.name
    # sharing again finds the topic by external_id instead of posting a second one
    again = deliver(PublisherCache({"discourse": pub}), keys=[item.key])
    assert len(forum.topics) == 1 and again.sent


def test_lost_answer_to_posts_json_is_not_posted_twice(forum) -> None:
    journal = assembly_session(photos=1, steps=1)
    item = submit(prepare_share(journal.id, "discourse"))
    pub = _pub(forum)
    pub.publish(Outbox().get(item.key), NullReporter())  # type: ignore[arg-type]  # "crash" before the ack
    remote = pub.publish(Outbox().get(item.key), NullReporter())  # type: ignore[arg-type]
    assert remote["reused"] is True and len(forum.topics) == 1


def test_bug_duplicate_is_found_by_signature_and_added_as_reply(forum) -> None:
    assembly_session(photos=0, steps=1)
    pub = _pub(forum)
    plan, ctx = prepare_bug("Fan does not spin after flashing", publisher="discourse")
    deliver(PublisherCache({"discourse": pub}), keys=[submit(plan).key])
    plan2, _ = prepare_bug("Fan silent on my sample too", publisher="discourse")
    found = duplicates(plan2, pub)
    assert [r.id for r in found] == ["1"]
    addition = as_addition(plan2, found[0])
    for _ in range(2):  # a retry after a lost answer must not reply twice
        deliver(PublisherCache({"discourse": pub}), keys=[submit(addition).key])
        Outbox().retry(addition.item.key)
    assert len(forum.topics) == 1 and len(forum.topics[1]["posts"]) == 2
    assert ctx.signature in forum.topics[1]["posts"][0]["raw"]


def test_user_api_key_auth_and_bad_key(forum) -> None:
    forum.user_api_key = "u" * 32
    ok = DiscoursePublisher(forum.url, "u" * 32)
    assert ok.find_by_signature("nothing") == []
    bad = DiscoursePublisher(forum.url, "wrong", username="tester")
    with pytest.raises(PublishAuthError):
        bad.find_by_signature("x")
