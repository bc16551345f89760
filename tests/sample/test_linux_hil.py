"""The reference firmware on the shared virtual sample: a Linux shell over serial and SSH
with the host key checked against the image metadata. Marked hil.

These use the session's shared sample (``routerkit_sample`` from the pytest plugin), so the
whole test run boots Linux once for them.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest

from toolkit import sample
from toolkit.boards import load_board
from toolkit.protocol.console import Console
from toolkit.sample.watch import connect, watch_boot
from toolkit.target.shell import LinuxShell
from toolkit.target.strategy import wait_ssh_banner

pytestmark = pytest.mark.hil


def _needs_firmware(state: sample.SampleState) -> None:
    if not state.firmware:
        pytest.fail("the sample's disk holds no reference firmware (toolkit.firmware.disk missing)")


def _image_metadata(disk: Path) -> dict:
    """The metadata of the image in slot A, read from the disk itself (the factory image)."""
    from toolkit.firmware import image
    from toolkit.firmware.fdt import header_totalsize

    board = load_board("es-virt")
    slot = board.slot("A")
    with open(disk, "rb") as fh:
        fh.seek(slot.start_block * board.block_size)
        head = fh.read(64)
        fit_size = header_totalsize(head)
        fh.seek(slot.start_block * board.block_size)
        region = fh.read(fit_size + 256 * 1024)
    at = region.find(b"RKFW1 ", fit_size)
    assert at > 0, "no image footer in slot A"
    return image.parse(region[: at + 33]).metadata


def _shell(state: sample.SampleState) -> tuple[Console, LinuxShell]:
    """A shell on the sample's console; reboots the sample when it is not at a shell."""
    board = load_board(state.board)
    console = Console(connect(state.serial_url, time.monotonic() + 10), name="test console")
    shell = LinuxShell(console, board)
    try:
        shell.wait_for_shell(timeout=5)
    except Exception:
        # Another test left it elsewhere (U-Boot, mid-boot): press reset and boot it.
        sample.reset(state)
        watch_boot(console, board, "linux", time.monotonic(), state.ssh_port)
    return console, shell


def test_linux_shell_over_serial_runs_commands_with_exit_status(routerkit_sample) -> None:
    _needs_firmware(routerkit_sample)
    console, shell = _shell(routerkit_sample)
    try:
        version = shell.check("cat /etc/firmware-version").strip()
        assert version == _image_metadata(Path(routerkit_sample.disk))["version"]
        assert shell.run("false").exit_status == 1
        assert "es-virt" in shell.check("cat /etc/board.json")
    finally:
        console.close()


def _known_hosts(path: Path, host: str, port: int, public_line: str) -> Path:
    keytype, blob = public_line.split()[:2]
    path.write_text(f"[{host}]:{port} {keytype} {blob}\n")
    return path


def _ssh(state: sample.SampleState, known_hosts: Path):  # -> paramiko.SSHClient
    import paramiko

    from toolkit.firmware.build import test_client_key

    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        state.ssh_host, port=state.ssh_port, username="root", key_filename=str(test_client_key()),
        look_for_keys=False, allow_agent=False, timeout=20, banner_timeout=20, auth_timeout=20,
    )  # fmt: skip
    return client


def test_ssh_login_checks_the_host_key_read_over_the_console(
    routerkit_sample, tmp_path: Path
) -> None:
    """The image announces no host key (the sample made its own at first boot): the key is
    read over the serial console, integrity-checked, and only that key is accepted."""
    import paramiko

    from toolkit.journeys.verify import serial_host_keys
    from toolkit.targets import Target

    _needs_firmware(routerkit_sample)
    meta = _image_metadata(Path(routerkit_sample.disk))
    assert "ssh_host_key" not in meta
    state = sample.status(routerkit_sample)
    assert state is not None and state.running
    wait_ssh_banner(state.ssh_host, state.ssh_port, time.monotonic() + 60)
    # The plugin's session sample lives in the plugin's own data dir: address it directly.
    target = Target(name=state.name, board=state.board, serial_url=state.serial_url)
    console_key = serial_host_keys(target)[0]
    good = _known_hosts(tmp_path / "known_hosts", state.ssh_host, state.ssh_port, console_key)
    client = _ssh(state, good)
    try:
        _, stdout, _ = client.exec_command("cat /etc/firmware-version", timeout=20)
        assert stdout.read().decode().strip() == meta["version"]
        assert stdout.channel.recv_exit_status() == 0
    finally:
        client.close()
    # An unknown host is refused (RejectPolicy), and so is a host whose key changed.
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    with pytest.raises(paramiko.SSHException):
        _ssh(state, empty)
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    stranger = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    assert base64.b64decode(stranger.split()[1])  # a well-formed key, just not the sample's
    wrong = _known_hosts(tmp_path / "wrong_known_hosts", state.ssh_host, state.ssh_port, stranger)
    with pytest.raises(paramiko.BadHostKeyException):
        _ssh(state, wrong)
