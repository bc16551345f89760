"""The QMP client against a small scripted QMP server on a unix socket."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest

from toolkit.sample.qmp import QMPClient, QMPError


def _serve(path: Path, answers: dict[str, list[dict]]) -> list[str]:
    """Accept one client; greet; answer each command with its scripted messages."""
    seen: list[str] = []
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def run() -> None:
        conn, _ = server.accept()
        with conn, conn.makefile("rwb") as fh:
            fh.write(b'{"QMP": {"version": {}, "capabilities": []}}\r\n')
            fh.flush()
            for raw in fh:
                command = json.loads(raw)["execute"]
                seen.append(command)
                if command == "quit":
                    return  # QEMU may close before answering quit
                for msg in answers.get(command, [{"return": {}}]):
                    fh.write(json.dumps(msg).encode() + b"\r\n")
                fh.flush()
        server.close()

    threading.Thread(target=run, daemon=True).start()
    return seen


def test_events_between_command_and_answer_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "q.sock"
    seen = _serve(
        path,
        {"query-status": [{"event": "RESET"}, {"return": {"running": True, "status": "running"}}]},
    )
    with QMPClient(path) as client:
        assert client.query_status()["status"] == "running"
        client.quit()
    assert seen == ["qmp_capabilities", "query-status", "quit"]


def test_error_answer_raises_with_the_description(tmp_path: Path) -> None:
    path = tmp_path / "q.sock"
    _serve(path, {"system_reset": [{"error": {"class": "GenericError", "desc": "nope"}}]})
    with QMPClient(path) as client, pytest.raises(QMPError, match="nope"):
        client.system_reset()


def test_pty_path_is_read_from_query_chardev(tmp_path: Path) -> None:
    path = tmp_path / "q.sock"
    chardevs = [
        {"label": "compat_monitor0", "filename": "unix:x"},
        {"label": "serial0", "filename": "pty:/dev/pts/7"},
    ]
    _serve(path, {"query-chardev": [{"return": chardevs}]})
    with QMPClient(path) as client:
        assert client.pty_path() == "/dev/pts/7"


def test_silent_server_times_out_instead_of_hanging(tmp_path: Path) -> None:
    path = tmp_path / "q.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)  # accepts in the backlog, never greets: a QEMU blocked on wait=on
    try:
        with pytest.raises(QMPError, match="did not answer"):
            QMPClient(path, timeout=0.3).connect()
    finally:
        server.close()


def test_missing_socket_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(QMPError, match="cannot connect"):
        QMPClient(tmp_path / "absent.sock", timeout=0.2).connect()
