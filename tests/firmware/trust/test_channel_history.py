"""Channel history: a nightly channel keeps its older builds listed (a retention count), so a
bisect has something to walk; `firmware list --all` shows them, plain `list` the newest."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from tests.firmware.trust.test_channels import Server
from toolkit.cli import root
from toolkit.firmware import channels
from toolkit.firmware.channel_repo import publish

NIGHTLIES = [f"1.4.0-nightly.{n}" for n in range(1, 9)]


def test_publish_keeps_the_newest_n_nightlies_listed_and_their_files(
    make_image, tmp_path: Path
) -> None:
    repo, keys = tmp_path / "repo", tmp_path / "keys"
    pruned: list[str] = []
    for version in NIGHTLIES:
        result = publish(
            make_image(version=version), "nightly", repo, keys_dir=keys, keep_nightlies=6
        )
        pruned += result.pruned
    assert pruned == [f"nightly/es-virt-{v}.img" for v in NIGHTLIES[:2]]
    server = Server(repo)
    try:
        common = ["--url", server.url, "--root", str(repo / "metadata" / "1.root.json")]
        listed = CliRunner().invoke(root, ["firmware", "list", "--all", "--json", *common])
        assert listed.exit_code == 0, listed.output
        history = [i["version"] for i in json.loads(listed.stdout)["images"]]
        assert history == list(reversed(NIGHTLIES[2:]))  # newest first, six kept
        newest = CliRunner().invoke(root, ["firmware", "list", "--json", *common])
        payload = json.loads(newest.stdout)
        assert [i["version"] for i in payload["images"]] == [NIGHTLIES[-1]]
        assert payload["older"] == 5
        human = CliRunner().invoke(root, ["firmware", "list", *common])
        assert "--all lists them" in human.output
        # every kept build is still pullable (TUF-verified), the oldest one included
        oldest = channels.pull(
            "nightly",
            "es-virt",
            url=server.url,
            root=repo / "metadata" / "1.root.json",
            cache=tmp_path / "cache",
            version=NIGHTLIES[2],
        )
        assert oldest.verified.version == NIGHTLIES[2]
    finally:
        server.close()
    files = sorted(p.name.split(".", 1)[1] for p in (repo / "targets" / "nightly").iterdir())
    assert files == sorted(f"es-virt-{v}.img" for v in NIGHTLIES[2:])


def test_keep_zero_keeps_every_nightly(make_image, tmp_path: Path) -> None:
    for version in NIGHTLIES[:4]:
        result = publish(
            make_image(version=version), "nightly", tmp_path / "repo", keys_dir=tmp_path / "k",
            keep_nightlies=0,
        )  # fmt: skip
        assert result.pruned == []
