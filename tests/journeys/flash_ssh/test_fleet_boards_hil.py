"""A fleet with one of each board (issue 13): an es-virt and an es-arm32 virtual sample in one
lab file, one `fleet flash` with both boards' images; each sample must run the new version
built for its own board afterwards."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import pytest
from click.testing import CliRunner

from toolkit.cli import root

BOARDS = ("es-virt", "es-arm32")


def _verify(lab: Path, name: str) -> dict:
    result = CliRunner().invoke(root, ["verify", "--target", f"{lab}:{name}", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.hil
def test_fleet_flashes_each_board_with_its_own_image(tmp_path: Path) -> None:
    from toolkit import sample
    from toolkit.firmware.build import build_image

    tag = f"{os.getpid()}-{secrets.token_hex(2)}"
    states = []
    try:
        lab = tmp_path / "lab.toml"
        text = '[lab]\nname = "one-of-each"\n'
        for board in BOARDS:
            name = f"fleet-{board}-{tag}"
            # Private samples (fresh disks): these get flashed, nobody else's may be.
            states.append(sample.up(name=name, board=board, wait="ssh", fresh=True))
            text += f'\n[targets.{board}]\nboard = "{board}"\nsample = "{name}"\n'
        lab.write_text(text)

        # First contact over SSH (the serial console vouches for the host key) and what runs.
        before = {board: _verify(lab, board)["version"] for board in BOARDS}
        images = {}
        for step, board in enumerate(BOARDS, start=1):  # a different version on each board
            major, minor, _ = (before[board] + ".0.0").split(".")[:3]
            version = f"{major}.{int(minor) + step}.0"
            images[board] = build_image(version, board, out=tmp_path / board)

        result = CliRunner().invoke(
            root,
            ["fleet", "flash", *(str(images[b].path) for b in reversed(BOARDS))]
            + ["--lab", str(lab), "--parallel", "2", "--timeout", "180", "--json"],
        )
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        went = {t["name"]: (t["image"], t["version_after"]) for t in report["targets"]}
        assert went == {b: (str(images[b].path), images[b].version) for b in BOARDS}

        for board in BOARDS:
            after = _verify(lab, board)
            assert after["ok"], after["problems"]
            assert after["version"] == images[board].version
    finally:
        for state in states:
            sample.down(state)
