"""Fleets: parallel flashes over the one SSH journey; failures stay local; reruns resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from toolkit.cli import root
from toolkit.errors import BoardMismatchError, ConfigError
from toolkit.journeys.fleet import flash_fleet
from toolkit.record import Journal
from toolkit.target.ssh import connect_target
from toolkit.testing import dropbear

from .conftest import target_for


def _lab(path: Path, devices: dict, key: Path) -> Path:
    text = '[lab]\nname = "test"\n'
    for name, dev in devices.items():
        text += (
            f'\n[targets.{name}]\nboard = "{dev.board}"\nssh_host = "127.0.0.1"\n'
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


# --- one image per board -------------------------------------------------------------------


def _board_image(tmp_path: Path, board: str, version: str) -> Path:
    return dropbear.make_image(version, tmp_path / "out" / f"{board}-{version}.img", board=board)


def _mixed_fleet(make_device, client_key: Path, tmp_path: Path) -> dict:
    """Two light devices that say they are different boards, running 1.0.0 of their own."""
    devices = {}
    for name, board in (("virt", "es-virt"), ("arm", "es-arm32")):
        dev = make_device(name, board=board)
        dev.install(_board_image(tmp_path, board, "1.0.0"), "A")
        target = target_for(dev, client_key, name=name)
        target.board = board  # host keys are kept per board identity
        connect_target(target, accept_new=True).close()
        devices[name] = dev
    return devices


def test_each_target_gets_the_image_for_its_board_and_a_rerun_skips_them(
    make_device, client_key: Path, tmp_path: Path
) -> None:
    devices = _mixed_fleet(make_device, client_key, tmp_path)
    lab = _lab(tmp_path / "lab.toml", devices, client_key)
    virt = _board_image(tmp_path, "es-virt", "1.1.0")
    arm = _board_image(tmp_path, "es-arm32", "1.2.0")
    result = CliRunner().invoke(
        root, ["fleet", "flash", str(arm), str(virt), "--lab", str(lab), "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # one document
    got = {t["name"]: (t["board"], t["image"], t["version_after"]) for t in data["targets"]}
    assert got == {"virt": ("es-virt", str(virt), "1.1.0"), "arm": ("es-arm32", str(arm), "1.2.0")}
    assert {i["path"]: i["targets"] for i in data["images"]} == {
        str(arm): ["arm"],
        str(virt): ["virt"],
    }
    assert data["image"] is None and data["ok"]
    assert devices["virt"].fwinfo()["version"] == "1.1.0"
    assert devices["arm"].fwinfo()["version"] == "1.2.0"

    # The same images in the other order are the same fleet: both targets are done.
    table = CliRunner().invoke(root, ["fleet", "flash", str(virt), str(arm), "--lab", str(lab)])
    assert table.exit_code == 0, table.output
    rows = {line.split()[0]: line.split()[1:3] for line in table.stdout.splitlines()[1:3]}
    assert rows == {"virt": [virt.name, "skipped"], "arm": [arm.name, "skipped"]}


def test_two_images_for_one_board_is_a_usage_error_and_nothing_is_flashed(
    make_device, client_key: Path, tmp_path: Path
) -> None:
    devices = _mixed_fleet(make_device, client_key, tmp_path)
    lab = _lab(tmp_path / "lab.toml", devices, client_key)
    first = _board_image(tmp_path, "es-virt", "1.1.0")
    second = _board_image(tmp_path, "es-virt", "1.2.0")
    arm = _board_image(tmp_path, "es-arm32", "1.1.0")
    boots = {n: d.boots for n, d in devices.items()}
    fleets = len([j for j in Journal.all() if j.header.get("kind") == "fleet"])

    result = CliRunner().invoke(
        root, ["fleet", "flash", str(first), str(arm), str(second), "--lab", str(lab)]
    )
    assert result.exit_code == ConfigError.exit_code
    assert result.output.strip().splitlines() == [
        f"routerkit: error: two images for board es-virt: {first} (1.1.0) and {second} (1.2.0); "
        "give one image per board"
    ]
    with pytest.raises(ConfigError, match="two images for board es-virt"):
        flash_fleet([first, second], lab)
    assert {n: d.boots for n, d in devices.items()} == boots
    assert {d.fwinfo()["version"] for d in devices.values()} == {"1.0.0"}
    assert len([j for j in Journal.all() if j.header.get("kind") == "fleet"]) == fleets


def test_a_target_whose_board_has_no_image_fails_untouched_and_the_others_go_on(
    make_device, client_key: Path, tmp_path: Path
) -> None:
    devices = _mixed_fleet(make_device, client_key, tmp_path)
    lab = _lab(tmp_path / "lab.toml", devices, client_key)
    virt = _board_image(tmp_path, "es-virt", "1.1.0")
    boots = devices["arm"].boots
    slots = {p.name: p.read_bytes() for p in devices["arm"].dir.glob("slot?.img")}
    devices["arm"].stop()  # were it connected to, the error would be about TCP, not images

    result = flash_fleet(virt, lab)
    outcome = {t.name: t for t in result.targets}
    assert outcome["virt"].status == "done" and outcome["virt"].version_after == "1.1.0"
    arm = outcome["arm"]
    assert (arm.status, arm.error_class, arm.image) == ("failed", "BoardMismatchError", None)
    assert arm.error is not None and arm.error.startswith(
        f"no image for board es-arm32 among {virt.name} (es-virt/routerkit,es-virt)"
    )
    assert not result.ok and result.exit_code == BoardMismatchError.exit_code

    assert devices["arm"].boots == boots
    assert {p.name: p.read_bytes() for p in devices["arm"].dir.glob("slot?.img")} == slots
    rerun = CliRunner().invoke(root, ["fleet", "flash", str(virt), "--lab", str(lab)])
    assert rerun.exit_code == BoardMismatchError.exit_code
    assert "no image for board es-arm32" in rerun.stdout and "1/2 ok" in rerun.stdout
    assert "skipped" in rerun.stdout  # virt: done by the first run
