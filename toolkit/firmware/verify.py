"""``verify_image``: everything that must hold before an image may touch a device.

Order matters: nothing in the metadata is believed before its signature checks out, cheap
checks run before hashing 30 MiB, and each failure has its own error class (and exit code):

1. format            ImageFormatError    (truncated, bad magic, bad JSON, declared sizes)
2. signature         SignatureError      (unsigned, unknown signer, bad signature)
3. board             BoardMismatchError  (``supported_devices`` vs ``board.compatible``)
4. compat_version    CompatError         (major must equal the board's ``compat_version``)
5. size              ImageTooLargeError  (whole image vs the smallest slot)
6. downgrade         DowngradeError      (image older than the running version)
7. hashes            ImageHashError      (FIT vs signed ``fit_sha256``; every FIT hash node)

``force_board`` and ``allow_downgrade`` turn 3 and 6 into recorded warnings; they never skip
the signature or the hashes. A ``--dev`` image (metadata ``"development": true``: the committed
test key may log in) passes only when a development key signed it (2).

The image is read **once**: :attr:`VerifiedImage.data` holds the exact bytes that were checked,
and the flash paths send those bytes, never the file again (it may have been replaced since).
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.errors import (
    BoardMismatchError,
    CompatError,
    ImageFormatError,
    ImageHashError,
    ImageTooLargeError,
    SignatureError,
)
from toolkit.firmware import keys as keyring
from toolkit.firmware.image import ParsedImage, fit_hash_problems, parse, read_fit
from toolkit.firmware.versions import InvalidVersion, check_downgrade, parse_version

if TYPE_CHECKING:
    from toolkit.boards import Board
    from toolkit.record import Journal


@dataclass(frozen=True)
class VerifiedImage:
    """An image that passed every check (or passed with recorded overrides)."""

    path: Path
    board: str
    version: str
    compat_version: str
    signer: str
    signer_key_file: str
    dev_key: bool
    fit_sha256: str
    fit_size: int
    size: int
    slot_size: int
    running_version: str | None
    metadata: dict[str, Any]
    overrides: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default=())
    #: The exact bytes that passed the checks: what a flash sends (not in ``to_dict``).
    data: bytes = field(default=b"", repr=False, compare=False)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("data", None)
        data["path"] = str(self.path)
        data["overrides"] = list(self.overrides)
        data["warnings"] = list(self.warnings)
        return data


def check_signature(parsed: ParsedImage) -> keyring.TrustedKey:
    """Verify the image's signature against the keyring; return the trusted key used."""
    sig = parsed.signature
    if sig is None:
        raise SignatureError("the image is unsigned (its signature block is empty)")
    trusted = keyring.trusted_keys()
    key = trusted.get(sig.keyid)
    if key is None:
        raise SignatureError(
            f"unknown signer {sig.keyid}: no trusted key with that id "
            f"(looked in {keyring.trusted_dir()} and the bundled keys)",
            hint="if you trust the publisher, `routerkit keys trust THEIR.pub`",
        )
    key.public.verify(sig, parsed.meta_bytes)
    if parsed.metadata.get("signer") != sig.keyid:
        raise SignatureError(
            f"the metadata names signer {parsed.metadata.get('signer')!r} "
            f"but the signature is by {sig.keyid}"
        )
    if parsed.metadata.get("development", False) is not False and not key.is_dev:
        raise SignatureError(
            f"a DEVELOPMENT image (the committed test key can log in as root) signed by "
            f"non-development key {sig.keyid}: refused",
            hint="development images are for this machine's virtual samples only",
        )
    return key


def _version(text: str, what: str) -> Any:
    try:
        return parse_version(text)
    except InvalidVersion as exc:
        raise ImageFormatError(f"{what}: {exc}") from None


def check_hashes(parsed: ParsedImage) -> None:
    """The FIT against the signed ``fit_sha256`` and each FIT image node's hash nodes.

    The two passes run in parallel (hashlib drops the GIL on large buffers), so checking
    the node hashes costs no wall time on a machine with two cores.
    """
    with parsed.fit() as fit:
        info = read_fit(fit)
        whole: list[str] = []
        thread = threading.Thread(target=lambda: whole.append(hashlib.sha256(fit).hexdigest()))
        thread.start()
        try:
            problems = fit_hash_problems(fit, info)
        finally:
            thread.join()
    expected = str(parsed.metadata["fit_sha256"]).lower()
    if not hmac.compare_digest(whole[0], expected):
        raise ImageHashError(
            f"the FIT does not match the signed metadata: sha256 {whole[0]}, "
            f"metadata says {expected}",
            hint="the image was modified or corrupted after signing; fetch it again",
        )
    if problems:
        raise ImageHashError("FIT hash check failed: " + "; ".join(problems))


def read_image(path: Path | str) -> bytes:
    """The whole image file, read once (ImageFormatError if it cannot be read)."""
    path = Path(path)
    try:
        return path.read_bytes()
    except IsADirectoryError:
        raise ImageFormatError(f"{path} is a directory, not an image") from None
    except FileNotFoundError:
        raise ImageFormatError(f"{path}: no such file") from None
    except OSError as exc:
        raise ImageFormatError(f"{path}: cannot read ({exc.strerror})") from None


def verify_image(
    path: Path | str,
    board: Board | str,
    *,
    running_version: str | None = None,
    allow_downgrade: bool = False,
    force_board: bool = False,
    journal: Journal | None = None,
    data: bytes | None = None,
) -> VerifiedImage:
    """Verify ``path`` for ``board`` (a Board or a board id). Raise on the first failure.

    The file is read into memory once (or ``data`` is used as its bytes); the result's
    ``data`` is what was verified. If ``journal`` is given, overrides are appended as
    ``override`` records and success as one ``image_verified`` record, so a flash session
    shows what was accepted and why.
    """
    from toolkit.boards import load_board

    board_obj = load_board(board) if isinstance(board, str) else board
    raw = read_image(path) if data is None else bytes(data)
    parsed = parse(raw)
    meta = parsed.metadata
    key = check_signature(parsed)
    overrides: list[str] = []
    warnings: list[str] = []

    devices = list(meta["supported_devices"])
    if not set(devices) & set(board_obj.compatible):
        message = (
            f"the image supports {', '.join(devices) or 'no device'}, "
            f"this board is {board_obj.id} ({', '.join(board_obj.compatible)})"
        )
        if not force_board:
            raise BoardMismatchError(
                f"wrong board: {message}", hint="--force-board overrides (can brick the sample)"
            )
        overrides.append("force_board")
        warnings.append(f"BOARD CHECK FORCED (--force-board): {message}")

    image_compat = _version(str(meta["compat_version"]), "metadata compat_version")
    board_compat = _version(
        str(board_obj.get("board.compat_version")), f"{board_obj.path}: compat_version"
    )
    if image_compat.major != board_compat.major:
        raise CompatError(
            f"compat_version mismatch: the image needs {meta['compat_version']}, "
            f"board {board_obj.id} has {board_obj.get('board.compat_version')} (major versions differ)",
            hint="the flash layout changed incompatibly; follow the board's migration notes",
        )

    if parsed.size > board_obj.slot_size:
        raise ImageTooLargeError(
            f"image too large: {parsed.size} bytes, the board's slot holds {board_obj.slot_size}"
        )

    _version(str(meta["version"]), "metadata version")
    if running_version is not None:
        _version(running_version, "running version")
        allowed = check_downgrade(str(meta["version"]), running_version, allow=allow_downgrade)
        if allowed is not None:
            overrides.append("allow_downgrade")
            warnings.append(allowed)

    check_hashes(parsed)

    result = VerifiedImage(
        path=Path(path),
        board=board_obj.id,
        version=str(meta["version"]),
        compat_version=str(meta["compat_version"]),
        signer=key.keyid,
        signer_key_file=str(key.path),
        dev_key=key.is_dev,
        fit_sha256=str(meta["fit_sha256"]),
        fit_size=parsed.fit_size,
        size=parsed.size,
        slot_size=board_obj.slot_size,
        running_version=running_version,
        metadata=meta,
        overrides=tuple(overrides),
        warnings=tuple(warnings),
        data=raw,
    )
    if journal is not None:
        for flag, text in zip(overrides, warnings, strict=True):
            journal.append("override", flag=flag, message=text, image=str(path))
        journal.append(
            "image_verified",
            image=str(path),
            version=result.version,
            signer=result.signer,
            dev_key=result.dev_key,
            fit_sha256=result.fit_sha256,
            overrides=list(overrides),
            sha256=result.sha256,
        )
    return result


def detect_running_version(board_id: str) -> str | None:
    """The last running version recorded for ``board_id`` by any journey, if any.

    Journeys that learn what a device runs (flash, verify) append
    ``running_version`` records (``version=...``); the newest one wins.
    """
    from toolkit.record import Journal

    best: tuple[str, str] | None = None
    for journal in Journal.all():
        if journal.board != board_id:
            continue
        record = journal.last("running_version")
        if record and isinstance(record.get("version"), str):
            stamp = str(record.get("ts", ""))
            if best is None or stamp > best[0]:
                best = (stamp, record["version"])
    return best[1] if best else None
