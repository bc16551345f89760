"""``routerkit sample reset --target ... --json``: exactly one JSON document on stdout, even
when the lab's power command talks (its output is captured, never printed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from toolkit.cli import root

from ..core.test_targets import fake_sample

CHATTY = "echo relay R1 off && echo relay R1 on && echo warning from the relay >&2"


def _lab(tmp_path: Path, body: str) -> Path:
    lab = tmp_path / "lab.toml"
    lab.write_text(
        f'[targets.desk]\nboard = "es-virt"\n{body}power = {{ kind = "command", reset = "{CHATTY}" }}\n'
    )
    return lab


def test_json_output_is_one_document_whatever_the_power_command_prints(tmp_path: Path) -> None:
    """A real process, so output written straight to file descriptor 1 would be seen."""
    lab = _lab(tmp_path, 'serial_url = "rfc2217://bench-host:7000"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "toolkit.cli", "sample", "reset", "--target", f"{lab}:desk", "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["ok"] is True and result["name"] == "desk" and result["power"] == "command"
    assert result["run"]["exit_status"] == 0
    assert result["run"]["output"] == "relay R1 off\nrelay R1 on\nwarning from the relay\n"
    assert "relay" not in proc.stderr


def test_a_lab_entry_of_a_sample_resets_through_its_own_relay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    fake_sample(monkeypatch)
    lab = _lab(tmp_path, 'sample = "es1"\n')
    result = CliRunner().invoke(root, ["sample", "reset", "--target", f"{lab}:desk", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["run"]["how"] == CHATTY
    assert "relay" not in capfd.readouterr().out


def test_a_failing_power_command_is_a_device_error_naming_it(tmp_path: Path) -> None:
    lab = tmp_path / "lab.toml"
    lab.write_text(
        '[targets.desk]\nboard = "es-virt"\nserial_url = "loop://"\n'
        'power = { kind = "command", reset = "echo no relay && exit 7" }\n'
    )
    result = CliRunner().invoke(root, ["sample", "reset", "--target", f"{lab}:desk", "--json"])
    assert result.exit_code == 20
    assert "exit status 7" in result.output and "echo no relay && exit 7" in result.output
