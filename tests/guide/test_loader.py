"""Guides: the shipped guide is valid, and every broken guide gets its exact message."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from toolkit.cli import root
from toolkit.errors import GuideError
from toolkit.guide.loader import lint_file, load_board_guide, load_guide

REPO = Path(__file__).resolve().parents[2]
BROKEN = sorted((REPO / "tests" / "guide" / "broken").glob("*.yaml"))


def test_shipped_guides_lint_clean() -> None:
    result = CliRunner().invoke(root, ["guide", "lint", str(REPO / "assembly_guide")])
    assert result.exit_code == 0, result.output
    assert "0 problem(s)" in result.output


def test_es_virt_guide_covers_the_whole_build() -> None:
    guide = load_board_guide("es-virt")
    ids = [s.id for s in guide.steps]
    for needed in ("unbox", "esd", "fan", "mainboard", "disk", "antennas", "serial", "power-on", "close", "label"):
        assert needed in ids
    assert all(s.images for s in guide.steps)
    assert all(p.quantity >= 1 for p in guide.parts)
    power_on = guide.step("power-on")
    assert "uboot_banner" in [c.kind for c in power_on.checks]
    serial_text = " ".join(line.text for line in guide.step("serial").lines)
    for word in ("GND", "TX", "RX", "3.3 V", "NEVER connect VCC"):
        assert word in serial_text
    for image in (img for s in guide.steps for img in s.images):
        assert image.read_text().lstrip().startswith("<svg")


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_broken_guide_gets_its_exact_message(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    rel = path.relative_to(REPO)
    expected = rel.read_text().splitlines()[0].removeprefix("# expect: ")
    assert [str(issue) for issue in lint_file(rel)] == [f"{rel}:{expected}"]


def test_broken_corpus_is_big_enough() -> None:
    assert len(BROKEN) >= 25


def test_load_raises_guide_error_naming_file_line_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    with pytest.raises(GuideError) as err:
        load_guide(Path("tests/guide/broken/missing-illustration.yaml"))
    assert str(err.value).startswith("tests/guide/broken/missing-illustration.yaml:15: steps[0].images[1]:")
    assert err.value.exit_code == 60


def test_lint_cli_prints_every_problem_and_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(root, ["guide", "lint", "tests/guide/broken/zero-quantity.yaml"])
    assert result.exit_code == 60
    assert "tests/guide/broken/zero-quantity.yaml:11: parts[1].quantity: must be at least 1" in result.output


def test_lint_json_lists_issues(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(root, ["guide", "lint", "--json", "tests/guide/broken/bad-difficulty.yaml"])
    payload = json.loads(result.stdout.splitlines()[0])
    assert payload["ok"] is False
    assert payload["issues"][0]["line"] == 5 and payload["issues"][0]["field"] == "difficulty"


def test_guide_in_the_wrong_folder_is_flagged(tmp_path: Path) -> None:
    folder = tmp_path / "other-board"
    folder.mkdir()
    (folder / "guide.yaml").write_text((REPO / "tests/guide/broken/zero-quantity.yaml").read_text().replace("quantity: 0", "quantity: 1"))
    (folder / "img").mkdir()
    (folder / "img" / "ok.svg").write_text((REPO / "tests/guide/broken/img/ok.svg").read_text())
    messages = [i.message for i in lint_file(folder / "guide.yaml")]
    assert messages == ["guide for 'es-virt' lives in folder 'other-board'"]


def test_lint_of_a_folder_without_guides_is_an_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(root, ["guide", "lint", str(tmp_path)])
    assert result.exit_code == 60 and "no guide.yaml" in result.output


def test_show_lists_parts_with_quantities() -> None:
    result = CliRunner().invoke(root, ["guide", "show", "--board", "es-virt"])
    assert result.exit_code == 0
    assert "4 × Screw M2 × 6, heatsink" in result.output
    assert "First power-on with the console attached" in result.output
