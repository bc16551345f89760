"""Fixtures for the community tests: a REAL Roundup tracker, started once per test run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from toolkit.community.server import LocalTracker


@pytest.fixture(scope="session")
def tracker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTracker]:
    pytest.importorskip("roundup")
    pytest.importorskip("jwt")
    t = LocalTracker(Path(tmp_path_factory.mktemp("roundup")))
    t.serve()
    try:
        yield t
    finally:
        t.remove()


@pytest.fixture()
def roundup(tracker: LocalTracker) -> Iterator[object]:
    from toolkit.community.publishers.roundup import RoundupPublisher

    info = tracker.running()
    assert info is not None, tracker.log_tail()
    pub = RoundupPublisher(info.url, tracker.issue_token())
    try:
        yield pub
    finally:
        pub.close()
