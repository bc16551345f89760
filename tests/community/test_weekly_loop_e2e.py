"""The weekly loop against the REAL local Roundup tracker and a REAL local TUF channel.

Two nightlies are published with signed notes; tester A files a bug, tester B votes on it;
B "flashes" the fixing build (a verify session records it; flashing itself is tested
elsewhere) and is told the build claims to fix a report B voted on; B confirms it fixed
and the tracker says "verified fixed by 1 tester"; A finds it still broken and it reopens.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.community.loopkit import Channel, as_tester, bench, send
from tests.firmware.trust.test_channels import Server
from toolkit.community.outbox import Outbox
from toolkit.community.publishers import PublisherCache
from toolkit.community.publishers.roundup import RoundupPublisher
from toolkit.community.weekly import build, verdict_counts
from toolkit.errors import PublishError
from toolkit.firmware import channels
from toolkit.journeys import loop
from toolkit.journeys.bug import prepare_bug
from toolkit.journeys.share import deliver, submit

N1, N2 = "1.2.0-nightly.20261205", "1.2.0-nightly.20261206"


def test_vote_confirm_and_reopen_close_the_loop(
    tracker, roundup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = roundup  # the routerkit user
    bob = as_tester(tracker, "bob")
    # each tester has a machine of their own: data dir, outbox, sessions, installation salt
    box_a, box_b = Outbox(tmp_path / "alice"), Outbox(tmp_path / "bob")

    def at(home: str) -> None:
        monkeypatch.setenv("ROUTERKIT_DATA", str(tmp_path / home))

    try:
        # A files a bug
        at("alice")
        plan, _ = prepare_bug("Fan stuck at full speed after boot")
        bug = send(plan, box_a, alice)["id"]
        assert loop.my_reports(box_a) == {bug: ["filed"]}

        # B votes, twice: one vote
        at("bob")
        for _ in range(2):
            remote = send(loop.prepare_vote(f"#{bug}"), box_b, bob)
        assert remote["votes"] == 1
        assert alice.report(bug)["voters"] == [bob.user_id]
        # A may not cast B's vote (the tracker's auditor), nor remove it
        etag = alice.get("issue", bug)["@etag"]
        resp = alice.http.request(
            "PATCH",
            f"issue/{bug}",
            "vote for someone else",
            json={"@op": "remove", "voters": [bob.user_id]},
            headers={"If-Match": etag},
        )
        assert resp.status_code >= 400 and "own vote" in resp.text
        assert alice.report(bug)["voters"] == [bob.user_id]

        # two nightlies with signed notes: the first touches the bug, the second fixes it
        channel = Channel(tmp_path)
        channel.publish(N1, {"summary": "Fan curve rework", "touches": [bug]})
        channel.publish(
            N2,
            {
                "summary": "Fan fixed",
                "summary_zh": "风扇已修复",
                "changes": ["fan: PWM"],
                "fixes": [f"#{bug}"],
            },
        )
        server = Server(channel.repo)
        cache = tmp_path / "cache"
        try:
            images = channels.list_images(
                "nightly", "es-virt", url=server.url, root=channel.root_json, cache=cache
            )
        finally:
            server.close()
        changes = loop.changes(images, loop.my_reports(box_b), since=N1)
        assert [c.version for c in changes] == [N2]
        assert changes[0].yours == {bug: ["voted"]} and changes[0].notes["fixes"] == [bug]
        assert loop.changes(images, loop.my_reports(box_a))[0].yours == {bug: ["filed"]}

        # B flashes N2: the build claims to fix a report B voted on; N1 only touched it
        assert loop.after_flash(N2, "es-virt", loop.my_reports(box_b), cache=cache) == [
            {"id": bug, "how": ["voted"]}
        ]
        assert loop.after_flash(N1, "es-virt", loop.my_reports(box_b), cache=cache) == []

        # B confirms it fixed, from the bench: context attached and redacted
        bench(N2)
        confirm = loop.prepare_confirm(bug, "fixed")
        assert confirm.item.payload["fields"]["build"] == N2
        assert "hunter2-secret" not in confirm.item.body and "2100" in confirm.item.body
        remote = send(confirm, box_b, bob)
        assert remote["verified"] == f"verified fixed by 1 tester on build {N2}"
        report = alice.report(bug)
        assert report["status"] == "resolved" and report["fixed_in"] == N2
        # confirming again is the same item: never posted twice
        send(loop.prepare_confirm(bug, "fixed"), box_b, bob)
        assert len(alice.find("confirmation", idempotency_key=confirm.item.key)) == 1
        assert verdict_counts(alice.confirmations())[bug] == {"fixed": 1, "still-broken": 0}

        # the weekly page sees the fix, its confirmation and B's vote
        weekly = build(alice.reports(), alice.confirmations(), images)
        fixed = {f["report"]: f for f in weekly.data["fixed"]}
        assert fixed[bug]["verified_fixed"] == 1 and fixed[bug]["claimed_by"] == N2
        assert [b["version"] for b in weekly.data["builds"]] == [N2, N1]
        assert "verified by 1" in weekly.html and "风扇已修复" in weekly.html

        # A still sees it: reopened, and both verdicts on the tracker
        at("alice")
        remote = send(loop.prepare_confirm(bug, "still-broken", build=N2), box_a, alice)
        report = alice.report(bug)
        assert report["status"] == "chatting"
        assert "still broken for 1 tester" in report["verified"]
        assert "verified fixed by 1 tester" in report["verified"]
    finally:
        bob.close()


def test_votes_and_confirmations_wait_offline_and_post_once(tracker, roundup, tmp_path) -> None:
    carol = as_tester(tracker, "carol")
    box = Outbox(tmp_path / "carol", base_delay=0.01)
    offline = RoundupPublisher("http://127.0.0.1:1/routerkit/", tracker.issue_token())
    try:
        bug = send(loop.prepare_request("Fan curve setting"), box, roundup)["id"]
        bench("1.2.0")
        plans = [loop.prepare_vote(bug), loop.prepare_confirm(bug, "fixed")]
        keys = [submit(p, box).key for p in plans]
        result = deliver(PublisherCache({"roundup": offline}), box, keys=keys)
        assert not result.sent and {i.key for i in result.pending} == set(keys)
        for _ in range(2):  # back online; a second drain finds nothing left to do
            result = deliver(PublisherCache({"roundup": carol}), box, keys=keys, wait=5)
        assert {i.key for i in result.sent} == set(keys)
        report = roundup.report(bug)
        assert report["voters"] == [carol.user_id] and report["kind"] == "request"
        assert len([c for c in roundup.confirmations() if c["issue"] == bug]) == 1
    finally:
        carol.close()
        offline.close()


def test_a_second_verdict_on_the_same_build_is_refused_by_the_tracker(tracker, roundup) -> None:
    bug = roundup.create("issue", {"title": "Radio LED dark", "kind": "bug"})
    roundup.create("confirmation", {"issue": bug, "build": "1.2.0", "verdict": "fixed"})
    with pytest.raises(PublishError, match="already confirmed"):
        roundup.create("confirmation", {"issue": bug, "build": "1.2.0", "verdict": "still-broken"})
    with pytest.raises(PublishError, match="verdict"):
        roundup.create("confirmation", {"issue": bug, "build": "1.3.0", "verdict": "maybe"})


def test_reports_are_read_page_by_page(tracker, roundup, monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(3):
        roundup.create("issue", {"title": f"paged {n}", "kind": "request"})
    whole = [r["id"] for r in roundup.reports()]
    monkeypatch.setattr(RoundupPublisher, "PAGE", 2)
    paged = [r["id"] for r in roundup.reports()]
    assert paged == whole and len(whole) >= 3 and len(set(paged)) == len(paged)
    assert [r["id"] for r in roundup.reports("request")] == [
        r["id"] for r in roundup.reports() if r["kind"] == "request"
    ]


def test_a_tracker_from_before_the_loop_gets_it_on_start(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from toolkit.community.server import _LOOP_ISSUE_PROPS, _LOOP_SECTION, LocalTracker

    old = LocalTracker(tmp_path_factory.mktemp("pre-loop-tracker"))
    old.serve()
    try:
        old.stop()
        schema = old.home / "schema.py"
        text = schema.read_text()
        assert _LOOP_SECTION in text and _LOOP_ISSUE_PROPS in text
        schema.write_text(text.replace(_LOOP_SECTION, "").replace(_LOOP_ISSUE_PROPS, ""))
        (old.home / "detectors" / "routerkit_loop.py").unlink()

        info = old.serve()
        assert schema.read_text().count("voters=Multilink") == 1
        detector = old.home / "detectors" / "routerkit_loop.py"
        assert detector.stat().st_mode & 0o077 == 0
        pub = RoundupPublisher(info.url, old.issue_token())
        try:
            bug = pub.create("issue", {"title": "old tracker", "kind": "bug"})
            pub.create("confirmation", {"issue": bug, "build": "1.0", "verdict": "fixed"})
            assert pub.report(bug)["verified"] == "verified fixed by 1 tester on build 1.0"
        finally:
            pub.close()
    finally:
        old.remove()
