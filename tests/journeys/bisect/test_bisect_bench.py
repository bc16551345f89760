"""The real bench (ChannelBench) without QEMU: small signed nightlies in a TUF channel served on
loopback, pulled and verified, flashed over the serial console into the in-memory board
(toolkit.testing.fake_board: real YMODEM, slots, A/B switch, boot), the command run as a real
process. The bisect session ends up holding the flashes' console recordings, which
`routerkit bug --from-bisect` attaches."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.firmware.trust.test_channels import Server
from toolkit.cli import root
from toolkit.firmware.channel_repo import publish
from toolkit.journeys.bisect import Build, ChannelBench, bisect
from toolkit.protocol import Console, asciicast
from toolkit.record import Journal
from toolkit.targets import Target
from toolkit.testing import dropbear
from toolkit.testing.fake_board import FakeBoard

VERSIONS = [f"1.1.0-nightly.{n}" for n in range(1, 8)]
BREAK_AT = 4
# the developer's test: here it asks the version the bench says it flashed (what the board
# really runs is checked below, from the board itself)
CHECK = (
    "import os, sys; n = int(os.environ['ROUTERKIT_BISECT_VERSION'].rsplit('.', 1)[1]); "
    f"print('testing', n); sys.exit(0 if n <= {BREAK_AT} else 1)"
)


def _reopening(board: FakeBoard) -> Callable[[Target, Journal], Console]:
    """The board's console factory, opening its line again for each flash (the flash closes
    its console; a real serial port can be opened again, the fake line is reset for it)."""

    def console(target: Target, journal: Journal) -> Console:
        board.transport.closed = False
        return board.console(target, journal)

    return console


def test_channel_bench_pulls_flashes_over_serial_and_records_the_consoles(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    for version in VERSIONS:
        image = dropbear.make_image(version, tmp_path / version / "x.img", payload_bytes=24 << 10)
        publish(image, "nightly", repo, keys_dir=tmp_path / "keys", keep_nightlies=0)
    board = FakeBoard(bootdelay=0.3)
    board.install("A", dropbear.make_image("1.0.0", tmp_path / "old.img").read_bytes())
    server = Server(repo)
    try:
        bench = ChannelBench(
            channel="nightly",
            target=Target(name="desk", board="es-virt", serial_url="fake://desk"),
            command=[sys.executable, "-c", CHECK],
            via="serial",
            url=server.url,
            root=repo / "metadata" / "1.root.json",
            cache=tmp_path / "cache",
            transfer_path="ymodem",
            chunk_size=16 << 10,
            console=_reopening(board),
            power=board.power,
        )
        summary = bisect(bench, VERSIONS[0], VERSIONS[-1])
    finally:
        server.close()
    assert summary.first_bad == VERSIONS[BREAK_AT], summary.steps
    assert summary.last_good == VERSIONS[BREAK_AT - 1]
    journal = Journal.open(summary.session)
    flashes = journal.events("flash")
    assert len(flashes) == summary.flashes and all(f["ok"] for f in flashes)
    # the board runs what the last step flashed, and every step's build really was flashed
    assert board.fwinfo()["version"] == summary.steps[-1]["version"]
    assert [f["version_after"] for f in flashes] == [s["version"] for s in summary.steps]
    assert "testing" in (journal.dir / str(summary.steps[0]["log"])).read_text()
    cast = asciicast.read(journal.files_dir / "console.cast")
    assert cast.output().count("=> ") >= summary.flashes  # every flash's U-Boot dialogue
    report = CliRunner().invoke(
        root, ["--json", "bug", "--from-bisect", summary.session, "--preview", "--no-device"]
    )
    assert report.exit_code == 0, report.output
    names = [a["name"] for a in json.loads(report.output.strip().splitlines()[-1])["attachments"]]
    assert "console.cast" in names and "bisect-summary.json" in names


@pytest.mark.parametrize(
    ("target", "named", "held"),
    [
        (Target(name="es1", sample="es1"), "es1", None),
        (
            Target(name="desk", lab="/labs/lab.toml", ssh_host="192.0.2.10"),
            "/labs/lab.toml:desk",
            None,
        ),
        (Target(name="labgrid:es1", labgrid_place="es1"), "labgrid:es1", "es1"),
    ],
)
def test_the_command_is_told_the_target_as_target_names_it(
    target: Target, named: str, held: str | None
) -> None:
    """What the bisect's command gets: ROUTERKIT_TARGET as `--target` and the pytest plugin's
    `--routerkit-target` take it from anywhere (a lab file's target with its lab file), and a
    labgrid place the bisect holds named as held for it, so routerkit in the command reaches
    the device the bisect just flashed."""
    show = (
        "import os; e = os.environ; print(e['ROUTERKIT_TARGET'], e.get('ROUTERKIT_LABGRID_HELD'))"
    )
    bench = ChannelBench(channel="nightly", target=target, command=[sys.executable, "-c", show])
    journal = Journal.create("bisect")
    log = journal.files_dir / "test.log"
    assert bench.test(Build("1.1.0-nightly.1"), journal, log) == 0
    assert log.read_text() == f"{named} {held}\n"
