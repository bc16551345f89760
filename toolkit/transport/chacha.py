"""``chacha20-poly1305@openssh.com`` for paramiko, from ``cryptography``'s ChaCha20 and Poly1305.

Why: the device decrypts every uploaded byte. dropbear (the firmware's SSH server) offers
chacha20-poly1305 and aes-ctr; paramiko speaks only the latter, and on a router CPU without AES
instructions (and in QEMU's emulated arm64) AES-CTR + HMAC-SHA2-256 costs the device ~1.6x the
CPU of chacha20-poly1305 per byte (measured: 2.0-2.5 s vs 1.4 s of QEMU CPU for 8 MB). OpenSSH
picks chacha20 by default, which is most of why it uploaded faster than paramiko.

The construction (OpenSSH's PROTOCOL.chacha20poly1305): 64 bytes of key; the first 32 (K_2)
key the payload cipher, the last 32 (K_1) key a cipher that only hides the 4-byte packet
length. The nonce is the packet sequence number (64-bit big-endian), the block counter 64-bit
little-endian (the original ChaCha20). Keystream block 0 of K_2 gives the Poly1305 key; the
payload is encrypted from block 1; the tag covers the encrypted length and payload.

paramiko has no cipher plug-in interface, so :func:`install` hooks a Packetizer subclass:
outbound, paramiko builds the plain packet (AEAD padding rules, no MAC) and our ``write_all``
seals it; inbound, our ``read_all`` opens the length of each packet header, then paramiko's
AEAD path calls the engine's ``decrypt`` (same signature as AES-GCM's) for the rest. Sequence
numbers are tracked by the engines, started from the Packetizer's when the keys switch.
"""

from __future__ import annotations

import struct
from typing import Any

NAME = "chacha20-poly1305@openssh.com"
TAG = 16


class ChaCha20Poly1305:
    """One direction of ``chacha20-poly1305@openssh.com``."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 64:
            raise ValueError(f"{NAME} needs 64 bytes of key, got {len(key)}")
        self.main_key = bytes(key[:32])  # K_2: payload and Poly1305 key
        self.length_key = bytes(key[32:])  # K_1: the packet length only
        self.seq = 0
        self._sealed_length = b""

    @staticmethod
    def _stream(key: bytes, seq: int) -> Any:
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

        # cryptography's 16-byte ChaCha20 "nonce" is the raw state words 12-15: a 64-bit
        # little-endian block counter (0) followed by OpenSSH's 64-bit big-endian seqnr.
        nonce = bytes(8) + struct.pack(">Q", seq & 0xFFFFFFFF)
        return Cipher(algorithms.ChaCha20(key, nonce), mode=None).encryptor()

    def _poly_and_payload(self, seq: int) -> tuple[bytes, Any]:
        stream = self._stream(self.main_key, seq)
        poly_key = stream.update(bytes(64))[:32]  # block 0; the payload continues at block 1
        return poly_key, stream

    def seal(self, packet: bytes) -> bytes:
        """Encrypt one plain packet (length + padding length + payload + padding); add the tag."""
        from cryptography.hazmat.primitives.poly1305 import Poly1305

        seq = self.seq
        self.seq = (seq + 1) & 0xFFFFFFFF
        length = self._stream(self.length_key, seq).update(packet[:4])
        poly_key, stream = self._poly_and_payload(seq)
        body = length + stream.update(packet[4:])
        return body + Poly1305.generate_tag(poly_key, body)

    def open_length(self, sealed: bytes) -> bytes:
        """The plain 4-byte length of the next packet (kept for the tag check)."""
        self._sealed_length = bytes(sealed[:4])
        return self._stream(self.length_key, self.seq).update(self._sealed_length)

    def decrypt(self, iv: bytes, data: bytes, aad: bytes) -> bytes:
        """paramiko's AEAD call: ``data`` is the encrypted rest of the packet plus the tag."""
        import paramiko
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.poly1305 import Poly1305

        seq = self.seq
        body, tag = self._sealed_length + data[:-TAG], data[-TAG:]
        poly_key, stream = self._poly_and_payload(seq)
        try:
            Poly1305.verify_tag(poly_key, body, tag)
        except InvalidSignature:
            raise paramiko.SSHException("Mismatched MAC (chacha20-poly1305)") from None
        self.seq = (seq + 1) & 0xFFFFFFFF
        return bytes(stream.update(data[:-TAG]))


def _packetizer_class() -> type:
    import paramiko

    class Packetizer(paramiko.packet.Packetizer):  # type: ignore[misc]
        _rk_out: ChaCha20Poly1305 | None = None
        _rk_in: ChaCha20Poly1305 | None = None

        def set_outbound_cipher(
            self, block_engine: Any, block_size: int, *args: Any, **kwargs: Any
        ) -> None:
            if not isinstance(block_engine, ChaCha20Poly1305):
                self._rk_out = None
                super().set_outbound_cipher(block_engine, block_size, *args, **kwargs)
                return
            block_engine.seq = getattr(self, "_Packetizer__sequence_number_out")  # noqa: B009
            self._rk_out = block_engine
            # paramiko then builds plain packets with AEAD padding and no MAC; write_all seals.
            plain: dict[str, Any] = {"block_engine": None, "mac_engine": None, "mac_key": None}
            super().set_outbound_cipher(
                block_size=8, mac_size=0, sdctr=False, etm=False, aead=True, iv_out=None, **plain
            )

        def set_inbound_cipher(
            self, block_engine: Any, block_size: int, *args: Any, **kwargs: Any
        ) -> None:
            if isinstance(block_engine, ChaCha20Poly1305):
                block_engine.seq = getattr(self, "_Packetizer__sequence_number_in")  # noqa: B009
                self._rk_in = block_engine
                kwargs["mac_size"] = TAG
            else:
                self._rk_in = None
            super().set_inbound_cipher(block_engine, block_size, *args, **kwargs)

        # Strict key exchange (the Terrapin fix) restarts sequence numbers at NEWKEYS; paramiko
        # does that after switching inbound keys, so the engines must follow.
        def reset_seqno_out(self) -> None:
            super().reset_seqno_out()
            if self._rk_out is not None:
                self._rk_out.seq = 0

        def reset_seqno_in(self) -> None:
            super().reset_seqno_in()
            if self._rk_in is not None:
                self._rk_in.seq = 0

        def write_all(self, out: Any) -> None:
            if self._rk_out is not None:
                out = self._rk_out.seal(bytes(out))  # under paramiko's write lock, in order
            super().write_all(out)

        def read_all(self, n: int, check_rekey: bool = False) -> bytes:
            data: bytes = super().read_all(n, check_rekey)
            # check_rekey=True is paramiko's read of a packet's first block: its length.
            if check_rekey and self._rk_in is not None:
                return self._rk_in.open_length(data) + data[4:]
            return data

    return Packetizer


_CLASS: type | None = None

#: The paramiko releases the known-answer and interop tests (dropbear, OpenSSH) passed on;
#: pyproject.toml bounds the dependency to them. Older ones lack the AEAD packet path.
TESTED_PARAMIKO = ("3.5.1", "4.0.0", "5.0.1", "5.1.0")


def _compatible(packetizer: Any) -> bool:
    """Whether this paramiko's Packetizer has every internal the hook relies on: the private
    sequence numbers, the strict-kex resets (3.4) and the AEAD cipher path (3.5). Checked
    rather than trusted to the version number, so that a paramiko outside the tested range
    falls back to aes-ctr instead of failing the handshake."""
    import inspect

    needed = (
        "_Packetizer__sequence_number_out",
        "_Packetizer__sequence_number_in",
        "reset_seqno_out",
        "reset_seqno_in",
        "read_all",
        "write_all",
    )
    if not all(hasattr(packetizer, name) for name in needed):
        return False
    try:
        outbound = inspect.signature(packetizer.set_outbound_cipher).parameters
        inbound = inspect.signature(packetizer.set_inbound_cipher).parameters
        read_all = inspect.signature(packetizer.read_all).parameters
    except (TypeError, ValueError):
        return False
    return (
        {"aead", "iv_out", "block_engine", "mac_engine", "mac_key", "sdctr", "etm"} <= set(outbound)
        and {"aead", "mac_size"} <= set(inbound)
        and "check_rekey" in read_all
    )


def install(transport: Any) -> bool:
    """Teach one (not yet started) paramiko Transport the cipher; False if this paramiko's
    internals are not the ones this module was written against (then aes-ctr is used)."""
    global _CLASS
    packetizer = transport.packetizer
    if not _compatible(packetizer):
        return False
    if _CLASS is None:
        _CLASS = _packetizer_class()
    packetizer.__class__ = _CLASS
    info = dict(transport._cipher_info)
    info[NAME] = {
        "class": ChaCha20Poly1305,
        "block-size": 8,
        "key-size": 64,
        "iv-size": 12,
        "is_aead": True,
    }
    transport._cipher_info = info  # this transport only; paramiko's class table stays as is
    return True
