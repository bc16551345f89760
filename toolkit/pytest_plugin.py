"""routerkit's pytest plugin (entry point ``pytest11``): HIL fixtures for real or virtual samples.

Registered for every pytest run in an environment where routerkit is installed, so it must stay
cheap to import and do nothing until one of its fixtures is requested (imports are lazy).

Fixtures: ``routerkit_sample`` (a running virtual sample shared by the session).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

# The HIL fixtures (sample, uboot, shell, ssh, flashed_sample) and failure-report hooks.
pytest_plugins = ["toolkit.hil.fixtures"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("routerkit", "routerkit hardware-in-the-loop")
    group.addoption(
        "--routerkit-target",
        default=None,
        help="Target to test: empty for a virtual sample started for the session, "
        "lab.toml:NAME, rfc2217://HOST:PORT, or labgrid:PLACE.",
    )
    group.addoption(
        "--routerkit-image", default=None, help="Image to flash for the flashed_sample fixture."
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "hil: needs a real or virtual sample (slow)")


# --- the shared virtual sample ----------------------------------------------------------


class SharedSample:
    """One virtual sample for the whole test session, started on first use.

    Booting QEMU per test would cost seconds each; every hil test in a run shares this one.
    Its data dir is private to the session (so per-test data isolation does not hide it), its
    name is unique per run (several runs can share a machine), and it is stopped at the end of
    the session, leaving no process. If a test cut its power or stopped it, the next test that
    asks for it gets it booted again.
    """

    def __init__(self, data_dir: Any, board: str | None = None) -> None:
        import os
        import secrets

        from toolkit.boards import DEFAULT_BOARD

        self.data_dir = data_dir
        #: the board the sample emulates (``--routerkit-board``; default: the default board)
        self.board = board or DEFAULT_BOARD
        self.name = f"pytest-{os.getpid()}-{secrets.token_hex(2)}"
        self.state: Any = None

    def ensure(self, wait: str = "auto") -> Any:
        """The running sample (booted to ``wait`` if it had to be started)."""
        from toolkit import sample

        if self.state is not None:
            current = sample.status(self.state)
            if current is not None and current.running:
                self.state = current
                return current
        from toolkit.identity import IDENTITY_ENV, identity_path

        with pytest.MonkeyPatch.context() as mp:
            # The sample authorizes the caller's SSH key (the one the ``ssh`` fixture logs in
            # with), not one of the session's data dir: pinned before the data dir moves.
            mp.setenv(IDENTITY_ENV, str(identity_path()))
            # The cache (firmware builds, padded U-Boot) is whatever the caller uses; only the
            # state lives in the session's own data dir.
            mp.setenv("ROUTERKIT_DATA", str(self.data_dir))
            # After a power cut, `up` powers the same sample (and disk) on again.
            self.state = sample.up(name=self.name, board=self.board, wait=wait)
        return self.state

    def stop(self) -> None:
        from toolkit import sample

        if self.state is not None and sample.status(self.state) is not None:
            sample.down(self.state)
        self.state = None


@pytest.fixture(scope="session")
def routerkit_shared_sample(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SharedSample]:
    """The session's :class:`SharedSample` holder (started lazily, stopped at the end), of
    the board ``--routerkit-board`` names."""
    holder = SharedSample(
        tmp_path_factory.mktemp("routerkit-sample"),
        request.config.getoption("--routerkit-board", None),
    )
    try:
        yield holder
    finally:
        holder.stop()


@pytest.fixture
def routerkit_sample(request: pytest.FixtureRequest, routerkit_shared_sample: SharedSample) -> Any:
    """A running virtual sample shared by the whole session (a ``toolkit.sample.SampleState``).

    Booted to SSH when its disk holds the reference firmware, else to the U-Boot prompt
    (``state.firmware`` tells which). Its state at the start of a test is whatever the previous
    test left: reset it (``toolkit.sample.reset(state)``) when a test needs a fresh boot.
    Function-scoped on purpose: it then starts after the per-test environment is set up (the
    shared cache), and a sample a test powered off is booted again for the next one.
    """
    target = request.config.getoption("--routerkit-target")
    if target:
        pytest.skip(f"routerkit_sample is the virtual sample; --routerkit-target={target} is set")
    return routerkit_shared_sample.ensure()
