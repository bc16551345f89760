from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from toolkit.cli import root


def test_help_lists_commands_without_importing_them() -> None:
    code = "import sys; from toolkit.cli import main\ntry:\n main(['--help'])\nexcept SystemExit: pass\nprint(sorted(m for m in sys.modules if m.split('.')[0] in ('paramiko','fabric','tuf','PIL','rich','httpx')))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "flash" in out
    assert out.strip().splitlines()[-1] == "[]"


def test_user_error_is_one_line_with_its_exit_code() -> None:
    result = CliRunner().invoke(root, ["sessions", "show", "nope"])
    assert result.exit_code == 51
    assert "Traceback" not in result.output
    assert "no session 'nope'" in result.output


def test_json_error_is_machine_readable() -> None:
    result = CliRunner().invoke(root, ["--json", "sessions", "show", "nope"])
    assert result.exit_code == 51
    payload = json.loads(result.stdout.splitlines()[0])
    assert payload["ok"] is False and payload["error_class"] == "SessionNotFound"


def test_version() -> None:
    result = CliRunner().invoke(root, ["--version"])
    assert result.exit_code == 0 and "routerkit" in result.output
