"""routerkit's pytest plugin (entry point ``pytest11``): HIL fixtures for real or virtual samples.

Registered for every pytest run in an environment where routerkit is installed, so it must stay
cheap to import and do nothing until one of its fixtures is requested.
"""

from __future__ import annotations

import pytest


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
