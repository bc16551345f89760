"""The host-key store notes where a key was last seen without rewriting its files on every
connection (a fleet connects many times a minute), and never touches known_hosts for it."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from toolkit import hostkeys
from toolkit.hostkeys import HostKeyStore


def _key() -> str:
    return base64.b64encode(
        b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + os.urandom(32)
    ).decode()


def test_seen_rewrites_the_metadata_only_when_the_address_changes_or_the_note_is_stale(
    tmp_path: Path, monkeypatch
) -> None:
    store = HostKeyStore(tmp_path)
    store.trust("es-virt/a", "ssh-ed25519", _key(), source="user", host="127.0.0.1", port=2201)
    known = store.known_hosts.read_bytes()
    writes: list[int] = []
    save_meta = store._save_meta
    monkeypatch.setattr(store, "_save_meta", lambda keys: (writes.append(1), save_meta(keys)))

    store.seen("es-virt/a", "127.0.0.1", 2201)  # same place, just noted: nothing written
    assert writes == []

    store.seen("es-virt/a", "127.0.0.1", 2202)  # the sample came up on a new port
    moved = store.get("es-virt/a")
    assert writes == [1] and moved is not None and moved.port == 2202

    monkeypatch.setattr(hostkeys, "SEEN_EVERY", 0.0)  # a stale note is refreshed
    store.seen("es-virt/a", "127.0.0.1", 2202)
    assert writes == [1, 1]
    assert store.known_hosts.read_bytes() == known

    store.seen("es-virt/unknown", "127.0.0.1", 1)  # an unknown identity is not added
    assert store.get("es-virt/unknown") is None
