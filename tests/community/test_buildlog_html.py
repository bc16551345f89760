"""The self-contained HTML build log, opened offline in headless Debian Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from tests.community.fakes import assembly_session
from toolkit.community.buildlog import compose
from toolkit.community.redact import Redactor

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

PROBE = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var loaded = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  var out = document.createElement('pre');
  out.id = 'rk-probe';
  out.textContent = JSON.stringify({total: imgs.length, loaded: loaded});
  document.body.appendChild(out);
});
</script>"""


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            f"--user-data-dir={tmp / 'profile'}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_html_build_log_opens_offline_with_every_image_loaded(tmp_path: Path) -> None:
    assert Path(CHROMIUM).exists(), "make setup installs Debian's chromium"
    journal = assembly_session(photos=12, steps=4)
    log = compose(journal, Redactor(b"s" * 32))
    page = log.html
    # self-contained: no image or stylesheet comes from anywhere but the page itself
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert page.count('src="data:image/jpeg;base64,') == 12

    probed = tmp_path / "probe.html"
    # one deliberately broken image proves the probe can tell a broken image from a loaded one
    broken = '<img src="data:image/jpeg;base64,AAAA" alt="broken">'
    probed.write_text(page.replace("</body>", broken + PROBE + "</body>"))
    dom = _chromium(tmp_path, "--virtual-time-budget=10000", "--dump-dom", probed.as_uri())
    m = re.search(r'<pre id="rk-probe">(.*?)</pre>', dom.stdout)
    assert m, dom.stderr[-2000:]
    result = json.loads(m.group(1).replace("&quot;", '"'))
    assert result == {"total": 13, "loaded": 12}

    page_file = tmp_path / "buildlog.html"
    page_file.write_text(page)
    shot = tmp_path / "buildlog.png"
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2400", page_file.as_uri())
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size == (1280, 2400)
        colours = im.convert("RGB").getcolors(maxcolors=1 << 20) or []
        assert len(colours) > 50  # photos rendered, not a blank page
