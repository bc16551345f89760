"""-v/-vv log to stderr only, and --trace FILE keeps the raw serial bytes of a command."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

from click.testing import CliRunner

from toolkit.cli import root
from toolkit.testing.fake_shell import FakeShell
from toolkit.testing.fake_ssh import FakeSSHDevice

PROMPT = "# "  # es-virt's console.linux_prompt


@contextlib.contextmanager
def fake_console() -> Iterator[int]:
    """A serial console on socket://: a root shell (toolkit.testing's FakeShell: echo, Ctrl-C,
    framed commands) answering from an in-memory device."""
    device = FakeSSHDevice(version="1.0.0")
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def run(command: str) -> tuple[str, int]:
        status, out, err = device.execute(command)
        return out + err, status

    def serve() -> None:
        shell = FakeShell(commands=run, prompt=PROMPT)
        with contextlib.suppress(OSError):
            conn, _ = server.accept()
            with conn:
                while chunk := conn.recv(4096):
                    shell.write(chunk)
                    if answer := shell.read(1 << 20, 0):
                        conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        server.close()
        thread.join(timeout=5)


def test_trace_file_has_both_directions_and_vv_logs_go_to_stderr_only(tmp_path: Path) -> None:
    trace = tmp_path / "wire.trace"
    with fake_console() as port:
        result = CliRunner().invoke(
            root,
            [
                "-vv",
                "--trace",
                str(trace),
                "--json",
                "verify",
                "--via",
                "serial",
                "--port",
                f"socket://127.0.0.1:{port}",
            ],
        )
    assert result.exit_code == 0, (result.stdout, result.stderr)
    report = json.loads(result.stdout)  # exactly one JSON document on stdout
    assert report["ok"] and report["version"] == "1.0.0" and report["via"] == "serial"
    assert " DEBUG toolkit.transport.serial: opened serial port socket://" in result.stderr
    assert " DEBUG toolkit.events: step verify started" in result.stderr
    wire: dict[str, bytes] = {">": b"", "<": b""}
    for line in trace.read_text().splitlines():
        if not line.startswith("#"):
            _stamp, url, direction, rest = line.split(" ", 3)
            assert url == f"socket://127.0.0.1:{port}"
            wire[direction] += bytes.fromhex(rest.split("  |", 1)[0])
    assert b"fwinfo" in wire[">"] and b'"running_slot": "A"' in wire["<"]


def test_without_v_the_cli_logs_nothing_and_writes_no_trace(tmp_path: Path) -> None:
    result = CliRunner().invoke(root, ["--json", "sessions", "show", "nope"])
    assert result.exit_code == 51
    assert "DEBUG" not in result.stderr and len(result.stdout.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
