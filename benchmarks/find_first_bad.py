"""Finding the first bad nightly: routerkit bisect against testing the builds one by one.

One private virtual sample, 12 signed nightlies in a TUF channel served on loopback; the
behaviour (/etc/rk-feature, read over SSH by tests/journeys/bisect/check_feature.py) breaks from build
BREAK on. Both sides use the same bench (pull TUF-verified, full SSH flash with boot and
version check, then the command) and start from the same state (the good build flashed):

* ours: ``routerkit bisect`` (toolkit.journeys.bisect): the middle build first;
* peer: what a developer does by hand, and what every flasher offers: flash the builds one by
  one from the good end until the command fails.

Printed: flashes and wall time of each. ``ROUTERKIT_BISECT_BREAK`` picks the break (1..11,
default 8: the ninth nightly), ``ROUTERKIT_BISECT_VIA=serial`` flashes over the console (TFTP,
delta) instead of SSH, ``ROUTERKIT_BENCH_QUICK=1`` runs the bisect only.
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

N = 12
VERSIONS = [f"1.2.0-nightly.{n}" for n in range(1, N + 1)]


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


def _serve(directory: Path) -> tuple[ThreadingHTTPServer, str]:
    httpd = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(directory))
    )
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/"


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="rk-bisect-bench-"))
    os.environ.setdefault("ROUTERKIT_CONFIG", str(tmp / "config"))
    os.environ.setdefault("ROUTERKIT_DATA", str(tmp / "data"))
    from toolkit import identity as ids
    from toolkit import sample
    from toolkit.events import NullReporter
    from toolkit.firmware.build import build_image
    from toolkit.firmware.channel_repo import publish
    from toolkit.journeys.bisect import Build, ChannelBench, bisect
    from toolkit.record import Journal
    from toolkit.targets import from_sample

    broken_from = int(os.environ.get("ROUTERKIT_BISECT_BREAK", "8"))
    for index, version in enumerate(VERSIONS):
        files = {"etc/rk-feature": b"ok\n" if index < broken_from else b"broken\n"}
        image = build_image(version, out=tmp / "images", files=files).path
        publish(image, "nightly", tmp / "repo", keys_dir=tmp / "keys", keep_nightlies=0)
    httpd, url = _serve(tmp / "repo")
    name = f"bench-bisect-{os.getpid()}"
    state = sample.up(name=name, wait="ssh", fresh=True)
    try:
        target = from_sample(name)
        bench = ChannelBench(
            channel="nightly",
            target=target,
            command=[
                sys.executable,
                str(ROOT / "tests" / "journeys" / "bisect" / "check_feature.py"),
            ],
            via=os.environ.get("ROUTERKIT_BISECT_VIA", "ssh"),
            url=url,
            root=tmp / "repo" / "metadata" / "1.root.json",
            timeout=240,
            authorized_key=ids.public_line(target.identity) if target.identity else None,
        )
        good = Build(VERSIONS[0])
        setup = Journal.create("bench", board=target.board)

        bench.install(good, setup, NullReporter())  # the same start for both
        start = time.monotonic()
        ours = bisect(bench, VERSIONS[0], VERSIONS[-1], fresh=True)
        ours_s = time.monotonic() - start
        if ours.first_bad != VERSIONS[broken_from]:
            raise SystemExit(
                f"bisect: named {ours.first_bad}, the break is {VERSIONS[broken_from]}"
            )

        label = f"bisect_{N}_nightlies_break_{broken_from + 1}_{bench.via}"
        if os.environ.get("ROUTERKIT_BENCH_QUICK") == "1":
            print(f"{label}: ours {ours.flashes} flashes, {ours_s:.1f} s (peer not run: quick)")
            return
        bench.install(good, setup, NullReporter())
        journal = Journal.create("bench", board=target.board)
        start = time.monotonic()
        peer_flashes = 0
        for version in VERSIONS[1:-1]:
            build = Build(version)
            bench.install(build, journal, NullReporter())
            peer_flashes += 1
            if bench.test(build, journal, journal.files_dir / f"{version}.log") != 0:
                break
        peer_s = time.monotonic() - start
        print(
            f"{label} flashes: ours {ours.flashes}, peer {peer_flashes}, ratio "
            f"{ours.flashes / peer_flashes:.3f} (ours/peer, lower is better; peer = one by one)"
        )
        print(
            f"{label} wall time: ours {ours_s:.1f} s, peer {peer_s:.1f} s, ratio "
            f"{ours_s / peer_s:.3f} (ours/peer, lower is better)"
        )
    finally:
        httpd.shutdown()
        current = sample.status(name)
        sample.down(current or state)


if __name__ == "__main__":
    main()
