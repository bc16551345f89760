"""Targets from a lab file: an entry naming a virtual sample takes the sample's values and
overrides what it sets itself (no QEMU here: the sample's state is faked)."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolkit.sample.state import SampleState
from toolkit.targets import resolve

RELAY = "usbrelay R1=0 && sleep 1 && usbrelay R1=1"


def fake_sample(monkeypatch: pytest.MonkeyPatch, name: str = "es1") -> SampleState:
    """A running sample as `toolkit.sample.status` would report it."""
    state = SampleState(
        name=name, board="es-virt", pid=4242, qmp="/run/es1/qmp.sock",
        serial_url="socket://127.0.0.1:7001", serial_mode="socket", ssh_host="127.0.0.1",
        ssh_port=2201, tftp_dir="/run/es1/tftp", disk="/run/es1/disk.img", started="now",
        ser2net_pid=None, boot_log="", firmware=True,
    )  # fmt: skip
    monkeypatch.setattr("toolkit.sample.status", lambda wanted: state if wanted == name else None)
    return state


def _lab(tmp_path: Path, entry: str) -> Path:
    path = tmp_path / "lab.toml"
    path.write_text(f'[targets.bench]\nboard = "es-virt"\nsample = "es1"\n{entry}')
    return path


def test_a_sample_entry_takes_the_samples_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = fake_sample(monkeypatch)
    target = resolve(f"{_lab(tmp_path, '')}:bench")
    assert (target.name, target.sample, target.serial_url) == ("bench", "es1", state.serial_url)
    assert (target.ssh_host, target.ssh_port, target.tftp_dir) == (
        "127.0.0.1",
        2201,
        state.tftp_dir,
    )
    assert target.power == {"kind": "qmp", "socket": state.qmp, "sample": "es1"}


def test_a_sample_entry_overrides_serial_url_power_and_ssh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = fake_sample(monkeypatch)
    lab = _lab(
        tmp_path,
        'serial_url = "rfc2217://bench-host:7000"\nssh_port = 2299\n'
        f'power = {{ kind = "command", reset = "{RELAY}" }}\n',
    )
    target = resolve(f"{lab}:bench")
    assert target.serial_url == "rfc2217://bench-host:7000"
    assert target.power == {"kind": "command", "reset": RELAY}
    assert target.ssh_port == 2299
    assert (target.ssh_host, target.tftp_dir, target.sample) == (
        state.ssh_host,
        state.tftp_dir,
        "es1",
    )


def test_the_overriding_power_entry_is_the_switch_that_gets_pressed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from toolkit.target.power import CommandPower, from_target

    fake_sample(monkeypatch)
    mark = tmp_path / "pressed"
    lab = _lab(tmp_path, f"power = {{ kind = \"command\", reset = 'echo off && touch {mark}' }}\n")
    power = from_target(resolve(f"{lab}:bench"))
    assert isinstance(power, CommandPower)
    power.cycle()
    assert mark.exists()
