from __future__ import annotations

from pathlib import Path

import pytest

from toolkit.boards import load_board, load_board_file
from toolkit.errors import ConfigError, NotFoundError


def test_reference_profile_loads() -> None:
    board = load_board("es-virt")
    assert board.id == "es-virt"
    assert set(board.slots) == {"A", "B"}
    assert board.other_slot("A").name == "B"
    assert board.slot_size == 65536 * 512


def test_unknown_board_lists_the_known_ones() -> None:
    with pytest.raises(NotFoundError, match="es-virt"):
        load_board("no-such-board")


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[board]\nid = 'x'\nname = \n")
    with pytest.raises(ConfigError, match=r"bad\.toml.*line 3"):
        load_board_file(bad)


def test_wrong_type_names_the_key(tmp_path: Path) -> None:
    text = (
        Path(load_board("es-virt").path)
        .read_text()
        .replace("block_size = 512", 'block_size = "512"')
    )
    bad = tmp_path / "es-virt.toml"
    bad.write_text(text)
    with pytest.raises(ConfigError, match=r"'flash\.block_size' must be int"):
        load_board_file(bad)
