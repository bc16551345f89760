"""An example HIL suite for the virtual engineering sample (or any --routerkit-target).

Run it with one command from the repository root:

    .venv/bin/pytest examples/
    .venv/bin/pytest examples/ --routerkit-board es-arm32     # the 32-bit ARM + NVMe sample

Copy this file next to your own tests; the fixtures come from routerkit's pytest plugin,
which pytest loads automatically once routerkit is installed.
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.hil


def test_uboot_reports_its_version(uboot) -> None:
    """At the U-Boot prompt (autoboot interrupted for us), `version` names U-Boot."""
    assert uboot.version().startswith("U-Boot 20")


def test_linux_kernel_fits_the_board(sample, shell) -> None:
    """Booted to a Linux shell on the serial console; commands return their exit status. The
    kernel runs the architecture the board profile declares (``[firmware] arch``)."""
    from toolkit.boards import load_board
    from toolkit.firmware.guest import GuestSpec

    expected = GuestSpec.of(load_board(sample.target.board)).debian.uname
    result = shell.run("uname -m")
    assert result.exit_status == 0
    assert result.output.strip() == expected


def test_selftest_reports_json(shell) -> None:
    """The firmware's selftest prints one JSON object; every check has a status."""
    output = shell.check("selftest", timeout=60)
    report = json.loads(output.strip().splitlines()[-1])
    assert report["status"] == "ok", report


def test_ssh_runs_a_command(ssh) -> None:
    """SSH with the device's host key checked (read from its serial console), never auto-added."""
    result = ssh.run("cat /etc/firmware-version")
    assert result.exit_status == 0
    assert result.stdout.strip()


def test_flashed_image_is_the_one_running(flashed_sample, shell) -> None:
    """With --routerkit-image IMAGE, the session flashes (and verifies) it once, then boots it.

    Skipped when no image is given.
    """
    flashed = flashed_sample.flash_result
    assert shell.check("cat /etc/firmware-version").strip() == flashed.version_after
