"""Fixtures for the image-trust tests: a tiny real FIT (mkimage), keys, a tiny-slot board."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.firmware.trust.bad_images.make_corpus import META, build_fit
from toolkit import paths
from toolkit.firmware import keys
from toolkit.firmware.image import seal
from toolkit.firmware.signify import PublicKey, SecretKey

CORPUS = Path(__file__).parent / "bad_images"


@pytest.fixture(scope="session")
def tiny_fit() -> bytes:
    """A real FIT built by ``mkimage -f`` from dummy files (a few KiB)."""
    return build_fit()


@pytest.fixture
def signing_key() -> SecretKey:
    """A fresh key, trusted in this test's (isolated) keyring."""
    return keys.generate("test-signer")


@pytest.fixture
def make_image(tmp_path: Path, tiny_fit: bytes, signing_key: SecretKey) -> Callable[..., Path]:
    """Write a signed image; keyword arguments override metadata fields."""
    counter = iter(range(10_000))

    def make(signer: SecretKey | None = signing_key, fit: bytes | None = None, **meta: Any) -> Path:
        data = seal(fit or tiny_fit, {**META, **meta}, signer)
        path = tmp_path / f"image-{next(counter)}.img"
        path.write_bytes(data)
        return path

    return make


@pytest.fixture
def corpus_boards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """es-virt plus ``es-virt-tiny`` (the same board with 1 KiB slots) in a boards dir."""
    real = (paths.REPO_ROOT / "firmware" / "boards" / "es-virt.toml").read_text()
    boards = tmp_path / "boards"
    boards.mkdir()
    (boards / "es-virt.toml").write_text(real)
    tiny = re.sub(r'(?m)^id = "es-virt"', 'id = "es-virt-tiny"', real)
    tiny = re.sub(r"(?m)^blocks = \d+", "blocks = 2", tiny)
    (boards / "es-virt-tiny.toml").write_text(tiny)
    monkeypatch.setenv("ROUTERKIT_BOARDS", str(boards))
    return boards


@pytest.fixture
def trust_corpus_key() -> PublicKey:
    public = PublicKey.from_bytes((CORPUS / "corpus.pub").read_bytes())
    keys.trust_key(public, name="corpus")
    return public
