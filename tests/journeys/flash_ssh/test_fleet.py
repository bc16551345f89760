"""Fleets: parallel flashes over the one SSH journey; failures stay local; reruns resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from toolkit.cli import root
from toolkit.errors import ConfigError
from toolkit.journeys.fleet import flash_fleet
from toolkit.target.ssh import connect_target

from .conftest import target_for


def _lab(path: Path, devices: dict, key: Path) -> Path:
    text = '[lab]\nname = "test"\n'
    for name, dev in devices.items():
        text += (
            f'\n[targets.{name}]\nboard = "es-virt"\nssh_host = "127.0.0.1"\n'
            f'ssh_port = {dev.port}\nidentity = "{key}"\n'
        )
    path.write_text(text)
    return path


def _fleet(make_device, images, client_key: Path, n: int) -> dict:
    devices = {}
    for i in range(n):
        name = f"bench{i}"
        dev = make_device(name)
        dev.install(images("1.0.0"), "A")
        connect_target(target_for(dev, client_key, name=name), accept_new=True).close()
        devices[name] = dev
    return devices


def test_interrupted_fleet_rerun_finishes_the_rest_and_skips_the_done(
    make_device, images, client_key: Path, tmp_path: Path
) -> None:
    devices = _fleet(make_device, images, client_key, 3)
    lab = _lab(tmp_path / "lab.toml", devices, client_key)
    image = images("1.1.0")
    devices["bench1"].stop()  # one bench is off: the others must not care
    first = flash_fleet(image, lab, parallel=3)
    status = {t.name: t.status for t in first.targets}
    assert status == {"bench0": "done", "bench1": "failed", "bench2": "done"}
    assert not first.ok and first.exit_code == 31  # HostUnreachableError
    assert "TCP" in next(t.error for t in first.targets if t.name == "bench1")

    devices["bench1"].start()
    second = flash_fleet(image, lab, parallel=3)
    assert {t.name: t.status for t in second.targets} == {
        "bench0": "skipped",
        "bench1": "done",
        "bench2": "skipped",
    }
    assert second.ok and second.session == first.session
    assert devices["bench1"].fwinfo()["version"] == "1.1.0"

    boots = {n: d.boots for n, d in devices.items()}
    forced = flash_fleet(image, lab, parallel=3, force=True)
    assert {t.status for t in forced.targets} == {"done"}
    assert all(d.boots == boots[n] + 1 for n, d in devices.items())


def test_fleet_cli_prints_a_table_and_json(
    make_device, images, client_key: Path, tmp_path: Path
) -> None:
    devices = _fleet(make_device, images, client_key, 2)
    lab = _lab(tmp_path / "lab.toml", devices, client_key)
    result = CliRunner().invoke(
        root, ["fleet", "flash", str(images("1.2.0")), "--lab", str(lab), "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert [t["version_after"] for t in data["targets"]] == ["1.2.0", "1.2.0"]
    table = CliRunner().invoke(root, ["fleet", "flash", str(images("1.2.0")), "--lab", str(lab)])
    assert table.exit_code == 0 and "skipped" in table.stdout and "2/2 ok" in table.stdout


def test_malformed_lab_names_file_line_and_key(tmp_path: Path, images) -> None:
    lab = tmp_path / "lab.toml"
    lab.write_text(
        '[targets.a]\nboard = "es-virt"\nssh_host = "127.0.0.1"\nssh_port = "twenty-two"\n'
    )
    with pytest.raises(ConfigError, match=rf"{lab}:4: targets.a.ssh_port must be int"):
        flash_fleet(images("1.1.0"), lab)
    result = CliRunner().invoke(root, ["fleet", "flash", str(images("1.1.0")), "--lab", str(lab)])
    assert result.exit_code == ConfigError.exit_code
    assert f"{lab}:4" in result.output
