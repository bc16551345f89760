"""Image format v1 (``firmware/README.md``): FIT | metadata JSON | signify signature | footer.

:func:`seal` turns a FIT plus metadata into a signed image, :func:`parse` reads one back
(footer, metadata, signature, FIT bounds) and :func:`read_fit` lists what is inside the FIT.
Parsing raises only :class:`~toolkit.errors.ImageFormatError`; it checks structure, not trust
(that is :mod:`toolkit.firmware.verify`).

Reading a path never loads the FIT into memory: the footer, metadata and signature are read
with seeks, and the FIT is hashed through ``mmap`` when asked.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.errors import ImageFormatError
from toolkit.firmware import fdt
from toolkit.firmware.signify import SecretKey, Signature

FORMAT = 1
MAGIC = b"RKFW1 "
FOOTER_SIZE = 33
_FOOTER = re.compile(rb"^RKFW1 (\d{12}) (\d{8}) (\d{4})\n$")
# Sanity bounds on declared sizes, far above anything real, so a hostile footer cannot make
# us allocate or read gigabytes of "metadata".
MAX_META = 1 << 20
REQUIRED_KEYS = (
    "format",
    "supported_devices",
    "version",
    "compat_version",
    "fit_size",
    "fit_sha256",
    "signer",
)


@dataclass(frozen=True)
class Footer:
    fit_size: int
    meta_size: int
    sig_size: int

    @property
    def total(self) -> int:
        return self.fit_size + self.meta_size + self.sig_size + FOOTER_SIZE

    def to_bytes(self) -> bytes:
        return b"RKFW1 %012d %08d %04d\n" % (self.fit_size, self.meta_size, self.sig_size)


@dataclass
class ParsedImage:
    """A structurally valid image. ``fit()`` gives the FIT bytes (zero-copy for files)."""

    footer: Footer
    metadata: dict[str, Any]
    meta_bytes: bytes
    signature: Signature | None
    size: int
    path: Path | None = None
    _data: bytes | None = field(default=None, repr=False)

    @property
    def fit_size(self) -> int:
        return self.footer.fit_size

    @property
    def version(self) -> str:
        return str(self.metadata.get("version", ""))

    @contextmanager
    def fit(self) -> Iterator[memoryview]:
        """The FIT bytes as a memoryview (an mmap of the file for images on disk)."""
        if self._data is not None:
            yield memoryview(self._data)[: self.fit_size]
            return
        assert self.path is not None
        with open(self.path, "rb") as fh:
            if self.fit_size == 0:
                yield memoryview(b"")
                return
            mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            view = memoryview(mapped)
            try:
                yield view[: self.fit_size]
            finally:
                view.release()
                # A caller may still hold a slice; the map is then freed with its last reference.
                with contextlib.suppress(BufferError):
                    mapped.close()


def seal(fit: bytes, metadata: dict[str, Any], signer: SecretKey | None = None) -> bytes:
    """Build a signed v1 image from a FIT and metadata.

    Fills ``format``, ``fit_size``, ``fit_sha256`` and ``signer``; signs the compact JSON with
    ``signer`` or, if None, with this machine's development key (created on first use).
    """
    comment = None
    if signer is None:
        from toolkit.firmware.keys import dev_key

        signer = dev_key()
        comment = f"verify with routerkit DEVELOPMENT key {signer.keyid} (its build machine only)"
    fdt.header_totalsize(fit)  # refuse to seal something that is not a FIT at all
    meta = dict(metadata)
    meta.update(
        format=FORMAT,
        fit_size=len(fit),
        fit_sha256=hashlib.sha256(fit).hexdigest(),
        signer=signer.keyid,
    )
    meta_bytes = json.dumps(
        meta, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()
    sig_bytes = signer.sign(
        meta_bytes, comment or f"verify with routerkit key {signer.keyid}"
    ).to_bytes()
    footer = Footer(len(fit), len(meta_bytes), len(sig_bytes))
    return fit + meta_bytes + sig_bytes + footer.to_bytes()


def parse_footer(raw: bytes) -> Footer:
    if len(raw) != FOOTER_SIZE:
        raise ImageFormatError(f"truncated image: {len(raw)} bytes, a v1 footer alone is 33")
    if not raw.startswith(MAGIC):
        raise ImageFormatError(
            f"bad magic: the image does not end with a routerkit v1 footer (found {raw[:6]!r})",
            hint="is this a raw FIT or a truncated download?",
        )
    match = _FOOTER.match(raw)
    if match is None:
        raise ImageFormatError("bad footer: expected 'RKFW1 <12 digits> <8 digits> <4 digits>'")
    return Footer(int(match[1]), int(match[2]), int(match[3]))


def _check_sizes(footer: Footer, size: int) -> None:
    if footer.meta_size > MAX_META:
        raise ImageFormatError(f"declared metadata size {footer.meta_size} exceeds {MAX_META}")
    if footer.total > size:
        raise ImageFormatError(
            f"truncated image: the footer declares {footer.total} bytes, the file has {size}"
        )
    if footer.total < size:
        raise ImageFormatError(
            f"declared sizes do not match: the footer accounts for {footer.total} bytes, "
            f"the file has {size} ({size - footer.total} unexplained)"
        )


def _parse_tail(
    footer: Footer, fit_head: bytes, meta_bytes: bytes, sig_bytes: bytes
) -> tuple[dict[str, Any], Signature | None]:
    if footer.fit_size:
        totalsize = fdt.header_totalsize(fit_head)
        if totalsize != footer.fit_size:
            raise ImageFormatError(
                f"declared sizes do not match: footer fit_size {footer.fit_size}, "
                f"FIT header totalsize {totalsize}"
            )
    else:
        raise ImageFormatError("declared sizes do not match: the image holds no FIT (fit_size 0)")
    try:
        metadata = json.loads(meta_bytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ImageFormatError(f"bad metadata JSON in the trailer: {exc}") from None
    if not isinstance(metadata, dict):
        raise ImageFormatError("bad metadata JSON in the trailer: not an object")
    missing = [k for k in REQUIRED_KEYS if k not in metadata]
    if missing:
        raise ImageFormatError(f"metadata lacks required keys: {', '.join(missing)}")
    if metadata["format"] != FORMAT:
        raise ImageFormatError(f"unsupported image format {metadata['format']!r} (this is v1)")
    if metadata["fit_size"] != footer.fit_size or isinstance(metadata["fit_size"], bool):
        raise ImageFormatError(
            f"declared sizes do not match: metadata fit_size {metadata['fit_size']!r}, "
            f"footer {footer.fit_size}"
        )
    devices = metadata["supported_devices"]
    if not isinstance(devices, list) or not all(isinstance(d, str) for d in devices):
        raise ImageFormatError("metadata supported_devices must be a list of strings")
    for key in ("version", "compat_version", "fit_sha256", "signer"):
        if not isinstance(metadata[key], str):
            raise ImageFormatError(f"metadata {key} must be a string")
    signature = Signature.from_bytes(sig_bytes) if sig_bytes else None
    return metadata, signature


def parse(data: bytes | Path | str) -> ParsedImage:
    """Parse an image from bytes or a path. Raises only ImageFormatError."""
    if isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
        size = len(raw)
        footer = parse_footer(raw[-FOOTER_SIZE:] if size >= FOOTER_SIZE else raw)
        _check_sizes(footer, size)
        fit_end = footer.fit_size
        meta_end = fit_end + footer.meta_size
        metadata, signature = _parse_tail(
            footer,
            raw[: min(fit_end, fdt.HEADER_SIZE)],
            raw[fit_end:meta_end],
            raw[meta_end : meta_end + footer.sig_size],
        )
        return ParsedImage(footer, metadata, raw[fit_end:meta_end], signature, size, None, raw)
    path = Path(data)
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, 2)
            fh.seek(max(0, size - FOOTER_SIZE))
            footer = parse_footer(fh.read(FOOTER_SIZE))
            _check_sizes(footer, size)
            fh.seek(0)
            fit_head = fh.read(min(footer.fit_size, fdt.HEADER_SIZE))
            fh.seek(footer.fit_size)
            meta_bytes = fh.read(footer.meta_size)
            sig_bytes = fh.read(footer.sig_size)
    except IsADirectoryError:
        raise ImageFormatError(f"{path} is a directory, not an image") from None
    except FileNotFoundError:
        raise ImageFormatError(f"{path}: no such file") from None
    except OSError as exc:
        raise ImageFormatError(f"{path}: cannot read ({exc.strerror})") from None
    metadata, signature = _parse_tail(footer, fit_head, meta_bytes, sig_bytes)
    return ParsedImage(footer, metadata, meta_bytes, signature, size, path)


# --- FIT contents --------------------------------------------------------------------------


@dataclass(frozen=True)
class FitHash:
    algo: str
    value: bytes


@dataclass(frozen=True)
class FitImage:
    """One ``/images/<name>`` node: its data's place in the FIT and its hash nodes."""

    name: str
    type: str | None
    arch: str | None
    os: str | None
    compression: str | None
    description: str | None
    data_offset: int
    data_size: int
    hashes: tuple[FitHash, ...]


@dataclass(frozen=True)
class FitInfo:
    description: str | None
    timestamp: int | None
    images: tuple[FitImage, ...]
    configurations: dict[str, dict[str, str]]
    default_config: str | None


def read_fit(fit: bytes | memoryview) -> FitInfo:
    """List a FIT's images, hash nodes and configurations (raises ImageFormatError)."""
    root = fdt.parse_fdt(fit)
    images_node = root.child("images")
    if images_node is None or not images_node.children:
        raise ImageFormatError("FIT: no /images node (is this a plain device tree?)")
    images: list[FitImage] = []
    for node in images_node.children:
        if "data" not in node.props:
            raise ImageFormatError(
                f"FIT: image {node.name!r} has no embedded data (external data is not v1)"
            )
        hashes = []
        for sub in node.children:
            algo = sub.string("algo")
            if sub.name.startswith("hash") and algo is not None and "value" in sub.props:
                hashes.append(FitHash(algo, bytes(sub.props["value"])))
        images.append(
            FitImage(
                name=node.name,
                type=node.string("type"),
                arch=node.string("arch"),
                os=node.string("os"),
                compression=node.string("compression"),
                description=node.string("description"),
                data_offset=node.offsets["data"],
                data_size=len(node.props["data"]),
                hashes=tuple(hashes),
            )
        )
    configs: dict[str, dict[str, str]] = {}
    default = None
    conf_node = root.child("configurations")
    if conf_node is not None:
        default = conf_node.string("default")
        for node in conf_node.children:
            configs[node.name] = {k: node.string(k) or "" for k in node.props}
    description = root.string("description")  # padded to a fixed width by the build
    return FitInfo(
        description.rstrip() if description else description, root.u32("timestamp"),
        tuple(images), configs, default,
    )  # fmt: skip


_HASHES = {
    "sha256": hashlib.sha256,
    "sha1": hashlib.sha1,
    "sha512": hashlib.sha512,
    "sha384": hashlib.sha384,
    "md5": hashlib.md5,
}


def fit_hash_problems(fit: memoryview | bytes, info: FitInfo) -> list[str]:
    """Check every image node's data against its hash nodes; return what does not match.

    ``crc32`` nodes are checked too (U-Boot's own check); unknown algorithms are reported.
    An image without any hash node is a problem: U-Boot would boot it unchecked.
    """
    import zlib

    view = memoryview(fit)
    problems: list[str] = []
    for image in info.images:
        data = view[image.data_offset : image.data_offset + image.data_size]
        if not image.hashes:
            problems.append(f"image {image.name!r} has no hash node")
        for h in image.hashes:
            if h.algo == "crc32":
                actual = zlib.crc32(data).to_bytes(4, "big")
            elif h.algo in _HASHES:
                actual = _HASHES[h.algo](data).digest()
            else:
                problems.append(f"image {image.name!r}: unknown hash algorithm {h.algo!r}")
                continue
            if actual != h.value:
                problems.append(
                    f"image {image.name!r}: {h.algo} is {actual.hex()}, "
                    f"its hash node says {h.value.hex()}"
                )
    return problems
