"""Fixtures of the serial-flash tests: private virtual samples, signed images, a fault proxy.

Time budget (the whole folder should stay near 2-3 minutes): a sample per module (never the
session's shared one: these tests write its slots), images built once per session (the FIT is
cached; only the seal is redone), and a module-wide note of what the sample runs, so a test
boots Linux only where the boot is what it checks.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.tools import board_under_test
from toolkit.testing import SerialFaultProxy

TESTS = Path(__file__).resolve().parents[2]
SHARED_CACHE = os.environ.get(
    "ROUTERKIT_TEST_CACHE", str(Path.home() / ".cache" / "routerkit-test")
)


def _private_env(mp: pytest.MonkeyPatch, data: Path) -> None:
    """A data dir of its own (with the suite's committed test dev key) and the shared cache."""
    keys = data / "keys"
    keys.mkdir(parents=True, exist_ok=True, mode=0o700)
    shutil.copyfile(TESTS / "keys" / "test-dev.sec", keys / "dev.sec")
    os.chmod(keys / "dev.sec", 0o600)
    for suffix in (".fit.key", ".fit.crt"):  # its RSA twin: U-Boot's verified boot
        shutil.copyfile(TESTS / "keys" / f"test-dev{suffix}", keys / f"dev{suffix}")
    os.chmod(keys / "dev.fit.key", 0o600)
    mp.setenv("ROUTERKIT_DATA", str(data))
    mp.setenv("ROUTERKIT_CACHE", SHARED_CACHE)


class SampleHolder(dict[str, Any]):
    """The module's sample: ``state``, its ``data`` dir, and ``known`` = (version, slot) it
    was last seen running, or None when a test changed it without booting it."""


@pytest.fixture(scope="module")
def flash_sample(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SampleHolder]:
    """A virtual sample of this module only (tests here write its slots), at its U-Boot prompt."""
    yield from private_sample(tmp_path_factory, "flash", wait="uboot")


def private_sample(
    tmp_path_factory: pytest.TempPathFactory, prefix: str, wait: str
) -> Iterator[SampleHolder]:
    """A virtual sample with its own data directory, booted to ``wait``; stopped afterwards."""
    from toolkit import sample

    data = tmp_path_factory.mktemp(f"{prefix}-sample")
    with pytest.MonkeyPatch.context() as mp:
        _private_env(mp, data)
        state = sample.up(
            name=f"{prefix}-{os.getpid()}-{secrets.token_hex(2)}",
            board=board_under_test(),
            wait=wait,
        )
    holder = SampleHolder(state=state, data=data, known=None)
    try:
        yield holder
    finally:
        current = sample.status(holder["state"])
        if current is not None:
            sample.down(current)


def ensure_running(holder: dict[str, Any], wait: str = "uboot") -> Any:
    """The module's sample, powered on again if a test cut its power.

    ``wait="none"``: QEMU is started and the guest waits for the first console client, so the
    caller sees the boot from the very first byte (a power-on, not a reset).
    """
    from toolkit import sample

    current = sample.status(holder["state"])
    if current is None or not current.running:
        with pytest.MonkeyPatch.context() as mp:
            _private_env(mp, holder["data"])
            holder["state"] = sample.up(
                name=holder["state"].name, board=holder["state"].board, wait=wait
            )
    else:
        holder["state"] = current
    return holder["state"]


@pytest.fixture
def proxy(flash_sample: SampleHolder) -> Iterator[SerialFaultProxy]:
    state = ensure_running(flash_sample)
    port = int(state.serial_url.rsplit(":", 1)[1])
    with SerialFaultProxy(("127.0.0.1", port), seed=int.from_bytes(os.urandom(4), "big")) as p:
        yield p


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Reference firmware 1.0.0, 1.1.0 and 1.2.0 of the board under test, signed by the suite's test dev key (trusted
    in every test's isolated home), built once per session into a private directory."""
    from toolkit.firmware.build import build_image

    home = tmp_path_factory.mktemp("flash-images")
    with pytest.MonkeyPatch.context() as mp:
        _private_env(mp, home / "data")
        mp.setenv("ROUTERKIT_CONFIG", str(home / "config"))
        board = board_under_test()
        return {
            v: build_image(v, board, out=home / "out").path for v in ("1.0.0", "1.1.0", "1.2.0")
        }
