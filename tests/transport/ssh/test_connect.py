"""SSH connection failures name their step; host keys are never accepted silently."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from tests.journeys.flash_ssh.conftest import target_for
from toolkit.errors import AuthError, HostKeyError, HostUnreachableError
from toolkit.hostkeys import HostKeyContext, HostKeyStore, fingerprint, identity_of, parse_key_line
from toolkit.target.ssh import connect_target, host_key_check
from toolkit.testing.dropbear import free_port
from toolkit.transport.ssh import SSHConnection


def test_unreachable_host_names_the_tcp_step() -> None:
    conn = SSHConnection("127.0.0.1", free_port(), identity="es-virt/nowhere", connect_timeout=2)
    with pytest.raises(HostUnreachableError, match=r"^TCP: cannot reach 127\.0\.0\.1"):
        conn.run("true")


def test_port_without_ssh_server_names_the_ssh_step() -> None:
    server = socket.create_server(("127.0.0.1", 0))

    def accept_and_close() -> None:
        for _ in range(2):
            try:
                c, _ = server.accept()
            except OSError:  # the test closed the server: done
                return
            c.close()

    threading.Thread(target=accept_and_close, daemon=True).start()
    conn = SSHConnection("127.0.0.1", server.getsockname()[1], identity="x/y", connect_timeout=3)
    with pytest.raises(HostUnreachableError, match="accepts TCP but no SSH session"):
        conn.connect()
    server.close()


def test_wrong_key_is_an_auth_error(make_device, tmp_path: Path, client_key: Path) -> None:
    import subprocess

    dev = make_device()
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    target = target_for(dev, other)
    with pytest.raises(AuthError, match="^auth: root@127.0.0.1"):
        connect_target(target, accept_new=True)
    # the host key step came first and passed: the failure really is the key
    assert HostKeyStore().get(identity_of("es-virt", "dev")) is not None


def test_wrong_password_is_an_auth_error_and_right_one_works(make_device) -> None:
    dev = make_device(password="s3cret-pass")
    ident = "es-virt/pw"
    first = host_key_check(ident, "127.0.0.1", dev.port, context=HostKeyContext(accept_new=True))
    bad = SSHConnection(
        "127.0.0.1", dev.port, identity=ident, password="wrong", check_host_key=first
    )
    with pytest.raises(AuthError, match="refused password"):
        bad.connect()
    known = host_key_check(ident, "127.0.0.1", dev.port)  # the key stored by the first contact
    good = SSHConnection(
        "127.0.0.1", dev.port, identity=ident, password="s3cret-pass", check_host_key=known
    )
    assert good.run("echo ok").stdout.strip() == "ok"
    good.close()


def test_unknown_key_is_refused_without_consent_and_shows_the_fingerprint(
    make_device, client_key: Path
) -> None:
    dev = make_device()
    fp = fingerprint(parse_key_line(dev.host_key_line())[1])
    with pytest.raises(HostKeyError, match="first contact") as info:
        connect_target(target_for(dev, client_key))
    assert fp in str(info.value)
    assert HostKeyStore().list() == []


def test_first_contact_is_checked_against_the_serial_console(make_device, client_key: Path) -> None:
    dev = make_device()
    target = target_for(dev, client_key)
    liar = HostKeyContext(
        serial_keys=lambda: [
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBkK0y0a5c8m1rBOM6m1l5oQy8y7r3J6v9yqk0T2m3xX"
        ]
    )
    with pytest.raises(HostKeyError, match="serial console reports a different key"):
        connect_target(target, context=liar)
    honest = HostKeyContext(serial_keys=lambda: [dev.host_key_line()])
    conn = connect_target(target, context=honest)
    assert conn.hostkey is not None and conn.hostkey.how == "serial-console"
    conn.close()


def test_host_key_change_without_a_flash_is_refused(make_device, client_key: Path) -> None:
    dev = make_device()
    target = target_for(dev, client_key)
    connect_target(target, accept_new=True).close()
    old = HostKeyStore().get(identity_of("es-virt", "dev"))
    dev.new_host_key()
    with pytest.raises(HostKeyError, match="CHANGED.*man-in-the-middle"):
        connect_target(target)
    # not even --accept-new-hostkey outside a flash
    with pytest.raises(HostKeyError, match="CHANGED"):
        connect_target(target, accept_new=True)
    assert HostKeyStore().get(identity_of("es-virt", "dev")) == old


def test_store_is_keyed_by_identity_not_address(make_device, client_key: Path) -> None:
    dev = make_device()
    connect_target(target_for(dev, client_key), accept_new=True).close()
    text = HostKeyStore().known_hosts.read_text()
    assert "es-virt/dev ssh-ed25519 " in text
    assert str(dev.port) not in text.split("\n", 1)[1]


def test_upload_paths_deliver_exact_bytes(make_device, client_key: Path) -> None:
    import hashlib
    import os

    dev = make_device()
    data = os.urandom(3 * 1024 * 1024 + 12345)
    conn = connect_target(target_for(dev, client_key), accept_new=True)
    seen: list[tuple[int, int]] = []
    for streams in (1, 3):
        res = conn.upload(
            data,
            "/tmp/x.bin",
            method="cat",
            streams=streams,
            progress=lambda d, t: seen.append((d, t)),
        )
        assert res.method == "cat" and res.streams == streams
        got = conn.run("sha256sum /tmp/x.bin").stdout.split()[0]
        assert got == hashlib.sha256(data).hexdigest()
    assert seen[-1] == (len(data), len(data))
    # the light device, like the firmware, has neither SFTP nor scp: auto falls back to cat
    assert conn.upload(b"abc", "/tmp/y.bin").method == "cat"
    conn.close()


def test_a_connection_given_no_host_key_check_refuses_every_key(make_device) -> None:
    dev = make_device(password="s3cret-pass")
    conn = SSHConnection("127.0.0.1", dev.port, identity="es-virt/nocheck", password="s3cret-pass")
    with pytest.raises(HostKeyError, match="no host-key check"):
        conn.connect()
    assert HostKeyStore().list() == []
