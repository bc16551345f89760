"""``routerkit hosts trust``: a first contact is trusted, a different key never silently.

The device is faked at the one place the command talks to it (``fetch_host_key``), so no
SSH server or QEMU is involved; the store is the real one in the test's config dir.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from toolkit.cli import root
from toolkit.hostkeys import HostKeyStore, fingerprint
from toolkit.transport import ssh

IDENTITY = "es-virt/bench1"
TRUST = [
    "hosts",
    "trust",
    "bench1",
    "--host",
    "127.0.0.1",
    "--ssh-port",
    "2222",
    "--board",
    "es-virt",
]


def new_key() -> tuple[str, str]:
    line = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)
    )
    keytype, b64 = line.decode().split()[:2]
    return keytype, b64


@pytest.fixture
def device(monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[str, str]]:
    """What the fake device presents; change ``device['key']`` to play a reflash or a MITM."""
    presented = {"key": new_key()}
    monkeypatch.setattr(ssh, "fetch_host_key", lambda host, port, timeout=10.0: presented["key"])
    return presented


def test_yes_trusts_a_first_contact(device: dict[str, tuple[str, str]]) -> None:
    result = CliRunner().invoke(root, [*TRUST, "--yes", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["changed"] is True
    stored = HostKeyStore().get(IDENTITY)
    assert stored is not None and stored.matches(*device["key"])


def test_yes_refuses_to_replace_a_different_key(device: dict[str, tuple[str, str]]) -> None:
    runner = CliRunner()
    assert runner.invoke(root, [*TRUST, "--yes"]).exit_code == 0
    old = device["key"]
    known = HostKeyStore().known_hosts.read_bytes()
    device["key"] = new_key()  # reflashed — or a man in the middle
    result = runner.invoke(root, [*TRUST, "--yes"])
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    [line] = result.stderr.strip().splitlines()
    assert f"already has a trusted key (ssh-ed25519 {fingerprint(old[1])})" in line
    assert fingerprint(device["key"][1]) in line
    assert "routerkit hosts forget es-virt/bench1" in line
    stored = HostKeyStore().get(IDENTITY)
    assert stored is not None and stored.matches(*old) and not stored.replaced
    assert HostKeyStore().known_hosts.read_bytes() == known


def test_replacing_also_refused_with_a_matching_fingerprint_or_a_prompt(
    device: dict[str, tuple[str, str]],
) -> None:
    runner = CliRunner()
    assert runner.invoke(root, [*TRUST, "--yes"]).exit_code == 0
    old = device["key"]
    device["key"] = new_key()
    pinned = runner.invoke(root, [*TRUST, "--fingerprint", fingerprint(device["key"][1])])
    assert pinned.exit_code != 0 and "hosts forget" in pinned.stderr
    asked = runner.invoke(root, TRUST, input="y\n")
    assert asked.exit_code != 0 and "hosts forget" in asked.stderr
    stored = HostKeyStore().get(IDENTITY)
    assert stored is not None and stored.matches(*old)


def test_same_key_again_is_a_no_op_success(device: dict[str, tuple[str, str]]) -> None:
    runner = CliRunner()
    assert runner.invoke(root, [*TRUST, "--yes"]).exit_code == 0
    before = HostKeyStore().get(IDENTITY)
    meta = HostKeyStore().meta_path.read_bytes()
    result = runner.invoke(root, [*TRUST, "--yes", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["changed"] is False and payload["fingerprint"] == fingerprint(device["key"][1])
    assert HostKeyStore().get(IDENTITY) == before
    assert HostKeyStore().meta_path.read_bytes() == meta


def test_after_forget_the_new_key_is_trusted(device: dict[str, tuple[str, str]]) -> None:
    runner = CliRunner()
    assert runner.invoke(root, [*TRUST, "--yes"]).exit_code == 0
    device["key"] = new_key()
    assert runner.invoke(root, [*TRUST, "--yes"]).exit_code != 0
    assert runner.invoke(root, ["hosts", "forget", IDENTITY]).exit_code == 0
    assert runner.invoke(root, [*TRUST, "--yes"]).exit_code == 0
    stored = HostKeyStore().get(IDENTITY)
    assert stored is not None and stored.matches(*device["key"])


def test_forget_by_name_finds_the_key_whatever_the_board() -> None:
    """A sample of another board: `hosts forget NAME` forgets its key (it used to look only
    under the default board); a name stored for two boards must be told apart."""
    store = HostKeyStore()
    store.trust("es-arm32/arm32", *new_key(), source="test")
    runner = CliRunner()
    result = runner.invoke(root, ["hosts", "forget", "arm32"])
    assert result.exit_code == 0, result.output
    assert store.get("es-arm32/arm32") is None
    store.trust("es-virt/twin", *new_key(), source="test")
    store.trust("es-arm32/twin", *new_key(), source="test")
    result = runner.invoke(root, ["hosts", "forget", "twin"])
    assert result.exit_code != 0 and "es-arm32/twin, es-virt/twin" in result.output
    assert "Traceback" not in result.output
    assert store.get("es-virt/twin") is not None and store.get("es-arm32/twin") is not None
    result = runner.invoke(root, ["hosts", "forget", "twin", "--board", "es-virt"])
    assert result.exit_code == 0 and store.get("es-virt/twin") is None
