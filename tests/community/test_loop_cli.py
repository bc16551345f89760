"""The weekly loop through the real CLI (CliRunner) against the real Roundup tracker: request,
vote, top, confirm, share --card (the QR code decoded from the PNG's pixels) and the weekly
page (opened in headless Debian Chromium; screenshots kept in build/test-artifacts/)."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import struct
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.community.fakes import assembly_session
from tests.community.loopkit import bench
from toolkit import paths
from toolkit.cli import root
from toolkit.community import tokens

ARTIFACTS = Path(
    os.environ.get("ROUTERKIT_TEST_ARTIFACTS", paths.REPO_ROOT / "build" / "test-artifacts")
)


def _run(*args: str):
    return CliRunner().invoke(root, list(args))


def _json(res) -> dict:
    """stdout must be exactly one JSON document."""
    return json.loads(res.stdout)


@pytest.fixture()
def configured(tracker):
    info = tracker.running()
    tokens.store_token("roundup", info.url, tracker.issue_token())
    (paths.config_dir() / "config.toml").write_text(
        f'[community]\nconsent = true\npublisher = "roundup"\nroundup_url = "{info.url}"\n'
    )
    return info


def test_request_vote_and_top(configured) -> None:
    res = _run("request", "Fan curve in the web UI", "--detail", "quieter", "--yes", "--json")
    assert res.exit_code == 0, res.output
    rid = _json(res)["report"]
    assert rid and _json(res)["state"] == "sent"
    for _ in range(2):
        res = _run("vote", rid, "--yes", "--json")
        assert res.exit_code == 0, res.output
    assert _json(res)["votes"] == 1
    res = _run("top", "--kind", "request", "-n", "1000", "--json")
    assert res.exit_code == 0, res.output
    mine = next(r for r in _json(res)["reports"] if r["id"] == rid)
    assert mine["votes"] == 1 and mine["yours"] == ["filed", "voted"]
    res = _run("vote", rid, "--yes", "--lang", "zh-CN")
    assert res.exit_code == 0 and "你已为" in res.stdout
    from toolkit import i18n

    assert i18n._chosen is None  # --lang was that command's only


def test_confirm_from_the_cli_reports_the_count(configured) -> None:
    rid = _json(_run("request", "LED brightness", "--yes", "--json"))["report"]
    bench("1.2.0")
    res = _run("confirm", rid, "--fixed", "--yes", "--json")
    assert res.exit_code == 0, res.output
    out = _json(res)
    assert out["verified"] == "verified fixed by 1 tester on build 1.2.0"
    assert out["status"] == "resolved" and out["build"] == "1.2.0"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["vote", "abc", "--yes"], "not a report number"),
        (["confirm", "3", "--yes"], "--fixed or --still-broken"),
        (["request", "  ", "--yes"], "needs a title"),
    ],
)
def test_user_errors_are_one_line_without_traceback(configured, args, says) -> None:
    res = _run(*args)
    assert res.exit_code != 0 and says in res.stderr
    assert "Traceback" not in res.output and res.stderr.count("error:") == 1


def _png_chunks(data: bytes) -> list[bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, kinds = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kinds.append(data[pos + 4 : pos + 8])
        pos += 12 + length
    return kinds


def test_share_card_carries_a_qr_code_to_the_build_log(configured, roundup, tmp_path) -> None:
    import zxingcpp
    from PIL import Image

    assembly_session(photos=4, steps=3)
    card = tmp_path / "card.png"
    res = _run(
        "share", "--yes", "--json", "--name", "Ming 小明", "--sample", "ES-042", "--card", str(card)
    )
    assert res.exit_code == 0, res.output
    out = _json(res)
    url = out["url"]
    data = card.read_bytes()
    with Image.open(io.BytesIO(data)) as im:
        assert im.size == (1200, 630)
        decoded = [r.text for r in zxingcpp.read_barcodes(im)]
    assert decoded == [url]
    # nothing but pixels: no text, EXIF, ICC or time chunks
    assert set(_png_chunks(data)) <= {b"IHDR", b"IDAT", b"IEND"}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(card, ARTIFACTS / "share-card.png")

    # the build log on the tracker: display name, sample, assembly time, and its card attached
    report = roundup.report(out["key"] and url.rsplit("issue", 1)[1])
    assert report["display_name"] == "Ming 小明" and report["sample"] == "ES-042"
    assert report["assembly_seconds"] and out["card"]["posted"]
    names = [roundup.get("file", f)["attributes"]["name"] for f in report["files"]]
    assert "share-card.png" in names
    card_id = report["files"][names.index("share-card.png")]
    assert roundup.download(card_id) == data


PROBE = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var loaded = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  var zh = document.createElement('span');
  zh.textContent = '组装用时排行榜';
  document.body.appendChild(zh);
  var en = document.createElement('span');
  en.textContent = 'Assembly-time leaderboard';
  document.body.appendChild(en);
  var out = document.createElement('pre');
  out.id = 'rk-probe';
  out.textContent = JSON.stringify({total: imgs.length, loaded: loaded,
    zh_px: zh.getBoundingClientRect().width, en_px: en.getBoundingClientRect().width,
    tofu: document.fonts.check('16px "Noto Sans CJK SC"', '组装')});
  document.body.appendChild(out);
});
</script>"""


def test_weekly_page_renders_in_chromium_with_every_photo(configured, roundup, tmp_path) -> None:
    from tests.community.test_buildlog_html import CHROMIUM, _chromium

    assert Path(CHROMIUM).exists(), "make setup installs Debian's chromium"
    assembly_session(photos=3, steps=2)
    assert _run("share", "--yes", "--name", "Ana").exit_code == 0
    out_dir = tmp_path / "weekly"
    res = _run("community", "weekly", "--no-channel", "--out", str(out_dir), "--json")
    assert res.exit_code == 0, res.output
    summary = _json(res)
    assert summary["shared"] >= 1 and summary["boards"] >= 1
    data = json.loads((out_dir / "weekly.json").read_text())
    ana = next(s for s in data["shared"] if s["name"] == "Ana")
    assert len(ana["photos"]) == 3
    page = (out_dir / "index.html").read_text()
    assert not re.search(r'(src|href)="(https?:)?//(?!127\.0\.0\.1)', page)  # nothing external
    assert "组装用时排行榜" in page and "Assembly-time leaderboard" in page

    probed = tmp_path / "probe.html"
    broken = '<img src="data:image/jpeg;base64,AAAA" alt="broken">'  # the probe can fail
    probed.write_text(page.replace("</body>", broken + PROBE + "</body>"))
    dom = _chromium(tmp_path, "--virtual-time-budget=10000", "--dump-dom", probed.as_uri())
    m = re.search(r'<pre id="rk-probe">(.*?)</pre>', dom.stdout)
    assert m, dom.stderr[-2000:]
    probe = json.loads(m.group(1).replace("&quot;", '"'))
    photos = sum(len(s["photos"]) for s in data["shared"])
    assert probe["total"] == photos + 1 and probe["loaded"] == photos
    assert probe["zh_px"] > 0 and probe["en_px"] > 0 and probe["tofu"] is True

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "weekly-page.png"
    _chromium(
        tmp_path,
        f"--screenshot={shot}",
        "--window-size=1280,2000",
        (out_dir / "index.html").as_uri(),
    )
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size == (1280, 2000)
        assert len(im.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 50


def test_publish_notes_and_firmware_changes_through_the_cli(tmp_path: Path) -> None:
    from tests.community.loopkit import Channel
    from tests.firmware.trust.bad_images.make_corpus import META
    from tests.firmware.trust.test_channels import Server
    from toolkit.firmware.image import seal

    channel = Channel(tmp_path)
    channel.publish("1.2.0-nightly.1", None)
    image = channel.images / "second.img"
    image.write_bytes(seal(channel.fit, {**META, "version": "1.2.0-nightly.2"}, channel.signer))
    notes = tmp_path / "notes.yaml"
    notes.write_text("summary: Fan fixed\nsummary_zh: 风扇已修复\nfixes: ['#7', 9]\n")
    common = ["--channel", "nightly", "--repo", str(channel.repo), "--keys", str(channel.keys)]
    res = _run("firmware", "publish", str(image), *common, "--notes", str(notes), "--json")
    assert res.exit_code == 0, res.output
    assert _json(res)["notes"]["fixes"] == ["7", "9"]

    bad = tmp_path / "bad.yaml"
    bad.write_text("fixes: [seven]\n")
    res = _run("firmware", "publish", str(image), *common, "--notes", str(bad))
    assert res.exit_code != 0 and "not a report number" in res.stderr
    assert "Traceback" not in res.output

    server = Server(channel.repo)
    try:
        where = ["--url", server.url, "--root", str(channel.root_json)]
        res = _run("firmware", "changes", *where, "--since", "1.2.0-nightly.1", "--json")
        assert res.exit_code == 0, res.output
        builds = _json(res)["builds"]
        assert [b["version"] for b in builds] == ["1.2.0-nightly.2"]
        assert builds[0]["notes"]["fixes"] == ["7", "9"] and builds[0]["yours"] == {}
        res = _run("firmware", "changes", *where, "--lang", "zh-CN")
        assert res.exit_code == 0 and "风扇已修复" in res.stdout and "修复 #7" in res.stdout
        res = _run("firmware", "changes", *where, "--since", "not-a-version")
        assert res.exit_code != 0 and "Traceback" not in res.output
    finally:
        server.close()


def test_votes_and_confirmations_never_become_forum_topics() -> None:
    from toolkit.community.outbox import Item
    from toolkit.community.publishers.discourse import DiscoursePublisher
    from toolkit.errors import PublishError
    from toolkit.events import NullReporter

    (paths.config_dir() / "config.toml").write_text(
        '[community]\nconsent = true\npublisher = "discourse"\n'
        'discourse_url = "http://127.0.0.1:1"\n'
    )
    for args in (["vote", "3", "--yes"], ["confirm", "3", "--fixed", "--build", "1.0", "--yes"]):
        res = _run(*args)
        assert res.exit_code != 0 and "Roundup tracker" in res.stderr, res.output
    res = _run("vote", "3", "--to", "discourse", "--yes")
    assert res.exit_code == 2  # not a choice
    pub = DiscoursePublisher("http://127.0.0.1:1", "key")  # nothing listens: must not be asked
    try:
        for kind in ("vote", "confirm"):
            item = Item("k", "discourse", kind, "t", {"body": "", "target": "3"})
            with pytest.raises(PublishError, match="Roundup tracker"):
                pub.publish(item, NullReporter())
    finally:
        pub.close()
