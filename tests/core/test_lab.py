from __future__ import annotations

from pathlib import Path

import pytest

from toolkit.errors import ConfigError, NotFoundError
from toolkit.lab import load_lab
from toolkit.targets import resolve

GOOD = """\
[lab]
name = "bench"

[targets.es1]
board = "es-virt"
sample = "es1"

[targets.desk]
board = "es-virt"
ssh_host = "127.0.0.1"
ssh_port = 2222
"""


def test_lab_loads_targets(tmp_path: Path) -> None:
    path = tmp_path / "lab.toml"
    path.write_text(GOOD)
    lab = load_lab(path)
    assert lab.name == "bench"
    assert set(lab.targets) == {"es1", "desk"}
    target = resolve(f"{path}:desk")
    assert (target.ssh_host, target.ssh_port, target.board) == ("127.0.0.1", 2222, "es-virt")


def test_a_lab_target_is_named_with_its_lab_file_from_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Target.spec`` (what `routerkit bisect` hands its command as ROUTERKIT_TARGET) names
    the lab file too, so it resolves to the same target from any directory."""
    (tmp_path / "lab.toml").write_text(GOOD)
    monkeypatch.chdir(tmp_path)
    target = resolve("desk", lab=Path("lab.toml"))
    assert target.spec == f"{tmp_path.resolve() / 'lab.toml'}:desk"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    again = resolve(target.spec)
    assert (again.name, again.ssh_host, again.ssh_port) == ("desk", "127.0.0.1", 2222)
    assert resolve(None, ssh_host="192.0.2.1").spec == "192.0.2.1"  # no lab file: its name


def test_wrong_type_names_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "lab.toml"
    path.write_text(GOOD.replace("ssh_port = 2222", 'ssh_port = "2222"'))
    with pytest.raises(ConfigError, match=r"lab\.toml:11: targets\.desk\.ssh_port must be int"):
        load_lab(path)


def test_unknown_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "lab.toml"
    path.write_text(GOOD.replace('sample = "es1"', 'sampel = "es1"'))
    with pytest.raises(ConfigError, match=r"lab\.toml:6: unknown key targets\.es1\.sampel"):
        load_lab(path)


def test_syntax_error_has_a_line(tmp_path: Path) -> None:
    path = tmp_path / "lab.toml"
    path.write_text("[targets.x\nboard='a'\n")
    with pytest.raises(ConfigError, match=r"line 1"):
        load_lab(path)


def test_unknown_target_lists_known_ones(tmp_path: Path) -> None:
    path = tmp_path / "lab.toml"
    path.write_text(GOOD)
    with pytest.raises(NotFoundError, match="es1, desk"):
        resolve("nope", lab=path)


def test_adhoc_ssh_target() -> None:
    target = resolve(None, ssh_host="127.0.0.1", ssh_port=2200, board="es-virt")
    assert target.ssh_port == 2200 and target.serial_url is None
