"""What the bisect tests against the real virtual sample share: a channel of signed nightlies
whose behaviour (/etc/rk-feature) breaks from a chosen build on, served on loopback; a private
sample to bisect on; the ``routerkit bisect`` command line; the bisect's session journal."""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.firmware.trust.test_channels import Server
from toolkit.record import Journal

CHECK = Path(__file__).with_name("check_feature.py")
# A build whose /init reboots at once: it never reaches a shell, U-Boot counts the failed
# boots and falls back to the other slot (a boot loop, the A/B design's reason to exist).
BOOT_LOOP = (
    b"#!/bin/sh\nmount -t proc proc /proc\necho routerkit: this build does not boot\nreboot -f\n"
)


def nightlies(n: int) -> list[str]:
    """The versions of ``n`` nightlies, oldest first."""
    return [f"1.2.0-nightly.{i}" for i in range(1, n + 1)]


MakeChannel = Callable[..., tuple[str, Path]]


@pytest.fixture
def make_channel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeChannel]:
    """Builds and publishes the nightlies ``versions`` of one scenario (``/etc/rk-feature``
    says ``ok`` before the build at index ``break_at``, ``broken`` from it on; the build at
    ``unbootable`` never boots); returns (url, trusted root). Builds come from the shared
    firmware cache after the first run."""
    from toolkit.firmware.build import build_image
    from toolkit.firmware.channel_repo import publish

    servers: list[Server] = []

    def make(
        versions: Sequence[str], break_at: int, unbootable: int | None = None
    ) -> tuple[str, Path]:
        base = tmp_path_factory.mktemp(f"channel-{len(versions)}-{break_at}-{unbootable}")
        for index, version in enumerate(versions):
            files = {"etc/rk-feature": b"ok\n" if index < break_at else b"broken\n"}
            if index == unbootable:
                files["init"] = BOOT_LOOP
            image = build_image(version, out=base / "images", files=files).path
            notes = {
                "summary": f"nightly {index + 1}",
                "changes": [f"rk-feature: {files['etc/rk-feature'].decode().strip()}"],
            }
            publish(
                image, "nightly", base / "repo", keys_dir=base / "keys", keep_nightlies=0,
                notes=notes,
            )  # fmt: skip
        server = Server(base / "repo")
        servers.append(server)
        return server.url, base / "repo" / "metadata" / "1.root.json"

    yield make
    for server in servers:
        server.close()


@contextlib.contextmanager
def private_sample(serial: str = "socket") -> Iterator[Any]:
    """A private sample booted to SSH, in the test's own data dir (samples, keys and host keys
    live there, and the ``routerkit bisect`` subprocess shares it); yields its state, stops it
    afterwards. ``serial="rfc2217"``: its console on a pty, served by ser2net."""
    from toolkit import sample

    name = f"bisect-{os.getpid()}-{secrets.token_hex(2)}"
    state = sample.up(name=name, serial=serial, wait="ssh", fresh=True)
    try:
        yield state
    finally:
        sample.down(sample.status(name) or state)


@pytest.fixture
def bench_sample() -> Iterator[str]:
    """A private sample (see :func:`private_sample`); yields its name."""
    with private_sample() as state:
        yield state.name


def bisect_command(
    url: str,
    root: Path,
    good: str,
    bad: str,
    target: Sequence[str],
    *extra: str,
    command: Sequence[str] = (sys.executable, str(CHECK)),
) -> list[str]:
    """``routerkit bisect`` from ``good`` to ``bad`` on the target options ``target``, the
    test being ``command`` (default: check_feature.py)."""
    return [
        sys.executable, "-m", "toolkit.cli", "bisect",
        "--good", good, "--bad", bad, "--url", url, "--root", str(root), *target,
        "--timeout", "240", "--test-timeout", "120", *extra, "--", *command,
    ]  # fmt: skip


def bisect_journal(target: str) -> Journal | None:
    """The newest bisect session on the target named ``target``."""
    found = [j for j in Journal.all() if j.header.get("kind") == "bisect"]
    found = [j for j in found if j.header.get("target") == target]
    return found[-1] if found else None
