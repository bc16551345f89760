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
    for needed in (
        "unbox",
        "esd",
        "fan",
        "mainboard",
        "disk",
        "antennas",
        "serial",
        "power-on",
        "close",
        "label",
    ):
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
    assert str(err.value).startswith(
        "tests/guide/broken/missing-illustration.yaml:15: steps[0].images[1]:"
    )
    assert err.value.exit_code == 60


def test_lint_cli_prints_every_problem_and_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(root, ["guide", "lint", "tests/guide/broken/zero-quantity.yaml"])
    assert result.exit_code == 60
    assert (
        "tests/guide/broken/zero-quantity.yaml:11: parts[1].quantity: must be at least 1"
        in result.output
    )


def test_lint_json_lists_issues(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(
        root, ["guide", "lint", "--json", "tests/guide/broken/bad-difficulty.yaml"]
    )
    payload = json.loads(result.stdout.splitlines()[0])
    assert payload["ok"] is False
    assert payload["issues"][0]["line"] == 5 and payload["issues"][0]["field"] == "difficulty"


def test_guide_in_the_wrong_folder_is_flagged(tmp_path: Path) -> None:
    folder = tmp_path / "other-board"
    folder.mkdir()
    (folder / "guide.yaml").write_text(
        (REPO / "tests/guide/broken/zero-quantity.yaml")
        .read_text()
        .replace("quantity: 0", "quantity: 1")
    )
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


def _guide_with_image(tmp_path: Path, image: str) -> Path:
    """A valid es-virt guide in tmp_path/es-virt whose first step shows ``image``."""
    folder = tmp_path / "es-virt"
    (folder / "img").mkdir(parents=True)
    svg = (REPO / "tests/guide/broken/img/ok.svg").read_text()
    (folder / "img" / "ok.svg").write_text(svg)
    (tmp_path / "outside.svg").write_text(svg)  # a well-formed SVG, just in the wrong place
    text = (
        (REPO / "tests/guide/broken/zero-quantity.yaml")
        .read_text()
        .replace("quantity: 0", "quantity: 1")
    )
    assert "images: [img/ok.svg]" in text
    (folder / "guide.yaml").write_text(
        text.replace("images: [img/ok.svg]", f"images: [img/ok.svg, {image!r}]", 1)
    )
    assert lint_file(folder / "guide.yaml") != [] or image == "img/ok.svg"
    return folder / "guide.yaml"


@pytest.mark.parametrize(
    "image", ["../outside.svg", "img/../../outside.svg", "../../../../../../etc/passwd", "ABSOLUTE"]
)
def test_illustration_outside_the_guide_folder_is_refused(tmp_path: Path, image: str) -> None:
    if image == "ABSOLUTE":
        image = str(tmp_path / "outside.svg")
    guide = _guide_with_image(tmp_path, image)
    issues = lint_file(guide)
    assert [(i.line, i.field, i.message) for i in issues] == [
        (15, "steps[0].images[1]", f"illustration outside the guide's folder: {image}")
    ]
    with pytest.raises(
        GuideError, match=r"guide.yaml:15: steps\[0\].images\[1\]: illustration outside"
    ):
        load_guide(guide)


def test_symlinked_illustration_pointing_out_of_the_guide_folder_is_refused(tmp_path: Path) -> None:
    guide = _guide_with_image(tmp_path, "img/ok.svg")
    (guide.parent / "img" / "link.svg").symlink_to(tmp_path / "outside.svg")
    (guide.parent / "img" / "inside.svg").symlink_to(guide.parent / "img" / "ok.svg")
    text = guide.read_text()
    guide.write_text(
        text.replace("images: [img/ok.svg, 'img/ok.svg']", "images: [img/inside.svg, img/link.svg]")
    )
    assert [str(i).split(": ", 1)[1] for i in lint_file(guide)] == [
        "steps[0].images[1]: illustration outside the guide's folder: img/link.svg"
    ]
