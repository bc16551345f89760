"""-v/-vv log to stderr only, and --trace FILE keeps the raw serial bytes of a command."""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

from click.testing import CliRunner

from toolkit.cli import root
from toolkit.testing.fake_ssh import FakeSSHDevice

PROMPT = b"# "  # es-virt's console.linux_prompt
RUN = re.compile(r"echo '__rk''_beg_(\w+)__'; eval (.*); echo \"__rk_rc=\$\?__\w+\"")


@contextlib.contextmanager
def fake_console() -> Iterator[int]:
    """A serial console on socket://: a root shell answering from an in-memory device."""
    device = FakeSSHDevice(version="1.0.0")
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = server.accept()
            with conn:
                pending = b""
                while chunk := conn.recv(4096):
                    pending += chunk
                    while b"\n" in pending:
                        line, pending = pending.split(b"\n", 1)
                        conn.sendall(line + b"\r\n" + _answer(device, line.decode().strip()) + PROMPT)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        server.close()
        thread.join(timeout=5)


def _answer(device: FakeSSHDevice, line: str) -> bytes:
    found = RUN.fullmatch(line)
    if not found:
        return b""
    nonce, (command,) = found.group(1), shlex.split(found.group(2))
    status, out, err = device.execute(command)
    return f"__rk_beg_{nonce}__\r\n{out}{err}__rk_rc={status}__{nonce}\r\n".replace("\n", "\r\n").encode()


def test_trace_file_has_both_directions_and_vv_logs_go_to_stderr_only(tmp_path: Path) -> None:
    trace = tmp_path / "wire.trace"
    with fake_console() as port:
        result = CliRunner().invoke(root, ["-vv", "--trace", str(trace), "--json", "verify", "--via", "serial",
                                           "--port", f"socket://127.0.0.1:{port}"])
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
