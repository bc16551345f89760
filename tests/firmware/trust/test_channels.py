"""TUF channels against a real HTTP server on 127.0.0.1: publish, list, pull, and attacks.

Every attack must be refused with a clear ChannelError (or the image's own error) and leave
nothing in the cache's final path (``images/``), not even a partial download.
"""

from __future__ import annotations

import functools
import json
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from toolkit.cli import root
from toolkit.errors import ChannelError, ConfigError, DowngradeError, SignatureError
from toolkit.firmware import channels, keys
from toolkit.firmware.channel_repo import Expiry, _signer, publish

N1, N2, N3 = "1.3.0-nightly.20261121", "1.3.0-nightly.20261122", "1.3.0-nightly.20261123"


class Server:
    """A static file server for the repo, with per-path overrides to play the attacker."""

    def __init__(self, directory: Path) -> None:
        self.overrides: dict[str, bytes | Callable[[SimpleHTTPRequestHandler], None]] = {}
        server = self

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                override = server.overrides.get(self.path.lstrip("/"))
                if override is None:
                    return super().do_GET()
                if callable(override):
                    return override(self)
                self.send_response(200)
                self.send_header("Content-Length", str(len(override)))
                self.end_headers()
                self.wfile.write(override)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(directory))
        )
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def endless(handler: SimpleHTTPRequestHandler) -> None:
    """Stream zeros with no length until the client hangs up (capped at 256 MiB)."""
    handler.send_response(200)
    handler.end_headers()
    chunk = b"\0" * 65536
    try:
        for _ in range(4096):
            handler.wfile.write(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return tmp_path / "repo"


@pytest.fixture
def channel_keys(tmp_path: Path) -> Path:
    return tmp_path / "channel-keys"


@pytest.fixture
def server(repo: Path) -> Iterator[Server]:
    repo.mkdir(parents=True, exist_ok=True)
    srv = Server(repo)
    yield srv
    srv.close()


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def pub(make_image, repo: Path, channel_keys: Path) -> Callable[..., Any]:
    def do(version: str, channel: str = "nightly", **kwargs: Any) -> Any:
        return publish(make_image(version=version), channel, repo, keys_dir=channel_keys, **kwargs)

    return do


@pytest.fixture
def pull_(server: Server, repo: Path, cache: Path) -> Callable[..., channels.PullResult]:
    def do(**kwargs: Any) -> channels.PullResult:
        return channels.pull(
            "nightly",
            "es-virt",
            url=server.url,
            root=repo / "metadata" / "1.root.json",
            cache=cache,
            **kwargs,
        )

    return do


def final_files(cache: Path) -> set[str]:
    """Everything in the cache's image area (final and partial names)."""
    return {str(p.relative_to(cache)) for p in cache.glob("*/images/**/*") if p.is_file()}


def refused(pull_: Callable[..., Any], cache: Path, error: type[Exception] = ChannelError) -> str:
    before = final_files(cache) if cache.exists() else set()
    with pytest.raises(error) as info:
        pull_()
    assert final_files(cache) == before, "an attack left files in the cache"
    return str(info.value)


def test_pull_picks_the_newest_nightly_and_caches_it_verified(pub, pull_, cache: Path) -> None:
    pub(N1)
    pub(N2)
    cold = pull_()
    assert cold.image.version == N2 and not cold.cached
    assert cold.path.is_file() and cold.verified.version == N2
    warm = pull_()
    assert warm.cached and warm.path == cold.path
    assert final_files(cache) == {str(cold.path.relative_to(cache))}


def test_list_shows_the_channel_newest_first(pub, server: Server, repo: Path, cache: Path) -> None:
    pub(N1)
    pub(N2)
    pub("1.2.0", channel="release")
    images = channels.list_images(
        "nightly", "es-virt", url=server.url, root=repo / "metadata" / "1.root.json", cache=cache
    )
    assert [i.version for i in images] == [N2, N1]
    release = channels.list_images(
        "release", None, url=server.url, root=repo / "metadata" / "1.root.json", cache=cache
    )
    assert [i.version for i in release] == ["1.2.0"]


def test_never_pulls_older_than_it_already_has_unless_told(pub, pull_) -> None:
    pub(N1)
    pub(N2)
    pull_()
    with pytest.raises(DowngradeError, match="older than"):
        pull_(version=N1)
    assert pull_(version=N1, allow_downgrade=True).image.version == N1
    with pytest.raises(DowngradeError):
        pull_(current_version="1.4.0")


def test_publish_prunes_old_nightlies(pub, repo: Path) -> None:
    pub(N1, keep_nightlies=2)
    pub(N2, keep_nightlies=2)
    result = pub(N3, keep_nightlies=2)
    assert result.pruned == [f"nightly/es-virt-{N1}.img"]
    names = sorted(p.name.split(".", 1)[1] for p in (repo / "targets" / "nightly").iterdir())
    assert names == [f"es-virt-{N2}.img", f"es-virt-{N3}.img"]


def test_timestamp_rollback_is_refused(pub, pull_, server: Server, repo: Path, cache: Path) -> None:
    pub(N1)
    old = (repo / "metadata" / "timestamp.json").read_bytes()
    pub(N2)
    pull_()
    pub(N3)
    server.overrides["metadata/timestamp.json"] = old
    assert "rollback refused" in refused(pull_, cache)


def test_snapshot_rollback_is_refused(
    pub, pull_, server: Server, repo: Path, cache: Path, channel_keys: Path
) -> None:
    from tuf.api.metadata import Metadata, MetaFile

    pub(N1)
    pub(N2)
    pull_()
    # An attacker holding the (online) timestamp key points to the old snapshot v1.
    ts = Metadata.from_bytes((repo / "metadata" / "timestamp.json").read_bytes())
    ts.signed.version += 1
    ts.signed.snapshot_meta = MetaFile.from_data(
        1, (repo / "metadata" / "1.snapshot.json").read_bytes(), ["sha256"]
    )
    ts.signatures.clear()
    ts.sign(_signer(channel_keys, "timestamp", create=False))
    server.overrides["metadata/timestamp.json"] = ts.to_bytes()
    message = refused(pull_, cache)
    assert "rollback refused" in message and "snapshot" in message


def test_frozen_channel_says_stale_since(pub, pull_, repo: Path, cache: Path) -> None:
    pub(N1, expiry=Expiry(timestamp=timedelta(hours=-1)))
    expires = json.loads((repo / "metadata" / "timestamp.json").read_bytes())["signed"]["expires"]
    message = refused(pull_, cache)
    assert f"channel is stale since {expires}" in message


def test_mix_and_match_metadata_is_refused(
    pub, pull_, server: Server, repo: Path, cache: Path
) -> None:
    pub(N1)
    pub(N2)
    # Serve the nightly list of the previous publish under the current version's name.
    server.overrides["metadata/3.nightly.json"] = (
        repo / "metadata" / "2.nightly.json"
    ).read_bytes()
    assert "does not match its signed length/hash" in refused(pull_, cache)


def _target_url(repo: Path, version: str) -> str:
    [path] = (repo / "targets" / "nightly").glob(f"*.es-virt-{version}.img")
    return str(path.relative_to(repo))


def test_swapped_target_is_refused(pub, pull_, server: Server, repo: Path, cache: Path) -> None:
    pub(N1)
    pub(N2)
    older = (repo / _target_url(repo, N1)).read_bytes()
    server.overrides[_target_url(repo, N2)] = older
    assert "does not match its signed length/hash" in refused(pull_, cache)


def test_endless_metadata_is_cut_off(pub, pull_, server: Server, cache: Path) -> None:
    pub(N1)
    server.overrides["metadata/timestamp.json"] = endless
    assert "more data than its signed metadata allows" in refused(pull_, cache)


def test_oversized_metadata_is_refused(pub, pull_, server: Server, repo: Path, cache: Path) -> None:
    pub(N1)
    padded = (repo / "metadata" / "timestamp.json").read_bytes() + b" " * 100_000
    server.overrides["metadata/timestamp.json"] = padded
    assert "more data than its signed metadata allows" in refused(pull_, cache)


def test_oversized_and_endless_targets_are_cut_off(
    pub, pull_, server: Server, repo: Path, cache: Path
) -> None:
    pub(N1)
    url = _target_url(repo, N1)
    server.overrides[url] = (repo / url).read_bytes() + b"\0" * (1 << 20)
    assert "more data than its signed metadata allows" in refused(pull_, cache)
    server.overrides[url] = endless
    assert "more data than its signed metadata allows" in refused(pull_, cache)


def test_metadata_signed_with_the_wrong_key_is_refused(
    pub, pull_, server: Server, repo: Path, cache: Path
) -> None:
    from securesystemslib.signer import CryptoSigner
    from tuf.api.metadata import Metadata

    pub(N1)
    ts = Metadata.from_bytes((repo / "metadata" / "timestamp.json").read_bytes())
    ts.signed.version += 1
    ts.signatures.clear()
    ts.sign(CryptoSigner.generate_ed25519())
    server.overrides["metadata/timestamp.json"] = ts.to_bytes()
    assert "not signed by the trusted keys" in refused(pull_, cache)


def test_unreachable_channel_is_a_clear_error(repo: Path, pub, cache: Path) -> None:
    pub(N1)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ChannelError, match="channel unreachable"):
        channels.pull(
            "nightly",
            "es-virt",
            url=f"http://127.0.0.1:{port}/",
            root=repo / "metadata" / "1.root.json",
            cache=cache,
        )
    assert final_files(cache) == set()


def test_target_that_fails_image_verification_never_lands(pub, pull_, cache: Path) -> None:
    pub(N1)
    for trusted in keys.trusted_keys().values():  # this client does not trust the signer
        trusted.path.unlink()
    assert "unknown signer" in refused(pull_, cache, SignatureError)


def test_cli_publish_list_pull(
    make_image,
    tmp_path: Path,
    server: Server,
    repo: Path,
    channel_keys: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ROUTERKIT_CACHE", str(tmp_path / "cli-cache"))
    runner = CliRunner()
    for version in (N1, N2):
        result = runner.invoke(
            root,
            [
                "firmware",
                "publish",
                str(make_image(version=version)),
                "--channel",
                "nightly",
                "--repo",
                str(repo),
                "--keys",
                str(channel_keys),
                "--json",
            ],
        )
        assert result.exit_code == 0, result.output
    common = ["--url", server.url, "--root", str(repo / "metadata" / "1.root.json")]
    listed = runner.invoke(
        root, ["firmware", "list", "--board", "es-virt", "--all", "--json", *common]
    )
    assert [i["version"] for i in json.loads(listed.stdout)["images"]] == [N2, N1]
    pulled = runner.invoke(root, ["firmware", "pull", "--board", "es-virt", "--json", *common])
    assert pulled.exit_code == 0, pulled.output
    payload = json.loads(pulled.stdout)
    assert payload["image"]["version"] == N2 and Path(payload["path"]).is_file()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    stale = runner.invoke(
        root, ["firmware", "pull", "--board", "es-virt", "--url", closed, "--root", common[3]]
    )
    assert stale.exit_code == 17 and "channel unreachable" in stale.output


def test_concurrent_pulls_share_the_cache_safely(pub, pull_, cache: Path) -> None:
    pub(N1)
    results: list[Any] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(pull_())
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 3
    assert sum(not r.cached for r in results) == 1  # one download, the others reuse it
    assert len(final_files(cache)) == 1


def test_trusted_root_comes_from_config_then_the_bundle(
    pub, server: Server, repo: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--root` wins; else channel.toml's root; else the root bundled with routerkit."""
    from toolkit import paths

    pub(N1)
    root = repo / "metadata" / "1.root.json"
    monkeypatch.setattr(channels, "BUNDLED_ROOT", repo / "no-bundle.json")
    with pytest.raises(ConfigError, match="no trusted root"):
        channels.pull("nightly", "es-virt", url=server.url, cache=cache)
    config = paths.config_dir() / "channel.toml"
    config.write_text(f'url = "{server.url}"\nroot = "{root}"\n')
    assert channels.pull("nightly", "es-virt", cache=cache).image.version == N1
    config.unlink()
    monkeypatch.setattr(channels, "BUNDLED_ROOT", root)
    assert channels.resolve(server.url, None)[2] == str(root)
    assert channels.pull("nightly", "es-virt", url=server.url, cache=cache).image.version == N1


def publish_lie(
    image: Path,
    repo: Path,
    channel_keys: Path,
    *,
    version: str,
    board: str,
    devices: list[str] | None = None,
) -> str:
    """Play a channel that lies: list a real signed image under a false version or board.

    The listing is signed with the channel's own role keys (as a compromised CI key or a
    buggy publisher would), so TUF itself accepts it; only the binding check can refuse it.
    """
    from tuf.api.metadata import TargetFile

    from toolkit.firmware.channel_repo import _Repo, _write_snapshot_and_timestamp, target_path_for

    store = _Repo(repo)
    ts = store.load("timestamp")
    snap = store.load("snapshot", ts.signed.snapshot_meta.version)
    versions = {name[:-5]: meta.version for name, meta in snap.signed.meta.items()}
    nightly = store.load("nightly", versions["nightly"])
    path = target_path_for("nightly", board, version)
    info = TargetFile.from_file(path, str(image), ["sha256"])
    info.unrecognized_fields["custom"] = {
        "routerkit": {
            "version": version,
            "board": board,
            "supported_devices": devices or [board],
        }
    }
    dest = repo / "targets" / "nightly" / f"{info.hashes['sha256']}.{path.split('/', 1)[1]}"
    dest.write_bytes(image.read_bytes())
    nightly.signed.targets[path] = info
    nightly.signed.version += 1
    nightly.signatures.clear()
    signers = {
        r: _signer(channel_keys, r, create=False) for r in ("nightly", "snapshot", "timestamp")
    }
    nightly.sign(signers["nightly"])
    role_data = {
        name: (ver, (store.meta_dir / f"{ver}.{name}.json").read_bytes())
        for name, ver in versions.items()
        if name != "nightly"
    }
    role_data["nightly"] = (nightly.signed.version, store.write(nightly, "nightly"))
    _write_snapshot_and_timestamp(
        store,
        role_data,
        signers,
        Expiry(),
        datetime.now(UTC).replace(microsecond=0),
        (ts.signed.snapshot_meta.version, ts.signed.version),
    )
    return path


def floor(cache: Path) -> dict[str, str]:
    states = list(cache.glob("*/state.json"))
    assert len(states) <= 1
    return json.loads(states[0].read_bytes()) if states else {}


def test_image_listed_under_a_higher_version_is_refused_and_keeps_the_floor(
    pub, pull_, make_image, repo: Path, channel_keys: Path, cache: Path
) -> None:
    pub(N1)
    assert pull_().image.version == N1
    before_floor, before_files = floor(cache), final_files(cache)
    assert before_floor == {"nightly/es-virt": N1}
    # A genuine, signed N1 image listed as 9.9.0: TUF accepts the listing; we must not.
    publish_lie(make_image(version=N1), repo, channel_keys, version="9.9.0", board="es-virt")
    message = refused(pull_, cache)
    assert "lies about nightly/es-virt-9.9.0.img" in message
    assert "listed as version '9.9.0', but the image signs" in message
    assert floor(cache) == before_floor, "a lying listing moved the rollback floor"
    assert final_files(cache) == before_files
    assert not any(cache.glob("*/images/nightly/*9.9.0*"))
    # The channel is not frozen: an honest newer image is still accepted afterwards.
    assert pull_(version=N1).image.version == N1
    pub(N2)
    with pytest.raises(ChannelError):  # the lie still sorts first
        pull_()
    assert pull_(version=N2).image.version == N2
    assert floor(cache) == {"nightly/es-virt": N2}


def test_first_pull_of_a_lie_records_no_floor(
    pub, pull_, make_image, repo: Path, channel_keys: Path, cache: Path
) -> None:
    pub(N1)
    publish_lie(make_image(version=N1), repo, channel_keys, version="2.0.0", board="es-virt")
    refused(pull_, cache)
    assert floor(cache) == {} and final_files(cache) == set()


def test_board_in_the_listing_must_match_the_signed_image(
    pub, pull_, make_image, repo: Path, channel_keys: Path, cache: Path
) -> None:
    pub(N1)
    # Listed for es-virt under another board's name (same version): the signed image says
    # board es-virt with its own devices, the listing says "other-board".
    image = make_image(
        version=N2, board="other-board", supported_devices=["other-board", "es-virt"]
    )
    publish_lie(image, repo, channel_keys, version=N2, board="es-virt")
    message = refused(pull_, cache)
    assert "listed for board 'es-virt', but the image signs 'other-board'" in message
    assert floor(cache) == {}


def test_a_lying_image_already_in_the_cache_is_dropped(
    pub, pull_, make_image, repo: Path, channel_keys: Path, cache: Path
) -> None:
    pub(N1)
    path = publish_lie(make_image(version=N1), repo, channel_keys, version="9.9.0", board="es-virt")
    refused(pull_, cache)
    # As if an older routerkit, which did not bind, had cached it.
    [lie] = (repo / "targets" / "nightly").glob("*es-virt-9.9.0.img")
    [directory] = cache.glob("*/images/nightly")
    (directory / path.split("/", 1)[1]).write_bytes(lie.read_bytes())
    with pytest.raises(ChannelError, match="lies about"):
        pull_()
    assert not (directory / path.split("/", 1)[1]).exists() and floor(cache) == {}


def test_list_shows_channel_versions_without_moving_the_floor(
    pub, pull_, make_image, server: Server, repo: Path, channel_keys: Path, cache: Path
) -> None:
    pub(N1)
    pull_()
    publish_lie(make_image(version=N1), repo, channel_keys, version="9.9.0", board="es-virt")
    listed = channels.list_images(
        "nightly", "es-virt", url=server.url, root=repo / "metadata" / "1.root.json", cache=cache
    )
    assert [i.version for i in listed] == ["9.9.0", N1]
    assert floor(cache) == {"nightly/es-virt": N1}
