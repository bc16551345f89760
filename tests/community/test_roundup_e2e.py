"""End to end against a real Roundup tracker started by the tests."""

from __future__ import annotations

import io

from PIL import Image

from tests.community.fakes import assembly_session, photo_files
from toolkit.community.outbox import Outbox
from toolkit.community.publishers import PublisherCache
from toolkit.journeys.share import deliver, prepare_share, submit


def test_forty_photo_build_log_reads_back_byte_for_byte(roundup) -> None:
    journal = assembly_session(photos=40, steps=10)
    plan = prepare_share(journal.id, "roundup")
    assert len([b for b in plan.blobs if b.mime == "image/jpeg"]) == 40
    item = submit(plan, Outbox())
    result = deliver(PublisherCache({"roundup": roundup}), Outbox(), keys=[item.key])
    assert [i.key for i in result.sent] == [item.key], [
        i.last_error for i in result.pending + result.failed
    ]
    remote = result.sent[0].remote
    assert remote is not None and remote["url"].startswith(roundup.url)

    issue = roundup.get("issue", remote["id"])["attributes"]
    assert issue["idempotency_key"] == item.key
    assert (
        issue["kind"] == "buildlog" and issue["board"] == "es-virt" and issue["firmware"] == "1.1.0"
    )
    file_ids = [f["id"] for f in issue["files"]]
    assert len(file_ids) == 41  # 40 photos + the HTML page
    uploaded = {
        roundup.get("file", fid)["attributes"]["name"]: roundup.download(fid) for fid in file_ids
    }
    for blob in plan.blobs:
        assert uploaded[blob.name] == blob.data, blob.name
    # every photo is rebuilt from its pixels on the way out: same pictures, fresh metadata-free JPEGs
    arrived = [d for n, d in uploaded.items() if n.endswith(".jpg")]
    sizes = sorted(Image.open(io.BytesIO(d)).size for d in arrived)
    assert sizes == sorted(Image.open(p).size for p in photo_files(journal))
    assert not any(Image.open(io.BytesIO(d)).getexif() for d in arrived)

    msg_id = issue["messages"][0]["id"]
    body = roundup.download(msg_id, "msg").decode()
    assert "Fit part 10" in body and f"{roundup.url}file" in body


def test_sharing_the_same_session_twice_posts_once(roundup) -> None:
    journal = assembly_session(photos=2, steps=1)
    keys = set()
    for _ in range(2):
        plan = prepare_share(journal.id, "roundup")
        item = submit(plan, Outbox())
        keys.add(item.key)
        deliver(PublisherCache({"roundup": roundup}), Outbox(), keys=[item.key])
    assert len(keys) == 1
    assert len(roundup.find("issue", idempotency_key=keys.pop())) == 1
