"""Benchmark: `routerkit share` of a 40-photo build log to the local Roundup.

share_40_photos: seconds from starting `routerkit share --yes --json` (a fresh process) until
    the issue is visible through the tracker's REST API. Peer: the same payload uploaded the
    naive way — a plain urllib script, one new HTTP connection per request, no lookups.
    Median of 3 runs each, alternating, against the same real Roundup.
share_bytes: bytes that leave the machine for the build log vs the photo originals (what
    attaching camera photos to a tracker by hand would upload).

Run: .venv/bin/python benchmarks/share.py
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RUNS = 3
PHOTOS = 40


def photo(seed: int, size: tuple[int, int], quality: int) -> bytes:
    """A camera-like JPEG: shapes plus sensor noise, so JPEG sizes are realistic."""
    from PIL import Image, ImageDraw, ImageFilter

    rnd = random.Random(seed)
    base = (1280, 960)
    im = Image.new("RGB", base, (rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)))
    d = ImageDraw.Draw(im)
    for _ in range(30):
        x, y = rnd.randrange(base[0]), rnd.randrange(base[1])
        d.ellipse(
            [x, y, x + rnd.randrange(20, base[0] // 3), y + rnd.randrange(20, base[1] // 3)],
            fill=(rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)),
        )
    im = im.filter(ImageFilter.BoxBlur(2))
    if size != base:
        im = im.resize(size, Image.BICUBIC)
    # a half-size noise field scaled up (full-size effect_noise is slow)
    noise = (
        Image.effect_noise((size[0] // 2, size[1] // 2), 24)
        .convert("RGB")
        .resize(size, Image.NEAREST)
    )
    im = Image.blend(im, noise, 0.12)
    out = io.BytesIO()
    im.save(out, "JPEG", quality=quality)
    return out.getvalue()


def make_session(originals: list[bytes], processed: list[bytes]):  # type: ignore[no-untyped-def]
    from toolkit.record import Journal

    j = Journal.create("assemble", board="es-virt")
    for s in range(10):
        sid = f"step-{s + 1}"
        j.append("step_started", step=sid, title=f"Step {s + 1}")
        for k in range(4):
            n = s * 4 + k
            op = j.store_bytes(f"originals/{n}.jpg", originals[n])
            pp = j.store_bytes(f"photos/{n}.jpg", processed[n])
            j.append(
                "photo",
                step=sid,
                sha256=hashlib.sha256(originals[n]).hexdigest(),
                original=str(op),
                path=j.relpath(pp),
                bytes=len(processed[n]),
                width=1280,
                height=960,
            )
        j.append("step_finished", step=sid, ok=True, seconds=60.0)
    return j


def ours(session: str, env: dict[str, str], pub) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from toolkit.cli import main; main()",
            "share",
            "--session",
            session,
            "--yes",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    out = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else {}
    if out.get("state") != "sent":
        raise SystemExit(f"share failed: {proc.stdout} {proc.stderr[-2000:]}")
    while not pub.find("issue", idempotency_key=out["key"]):
        time.sleep(0.01)
    return time.perf_counter() - start


def _multipart(fields: dict[str, str], name: str, data: bytes, mime: str) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="content"; filename="{name}"\r\n'
        f"Content-Type: {mime}\r\n\r\n".encode()
        + data
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def peer(url: str, token: str, blobs: list[tuple[str, bytes, str]], body: str, title: str) -> float:
    origin = url.split("/routerkit")[0]
    headers = {
        "Authorization": f"Bearer {token}",
        "Origin": origin,
        "Referer": url,
        "X-Requested-With": "rest",
        "Accept": "application/json",
    }

    def post(path: str, data: bytes, ctype: str) -> dict:  # one new connection per request (urllib)
        req = urllib.request.Request(
            url + "rest/data/" + path,
            data=data,
            method="POST",
            headers={**headers, "Content-Type": ctype},
        )
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())["data"]

    start = time.perf_counter()
    ids = []
    for name, data, mime in blobs:
        payload, ctype = _multipart({"name": name, "type": mime}, name, data, mime)
        ids.append(post("file", payload, ctype)["id"])
    msg = post("msg", json.dumps({"content": body, "files": ids}).encode(), "application/json")[
        "id"
    ]
    issue = post(
        "issue",
        json.dumps({"title": title, "messages": [msg], "files": ids}).encode(),
        "application/json",
    )["id"]
    req = urllib.request.Request(url + f"rest/data/issue/{issue}", headers=headers)
    with urllib.request.urlopen(req, timeout=60):
        pass
    return time.perf_counter() - start


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="rk-bench-share-"))
    os.environ.update(ROUTERKIT_DATA=str(tmp / "data"), ROUTERKIT_CONFIG=str(tmp / "config"))
    from toolkit.community.publishers.roundup import RoundupPublisher
    from toolkit.community.server import LocalTracker
    from toolkit.journeys.share import prepare_share

    originals = [photo(i, (3000, 2250), 92) for i in range(PHOTOS)]
    processed = [photo(i, (1280, 960), 85) for i in range(PHOTOS)]
    tracker = LocalTracker(tmp / "tracker-state")
    info = tracker.serve()
    try:
        token = tracker.issue_token()
        (tmp / "config").mkdir(parents=True, exist_ok=True)
        (tmp / "config" / "config.toml").write_text(
            f'[community]\nconsent = true\nroundup_url = "{info.url}"\n'
        )
        env = dict(os.environ, ROUTERKIT_TOKEN=token, ROUTERKIT_TOKEN_URL=info.url)
        pub = RoundupPublisher(info.url, token)
        t_ours, t_peer = [], []
        plan = None
        for _ in range(RUNS):
            session = make_session(originals, processed)
            plan = prepare_share(session.id)
            t_ours.append(ours(session.id, env, pub))
            blobs = [(b.name, b.data, b.mime) for b in plan.blobs]
            t_peer.append(peer(info.url, token, blobs, plan.item.body, plan.item.title + " (peer)"))
        assert plan is not None
        o, p = statistics.median(t_ours), statistics.median(t_peer)
        print(
            f"share_40_photos: ours {o:.2f} s, peer {p:.2f} s, ratio {o / p:.2f} (ours/peer, lower "
            "is better; ours: a fresh `routerkit share` process that also composes, redacts and "
            "re-encodes the build log; peer: urllib posting the composed payload, one connection "
            f"per request; median of {RUNS} interleaved runs: ours={[round(x, 2) for x in t_ours]} "
            f"peer={[round(x, 2) for x in t_peer]})"
        )
        sent = plan.total_bytes
        orig = sum(len(x) for x in originals)
        print(
            f"share_bytes: ours {sent / 1e6:.2f} MB, peer {orig / 1e6:.2f} MB, ratio {sent / orig:.3f} "
            "(ours/peer, lower is better; peer: the 40 camera originals attached as they are; "
            "ours: stripped photos + HTML page + text)"
        )
        pub.close()
    finally:
        tracker.remove()


if __name__ == "__main__":
    main()
