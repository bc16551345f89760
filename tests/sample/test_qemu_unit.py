"""The sample's wiring and error paths, without booting QEMU."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from toolkit import paths, sample
from toolkit.boards import load_board
from toolkit.cli import root
from toolkit.errors import ConfigError, SampleError, ToolMissingError
from toolkit.sample import qemu
from toolkit.sample.state import SampleState, load_state, save_state, state_path


def _board_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: str) -> None:
    """A copy of es-virt.toml with ``extra`` lines in its [qemu] table (replacing the keys
    they set)."""
    text = (paths.REPO_ROOT / "firmware" / "boards" / "es-virt.toml").read_text()
    assert "[qemu]\n" in text
    head, _, qemu_table = text.partition("[qemu]\n")
    for key in (line.split("=", 1)[0].strip() for line in extra.splitlines() if "=" in line):
        qemu_table = re.sub(rf"(?m)^{re.escape(key)}\s*=.*\n", "", qemu_table)
    text = head + "[qemu]\n" + qemu_table
    boards = tmp_path / "boards"
    boards.mkdir()
    (boards / "es-virt.toml").write_text(text.replace("[qemu]\n", "[qemu]\n" + extra + "\n"))
    monkeypatch.setenv("ROUTERKIT_BOARDS", str(boards))


def _spec(tmp_path: Path, serial: str = "socket") -> qemu.QemuSpec:
    return qemu.QemuSpec(
        disk=tmp_path / "disk.img", qmp=tmp_path / "qmp.sock", tftp_dir=tmp_path / "tftp",
        ssh_port=2222, serial=serial, serial_port=4444 if serial == "socket" else None,
    )  # fmt: skip


def test_command_wires_serial_qmp_network_and_disk_from_the_profile(tmp_path: Path) -> None:
    cmd = qemu.build_command(load_board("es-virt"), _spec(tmp_path))
    line = " ".join(cmd)
    assert cmd[0].endswith("qemu-system-aarch64")
    assert "-machine virt" in line and "-cpu cortex-a57" in line and "-m 1024" in line
    assert "port=4444,server=on,wait=on,nodelay=on" in line and "-serial chardev:ser0" in line
    assert f"-qmp unix:{tmp_path}/qmp.sock,server=on,wait=off" in line
    assert "hostfwd=tcp:127.0.0.1:2222-:22" in line and f"tftp={tmp_path}/tftp" in line
    assert f"file={tmp_path}/disk.img,format=raw" in line
    assert "if=pflash,format=raw,readonly=on" in line
    assert "-S" not in cmd


def test_rfc2217_mode_uses_a_pty_and_starts_paused(tmp_path: Path) -> None:
    spec = qemu.QemuSpec(**{**_spec(tmp_path, "rfc2217").__dict__, "paused": True})
    cmd = qemu.build_command(load_board("es-virt"), spec)
    assert cmd[cmd.index("-serial") + 1] == "pty"
    assert "-S" in cmd and "-chardev" not in cmd


def test_uboot_is_padded_to_the_pflash_bank_and_cached() -> None:
    board = load_board("es-virt")
    first = qemu.uboot_pflash(board)
    assert first.stat().st_size == qemu.PFLASH_SIZE
    original = Path(board.get("qemu.uboot")).read_bytes()
    with open(first, "rb") as fh:
        assert fh.read(len(original)) == original
    mtime = first.stat().st_mtime_ns
    assert qemu.uboot_pflash(board) == first and first.stat().st_mtime_ns == mtime


def test_free_port_is_bindable_on_loopback() -> None:
    port = qemu.free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_missing_qemu_names_the_make_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _board_copy(tmp_path, monkeypatch, 'binary = "qemu-system-does-not-exist"')
    with pytest.raises(ToolMissingError, match="make setup"):
        sample.up(name="x", wait="none")
    assert load_state("x") is None


def test_missing_uboot_names_the_make_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (paths.REPO_ROOT / "firmware" / "boards" / "es-virt.toml").read_text()
    boards = tmp_path / "boards"
    boards.mkdir()
    (boards / "es-virt.toml").write_text(
        text.replace("/usr/lib/u-boot/qemu_arm64/u-boot.bin", str(tmp_path / "gone.bin"))
    )
    monkeypatch.setenv("ROUTERKIT_BOARDS", str(boards))
    result = CliRunner().invoke(root, ["sample", "up", "--wait", "none"])
    assert result.exit_code == ToolMissingError.exit_code
    assert "u-boot-qemu" in result.output and "make setup" in result.output


def test_not_running_is_a_clear_error_everywhere() -> None:
    for call in (sample.down, sample.reset, sample.power_cut):
        with pytest.raises(SampleError, match="not running"):
            call("nothing-here")
    assert sample.status("nothing-here") is None
    for cmd in (["down"], ["reset"], ["power-cut"], ["status"]):
        result = CliRunner().invoke(root, ["--json", "sample", *cmd, "--name", "nothing-here"])
        assert result.exit_code == SampleError.exit_code
        payload = json.loads(result.stdout.splitlines()[0])
        assert payload["error_class"] == "SampleError" and "not running" in payload["error"]


def test_bad_names_and_modes_are_refused() -> None:
    with pytest.raises(ConfigError):
        sample.up(name="../escape", wait="none")
    with pytest.raises(SampleError, match="serial mode"):
        sample.up(name="ok", serial="telepathy", wait="none")
    with pytest.raises(SampleError, match="wait state"):
        sample.up(name="ok", wait="forever")


def test_a_dead_pid_in_the_state_file_reads_as_not_running(tmp_path: Path) -> None:
    state = SampleState(
        name="ghost", board="es-virt", pid=2**22 + 7, qmp=str(tmp_path / "q.sock"),
        serial_url="socket://127.0.0.1:1", serial_mode="socket", ssh_host="127.0.0.1",
        ssh_port=1, tftp_dir=str(tmp_path), disk=str(tmp_path / "d.img"), started="now",
        ser2net_pid=None, boot_log=str(tmp_path / "boot.log"),
    )  # fmt: skip
    save_state(state)
    assert json.loads(state_path("ghost").read_text())["serial_url"] == "socket://127.0.0.1:1"
    found = sample.status("ghost")
    assert found is not None and found.running is False
    with pytest.raises(SampleError, match="not running"):
        sample.reset("ghost")
    sample.down("ghost")  # cleans the leftover state without complaint
    assert sample.status("ghost") is None


def test_console_without_a_terminal_fails_clearly() -> None:
    result = CliRunner().invoke(root, ["sample", "console"])
    assert result.exit_code == 2
    assert "interactive terminal" in result.output


def test_a_second_up_of_the_same_name_while_one_is_starting_is_refused() -> None:
    from filelock import FileLock

    from toolkit.sample.state import sample_dir

    directory = sample_dir("busy")
    directory.mkdir(parents=True, exist_ok=True)
    with FileLock(str(directory / ".up.lock")), pytest.raises(SampleError, match="being started"):
        sample.up(name="busy", wait="none")
