"""Fixtures of the serial-flash tests: a private virtual sample, a console on it, images."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from toolkit.testing import SerialFaultProxy


@pytest.fixture(scope="module")
def flash_sample(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A virtual sample of this module only (tests here write its slots), at its U-Boot prompt."""
    from toolkit import sample

    data = tmp_path_factory.mktemp("flash-sample")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ROUTERKIT_DATA", str(data))
        mp.setenv("ROUTERKIT_CACHE", os.environ.get("ROUTERKIT_TEST_CACHE", str(Path.home() / ".cache" / "routerkit-test")))
        state = sample.up(name=f"flash-{os.getpid()}-{secrets.token_hex(2)}", wait="uboot")
    holder = {"state": state, "data": data}
    try:
        yield holder
    finally:
        current = sample.status(holder["state"])
        if current is not None:
            sample.down(current)


def ensure_running(holder: dict[str, Any]) -> Any:
    """The module's sample, powered on again if a test cut its power."""
    from toolkit import sample

    current = sample.status(holder["state"])
    if current is None or not current.running:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("ROUTERKIT_DATA", str(holder["data"]))
            holder["state"] = sample.up(name=holder["state"].name, wait="uboot")
    return holder["state"]


@pytest.fixture
def proxy(flash_sample: dict[str, Any]) -> Iterator[SerialFaultProxy]:
    state = ensure_running(flash_sample)
    port = int(state.serial_url.rsplit(":", 1)[1])
    with SerialFaultProxy(("127.0.0.1", port), seed=int.from_bytes(os.urandom(4), "big")) as p:
        yield p


@pytest.fixture
def images(tmp_path: Path) -> dict[str, Path]:
    """Reference firmware 1.0.0 and 1.1.0 signed by this test's (isolated, trusted) dev key.

    The FIT is cached across tests; only the seal (metadata + signature) is redone.
    """
    from toolkit.firmware.build import build_image

    return {v: build_image(v, out=tmp_path).path for v in ("1.0.0", "1.1.0")}
