"""Verify a 64 MiB signed image: routerkit vs ``sha256sum`` + ``signify-openbsd -V``, same file, one run.

routerkit's check does more than the peer (FIT parse, every FIT hash node, board, compat,
size), so the peer is the *minimum* a careful shell script would do: hash the file and check
the signature of the metadata. Each side runs 5 times on a warm page cache, in turns; medians
are shown. ``ratio`` is our time / the peer's (lower is better; < 1 means routerkit is faster).

    .venv/bin/python benchmarks/verify.py
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SIZE = 64 << 20
RUNS = 5

ITS = """/dts-v1/;
/ {
  description = "64 MiB benchmark FIT";
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


def interleaved(funcs: list[Callable[[], object]]) -> list[float]:
    """Median seconds of each of ``funcs``, run in turns ``RUNS`` times."""
    times: list[list[float]] = [[] for _ in funcs]
    for _ in range(RUNS):
        for func, spent in zip(funcs, times, strict=True):
            start = time.perf_counter()
            func()
            spent.append(time.perf_counter() - start)
    return [statistics.median(spent) for spent in times]


def main() -> None:
    for tool in ("mkimage", "signify-openbsd", "sha256sum"):
        if shutil.which(tool) is None:
            sys.exit(f"verify benchmark: {tool} is not installed (make setup)")
    with tempfile.TemporaryDirectory(prefix="rk-bench-verify-") as tmp:
        work = Path(tmp)
        for name in ("data", "config", "cache"):
            os.environ[f"ROUTERKIT_{name.upper()}"] = str(work / name)
        # es-virt with 128 MiB slots, so that the 64 MiB image is a legal one.
        boards = work / "boards"
        boards.mkdir()
        profile = (ROOT / "firmware" / "boards" / "es-virt.toml").read_text()
        (boards / "es-virt.toml").write_text(
            re.sub(r"(?m)^blocks = 65536", "blocks = 262144", profile)
        )
        os.environ["ROUTERKIT_BOARDS"] = str(boards)

        from toolkit.firmware import keys
        from toolkit.firmware.image import parse, seal
        from toolkit.firmware.verify import verify_image

        payload = os.urandom(SIZE - 4096)
        (work / "kernel").write_bytes(payload[: SIZE // 4])
        (work / "initrd").write_bytes(payload[SIZE // 4 :])
        (work / "fit.its").write_text(ITS)
        subprocess.run(
            ["mkimage", "-f", "fit.its", "fit.itb"], cwd=work, check=True, capture_output=True
        )
        key = keys.generate("bench")
        image = work / "bench.img"
        image.write_bytes(
            seal(
                (work / "fit.itb").read_bytes(),
                {
                    "board": "es-virt",
                    "supported_devices": ["es-virt"],
                    "version": "1.0.0",
                    "compat_version": "1.0",
                },
                key,
            )
        )
        parsed = parse(image)
        assert parsed.signature is not None
        (work / "meta.json").write_bytes(parsed.meta_bytes)
        (work / "meta.json.sig").write_bytes(parsed.signature.to_bytes())
        (work / "key.pub").write_bytes(key.public_key().to_bytes())

        def ours() -> None:
            verify_image(image, "es-virt")

        def peer() -> None:
            subprocess.run(["sha256sum", str(image)], check=True, capture_output=True)
            subprocess.run(
                [
                    "signify-openbsd",
                    "-V",
                    "-q",
                    "-p",
                    "key.pub",
                    "-x",
                    "meta.json.sig",
                    "-m",
                    "meta.json",
                ],
                cwd=work,
                check=True,
                capture_output=True,
            )

        def ours_cli() -> None:
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "toolkit.cli",
                    "firmware",
                    "verify",
                    str(image),
                    "--board",
                    "es-virt",
                    "--running-version",
                    "1.0.0",
                ],
                check=True,
                capture_output=True,
                cwd=ROOT,
            )

        ours(), peer()  # warm the page cache and imports for both sides
        t_ours, t_peer, t_cli = interleaved([ours, peer, ours_cli])
        mib = image.stat().st_size / (1 << 20)
        print(
            f"verify_64mib: ours {t_ours:.3f} s, peer {t_peer:.3f} s, ratio {t_ours / t_peer:.2f} "
            f"(ours/peer, lower is better; {mib:.0f} MiB; library call vs sha256sum + "
            "signify-openbsd -V)"
        )
        print(
            f"verify_64mib_cli: ours {t_cli:.3f} s, peer {t_peer:.3f} s, ratio {t_cli / t_peer:.2f} "
            "(ours/peer, lower is better; routerkit firmware verify as a process, start-up "
            "included)"
        )


if __name__ == "__main__":
    main()
