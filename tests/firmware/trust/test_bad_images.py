"""The corpus of bad images: each refused through the CLI with its own message and exit code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.firmware.trust.bad_images.make_corpus import build_corpus
from tests.firmware.trust.conftest import CORPUS
from toolkit import errors
from toolkit.cli import root
from toolkit.firmware.verify import verify_image

MANIFEST = json.loads((CORPUS / "manifest.json").read_text())


@pytest.mark.usefixtures("corpus_boards", "trust_corpus_key")
@pytest.mark.parametrize("entry", MANIFEST, ids=[e["file"] for e in MANIFEST])
def test_corpus_image_gets_its_message_and_exit_code(entry: dict) -> None:
    args = [
        "firmware",
        "verify",
        str(CORPUS / entry["file"]),
        "--board",
        entry["board"],
        *entry["args"],
    ]
    result = CliRunner().invoke(root, args)
    assert "Traceback" not in result.output
    assert result.exit_code == entry["exit_code"], result.output
    assert entry["message"] in result.output
    if entry["error_class"]:
        assert result.output.count("routerkit: error:") == 1
        cls = getattr(errors, entry["error_class"])
        assert cls.exit_code == entry["exit_code"]


@pytest.mark.usefixtures("corpus_boards", "trust_corpus_key")
@pytest.mark.parametrize("entry", MANIFEST, ids=[e["file"] for e in MANIFEST])
def test_corpus_image_json_names_the_error_class(entry: dict) -> None:
    args = [
        "--json",
        "firmware",
        "verify",
        str(CORPUS / entry["file"]),
        "--board",
        entry["board"],
        *entry["args"],
    ]
    result = CliRunner().invoke(root, args)
    payload = json.loads(result.stdout.splitlines()[0])
    if entry["error_class"]:
        assert payload["ok"] is False and payload["error_class"] == entry["error_class"]
    else:
        assert payload["ok"] is True and payload["version"] == "1.1.0"


@pytest.mark.usefixtures("corpus_boards", "trust_corpus_key")
def test_regenerated_corpus_fails_the_same_way(tmp_path: Path) -> None:
    """The committed corpus is what make_corpus.py produces (same cases, same outcomes)."""
    manifest = build_corpus(tmp_path / "corpus")
    assert manifest == MANIFEST
    for entry in manifest:
        running = entry["args"][1] if entry["args"] else None
        path = tmp_path / "corpus" / str(entry["file"])
        if not entry["error_class"]:
            assert (
                verify_image(path, str(entry["board"]), running_version=running).version == "1.1.0"
            )
            continue
        with pytest.raises(getattr(errors, str(entry["error_class"]))):
            verify_image(path, str(entry["board"]), running_version=running)
