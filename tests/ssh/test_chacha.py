"""chacha20-poly1305@openssh.com for paramiko: negotiated with the firmware's dropbear, bytes
arrive intact both ways, and a tampered packet is refused."""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path
from typing import Any

import pytest

from toolkit.transport import chacha
from toolkit.transport.ssh import connect_target

from .conftest import target_for


def _pair() -> tuple[chacha.ChaCha20Poly1305, chacha.ChaCha20Poly1305]:
    key = os.urandom(64)
    return chacha.ChaCha20Poly1305(key), chacha.ChaCha20Poly1305(key)


def _plain_packet(payload: bytes) -> bytes:
    padding = 8 - (len(payload) + 1) % 8 + (8 if (8 - (len(payload) + 1) % 8) < 4 else 0)
    return struct.pack(">IB", len(payload) + 1 + padding, padding) + payload + bytes(padding)


def test_sealed_packets_open_in_sequence_and_hide_length_and_payload() -> None:
    sender, receiver = _pair()
    for n, payload in enumerate([b"\x5e" + os.urandom(100), b"\x02hello", b"\x5e" + bytes(32768)]):
        packet = _plain_packet(payload)
        sealed = sender.seal(packet)
        assert len(sealed) == len(packet) + chacha.TAG
        assert sealed[:4] != packet[:4] and sealed[4:-16] != packet[4:]
        assert receiver.open_length(sealed[:8]) == packet[:4]
        assert receiver.decrypt(b"", sealed[4:], b"") == packet[4:]
        assert sender.seq == receiver.seq == n + 1


def test_a_flipped_bit_or_a_replayed_packet_is_refused() -> None:
    import paramiko

    sender, receiver = _pair()
    sealed = bytearray(sender.seal(_plain_packet(b"\x5e" + os.urandom(64))))
    sealed[10] ^= 1
    receiver.open_length(bytes(sealed[:8]))
    with pytest.raises(paramiko.SSHException, match="MAC"):
        receiver.decrypt(b"", bytes(sealed[4:]), b"")
    # The sequence number is the nonce: the same packet at the next position fails too.
    sender2, receiver2 = _pair()
    first = sender2.seal(_plain_packet(b"\x02one"))
    receiver2.open_length(first[:8])
    receiver2.decrypt(b"", first[4:], b"")
    receiver2.open_length(first[:8])
    with pytest.raises(paramiko.SSHException):
        receiver2.decrypt(b"", first[4:], b"")


def test_key_must_be_64_bytes() -> None:
    with pytest.raises(ValueError):
        chacha.ChaCha20Poly1305(bytes(32))


def test_dropbear_negotiates_chacha20_and_an_upload_arrives_intact(make_device, client_key: Path) -> None:
    dev = make_device()
    with connect_target(target_for(dev, client_key), accept_new=True) as conn:
        transport: Any = conn.transport
        assert (transport.local_cipher, transport.remote_cipher) == (chacha.NAME, chacha.NAME)
        data = os.urandom(3 * 1024 * 1024 + 123)
        conn.upload(data, "/tmp/chacha.bin", method="cat")
        out = conn.run("sha256sum /tmp/chacha.bin; head -c 200000 /tmp/chacha.bin | od -An -v -tx1")
        assert out.stdout.split()[0] == hashlib.sha256(data).hexdigest()
        # device -> host: ~600 kB of command output (many packets), decrypted and checked
        assert out.stdout.split("\n", 1)[1].split() == [f"{b:02x}" for b in data[:200000]]
