"""routerkit against a real labgrid coordinator + exporter (ser2net RFC 2217) on loopback."""

from __future__ import annotations

import os
import time

import pytest
import serial

from toolkit import coordinator
from toolkit.errors import PlaceError

from .conftest import LabgridLab, free_port


def test_acquired_place_exports_a_working_rfc2217_port(labgrid_lab: LabgridLab) -> None:
    with coordinator.lease(labgrid_lab.place, labgrid_lab.coordinator) as held:
        url = held.serial_url
        assert url and url.startswith("rfc2217://127.0.0.1:")
        assert "acquired: " in labgrid_lab.client("show").stdout
        device = serial.Serial(labgrid_lab.peer_tty, timeout=5)
        port = serial.serial_for_url(url, timeout=5)
        try:
            port.write(b"hello from routerkit\n")
            assert device.readline() == b"hello from routerkit\n"
            device.write(b"=> ")
            deadline = time.monotonic() + 5
            got = b""
            while b"=> " not in got and time.monotonic() < deadline:
                got += port.read(port.in_waiting or 1)
            assert b"=> " in got
        finally:
            port.close()
            device.close()
    # Released on exit: somebody else can take it now.
    other = labgrid_lab.client("acquire", user="bob")
    assert other.returncode == 0, other.stderr
    labgrid_lab.client("release", user="bob")


def test_place_held_by_someone_else_says_by_whom(labgrid_lab: LabgridLab) -> None:
    assert labgrid_lab.client("acquire", user="alice").returncode == 0
    try:
        with pytest.raises(PlaceError, match=r"already acquired by .*/alice"):
            coordinator.acquire(labgrid_lab.place, labgrid_lab.coordinator)
    finally:
        labgrid_lab.client("release", user="alice")


def test_a_place_held_for_this_program_is_used_and_left_held(
    labgrid_lab: LabgridLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The program a routerkit command runs while holding the place (a bisect's test) uses it
    as it is held, never releasing it; labgrid refuses a second acquire even to its holder.
    Naming the place does not open a place someone else holds."""
    place, address = labgrid_lab.place, labgrid_lab.coordinator
    with coordinator.lease(place, address):  # the bisect
        with pytest.raises(PlaceError, match="already acquired by you"):
            coordinator.acquire(place, address)  # not said to be held for it
        monkeypatch.setenv(coordinator.HELD_ENV, place)
        with coordinator.lease(place, address) as inner:  # the bisect's test
            assert inner.serial_url and not inner.owned
        assert "acquired: None" not in labgrid_lab.client("show").stdout
    assert "acquired: None" in labgrid_lab.client("show").stdout
    assert labgrid_lab.client("acquire", user="alice").returncode == 0
    try:
        with pytest.raises(PlaceError, match=r"already acquired by .*/alice"):
            coordinator.acquire(place, address)
    finally:
        labgrid_lab.client("release", user="alice")


def test_unknown_place_is_a_clear_error(labgrid_lab: LabgridLab) -> None:
    with pytest.raises(PlaceError, match="does not exist"):
        coordinator.acquire("no-such-place", labgrid_lab.coordinator)


def test_unreachable_coordinator_is_a_clear_error() -> None:
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(PlaceError, match="unreachable"):
        coordinator.acquire("es1", address)


def test_release_happens_on_ctrl_c(labgrid_lab: LabgridLab) -> None:
    with (
        pytest.raises(KeyboardInterrupt),
        coordinator.lease(labgrid_lab.place, labgrid_lab.coordinator),
    ):
        raise KeyboardInterrupt
    assert "acquired: None" in labgrid_lab.client("show").stdout


def test_parse_show_reads_network_serial_port() -> None:
    text = (
        "Place 'es1':\n  acquired: vm/root\n"
        "Acquired resource 'RawSerialPort' (ex1/bench1/NetworkSerialPort/RawSerialPort):\n"
        "  {'acquired': 'es1',\n   'avail': True,\n   'cls': 'NetworkSerialPort',\n"
        "   'params': {'host': '127.0.0.1', 'port': 4242, 'speed': 115200}}\n"
    )
    (res,) = coordinator.parse_show(text)
    lease = coordinator.Lease("es1", "x", [res])
    assert lease.serial_url == "rfc2217://127.0.0.1:4242?ign_set_control"
    assert os.sep not in res["name"]
