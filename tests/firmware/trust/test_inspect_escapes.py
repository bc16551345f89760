"""``firmware inspect`` shows what an image says without letting it drive the terminal.

Everything in an image was written by whoever made it (signed or not): ESC sequences,
carriage returns, C1 controls and bidi overrides must come out as visible escapes in the
text rendering, and ``--json`` must stay valid JSON that round-trips the exact strings.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.firmware.trust.bad_images.make_corpus import META
from toolkit.cli import root
from toolkit.cli.firmware_trust import printable
from toolkit.firmware.image import Footer

HOSTILE = {
    "version": "1.1.0\x1b[2K\r9.9.9",  # erase the line, return, pretend another version
    "source_revision": "abc\x1b]0;owned\x07def",  # OSC: set the window title
    "build_date": "2023\x9b31mZ",  # C1 CSI, the 8-bit form of ESC [
    "board": "es-virt\u202egpj.exe",  # right-to-left override
    "ssh_host_key_fingerprint": "SHA256:\u2066x\u2069\u200f\x00\x7f",
    "supported_devices": ["es-virt", "evil\nsecond line"],
}
RAW_UNSAFE = ("\x1b", "\r", "\x07", "\x9b", "\u202e", "\u2066", "\u2069", "\u200f", "\x00", "\x7f")


def _inspect(path: Path, *args: str) -> str:
    # Without a terminal click strips CSI sequences (ESC [ ... letter) itself, so the tests
    # assert the escaped form is present, not only that raw bytes are absent.
    result = CliRunner().invoke(root, ["firmware", "inspect", str(path), *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def _unsigned(tmp_path: Path, fit: bytes) -> Path:
    meta = {
        **META,
        **HOSTILE,
        "format": 1,
        "signer": "0000000000000000",
        "fit_size": len(fit),
        "fit_sha256": hashlib.sha256(fit).hexdigest(),
    }
    meta_bytes = json.dumps(meta).encode()
    path = tmp_path / "unsigned.img"
    path.write_bytes(fit + meta_bytes + Footer(len(fit), len(meta_bytes), 0).to_bytes())
    return path


@pytest.mark.parametrize("signed", [True, False])
def test_inspect_escapes_control_and_bidi_characters(
    make_image: Callable[..., Path], tiny_fit: bytes, tmp_path: Path, signed: bool
) -> None:
    path = make_image(**HOSTILE) if signed else _unsigned(tmp_path, tiny_fit)
    out = _inspect(path)
    assert ("(unsigned)" in out) is not signed
    for char in RAW_UNSAFE:
        assert char not in out, f"{char!r} reached the terminal"
    assert "1.1.0\\x1b[2K\\x0d9.9.9" in out
    assert "abc\\x1b]0;owned\\x07def" in out
    assert "2023\\x9b31mZ" in out
    assert "es-virt\\u202egpj.exe" in out
    assert "SHA256:\\u2066x\\u2069\\u200f\\x00\\x7f" in out
    assert "evil\\x0asecond line" in out
    # Each field stays on its own line: no smuggled newline splits a row.
    assert not any(line.startswith("second line") for line in out.splitlines())


def test_inspect_json_stays_valid_and_exact(make_image: Callable[..., Path]) -> None:
    payload = json.loads(_inspect(make_image(**HOSTILE), "--json"))
    for key, value in HOSTILE.items():
        assert payload["metadata"][key] == value
    assert "\x1b" not in _inspect(make_image(**HOSTILE), "--json")


def test_inspect_escapes_fit_node_strings(make_image: Callable[..., Path], tiny_fit: bytes) -> None:
    description = b"routerkit bad-image corpus"
    evil = b"\x1b[31mOK\x1b[0m\r" + b"x" * (len(description) - 12)
    assert len(evil) == len(description)
    out = _inspect(make_image(fit=tiny_fit.replace(description, evil)))
    assert "\x1b" not in out and "\r" not in out
    assert "\\x1b[31mOK\\x1b[0m\\x0d" in out


def test_printable_leaves_ordinary_text_alone() -> None:
    text = "1.3.0-nightly.20261121 für es-virt — ✓ 日本"
    assert printable(text) == text
    assert printable("a\tb") == "a\\x09b"
    assert printable("\U000e0041") == "\\U000e0041"  # a tag character (format, invisible)
