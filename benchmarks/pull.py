"""Pull a nightly from a local TUF repository on 127.0.0.1: cold and warm cache, vs a plain download.

The repository is published by routerkit into a temp dir and served by ``http.server`` on a
free loopback port. "ours" is ``channels.pull`` (TUF refresh of root/timestamp/snapshot/
targets/nightly, download, length+hash check, ``verify_image``, rename into the cache);
"peer" is a plain ``urllib`` download of the same target file without any checks.
Cold = an empty cache each run; warm = the image is already cached (TUF still refreshes
the metadata, as it must). Median of 5 runs each, taken in turns (ours cold, ours warm, peer).
``ratio`` is our time / the peer's (lower is better); ours also checks TUF metadata, hashes
and the signature, which the peer does not.

    .venv/bin/python benchmarks/pull.py
"""

from __future__ import annotations

import functools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RUNS = 5
KERNEL_SIZE, INITRD_SIZE = 6 << 20, 4 << 20  # about the reference image (~10 MB)

ITS = """/dts-v1/;
/ {
  description = "pull benchmark FIT";
  #address-cells = <1>;
  images {
    kernel-1 { data = /incbin/("kernel"); type = "kernel"; arch = "arm64"; os = "linux";
      compression = "none"; load = <0x40400000>; entry = <0x40400000>;
      hash-1 { algo = "sha256"; }; };
    ramdisk-1 { data = /incbin/("initrd"); type = "ramdisk"; arch = "arm64"; os = "linux";
      compression = "none"; hash-1 { algo = "sha256"; }; };
  };
  configurations { default = "conf-1"; conf-1 { kernel = "kernel-1"; ramdisk = "ramdisk-1"; }; };
};
"""


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


def timed(func: Callable[[], object]) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def main() -> None:
    if shutil.which("mkimage") is None:
        sys.exit("pull benchmark: mkimage is not installed (make setup)")
    with tempfile.TemporaryDirectory(prefix="rk-bench-pull-") as tmp:
        work = Path(tmp)
        for name in ("data", "config", "cache"):
            os.environ[f"ROUTERKIT_{name.upper()}"] = str(work / name)

        from toolkit.firmware import channels, keys
        from toolkit.firmware.channel_repo import publish
        from toolkit.firmware.image import seal

        (work / "kernel").write_bytes(os.urandom(KERNEL_SIZE))
        (work / "initrd").write_bytes(os.urandom(INITRD_SIZE))
        (work / "fit.its").write_text(ITS)
        subprocess.run(
            ["mkimage", "-f", "fit.its", "fit.itb"], cwd=work, check=True, capture_output=True
        )
        fit = (work / "fit.itb").read_bytes()
        key = keys.generate("bench")
        repo = work / "repo"
        for day in (21, 22):
            version = f"1.3.0-nightly.202611{day}"
            image = work / f"{version}.img"
            image.write_bytes(
                seal(
                    fit,
                    {
                        "board": "es-virt",
                        "supported_devices": ["es-virt"],
                        "version": version,
                        "compat_version": "1.0",
                    },
                    key,
                )
            )
            publish(image, "nightly", repo, keys_dir=work / "channel-keys")

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(repo)))
        thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        try:
            url = f"http://127.0.0.1:{httpd.server_address[1]}/"
            trusted_root = repo / "metadata" / "1.root.json"
            cache = work / "pull-cache"
            [target] = (repo / "targets" / "nightly").glob("*.es-virt-1.3.0-nightly.20261122.img")
            target_url = url + str(target.relative_to(repo))

            def ours() -> None:
                result = channels.pull(
                    "nightly", "es-virt", url=url, root=trusted_root, cache=cache
                )
                assert result.image.version.endswith("20261122")

            def clear() -> None:
                shutil.rmtree(cache, ignore_errors=True)

            def peer() -> None:
                with (
                    urllib.request.urlopen(target_url) as response,
                    open(work / "peer.img", "wb") as out,
                ):
                    shutil.copyfileobj(response, out, 1 << 20)

            ours(), peer()  # warm imports, page cache and the server's threads
            cold, warm, plain = [], [], []
            for _ in range(RUNS):  # in turns: a load change on the shared machine hits all three
                clear()
                cold.append(timed(ours))
                warm.append(timed(ours))
                plain.append(timed(peer))
            t_cold, t_warm, t_peer = (statistics.median(x) for x in (cold, warm, plain))
        finally:
            httpd.shutdown()
            httpd.server_close()
        mib = target.stat().st_size / (1 << 20)
        print(
            f"pull_nightly_cold: ours {t_cold:.3f} s, peer {t_peer:.3f} s, ratio {t_cold / t_peer:.2f} "
            f"(ours/peer, lower is better; {mib:.1f} MiB; TUF + verify vs plain urllib download)"
        )
        print(
            f"pull_nightly_warm: ours {t_warm:.3f} s, peer {t_peer:.3f} s, ratio {t_warm / t_peer:.2f} "
            "(ours/peer, lower is better; cached image: TUF refresh + verify, no download; the "
            "peer downloads)"
        )


if __name__ == "__main__":
    main()
