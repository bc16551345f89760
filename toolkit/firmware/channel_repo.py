"""Publishing side of firmware channels: a static TUF repository any web host can serve.

Layout of ``--repo DIR`` (consistent snapshots, so a CDN can cache every file forever and a
client never mixes files from two publishes)::

    metadata/N.root.json  root.json (copy of the newest root)
    metadata/N.targets.json          top-level targets: delegates nightly/* and release/*
    metadata/N.nightly.json          signed by the CI key, short expiry
    metadata/N.release.json          signed by the release key
    metadata/N.snapshot.json         versions + hashes of all targets metadata
    metadata/timestamp.json          version + hash of the snapshot, shortest expiry
    targets/<channel>/<sha256>.<board>-<version>.img

Signing keys (one ed25519 PEM per role, 0600) live outside the served directory, by default
in ``paths.data_dir()/channel-keys``. A CI machine that publishes nightlies needs only the
``nightly``, ``snapshot`` and ``timestamp`` keys.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from toolkit import paths
from toolkit.errors import ChannelError, ConfigError
from toolkit.record import atomic_write

CHANNELS = ("nightly", "release")
TOP_ROLES = ("root", "targets", "snapshot", "timestamp")
SIGNING_ROLES = (*TOP_ROLES, *CHANNELS)


@dataclass(frozen=True)
class Expiry:
    """How long each role's metadata stays valid. Short for what changes often."""

    root: timedelta = timedelta(days=365)
    targets: timedelta = timedelta(days=365)
    release: timedelta = timedelta(days=365)
    nightly: timedelta = timedelta(days=7)
    snapshot: timedelta = timedelta(days=7)
    timestamp: timedelta = timedelta(days=1)


@dataclass
class PublishResult:
    channel: str
    target_path: str
    version: str
    board: str
    length: int
    sha256: str
    repo: Path
    pruned: list[str] = field(default_factory=list)
    created_repo: bool = False
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "repo": str(self.repo)}


def default_keys_dir() -> Path:
    return paths.data_dir() / "channel-keys"


def _signer(keys_dir: Path, role: str, *, create: bool) -> Any:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from securesystemslib.signer import CryptoSigner

    path = keys_dir / f"{role}.pem"
    if not path.exists():
        if not create:
            raise ConfigError(
                f"no signing key for TUF role {role!r} in {keys_dir}",
                hint="publish from the machine that holds the channel keys, or pass --keys DIR",
            )
        keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        signer = CryptoSigner.generate_ed25519()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(signer.private_bytes)
        return signer
    return CryptoSigner(load_pem_private_key(path.read_bytes(), None))


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)[:100]


def image_board(metadata: dict[str, Any]) -> str:
    """The board an image is published under: its ``board``, else its first supported device."""
    return str(metadata.get("board") or (metadata.get("supported_devices") or ["any"])[0])


def target_path_for(channel: str, board: str, version: str) -> str:
    """The TUF target path of ``board``'s ``version`` in ``channel`` (publisher and client agree)."""
    return f"{channel}/{_safe(board)}-{_safe(version)}.img"


class _Repo:
    """Reads the newest metadata of a repository directory and writes new versions."""

    def __init__(self, repo: Path) -> None:
        self.dir = repo
        self.meta_dir = repo / "metadata"
        self.targets_dir = repo / "targets"

    def exists(self) -> bool:
        return (self.meta_dir / "timestamp.json").exists()

    def load(self, name: str, version: int | None = None) -> Any:
        from tuf.api.metadata import Metadata

        filename = f"{name}.json" if version is None else f"{version}.{name}.json"
        try:
            return Metadata.from_bytes((self.meta_dir / filename).read_bytes())
        except (OSError, ValueError) as exc:
            raise ChannelError(f"repository {self.dir}: cannot read {filename} ({exc})") from None

    def write(self, md: Any, name: str, versioned: bool = True) -> bytes:
        from tuf.api.serialization.json import JSONSerializer

        data: bytes = md.to_bytes(JSONSerializer(compact=False))
        filename = f"{md.signed.version}.{name}.json" if versioned else f"{name}.json"
        atomic_write(self.meta_dir / filename, data)
        return data


def _init_repo(repo: _Repo, signers: dict[str, Any], expiry: Expiry, now: datetime) -> None:
    from tuf.api.metadata import DelegatedRole, Delegations, Metadata, Root, Targets

    root = Root(expires=now + expiry.root, consistent_snapshot=True)
    for role in TOP_ROLES:
        root.add_key(signers[role].public_key, role)
    root_md = Metadata(root)
    root_md.sign(signers["root"])
    repo.write(root_md, "root")
    repo.write(root_md, "root", versioned=False)

    keys = {signers[c].public_key.keyid: signers[c].public_key for c in CHANNELS}
    roles = {
        c: DelegatedRole(c, [signers[c].public_key.keyid], 1, True, paths=[f"{c}/*"])
        for c in CHANNELS
    }
    targets_md = Metadata(
        Targets(expires=now + expiry.targets, delegations=Delegations(keys, roles))
    )
    targets_md.sign(signers["targets"])
    repo.write(targets_md, "targets")
    for channel in CHANNELS:
        role_md = Metadata(Targets(expires=now + getattr(expiry, channel)))
        role_md.sign(signers[channel])
        repo.write(role_md, channel)


def _write_snapshot_and_timestamp(
    repo: _Repo,
    role_data: dict[str, tuple[int, bytes]],
    signers: dict[str, Any],
    expiry: Expiry,
    now: datetime,
    previous: tuple[int, int],
) -> None:
    from tuf.api.metadata import Metadata, MetaFile, Snapshot, Timestamp

    snapshot = Snapshot(version=previous[0] + 1, expires=now + expiry.snapshot)
    snapshot.meta = {
        f"{name}.json": MetaFile.from_data(version, data, ["sha256"])
        for name, (version, data) in role_data.items()
    }
    snap_md = Metadata(snapshot)
    snap_md.sign(signers["snapshot"])
    snap_bytes = repo.write(snap_md, "snapshot")
    timestamp = Timestamp(
        version=previous[1] + 1,
        expires=now + expiry.timestamp,
        snapshot_meta=MetaFile.from_data(snapshot.version, snap_bytes, ["sha256"]),
    )
    ts_md = Metadata(timestamp)
    ts_md.sign(signers["timestamp"])
    repo.write(ts_md, "timestamp", versioned=False)  # last: it makes the publish visible


def publish(
    image: Path,
    channel: str,
    repo_dir: Path,
    *,
    keys_dir: Path | None = None,
    keep_nightlies: int = 5,
    expiry: Expiry | None = None,
    now: datetime | None = None,
    notes: dict[str, Any] | None = None,
) -> PublishResult:
    """Add a verified image to ``channel`` of the repository in ``repo_dir``.

    Creates the repository (and its keys) on first use. The image must be a well-formed,
    correctly signed v1 image (its signer must be trusted here), or nothing is published.
    ``notes`` (see :mod:`toolkit.firmware.notes`) are signed into the image's target.
    """
    from filelock import FileLock
    from tuf.api.metadata import Metadata, TargetFile

    from toolkit.firmware.image import parse
    from toolkit.firmware.verify import check_hashes, check_signature
    from toolkit.firmware.versions import parse_version

    if channel not in CHANNELS:
        raise ConfigError(f"unknown channel {channel!r} (channels: {', '.join(CHANNELS)})")
    parsed = parse(image)
    key = check_signature(parsed)
    check_hashes(parsed)
    meta = parsed.metadata
    version = str(meta["version"])
    parse_version(version)
    board = image_board(meta)
    expiry = expiry or Expiry()
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    keys_dir = keys_dir or default_keys_dir()
    repo = _Repo(repo_dir)
    repo_dir.mkdir(parents=True, exist_ok=True)
    result_warnings = []
    if key.is_dev:
        result_warnings.append(
            "the image is signed with this machine's DEVELOPMENT key: other machines will refuse it"
        )
    with FileLock(str(repo_dir / ".publish.lock"), timeout=120):
        created = not repo.exists()
        signers = {
            r: _signer(keys_dir, r, create=created) for r in ("snapshot", "timestamp", channel)
        }
        if created:
            signers.update({r: _signer(keys_dir, r, create=True) for r in SIGNING_ROLES})
            _init_repo(repo, signers, expiry, now)
            previous = (0, 0)
        else:
            ts = repo.load("timestamp")
            previous = (ts.signed.snapshot_meta.version, ts.signed.version)
        snap = repo.load("snapshot", previous[0]) if previous[0] else None
        versions = {c: 1 for c in (*CHANNELS, "targets")}
        if snap is not None:
            versions = {n[:-5]: m.version for n, m in snap.signed.meta.items()}
        role_md: Metadata[Any] = repo.load(channel, versions[channel])

        target_path = target_path_for(channel, board, version)
        info = TargetFile.from_file(target_path, str(image), ["sha256"])
        sha = info.hashes["sha256"]
        info.unrecognized_fields["custom"] = {
            "routerkit": {
                "version": version,
                "board": board,
                "supported_devices": meta["supported_devices"],
                "compat_version": meta["compat_version"],
                "build_date": meta.get("build_date"),
                "signer": meta["signer"],
            }
        }
        if notes is not None:
            from toolkit.firmware.notes import validate

            info.unrecognized_fields["custom"]["routerkit"]["notes"] = validate(notes)
        old = role_md.signed.targets.get(target_path)
        if old is not None and old.hashes.get("sha256") != sha:
            raise ChannelError(
                f"{target_path} is already published with different content",
                hint="publish a new version; published versions are immutable",
            )
        dest = repo.targets_dir / channel / f"{sha}.{target_path.split('/', 1)[1]}"
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.tmp")
            shutil.copyfile(image, tmp)
            os.replace(tmp, dest)
        role_md.signed.targets[target_path] = info

        pruned: list[tuple[str, Any]] = []
        if channel == "nightly" and keep_nightlies > 0:
            pruned = _prune(role_md.signed.targets, board, keep_nightlies)
        role_md.signed.version = versions[channel] + 1
        role_md.signed.expires = now + getattr(expiry, channel)
        role_md.signatures.clear()
        role_md.sign(signers[channel])
        role_bytes = repo.write(role_md, channel)

        role_data: dict[str, tuple[int, bytes]] = {channel: (role_md.signed.version, role_bytes)}
        for name, ver in versions.items():
            if name != channel:
                role_data[name] = (ver, (repo.meta_dir / f"{ver}.{name}.json").read_bytes())
        _write_snapshot_and_timestamp(repo, role_data, signers, expiry, now, previous)
        for old_path, old_info in pruned:
            name = old_path.split("/", 1)[1]
            (repo.targets_dir / channel / f"{old_info.hashes['sha256']}.{name}").unlink(
                missing_ok=True
            )
    return PublishResult(
        channel,
        target_path,
        version,
        board,
        info.length,
        sha,
        repo_dir,
        [p for p, _ in pruned],
        created,
        result_warnings,
    )


def _prune(targets: dict[str, Any], board: str, keep: int) -> list[tuple[str, Any]]:
    """Drop all but the ``keep`` newest nightlies of ``board``; return what was dropped."""
    from toolkit.firmware.versions import InvalidVersion, parse_version

    mine = []
    for path, info in targets.items():
        custom = (info.custom or {}).get("routerkit", {}) if isinstance(info.custom, dict) else {}
        if custom.get("board") == board:
            try:
                mine.append((parse_version(str(custom.get("version"))), path))
            except InvalidVersion:
                continue
    mine.sort(reverse=True)
    dropped = []
    for _, path in mine[keep:]:
        dropped.append((path, targets.pop(path)))
    return dropped
