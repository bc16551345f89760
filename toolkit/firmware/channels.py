"""Client side of firmware channels: ``list`` and ``pull`` through python-tuf's ngclient.

TUF protects the *transport* (rollback, freeze, mix-and-match, endless data, wrong keys);
routerkit adds what TUF does not know about: firmware versions (the newest image for the
board, never older than what we already have unless told) and the image's own checks
(``verify_image``) before anything lands in the cache's final path.

Trust anchor, first found wins: the ``root`` argument (``--root FILE``), ``root`` in
``config_dir()/channel.toml``, then the root bundled in ``toolkit/data/channel/root.json``.
The URL: the ``url`` argument, ``$ROUTERKIT_CHANNEL_URL``, then ``url`` in channel.toml.

Cache: ``cache_dir()/channels/<hash of url>/`` with ``metadata/`` (ngclient's trusted state),
``images/<channel>/`` (verified images only) and a ``lock`` (filelock) so that benches and CI
jobs sharing one cache never interleave an update.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit import paths
from toolkit.errors import ChannelError, ConfigError, DowngradeError, RouterkitError
from toolkit.events import NullReporter, Reporter, step
from toolkit.firmware.channel_repo import CHANNELS, image_board, target_path_for
from toolkit.firmware.verify import VerifiedImage, verify_image
from toolkit.firmware.versions import InvalidVersion, Version, parse_version
from toolkit.record import atomic_write

BUNDLED_ROOT = Path(__file__).resolve().parent.parent / "data" / "channel" / "root.json"
LOCK_TIMEOUT = 600.0


@dataclass(frozen=True)
class ChannelImage:
    channel: str
    target_path: str
    version: str
    board: str
    supported_devices: tuple[str, ...]
    length: int
    sha256: str
    #: signed release notes (toolkit.firmware.notes), None when published without
    notes: dict[str, Any] | None = None
    build_date: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "supported_devices": list(self.supported_devices)}


@dataclass(frozen=True)
class PullResult:
    path: Path
    image: ChannelImage
    verified: VerifiedImage
    cached: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "cached": self.cached,
            "image": self.image.to_dict(),
            "verified": self.verified.to_dict(),
        }


def _config() -> dict[str, Any]:
    path = paths.config_dir() / "channel.toml"
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None


def resolve(url: str | None, root: Path | None) -> tuple[str, bytes, str]:
    """(url, trusted root bytes, where the root came from)."""
    config = _config()
    url = url or os.environ.get("ROUTERKIT_CHANNEL_URL") or config.get("url")
    if not url:
        raise ConfigError(
            "no channel URL", hint="pass --url, set ROUTERKIT_CHANNEL_URL, or url in channel.toml"
        )
    candidates = [root, Path(config["root"]) if config.get("root") else None, BUNDLED_ROOT]
    for candidate in candidates:
        if candidate is not None and candidate.is_file():
            return str(url).rstrip("/") + "/", candidate.read_bytes(), str(candidate)
    raise ConfigError(
        "no trusted root for the channel",
        hint="pass --root REPO/metadata/1.root.json (from the publisher) or set root in channel.toml",
    )


def channel_cache(url: str, cache: Path | None = None) -> Path:
    base = cache or (paths.cache_dir() / "channels")
    directory = base / hashlib.sha256(url.encode()).hexdigest()[:16]
    (directory / "metadata").mkdir(parents=True, exist_ok=True)
    return directory


def _stale_since(metadata_dir: Path, updater: Any = None) -> str:
    """The earliest expiry among the metadata that has expired (for the message).

    ngclient loads an expired timestamp (to keep rollback protection) but does not persist
    it, so its expiry is read from the updater's trusted set first, then from the cache.
    """
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    expired = []
    with contextlib.suppress(Exception):  # a private attribute of ngclient: best effort only
        for signed in updater._trusted_set:
            if signed.is_expired(now):
                expired.append(signed.expires.strftime("%Y-%m-%dT%H:%M:%SZ"))
    for path in metadata_dir.glob("*.json"):
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            expires = json.loads(path.read_bytes())["signed"]["expires"]
            if datetime.fromisoformat(expires.replace("Z", "+00:00")) < now:
                expired.append(expires)
    return min(expired) if expired else "an unknown date"


def _unreachable(exc: BaseException) -> bool:
    """urllib3 files 'connection refused' under timeouts (NewConnectionError), and tuf
    turns that into SlowRetrievalError: look at the cause to tell the user the truth."""
    import urllib3

    cause: BaseException | None = exc
    for _ in range(4):
        if cause is None:
            return False
        reason = getattr(cause, "reason", None)
        if isinstance(cause, urllib3.exceptions.NewConnectionError) or isinstance(
            reason, urllib3.exceptions.NewConnectionError
        ):
            return True
        cause = cause.__cause__
    return False


def _channel_error(
    exc: Exception, url: str, metadata_dir: Path, updater: Any = None
) -> RouterkitError:
    """Translate tuf/urllib3 failures into one clear ChannelError."""
    from tuf.api import exceptions as tx

    if _unreachable(exc):
        return ChannelError(f"channel unreachable: {url} (connection refused or no route)")
    if isinstance(exc, tx.ExpiredMetadataError):
        return ChannelError(
            f"channel is stale since {_stale_since(metadata_dir, updater)}: its signed metadata expired "
            f"({exc}); a frozen or abandoned mirror — nothing was downloaded",
            hint="ask the publisher to re-sign the channel, or use another mirror",
        )
    if isinstance(exc, tx.BadVersionNumberError):
        return ChannelError(
            f"rollback refused: the channel served older metadata than we trust ({exc})"
        )
    if isinstance(exc, tx.UnsignedMetadataError):
        return ChannelError(f"channel metadata is not signed by the trusted keys ({exc})")
    if isinstance(exc, tx.LengthOrHashMismatchError):
        return ChannelError(
            f"the channel served a file that does not match its signed length/hash ({exc}); "
            "a swapped or mixed-up file — nothing was saved"
        )
    if isinstance(exc, tx.DownloadLengthMismatchError):
        return ChannelError(
            f"the channel sent more data than its signed metadata allows ({exc}); "
            "endless-data attack or broken mirror — nothing was saved"
        )
    if isinstance(exc, tx.SlowRetrievalError):
        return ChannelError(f"the channel at {url} is too slow or stalled")
    if isinstance(exc, tx.DownloadHTTPError):
        return ChannelError(f"the channel at {url} answered HTTP {exc.status_code} ({exc})")
    if isinstance(exc, tx.RepositoryError):
        return ChannelError(f"channel metadata rejected: {type(exc).__name__}: {exc}")
    if isinstance(exc, OSError):
        return ChannelError(f"cannot write the channel cache in {metadata_dir.parent}: {exc}")
    return ChannelError(f"channel unreachable: {url} ({type(exc).__name__}: {exc})")


class _Session:
    """One locked, refreshed ngclient Updater for a channel URL."""

    def __init__(self, url: str, root: bytes, cache: Path | None) -> None:
        self.url = url
        self.dir = channel_cache(url, cache)
        self.root = root

    def __enter__(self) -> _Session:
        from filelock import FileLock
        from tuf.ngclient import Updater

        self.lock = FileLock(str(self.dir / "lock"), timeout=LOCK_TIMEOUT)
        self.lock.acquire()
        try:
            self.updater = Updater(
                str(self.dir / "metadata"),
                self.url + "metadata/",
                None,
                self.url + "targets/",
                bootstrap=self.root,
            )
        except BaseException as exc:
            self.lock.release()
            raise self.translate(exc) from None
        try:
            self.updater.refresh()
        except BaseException as exc:
            self.lock.release()
            raise self.translate(exc) from None
        return self

    def __exit__(self, *exc: object) -> None:
        self.lock.release()

    def translate(self, exc: BaseException) -> BaseException:
        if isinstance(exc, RouterkitError) or not isinstance(exc, Exception):
            return exc
        import urllib3
        from tuf.api import exceptions as tx

        known = (
            tx.RepositoryError,
            tx.DownloadError,
            urllib3.exceptions.HTTPError,
            OSError,
            ValueError,
        )
        if isinstance(exc, known):
            return _channel_error(
                exc, self.url, self.dir / "metadata", getattr(self, "updater", None)
            )
        return exc

    def images(self, channel: str) -> list[ChannelImage]:
        from tuf.api.metadata import Metadata, Targets

        try:
            self.updater.get_targetinfo(f"{channel}/.list")  # loads the delegated role
            md = Metadata[Targets].from_bytes(
                (self.dir / "metadata" / f"{channel}.json").read_bytes()
            )
        except Exception as exc:  # translated to typed errors right here
            raise self.translate(exc) from None
        found = []
        for path, info in md.signed.targets.items():
            custom = info.custom.get("routerkit") if isinstance(info.custom, dict) else None
            if not isinstance(custom, dict):
                continue
            devices = custom.get("supported_devices") or []
            found.append(
                ChannelImage(
                    channel,
                    path,
                    str(custom.get("version")),
                    str(custom.get("board")),
                    tuple(str(d) for d in devices if isinstance(d, str)),
                    info.length,
                    str(info.hashes.get("sha256", "")),
                    custom["notes"] if isinstance(custom.get("notes"), dict) else None,
                    str(custom["build_date"]) if custom.get("build_date") else None,
                )
            )
        return found


def _key(image: ChannelImage) -> Version:
    try:
        return parse_version(image.version)
    except InvalidVersion:
        return parse_version("0.0.0-invalid")


def _for_board(images: list[ChannelImage], compatible: list[str]) -> list[ChannelImage]:
    mine = [i for i in images if set(i.supported_devices) & set(compatible)]
    return sorted(mine, key=_key, reverse=True)


def list_images(
    channel: str,
    board: str | None = None,
    *,
    url: str | None = None,
    root: Path | None = None,
    cache: Path | None = None,
) -> list[ChannelImage]:
    """The channel's images (for ``board`` if given), newest first."""
    from toolkit.boards import load_board

    if channel not in CHANNELS:
        raise ConfigError(f"unknown channel {channel!r} (channels: {', '.join(CHANNELS)})")
    url, root_bytes, _ = resolve(url, root)
    with _Session(url, root_bytes, cache) as session:
        images = session.images(channel)
    if board is None:
        return sorted(images, key=_key, reverse=True)
    return _for_board(images, load_board(board).compatible)


def _state(directory: Path) -> dict[str, Any]:
    try:
        data = json.loads((directory / "state.json").read_bytes())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def pull(
    channel: str,
    board: str,
    *,
    url: str | None = None,
    root: Path | None = None,
    cache: Path | None = None,
    current_version: str | None = None,
    version: str | None = None,
    allow_downgrade: bool = False,
    reporter: Reporter | None = None,
) -> PullResult:
    """Download (or reuse) and verify the newest image of ``channel`` for ``board``.

    Never returns an image older than the newest one pulled before for this channel and
    board, nor older than ``current_version``, unless ``allow_downgrade``. The file is
    downloaded to a temporary name, checked by TUF (length, hash) and by ``verify_image``,
    and only then renamed into the cache.
    """
    from toolkit.boards import load_board

    board_obj = load_board(board)
    if channel not in CHANNELS:
        raise ConfigError(f"unknown channel {channel!r} (channels: {', '.join(CHANNELS)})")
    url, root_bytes, _ = resolve(url, root)
    reporter = reporter or NullReporter()
    with (
        step(reporter, "channel pull", f"{channel} at {url}"),
        _Session(url, root_bytes, cache) as session,
    ):
        candidates = _for_board(session.images(channel), board_obj.compatible)
        if version is not None:
            candidates = [c for c in candidates if c.version == version]
        if not candidates:
            what = f"version {version}" if version else "no image"
            raise ChannelError(f"channel {channel} has {what} for board {board_obj.id}")
        chosen = candidates[0]
        state = _state(session.dir)
        floors = [v for v in (state.get(f"{channel}/{board_obj.id}"), current_version) if v]
        for floor in floors:
            if _key(chosen) < parse_version(floor) and not allow_downgrade:
                raise DowngradeError(
                    f"channel {channel} offers {chosen.version}, older than {floor} "
                    "which this machine already has (a rollback?)",
                    hint="--allow-downgrade if you really want the older image",
                )
        with step(reporter, "download and verify", f"{chosen.version} ({chosen.length} bytes)"):
            result = _fetch(session, chosen, board_obj, current_version, allow_downgrade)
        # The floor moves only now, after the signed image was bound to its listing, and to
        # the version the image itself signs: a channel that lists an image under a higher
        # version than it is cannot raise the floor and freeze us on an old build.
        signed_version = result.verified.version
        best = state.get(f"{channel}/{board_obj.id}")
        if best is None or parse_version(signed_version) > parse_version(best):
            state[f"{channel}/{board_obj.id}"] = signed_version
            atomic_write(session.dir / "state.json", json.dumps(state, indent=1).encode())
        return result


def _sha256_file(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def bind(
    listed: ChannelImage, tuf_length: int, tuf_sha256: str, verified: VerifiedImage, path: Path
) -> None:
    """Refuse unless the channel's listing of an image says what the signed image says.

    TUF vouches that ``path`` is the file the channel's metadata names (length, sha256);
    ``verify_image`` vouches for the image's own signed metadata. Neither compares the two:
    a channel (or a compromised channel key) could list a genuine, signed 1.0 image as
    ``es-virt-9.9.img`` with version 9.9, or under another board. The listing's version,
    board, supported devices, target name, length and sha256 must all match the signed image
    and the very bytes that were verified.
    """
    meta = verified.metadata
    size, sha = _sha256_file(path)
    signed_board = image_board(meta)
    signed_devices = sorted(str(d) for d in meta.get("supported_devices") or [])
    problems = []
    if listed.version != verified.version:
        problems.append(
            f"listed as version {listed.version!r}, but the image signs {verified.version!r}"
        )
    if listed.board != signed_board:
        problems.append(f"listed for board {listed.board!r}, but the image signs {signed_board!r}")
    if sorted(listed.supported_devices) != signed_devices:
        problems.append(
            f"listed for devices {sorted(listed.supported_devices)}, "
            f"but the image signs {signed_devices}"
        )
    expected_path = target_path_for(listed.channel, signed_board, verified.version)
    if listed.target_path != expected_path:
        problems.append(
            f"listed as {listed.target_path!r}, but the signed image is {expected_path!r}"
        )
    if (size, sha) != (tuf_length, tuf_sha256.lower()) or (size, sha) != (
        listed.length,
        listed.sha256.lower(),
    ):
        problems.append(
            f"the verified bytes ({size} bytes, sha256 {sha[:16]}…) are not the ones "
            f"the channel signed ({tuf_length} bytes, sha256 {tuf_sha256[:16]}…)"
        )
    if problems:
        raise ChannelError(
            f"channel {listed.channel} lies about {listed.target_path}: "
            + "; ".join(problems)
            + " — nothing was saved and the rollback floor is unchanged",
            hint="report it to the channel's publisher; pull --version V picks another image",
        )


def _fetch(
    session: _Session, chosen: ChannelImage, board: Any, current: str | None, allow_downgrade: bool
) -> PullResult:
    images_dir = session.dir / "images" / chosen.channel
    images_dir.mkdir(parents=True, exist_ok=True)
    final = images_dir / chosen.target_path.split("/", 1)[1]
    try:
        info = session.updater.get_targetinfo(chosen.target_path)
    except Exception as exc:
        raise session.translate(exc) from None
    if info is None:
        raise ChannelError(f"{chosen.target_path} vanished from the channel during the pull")
    tuf_sha = str(info.hashes.get("sha256", ""))
    if session.updater.find_cached_target(info, str(final)):
        try:
            verified = verify_image(
                final, board, running_version=current, allow_downgrade=allow_downgrade
            )
            bind(chosen, info.length, tuf_sha, verified, final)
        except ChannelError:
            final.unlink(missing_ok=True)  # cached by an older routerkit that did not bind
            raise
        return PullResult(final, chosen, verified, cached=True)
    tmp = images_dir / f".partial-{secrets.token_hex(4)}-{final.name}"
    try:
        try:
            session.updater.download_target(info, str(tmp))
        except Exception as exc:
            raise session.translate(exc) from None
        verified = verify_image(
            tmp, board, running_version=current, allow_downgrade=allow_downgrade
        )
        bind(chosen, info.length, tuf_sha, verified, tmp)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return PullResult(final, chosen, dataclasses.replace(verified, path=final), cached=False)
