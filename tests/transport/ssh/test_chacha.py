"""chacha20-poly1305@openssh.com for paramiko: known answers, negotiated with the firmware's
dropbear (and OpenSSH, in test_openssh_interop.py), bytes intact both ways, tampering refused.

The known-answer tests do not trust the primitives the adapter is built from: a pure-Python
ChaCha20 block function and Poly1305 written here from RFC 8439 are checked against the RFC's
vectors (and so is ``cryptography``), then OpenSSH's construction (PROTOCOL.chacha20poly1305)
is assembled from them by hand and compared with the adapter, packet by packet, with one
result pinned as hex so that a change on either side shows.
"""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path
from typing import Any

import pytest

from tests.journeys.flash_ssh.conftest import target_for
from toolkit.hostkeys import HostKeyStore, identity_of, parse_key_line
from toolkit.target.ssh import connect_target
from toolkit.transport import chacha

MASK32 = 0xFFFFFFFF


def _plain_packet(payload: bytes) -> bytes:
    """An SSH packet as paramiko builds it for an AEAD cipher (length not in the 8-alignment)."""
    padding = 8 - (len(payload) + 1) % 8 + (8 if (8 - (len(payload) + 1) % 8) < 4 else 0)
    return struct.pack(">IB", len(payload) + 1 + padding, padding) + payload + bytes(padding)


def _rotl(value: int, bits: int) -> int:
    return ((value << bits) & MASK32) | (value >> (32 - bits))


def _quarter_round(s: list[int], a: int, b: int, c: int, d: int) -> None:
    s[a] = (s[a] + s[b]) & MASK32
    s[d] = _rotl(s[d] ^ s[a], 16)
    s[c] = (s[c] + s[d]) & MASK32
    s[b] = _rotl(s[b] ^ s[c], 12)
    s[a] = (s[a] + s[b]) & MASK32
    s[d] = _rotl(s[d] ^ s[a], 8)
    s[c] = (s[c] + s[d]) & MASK32
    s[b] = _rotl(s[b] ^ s[c], 7)


def chacha20_block(key: bytes, words_12_to_15: tuple[int, int, int, int]) -> bytes:
    """RFC 8439 §2.3: one 64-byte block; state words 12-15 given raw (counter and nonce)."""
    state = [
        0x61707865,
        0x3320646E,
        0x79622D32,
        0x6B206574,
        *struct.unpack("<8I", key),
        *words_12_to_15,
    ]
    work = list(state)
    for _ in range(10):  # 20 rounds: a column round and a diagonal round each time
        for a, b, c, d in ((0, 4, 8, 12), (1, 5, 9, 13), (2, 6, 10, 14), (3, 7, 11, 15)):
            _quarter_round(work, a, b, c, d)
        for a, b, c, d in ((0, 5, 10, 15), (1, 6, 11, 12), (2, 7, 8, 13), (3, 4, 9, 14)):
            _quarter_round(work, a, b, c, d)
    return struct.pack("<16I", *((w + s) & MASK32 for w, s in zip(work, state, strict=True)))


def poly1305(key: bytes, message: bytes) -> bytes:
    """RFC 8439 §2.5, straight from the definition (big integers, no limbs)."""
    r = int.from_bytes(key[:16], "little") & 0x0FFFFFFC0FFFFFFC0FFFFFFC0FFFFFFF
    s = int.from_bytes(key[16:], "little")
    p = (1 << 130) - 5
    acc = 0
    for i in range(0, len(message), 16):
        acc = (acc + int.from_bytes(message[i : i + 16] + b"\x01", "little")) * r % p
    return ((acc + s) & ((1 << 128) - 1)).to_bytes(16, "little")


def openssh_keystream(key: bytes, seq: int, first_block: int, length: int, primitive: str) -> bytes:
    """ChaCha20 as OpenSSH uses it: 64-bit LE block counter, nonce = 64-bit BE seqnr."""
    nonce = struct.pack(">Q", seq)
    if primitive == "cryptography":
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

        full = struct.pack("<Q", first_block) + nonce  # cryptography's 16-byte "nonce"
        return Cipher(algorithms.ChaCha20(key, full), mode=None).encryptor().update(bytes(length))
    out = b""
    block = first_block
    while len(out) < length:
        out += chacha20_block(key, (block & MASK32, block >> 32, *struct.unpack("<2I", nonce)))
        block += 1
    return out[:length]


def reference_seal(key: bytes, seq: int, packet: bytes, primitive: str = "python") -> bytes:
    """PROTOCOL.chacha20poly1305, assembled by hand: K_2 = key[:32] (payload, Poly1305 key
    from its block 0, payload from block 1), K_1 = key[32:] (the 4-byte length, block 0)."""
    k_2, k_1 = key[:32], key[32:]
    length = bytes(
        a ^ b for a, b in zip(packet[:4], openssh_keystream(k_1, seq, 0, 4, primitive), strict=True)
    )
    poly_key = openssh_keystream(k_2, seq, 0, 32, primitive)
    stream = openssh_keystream(k_2, seq, 1, len(packet) - 4, primitive)
    payload = bytes(a ^ b for a, b in zip(packet[4:], stream, strict=True))
    if primitive == "cryptography":
        from cryptography.hazmat.primitives.poly1305 import Poly1305

        tag = Poly1305.generate_tag(poly_key, length + payload)
    else:
        tag = poly1305(poly_key, length + payload)
    return length + payload + tag


# RFC 8439 §2.3.2: key 00..1f, nonce 00000009 0000004a 00000000, block counter 1.
RFC8439_BLOCK = bytes.fromhex(
    "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e"
    "d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e"
)
# RFC 8439 A.1 #1 (also draft-agl-tls-chacha20poly1305 §7 #1): zero key, zero nonce, block 0.
ZERO_BLOCK = bytes.fromhex(
    "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7"
    "da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586"
)


def test_chacha20_block_function_matches_rfc8439_in_both_implementations() -> None:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

    key, nonce = bytes(range(32)), bytes.fromhex("000000090000004a00000000")
    assert chacha20_block(key, (1, *struct.unpack("<3I", nonce))) == RFC8439_BLOCK
    ietf = Cipher(algorithms.ChaCha20(key, struct.pack("<I", 1) + nonce), mode=None).encryptor()
    assert ietf.update(bytes(64)) == RFC8439_BLOCK
    assert chacha20_block(bytes(32), (0, 0, 0, 0)) == ZERO_BLOCK
    for primitive in ("python", "cryptography"):
        assert openssh_keystream(bytes(32), 0, 0, 64, primitive) == ZERO_BLOCK


def test_poly1305_matches_rfc8439_in_both_implementations() -> None:
    from cryptography.hazmat.primitives.poly1305 import Poly1305

    key = bytes.fromhex("85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b")
    message, tag = (
        b"Cryptographic Forum Research Group",
        bytes.fromhex("a8061dc1305136c6c22b8baf0c0127a9"),
    )
    assert poly1305(key, message) == tag
    assert Poly1305.generate_tag(key, message) == tag


def test_both_reference_constructions_agree_across_counter_and_seqnr_bytes() -> None:
    key = bytes(range(100, 164))
    packet = _plain_packet(b"\x5e" + bytes(range(256)) * 3)  # > 12 blocks: the counter carries
    for seq in (0, 1, 0x01020304, MASK32):
        assert reference_seal(key, seq, packet) == reference_seal(key, seq, packet, "cryptography")


# Computed once with reference_seal() above and pinned, so a change in the adapter, in the
# reference or in the primitives underneath shows up even if they changed together.
PINNED_KEY = bytes(range(64))
PINNED_SEQ = 7
PINNED_PACKET = _plain_packet(b"\x5e\x00\x00\x00\x00\x00\x00\x00\x09routerkit")
PINNED_SEALED = bytes.fromhex(
    "a39afcb2"  # the packet length, encrypted with K_1
    "2d1815434e832a5e6c64c99fa2fbb65e5fdb44367ee33d83"  # padding length, payload, padding (K_2)
    "8342c8725a10e38758afa1a920b9d6c1"  # the Poly1305 tag
)


def test_adapter_matches_the_pinned_vector() -> None:
    engine = chacha.ChaCha20Poly1305(PINNED_KEY)
    engine.seq = PINNED_SEQ
    assert engine.seal(PINNED_PACKET) == PINNED_SEALED
    assert reference_seal(PINNED_KEY, PINNED_SEQ, PINNED_PACKET) == PINNED_SEALED
    opener = chacha.ChaCha20Poly1305(PINNED_KEY)
    opener.seq = PINNED_SEQ
    assert opener.open_length(PINNED_SEALED[:8]) == PINNED_PACKET[:4]
    assert opener.decrypt(b"", PINNED_SEALED[4:], b"") == PINNED_PACKET[4:]


def test_adapter_seals_and_opens_like_the_reference_packet_after_packet() -> None:
    key = os.urandom(64)
    sender, receiver = chacha.ChaCha20Poly1305(key), chacha.ChaCha20Poly1305(key)
    start = MASK32 - 2  # the sequence number wraps at 2^32 (a u_int in OpenSSH)
    sender.seq = receiver.seq = start
    for n in range(6):
        seq = (start + n) & MASK32
        packet = _plain_packet(b"\x5e" + os.urandom(n * 700 + 3))
        expected = reference_seal(key, seq, packet)
        assert sender.seal(packet) == expected
        assert receiver.open_length(expected[:8]) == packet[:4]
        assert receiver.decrypt(b"", expected[4:], b"") == packet[4:]
    assert sender.seq == receiver.seq == 3


def _pair() -> tuple[chacha.ChaCha20Poly1305, chacha.ChaCha20Poly1305]:
    key = os.urandom(64)
    return chacha.ChaCha20Poly1305(key), chacha.ChaCha20Poly1305(key)


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


def test_install_hooks_this_paramiko_and_refuses_one_without_the_aead_path() -> None:
    import socket

    import paramiko

    left, right = socket.socketpair()
    try:
        transport = paramiko.Transport(left)
        assert chacha.install(transport), f"paramiko {paramiko.__version__} is not supported"
        assert chacha.NAME in transport._cipher_info
        assert chacha.NAME not in paramiko.Transport._cipher_info  # this transport only

        class OldPacketizer:  # paramiko 3.4: no AEAD path
            def set_outbound_cipher(self, block_engine, block_size, mac_engine, mac_size, mac_key,
                                    sdctr=False, etm=False): ...  # fmt: skip

        old = paramiko.Transport(right)
        old.packetizer = OldPacketizer()
        assert not chacha.install(old)
    finally:
        left.close()
        right.close()


def test_key_must_be_64_bytes() -> None:
    with pytest.raises(ValueError):
        chacha.ChaCha20Poly1305(bytes(32))


def test_dropbear_negotiates_chacha20_and_an_upload_arrives_intact(
    make_device, client_key: Path
) -> None:
    dev = make_device()
    target = target_for(dev, client_key)
    # Trusted the way a person would (hosts trust): the key the device's own files hold.
    HostKeyStore().trust(
        identity_of(target.board, target.name), *parse_key_line(dev.host_key_line()), source="user"
    )
    with connect_target(target) as conn:
        transport: Any = conn.transport
        assert (transport.local_cipher, transport.remote_cipher) == (chacha.NAME, chacha.NAME)
        data = os.urandom(3 * 1024 * 1024 + 123)
        conn.upload(data, "/tmp/chacha.bin", method="cat")
        out = conn.run("sha256sum /tmp/chacha.bin; head -c 200000 /tmp/chacha.bin | od -An -v -tx1")
        assert out.stdout.split()[0] == hashlib.sha256(data).hexdigest()
        # device -> host: ~600 kB of command output (many packets), decrypted and checked
        assert out.stdout.split("\n", 1)[1].split() == [f"{b:02x}" for b in data[:200000]]
