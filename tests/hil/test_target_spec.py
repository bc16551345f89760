"""``--routerkit-target`` specs: what each spelling means, and what is refused."""

from __future__ import annotations

import pytest

from toolkit.hil.session import TargetSpec, parse_spec


@pytest.mark.parametrize(
    ("raw", "kind", "value"),
    [
        (None, "virtual", ""),
        ("", "virtual", ""),
        ("lab.toml:es1", "lab", "lab.toml:es1"),
        ("/tmp/my lab.toml:desk", "lab", "/tmp/my lab.toml:desk"),
        ("rfc2217://127.0.0.1:7000", "url", "rfc2217://127.0.0.1:7000"),
        ("socket://127.0.0.1:4321", "url", "socket://127.0.0.1:4321"),
        ("/dev/ttyUSB0", "url", "/dev/ttyUSB0"),
        ("labgrid:es1", "labgrid", "es1"),
        ("bench-7", "sample", "bench-7"),
    ],
)
def test_target_spec_kinds(raw: str | None, kind: str, value: str) -> None:
    assert parse_spec(raw) == TargetSpec(kind, value, (raw or "").strip())


@pytest.mark.parametrize("raw", ["ftp://host/x", "labgrid:", "two words", "a:b"])
def test_target_spec_rejects_what_it_does_not_know(raw: str) -> None:
    from toolkit.errors import ConfigError

    with pytest.raises(ConfigError, match="routerkit-target"):
        parse_spec(raw)
