"""`board lint`: every problem of a profile as FILE:LINE: KEY: message; `board new` writes a
profile and guide that pass it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from toolkit import boardkit, paths, resources
from toolkit.boards import load_board
from toolkit.errors import ConfigError
from toolkit.guide.loader import lint_file as lint_guide

HERE = Path(__file__).parent


def test_reference_profile_is_clean() -> None:
    assert boardkit.lint_file(resources.bundled_boards_dir() / "es-virt.toml") == []


def test_broken_profile_reports_each_problem_at_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copyfile(HERE / "broken-bench.toml", tmp_path / "bench-x.toml")
    monkeypatch.chdir(tmp_path)
    assert [str(i) for i in boardkit.lint_file(tmp_path / "bench-x.toml")] == [
        "bench-x.toml:4: board.compatible: must include the board id 'bench-x' (images name it)",
        "bench-x.toml:5: board.compat_version: must be MAJOR.MINOR, like \"1.0\", not '1'",
        "bench-x.toml:7: console.interrupt: missing (required, str)",
        "bench-x.toml:9: console.interupt: unknown key: did you mean 'console.interrupt'?",
        "bench-x.toml:18: flash.block_size: must be a power of two, not 500",
        "bench-x.toml:19: flash.load_addr: must be an address string such as \"0x50000000\", not 'RAM'",
        "bench-x.toml:20: flash.write: unknown placeholder {blok} (this command gets: {addr}, {block}, {count})",
        "bench-x.toml:21: flash.read: does not use {block}",
        "bench-x.toml:30: flash.slots.B.partition: partitions must be numbered 1..n without gaps, got 1, 3",
        "bench-x.toml:31: flash.slots.B.start_block: block 16384 is inside flash.slots.A (blocks 2048..18431)",
        "bench-x.toml:32: flash.slots.B.blocks: ends at block 49152, past the end of the disk "
        "(33554 blocks of 500 bytes = flash.disk_size_mib 16)",
        "bench-x.toml:36: ssh.port: must be int, not str",
    ]


def test_id_must_match_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "other-name.toml"
    shutil.copyfile(resources.bundled_boards_dir() / "es-virt.toml", path)
    [issue] = boardkit.lint_file(path)
    assert (issue.line, issue.key) == (5, "board.id")
    assert "the file is other-name.toml" in issue.message


def test_toml_syntax_error_has_its_line() -> None:
    [issue] = boardkit.lint_text('[board]\nid = "x"\nname = \n', "p.toml")
    assert (issue.file, issue.line, issue.key) == ("p.toml", 3, "(toml)")


def test_keys_in_inline_tables_point_at_their_line() -> None:
    text = (
        '[flash]\nblock_size = 512\nwrite = "w {addr} {block} {count}"\n'
        "slots = { A = { partition = 1, start_block = 0, blocks = 8 }, "
        'B = { partition = 2, start_block = 8, blocks = "8" } }\n'
    )
    issues = {i.key: i.line for i in boardkit.lint_text(text, "p.toml")}
    assert issues["flash.slots.B.blocks"] == 4  # the line of `slots =`: the nearest key it knows
    assert issues["board.id"] == 1  # missing table: the top of the file


def test_new_board_writes_a_profile_and_guide_that_lint_clean() -> None:
    made = boardkit.new_board("my-bench", "es-virt")
    assert made.profile == paths.config_dir() / "boards" / "my-bench.toml"
    assert made.guide == paths.config_dir() / "guides" / "my-bench" / "guide.yaml"
    assert boardkit.lint_file(made.profile) == []
    assert lint_guide(made.guide) == []
    text = made.profile.read_text()
    assert (
        'id = "my-bench"' in text and "MEASURE" in text and "routerkit board lint my-bench" in text
    )
    board = load_board("my-bench")
    assert board.compatible == ["my-bench"]
    assert board.slots == load_board("es-virt").slots  # the layout is copied, to be measured


def test_new_board_never_overwrites_without_force() -> None:
    made = boardkit.new_board("my-bench")
    made.profile.write_text("# my measurements\n")
    with pytest.raises(ConfigError, match="already exists"):
        boardkit.new_board("my-bench")
    assert made.profile.read_text() == "# my measurements\n"
    boardkit.new_board("my-bench", force=True)
    assert boardkit.lint_file(made.profile) == []


def test_new_board_refuses_a_bad_name() -> None:
    with pytest.raises(ConfigError, match="lower-case"):
        boardkit.new_board("My Bench")
