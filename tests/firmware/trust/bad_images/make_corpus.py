"""Generate the corpus of bad images: one per failure that ``firmware verify`` must refuse.

Run ``.venv/bin/python tests/firmware/trust/bad_images/make_corpus.py [OUTDIR]`` (default: this
directory). Each image starts from a tiny synthetic FIT made by ``mkimage -f`` from dummy
files, sealed with the committed TEST key ``corpus.sec`` (``stranger.sec`` plays an unknown
signer). ``manifest.json`` lists, per file, the board and extra CLI arguments to verify it
with, and the error class, exit code and message fragment expected.

The flash journeys can use the same corpus: every image but ``good.img`` must be refused
before any byte is transferred. ``es-virt-tiny`` is es-virt with 1 KiB slots (the tests derive
it from the real profile) so that "too large" needs no 32 MiB file.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[3]))

from toolkit.firmware.image import Footer, seal  # noqa: E402
from toolkit.firmware.signify import SecretKey  # noqa: E402

EPOCH = "1700000000"
KERNEL = bytes(range(256)) * 4
INITRD = bytes(reversed(range(256))) * 2
META = {
    "board": "es-virt",
    "supported_devices": ["es-virt", "routerkit,es-virt"],
    "version": "1.1.0",
    "compat_version": "1.0",
    "build_date": "2023-11-14T22:13:20Z",
    "source_revision": "corpus",
    "ssh_host_key_fingerprint": "SHA256:corpus-not-a-real-key",
    "ssh_host_key": "ssh-ed25519 AAAAcorpus corpus",
}
ITS = """/dts-v1/;
/ {
  description = "routerkit bad-image corpus";
  #address-cells = <1>;
  images {
    kernel-1 {
      description = "dummy kernel"; data = /incbin/("kernel"); type = "kernel";
      arch = "arm64"; os = "linux"; compression = "none";
      load = <0x40400000>; entry = <0x40400000>;
      hash-1 { algo = "sha256"; };
    };
    ramdisk-1 {
      description = "dummy initramfs"; data = /incbin/("initrd"); type = "ramdisk";
      arch = "arm64"; os = "linux"; compression = "none";
      hash-1 { algo = "sha256"; };
    };
  };
  configurations {
    default = "conf-1";
    conf-1 { description = "boot"; kernel = "kernel-1"; ramdisk = "ramdisk-1"; };
  };
};
"""


def build_fit() -> bytes:
    """A tiny FIT with sha256 hash nodes, reproducible (SOURCE_DATE_EPOCH)."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "kernel").write_bytes(KERNEL)
        (work / "initrd").write_bytes(INITRD)
        (work / "fit.its").write_text(ITS)
        env = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH}
        subprocess.run(
            ["mkimage", "-f", "fit.its", "fit.itb"],
            cwd=work,
            env=env,
            check=True,
            capture_output=True,
        )
        return (work / "fit.itb").read_bytes()


def _key(name: str) -> SecretKey:
    return SecretKey.from_bytes((HERE / f"{name}.sec").read_bytes())


def _raw(fit: bytes, meta: dict[str, object], key: SecretKey | None) -> bytes:
    """Assemble an image by hand (no seal() fix-ups), to express inconsistent ones."""
    meta_bytes = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
    sig = key.sign(meta_bytes).to_bytes() if key else b""
    return fit + meta_bytes + sig + Footer(len(fit), len(meta_bytes), len(sig)).to_bytes()


def cases(fit: bytes) -> list[tuple[str, Callable[[], bytes], dict[str, object]]]:
    corpus, stranger = _key("corpus"), _key("stranger")
    good = seal(fit, META, corpus)
    parts = json.loads(good[len(fit) :].split(b"untrusted comment:")[0])

    def footer_of(data: bytes) -> Footer:
        f = data[-33:].decode().split()
        return Footer(int(f[1]), int(f[2]), int(f[3]))

    def truncated() -> bytes:  # a chunk of the FIT lost, trailer intact
        return good[: len(fit) // 2] + good[len(fit) :]

    def sizes_fit() -> bytes:  # footer and FIT header disagree
        f = footer_of(good)
        return good[:-33] + Footer(f.fit_size + 8, f.meta_size - 8, f.sig_size).to_bytes()

    def sizes_meta() -> bytes:  # signed metadata pins another FIT size
        return _raw(fit, {**parts, "fit_size": len(fit) + 1}, corpus)

    def bad_json() -> bytes:
        f = footer_of(good)
        end = f.fit_size + f.meta_size
        return good[: end - 1] + b"," + good[end:]

    def bad_signature() -> bytes:  # metadata edited after signing, sizes unchanged
        return good.replace(b'"version":"1.1.0"', b'"version":"1.9.0"', 1)

    def fit_tampered() -> bytes:  # one kernel byte flipped after signing
        at = good.find(KERNEL[:64]) + 10
        return good[:at] + bytes([good[at] ^ 0xFF]) + good[at + 1 :]

    def fit_node_hash() -> bytes:  # the FIT's own hash node is wrong, but signed as is
        value = hashlib.sha256(KERNEL).digest()
        bad = fit.replace(value, bytes([value[0] ^ 1]) + value[1:], 1)
        return seal(bad, META, corpus)

    def not_a_fit() -> bytes:
        junk = b"\x00" * 64
        return _raw(
            junk, {**parts, "fit_size": 64, "fit_sha256": hashlib.sha256(junk).hexdigest()}, corpus
        )

    def expect(
        cls: str, code: int, message: str, board: str = "es-virt", args: list[str] | None = None
    ) -> dict[str, object]:
        return {
            "error_class": cls,
            "exit_code": code,
            "message": message,
            "board": board,
            "args": args or [],
        }

    fmt = "ImageFormatError"
    return [
        ("good.img", lambda: good, expect("", 0, "OK")),
        ("short.img", lambda: b"RKFW1 0000", expect(fmt, 11, "truncated image")),
        ("truncated.img", truncated, expect(fmt, 11, "truncated image: the footer declares")),
        ("truncated-tail.img", lambda: good[:-40], expect(fmt, 11, "bad magic")),
        ("bad-magic.img", lambda: good[:-33] + b"RKFW9" + good[-28:], expect(fmt, 11, "bad magic")),
        ("bad-json.img", bad_json, expect(fmt, 11, "bad metadata JSON")),
        (
            "sizes-fit.img",
            sizes_fit,
            expect(fmt, 11, "declared sizes do not match: footer fit_size"),
        ),
        (
            "sizes-meta.img",
            sizes_meta,
            expect(fmt, 11, "declared sizes do not match: metadata fit_size"),
        ),
        ("not-a-fit.img", not_a_fit, expect(fmt, 11, "bad device-tree magic")),
        ("unsigned.img", lambda: _raw(fit, parts, None), expect("SignatureError", 12, "unsigned")),
        (
            "unknown-signer.img",
            lambda: seal(fit, META, stranger),
            expect("SignatureError", 12, "unknown signer"),
        ),
        ("bad-signature.img", bad_signature, expect("SignatureError", 12, "bad signature")),
        (
            "wrong-board.img",
            lambda: seal(
                fit, {**META, "board": "es-other", "supported_devices": ["es-other"]}, corpus
            ),
            expect("BoardMismatchError", 13, "wrong board"),
        ),
        (
            "compat.img",
            lambda: seal(fit, {**META, "compat_version": "2.0"}, corpus),
            expect("CompatError", 14, "compat_version mismatch"),
        ),
        (
            "downgrade.img",
            lambda: seal(fit, {**META, "version": "1.0.0"}, corpus),
            expect("DowngradeError", 15, "downgrade refused", args=["--running-version", "1.1.0"]),
        ),
        (
            "oversize.img",
            lambda: good,
            expect("ImageTooLargeError", 16, "image too large", board="es-virt-tiny"),
        ),
        (
            "fit-tampered.img",
            fit_tampered,
            expect("ImageHashError", 19, "the FIT does not match the signed metadata"),
        ),
        ("fit-node-hash.img", fit_node_hash, expect("ImageHashError", 19, "FIT hash check failed")),
    ]


def build_corpus(outdir: Path) -> list[dict[str, object]]:
    """Write every case to ``outdir`` plus ``manifest.json``; return the manifest."""
    outdir.mkdir(parents=True, exist_ok=True)
    manifest = []
    for name, make, expected in cases(build_fit()):
        (outdir / name).write_bytes(make())
        manifest.append({"file": name, **expected})
    (outdir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE
    for entry in build_corpus(target):
        print(f"{entry['file']:<22} -> {entry['error_class'] or 'accepted'} ({entry['exit_code']})")
