"""Exposing the sample's console through ser2net over RFC2217, as a remote bench does.

QEMU puts the console on a host pty (``-serial pty``); ser2net 4 (YAML config) accepts
``telnet(rfc2217)`` on 127.0.0.1 and connects it to that pty. Clients use pyserial's
``rfc2217://127.0.0.1:PORT?ign_set_control``: a pty has no modem lines, and without
``ign_set_control`` pyserial waits for control answers that never come and times out.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from toolkit.errors import SampleError, ToolMissingError

CONFIG_FILE = "ser2net.yaml"


def find_ser2net() -> str:
    found = shutil.which("ser2net") or (
        "/usr/sbin/ser2net" if Path("/usr/sbin/ser2net").exists() else None
    )
    if not found:
        raise ToolMissingError(
            "ser2net is not installed (needed for --serial rfc2217)",
            hint="run `make setup` to install it",
        )
    return found


def write_config(directory: Path, pty: str, port: int, baud: int = 115200) -> Path:
    """A one-connection ser2net YAML config. ``local``: ignore modem lines (a pty has none)."""
    text = (
        "%YAML 1.1\n---\n"
        "# written by routerkit sample up --serial rfc2217\n"
        "connection: &con0\n"
        f"  accepter: telnet(rfc2217),tcp,127.0.0.1,{port}\n"
        f"  connector: serialdev,{pty},{baud}n81,local\n"
        "  options:\n"
        "    kickolduser: true\n"
    )
    path = directory / CONFIG_FILE
    path.write_text(text)
    return path


def start(directory: Path, pty: str, port: int, timeout: float = 5.0) -> subprocess.Popen[bytes]:
    """Start ser2net in the foreground (``-n``) and wait until its port accepts connections.

    ``-u`` disables UUCP lock files: a pty needs none, and /var/lock may not be writable.
    """
    config = write_config(directory, pty, port)
    log = open(directory / "ser2net.log", "wb")  # noqa: SIM115 - handed to the child
    try:
        proc = subprocess.Popen(
            [find_ser2net(), "-n", "-u", "-c", str(config), "-P", str(directory / "ser2net.pid")],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            output = (directory / "ser2net.log").read_text(errors="replace").strip()
            raise SampleError(f"ser2net exited at start (code {proc.returncode}): {output[-300:]}")
        if port_open(port):
            return proc
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise SampleError(f"ser2net did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
