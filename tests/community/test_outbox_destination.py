"""An outbox item goes only to the server it was previewed for (issue #11, item 6.4)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.community.fakes import assembly_session
from toolkit import paths
from toolkit.community.config import LOCAL_TRACKER
from toolkit.community.outbox import DestinationChangedError, Item, Outbox
from toolkit.community.publishers import PublisherCache
from toolkit.events import Reporter
from toolkit.journeys.share import deliver, prepare_share, submit

A = "https://tracker-a.example.org/routerkit/"
B = "https://tracker-b.example.org/routerkit/"


def _config(url: str | None) -> None:
    line = f'roundup_url = "{url}"\n' if url else ""
    (paths.config_dir() / "config.toml").write_text(f"[community]\nconsent = true\n{line}")


class Recording:
    """A roundup publisher as from_config builds it: it says where it posts."""

    name = "roundup"

    def __init__(self, destination: str | None) -> None:
        self.destination = destination
        self.posted: list[str] = []

    def publish(self, item: Item, reporter: Reporter) -> dict[str, Any]:
        self.posted.append(item.key)
        return {"id": str(len(self.posted)), "url": f"{self.destination}/issue{len(self.posted)}"}

    def find_by_signature(self, signature: str) -> list[Any]:
        return []

    def close(self) -> None:
        pass


def _factory(monkeypatch: pytest.MonkeyPatch, made: dict[str, Recording]) -> None:
    """get_publisher builds, like from_config, a publisher for today's configured URL."""
    from toolkit.community import publishers
    from toolkit.community.config import destination

    def build(name: str, **options: Any) -> Recording:
        where = destination(name)
        return made.setdefault(where, Recording(where))

    monkeypatch.setattr(publishers, "get_publisher", build)


def test_preview_names_the_server_and_the_queued_item_keeps_it() -> None:
    _config(A)
    journal = assembly_session(photos=1, steps=1)
    plan = prepare_share(journal.id, "roundup")
    assert plan.preview()["destination"] == "https://tracker-a.example.org/routerkit"
    item = submit(plan, Outbox())
    assert Outbox().get(item.key).destination == "https://tracker-a.example.org/routerkit"  # type: ignore[union-attr]
    assert Outbox().list()[0].summary()["destination"] == "https://tracker-a.example.org/routerkit"


def test_without_a_url_the_destination_is_the_local_tracker() -> None:
    _config(None)
    plan = prepare_share(assembly_session(photos=0, steps=1).id, "roundup")
    assert plan.item.destination == LOCAL_TRACKER


def test_item_previewed_for_a_is_not_sent_to_b_and_nothing_is_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: dict[str, Recording] = {}
    _factory(monkeypatch, made)
    _config(A)
    journal = assembly_session(photos=2, steps=1)
    item = submit(prepare_share(journal.id, "roundup"), Outbox())

    _config(B)  # the tester switched trackers after the preview
    result = deliver(PublisherCache(), Outbox(), keys=[item.key])
    assert result.sent == [] and [i.key for i in result.failed] == [item.key]
    held = Outbox().get(item.key)
    assert held is not None and held.state == "failed"
    assert DestinationChangedError.__name__ in (held.last_error or "")
    assert "tracker-a.example.org" in (held.last_error or "") and "tracker-b.example.org" in (
        held.last_error or ""
    )
    assert all(not pub.posted for pub in made.values())
    assert all(a.path.is_file() for a in held.attachments)  # nothing lost

    # retrying while B is configured still sends nothing
    Outbox().retry(item.key)
    assert deliver(PublisherCache(), Outbox(), keys=[item.key]).sent == []
    assert all(not pub.posted for pub in made.values())

    # back to A: it goes to A, once
    _config(A)
    Outbox().retry(item.key)
    assert [i.key for i in deliver(PublisherCache(), Outbox(), keys=[item.key]).sent] == [item.key]
    Outbox().retry()
    deliver(PublisherCache(), Outbox())
    assert {where: pub.posted for where, pub in made.items()} == {
        "https://tracker-a.example.org/routerkit": [item.key],
        "https://tracker-b.example.org/routerkit": [],
    }


def test_sharing_again_previews_for_the_new_server_and_replaces_the_held_item(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: dict[str, Recording] = {}
    _factory(monkeypatch, made)
    _config(A)
    journal = assembly_session(photos=1, steps=1)
    first = submit(prepare_share(journal.id, "roundup"), Outbox())
    _config(B)
    deliver(PublisherCache(), Outbox(), keys=[first.key])
    again = submit(prepare_share(journal.id, "roundup"), Outbox())  # a new preview, for B
    assert again.key == first.key and again.destination == "https://tracker-b.example.org/routerkit"
    assert again.state == "queued" and len(Outbox().list()) == 1
    assert [i.key for i in deliver(PublisherCache(), Outbox(), keys=[again.key]).sent] == [
        again.key
    ]
    assert made["https://tracker-b.example.org/routerkit"].posted == [again.key]
    assert (
        made.get("https://tracker-a.example.org/routerkit") is None
        or not made["https://tracker-a.example.org/routerkit"].posted
    )


def test_the_same_server_spelled_differently_is_the_same_destination(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: dict[str, Recording] = {}
    _factory(monkeypatch, made)
    _config("https://Tracker-A.example.org:443/routerkit")
    item = submit(prepare_share(assembly_session(photos=0, steps=1).id, "roundup"), Outbox())
    _config(A)
    assert [i.key for i in deliver(PublisherCache(), Outbox(), keys=[item.key]).sent] == [item.key]


def test_an_item_queued_before_destinations_were_recorded_is_held(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    made: dict[str, Recording] = {}
    _factory(monkeypatch, made)
    _config(A)
    box = Outbox()
    box.enqueue(Item("rk-old", "roundup", "bug", "old report", {"body": "x"}))  # no destination
    result = box.drain(PublisherCache())
    assert result.sent == [] and "queued before" in (result.failed[0].last_error or "")
    assert not made[next(iter(made))].posted


def test_a_publisher_the_caller_built_itself_is_trusted_with_the_item() -> None:
    """Scripts and tests hand a publisher to the drain directly: no configuration to disagree with."""
    _config(A)
    item = submit(prepare_share(assembly_session(photos=0, steps=1).id, "roundup"), Outbox())
    direct = Recording(None)
    assert [
        i.key for i in deliver(PublisherCache({"roundup": direct}), Outbox(), keys=[item.key]).sent
    ] == [item.key]
    assert direct.posted == [item.key]


def test_real_from_config_publishers_say_where_they_post(monkeypatch: pytest.MonkeyPatch) -> None:
    from toolkit.community import tokens
    from toolkit.community.publishers.roundup import RoundupPublisher

    _config(A)
    tokens.store_token("roundup", A, "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIzIn0.c2ln")
    pub = RoundupPublisher.from_config()
    try:
        assert pub.destination == "https://tracker-a.example.org/routerkit"
    finally:
        pub.close()
    assert RoundupPublisher(A, "t.e.s").destination is None


def test_the_preview_names_the_server() -> None:
    from click.testing import CliRunner

    from toolkit.cli import root

    _config(A)
    assembly_session(photos=0, steps=1)
    res = CliRunner().invoke(root, ["share", "--preview"])
    assert res.exit_code == 0, res.output
    assert "to: https://tracker-a.example.org/routerkit" in res.stderr
