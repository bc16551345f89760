"""FIT image of the reference firmware: the kernel + initramfs, sha256 hash nodes, and a
signed configuration.

How the kernel goes in is the board profile's ``[firmware] kernel_format``
(:data:`KERNEL_FORMATS`): ``image`` is the raw arm64 ``Image``, gzip'ed in the FIT (U-Boot unpacks it, the kernel does
not decompress itself); ``zimage`` is a 32-bit ARM ``zImage`` stored as it is (it is its own
decompressor: U-Boot copies it to the load address and jumps to it).

U-Boot's ``bootm`` checks every hash node before it boots (``verify`` defaults to yes), which
is what makes a corrupt slot detectable at boot without a sha256 command in U-Boot. The
configuration ``conf-1`` carries ``signature-1`` (RSA over the configuration and the hash
nodes of the kernel and ramdisk it names, :mod:`toolkit.firmware.fitkeys`): a U-Boot whose
control DTB holds the key with ``required = "conf"`` boots only a configuration signed by it.
"""

from __future__ import annotations

import gzip
import os
import struct
import subprocess
import tempfile
import zlib
from collections.abc import Sequence
from pathlib import Path

from toolkit.errors import BuildError
from toolkit.firmware.fitkeys import FIT_ALGO, FitKey, mkimage_keydir
from toolkit.firmware.guest import need_tool

_ARM64_MAGIC_OFFSET = 0x38


def raw_arm64_image(vmlinuz: bytes) -> bytes:
    """The raw arm64 ``Image`` inside Debian's vmlinuz, whatever wrapper it ships in.

    bookworm ships the raw Image; other releases gzip it or wrap it in an EFI "zboot" PE
    (``MZ`` + ``zimg`` header with the payload offset/size and the compression name).
    """
    if vmlinuz[:2] == b"\x1f\x8b":
        vmlinuz = gzip.decompress(vmlinuz)
    elif vmlinuz[:2] == b"MZ" and vmlinuz[4:8] == b"zimg":
        offset, size = struct.unpack_from("<II", vmlinuz, 8)
        comp = vmlinuz[24:32].rstrip(b"\0").decode(errors="replace")
        if comp != "gzip":
            raise BuildError(f"EFI zboot kernel compressed with {comp}; only gzip is supported")
        # The payload is a gzip stream possibly followed by padding: decompress one member.
        vmlinuz = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(
            vmlinuz[offset : offset + size]
        )
    if vmlinuz[_ARM64_MAGIC_OFFSET : _ARM64_MAGIC_OFFSET + 4] != b"ARM\x64":
        raise BuildError("the guest kernel is not an arm64 Image (no ARM\\x64 magic)")
    return vmlinuz


_ZIMAGE_MAGIC_OFFSET = 0x24
_ZIMAGE_MAGIC = 0x016F2818


def zimage(vmlinuz: bytes) -> bytes:
    """Debian's 32-bit ARM vmlinuz, checked to be a zImage (magic at 0x24)."""
    if len(vmlinuz) < 0x30 or (
        struct.unpack_from("<I", vmlinuz, _ZIMAGE_MAGIC_OFFSET)[0] != _ZIMAGE_MAGIC
    ):
        raise BuildError("the guest kernel is not an ARM zImage (no 0x016f2818 magic)")
    return vmlinuz


#: kernel_format -> (how the vmlinuz becomes the FIT's kernel data, FIT ``compression``)
KERNEL_FORMATS = {
    "image": (lambda vmlinuz: gzip.compress(raw_arm64_image(vmlinuz), 6, mtime=0), "gzip"),
    "zimage": (zimage, "none"),
}


def kernel_compression(kernel_format: str) -> str:
    """The FIT ``compression`` of a board's ``kernel_format``; BuildError for an unknown one."""
    if kernel_format not in KERNEL_FORMATS:
        raise BuildError(
            f"unknown kernel_format {kernel_format!r} (known: {', '.join(KERNEL_FORMATS)})"
        )
    return KERNEL_FORMATS[kernel_format][1]


def kernel_payload(vmlinuz: bytes, kernel_format: str) -> bytes:
    """The FIT's kernel data for a board's ``kernel_format``. gzip level 6: -9 takes 3x
    longer for 0.2 % less (measured on the bookworm cloud kernel)."""
    kernel_compression(kernel_format)
    return KERNEL_FORMATS[kernel_format][0](vmlinuz)


#: The root description's length is rounded up to this many characters (see its_source).
DESCRIPTION_STEP = 64


def its_source(
    *,
    description: str,
    kernel: str,
    initramfs: str,
    load: str,
    arch: str = "arm64",
    compression: str = "gzip",
    signed_by: str | None = None,
) -> str:
    """The image tree source for ``mkimage -f`` (paths are relative to its directory).

    The root ``description`` (it names the version) is padded with spaces to a multiple of
    :data:`DESCRIPTION_STEP` characters: it is the only property before the kernel's data, so
    a nightly whose version string grows by a character would otherwise shift the whole kernel
    by a few bytes, and a delta reflash would find nothing the running slot holds in place.

    ``signed_by``: the key-name-hint of the FIT key that signs ``conf-1`` (``mkimage -k``
    then needs ``<name>.key`` and ``<name>.crt``); None leaves the configuration unsigned.
    """
    signature = (
        ""
        if signed_by is None
        else f"""
			signature-1 {{
				algo = "{FIT_ALGO}";
				key-name-hint = "{signed_by}";
				sign-images = "kernel", "ramdisk";
			}};"""
    )
    padded = description.ljust(-(-max(1, len(description)) // DESCRIPTION_STEP) * DESCRIPTION_STEP)
    return f"""/dts-v1/;

/ {{
	description = "{padded}";
	#address-cells = <1>;

	images {{
		kernel-1 {{
			description = "Linux kernel";
			data = /incbin/("{kernel}");
			type = "kernel";
			arch = "{arch}";
			os = "linux";
			compression = "{compression}";
			load = <{load}>;
			entry = <{load}>;
			hash-1 {{
				algo = "sha256";
			}};
		}};
		ramdisk-1 {{
			description = "initramfs (gzip'ed cpio, unpacked by the kernel)";
			data = /incbin/("{initramfs}");
			type = "ramdisk";
			arch = "{arch}";
			os = "linux";
			compression = "none";
			hash-1 {{
				algo = "sha256";
			}};
		}};
	}};

	configurations {{
		default = "conf-1";
		conf-1 {{
			description = "{description}";
			kernel = "kernel-1";
			ramdisk = "ramdisk-1";{signature}
		}};
	}};
}};
"""


def make_fit(
    its: str,
    files: dict[str, bytes],
    epoch: int,
    workdir: Path | None = None,
    keys: Sequence[FitKey] = (),
) -> bytes:
    """Run ``mkimage -f`` on ``its`` with ``files`` beside it; reproducible via
    SOURCE_DATE_EPOCH (mkimage's timestamp properties, the signature's too). ``keys``: the FIT
    keys the ITS's signature nodes name (``mkimage -k``)."""
    mkimage = need_tool("mkimage")
    with (
        tempfile.TemporaryDirectory(prefix="rk-fit-", dir=workdir) as tmp,
        mkimage_keydir(keys) as keydir,
    ):
        d = Path(tmp)
        for name, data in files.items():
            (d / name).write_bytes(data)
        (d / "image.its").write_text(its)
        env = dict(os.environ, SOURCE_DATE_EPOCH=str(epoch))
        args = [mkimage, "-f", "image.its"] + (["-k", str(keydir)] if keys else []) + ["image.fit"]
        proc = subprocess.run(args, cwd=d, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise BuildError(f"mkimage failed: {(proc.stderr or proc.stdout).strip()[-400:]}")
        fit = (d / "image.fit").read_bytes()
    if fit[:4] != b"\xd0\x0d\xfe\xed":
        raise BuildError("mkimage produced no FIT (bad magic)")
    totalsize = struct.unpack_from(">I", fit, 4)[0]
    if totalsize != len(fit):
        raise BuildError(f"FIT totalsize {totalsize} != file size {len(fit)}")
    return fit
