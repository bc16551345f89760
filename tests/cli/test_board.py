"""`routerkit board list|new|lint` through the CLI: JSON shapes, exit codes, FILE:LINE lines."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from toolkit import paths, resources
from toolkit.cli import root

BROKEN = Path(__file__).parents[1] / "boards" / "broken-bench.toml"


def test_board_list_json_names_each_origin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kit = tmp_path / "kit"
    kit.mkdir()
    shutil.copyfile(BROKEN, kit / "bench-x.toml")
    monkeypatch.setenv("ROUTERKIT_BOARDS", str(kit))
    assert CliRunner().invoke(root, ["board", "new", "my-bench"]).exit_code == 0
    result = CliRunner().invoke(root, ["board", "list", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    rows = {row["id"]: row for row in payload["boards"]}
    shipped = [p.stem for p in resources.bundled_boards_dir().glob("*.toml")]
    assert sorted(rows) == sorted(["bench-x", "my-bench", *shipped])
    for board in shipped:  # each shipped board has its shipped guide
        assert rows[board]["origin"] == "bundled" and rows[board]["guide_origin"] == "bundled"
    assert rows["bench-x"]["origin"] == "env" and rows["bench-x"]["guide"] is None
    assert rows["my-bench"]["origin"] == "user"
    assert rows["my-bench"]["path"] == str(paths.config_dir() / "boards" / "my-bench.toml")
    assert rows["my-bench"]["guide_origin"] == "user"
    assert rows["es-virt"]["origin"] == "bundled" and rows["es-virt"]["guide_origin"] == "bundled"
    assert [d["origin"] for d in payload["search_path"]] == ["env", "user", "bundled"]


def test_board_new_then_lint_is_clean() -> None:
    new = CliRunner().invoke(root, ["board", "new", "my-bench", "--from", "es-virt", "--json"])
    assert new.exit_code == 0, new.output
    assert json.loads(new.stdout)["profile"].endswith("boards/my-bench.toml")
    lint = CliRunner().invoke(root, ["board", "lint", "my-bench"])
    assert lint.exit_code == 0, lint.output
    assert lint.stdout == ""
    assert CliRunner().invoke(root, ["guide", "lint"]).exit_code == 0


def test_board_lint_of_a_broken_file_exits_non_zero_with_file_line_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copyfile(BROKEN, tmp_path / "bench-x.toml")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(root, ["board", "lint", "bench-x.toml"])
    assert result.exit_code == 3
    lines = result.stdout.splitlines()
    assert (
        lines[0]
        == "bench-x.toml:4: board.compatible: must include the board id 'bench-x' (images name it)"
    )
    assert (
        "bench-x.toml:20: flash.write: unknown placeholder {blok} (this command gets: {addr}, {block}, {count})"
        in lines
    )
    assert len(lines) == 12
    payload = json.loads(
        CliRunner().invoke(root, ["board", "lint", "bench-x.toml", "--json"]).stdout.splitlines()[0]
    )
    assert payload["ok"] is False and payload["issues"][0] == {
        "file": "bench-x.toml",
        "line": 4,
        "key": "board.compatible",
        "message": "must include the board id 'bench-x' (images name it)",
    }


def test_board_lint_of_an_unknown_name_is_not_found() -> None:
    result = CliRunner().invoke(root, ["board", "lint", "no-such-board"])
    assert result.exit_code == 4
    assert "unknown board 'no-such-board'" in result.output
