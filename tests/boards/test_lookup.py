"""Where board profiles and guides are found: ROUTERKIT_BOARDS, then the user's config dir,
then the shipped ones; the first match wins and the others are reported as hidden."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from toolkit import paths, resources
from toolkit.boards import available_boards, board_sources, load_board
from toolkit.errors import NotFoundError
from toolkit.guide.loader import guide_path, guide_sources

REFERENCE = resources.bundled_boards_dir() / "es-virt.toml"


def _profile(directory: Path, board_id: str, name: str) -> Path:
    text = REFERENCE.read_text()
    text = text.replace('id = "es-virt"', f'id = "{board_id}"', 1)
    text = text.replace('name = "routerkit ES virtual sample"', f'name = "{name}"', 1)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{board_id}.toml"
    path.write_text(text)
    return path


def test_shipped_profile_is_found_without_a_user_dir() -> None:
    source = {s.id: s for s in board_sources()}["es-virt"]
    assert source.origin == "bundled"
    assert load_board("es-virt").path == REFERENCE


def test_user_profile_comes_before_the_shipped_one() -> None:
    mine = _profile(paths.config_dir() / "boards", "es-virt", "my tuned es-virt")
    assert load_board("es-virt").name == "my tuned es-virt"
    source = {s.id: s for s in board_sources()}["es-virt"]
    assert (source.origin, source.path, source.shadows) == ("user", mine, (REFERENCE,))


def test_routerkit_boards_adds_directories_before_the_user_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _profile(paths.config_dir() / "boards", "bench-a", "from the user dir")
    first = _profile(tmp_path / "kit1", "bench-a", "from kit1")
    _profile(tmp_path / "kit2", "bench-b", "from kit2")
    monkeypatch.setenv(
        "ROUTERKIT_BOARDS", os.pathsep.join([str(tmp_path / "kit1"), str(tmp_path / "kit2")])
    )
    # Adds, never replaces: the shipped board and the user's are still there.
    shipped = sorted(p.stem for p in resources.bundled_boards_dir().glob("*.toml"))
    assert "es-virt" in shipped
    assert available_boards() == sorted(["bench-a", "bench-b", *shipped])
    assert load_board("bench-a").name == "from kit1"
    assert load_board("bench-b").name == "from kit2"
    origins = {s.id: (s.origin, s.path) for s in board_sources()}
    assert origins["bench-a"] == ("env", first)
    assert origins["es-virt"][0] == "bundled"
    assert [o for o, _ in paths.board_dirs()] == ["env", "env", "user", "bundled"]


def test_unknown_board_says_where_it_looked() -> None:
    with pytest.raises(NotFoundError) as err:
        load_board("no-such-board")
    shipped = sorted(p.stem for p in resources.bundled_boards_dir().glob("*.toml"))
    assert f"known boards: {', '.join(shipped)}" in str(err.value)
    assert str(paths.config_dir() / "boards") in str(err.value)


def test_user_guide_comes_before_the_shipped_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = resources.bundled_guides_dir() / "es-virt" / "guide.yaml"
    assert guide_path("es-virt") == shipped
    mine = paths.config_dir() / "guides" / "es-virt" / "guide.yaml"
    mine.parent.mkdir(parents=True)
    mine.write_text(shipped.read_text())
    assert guide_path("es-virt") == mine
    env = tmp_path / "guides" / "es-virt" / "guide.yaml"
    env.parent.mkdir(parents=True)
    env.write_text(shipped.read_text())
    monkeypatch.setenv("ROUTERKIT_GUIDES", str(tmp_path / "guides"))
    assert guide_path("es-virt") == env
    assert ("es-virt", "env", env) in guide_sources()
    assert [s for s in guide_sources() if s[0] == "es-virt"] == [("es-virt", "env", env)]
