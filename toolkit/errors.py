"""The one error taxonomy of routerkit.

Every error a user can cause or meet derives from :class:`RouterkitError` and carries its
process exit code as a class attribute. ``toolkit.cli`` maps them to a single line on stderr
and that exit code, once, in one place. Anything else escaping is a bug and shows a traceback.

Exit code ranges (stable, documented in the README):

====== =========================================
1      generic failure
2      usage error (click)
3-9    configuration and input files
10-19  firmware images and channels
20-29  devices: ports, consoles, transfers, the virtual sample
30-39  SSH
40-49  community: publishers, keyring, consent
50-59  the session journal
60-69  assembly guide and photos
130    interrupted by the user (Ctrl-C)
====== =========================================

Adding a class: pick the family, give it a free code, and write its message so a tester who
has never heard of U-Boot knows what to do next (``hint``).
"""

from __future__ import annotations


class RouterkitError(Exception):
    """Base class. ``str(err)`` is the one-line message shown to the user."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


# --- configuration and input files (3-9) -------------------------------------------------


class ConfigError(RouterkitError):
    """A board profile, lab.toml or config file is malformed. Name the file, line and key."""

    exit_code = 3


class NotFoundError(RouterkitError):
    """A named thing (board, target, session, file) does not exist."""

    exit_code = 4


class ToolMissingError(RouterkitError):
    """A host program (QEMU, mkimage, ser2net...) is not installed."""

    exit_code = 5


class ConsentRequired(RouterkitError):
    """A prompt was needed but ``--yes``/non-interactive mode forbids asking."""

    exit_code = 6


# --- firmware images and channels (10-19) ------------------------------------------------


class ImageError(RouterkitError):
    """An image failed a check; nothing was written to any device."""

    exit_code = 10


class ImageFormatError(ImageError):
    """Truncated image, bad magic, bad trailer JSON, or declared sizes that do not match."""

    exit_code = 11


class SignatureError(ImageError):
    """Unsigned, unknown signer, or a signature that does not verify."""

    exit_code = 12


class BoardMismatchError(ImageError):
    """The image does not list this board in ``supported_devices``."""

    exit_code = 13


class CompatError(ImageError):
    """``compat_version`` of the image is incompatible with the device."""

    exit_code = 14


class DowngradeError(ImageError):
    """The image is older than the running firmware and ``--allow-downgrade`` was not given."""

    exit_code = 15


class ImageTooLargeError(ImageError):
    """The image does not fit the board's slot."""

    exit_code = 16


class ImageHashError(ImageError):
    """The FIT does not match the sha256 pinned in the signed metadata, or a FIT node hash."""

    exit_code = 19


class ChannelError(RouterkitError):
    """A firmware channel (TUF repository) is unreachable, stale, or serves a bad target."""

    exit_code = 17


class BuildError(RouterkitError):
    """Building a firmware image or disk failed (guest package fetch, mkimage, cpio...)."""

    exit_code = 18


# --- devices (20-29) ---------------------------------------------------------------------


class DeviceError(RouterkitError):
    """Something went wrong talking to a device. ``last_output`` holds the console tail."""

    exit_code = 20

    def __init__(
        self, message: str, *, hint: str | None = None, last_output: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.last_output = last_output


class PortError(DeviceError):
    """The serial port is wrong, busy, or went away."""

    exit_code = 21


class DeviceTimeout(DeviceError):
    """A device did not answer within its deadline."""

    exit_code = 22


class TransferError(DeviceError):
    """A transfer to the device failed (incomplete, too many retries, link dropped)."""

    exit_code = 23


class VerifyError(DeviceError):
    """A checksum or version read back from the device did not match."""

    exit_code = 24


class SampleError(DeviceError):
    """The virtual sample is not running, already running, or failed to start."""

    exit_code = 25


class DeviceCommandError(DeviceError):
    """A command on the device exited non-zero or is missing (e.g. no sysupgrade)."""

    exit_code = 26


class PlaceError(DeviceError):
    """A labgrid place cannot be used: unknown, busy (the message says by whom), or the
    coordinator is unreachable."""

    exit_code = 27


class TargetBrokenError(DeviceError):
    """A HIL target's state machine failed a transition (boot, interrupt, power) earlier and
    refuses to go on against half-configured hardware; the message carries the first reason."""

    exit_code = 28


# --- SSH (30-39) -------------------------------------------------------------------------


class SSHError(DeviceError):
    """An SSH step failed. The message names the step: TCP, auth, host key, upload."""

    exit_code = 30


class HostUnreachableError(SSHError):
    exit_code = 31


class AuthError(SSHError):
    exit_code = 32


class HostKeyError(SSHError):
    """Unknown or changed host key; never accepted silently."""

    exit_code = 33


class NoSpaceError(SSHError):
    """Too little free space on the device (e.g. in /tmp) for the upload; nothing was sent."""

    exit_code = 34


# --- community (40-49) -------------------------------------------------------------------


class PublishError(RouterkitError):
    """A publisher (Roundup, Discourse) refused or failed. The item stays in the outbox."""

    exit_code = 40


class PublishRetryableError(PublishError):
    """Server down, 429, 5xx or a timeout: the item stays queued and is retried with back-off."""

    exit_code = 41

    def __init__(
        self, message: str, *, hint: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class KeyringError(RouterkitError):
    """No usable keyring backend for tokens."""

    exit_code = 42


class PublishAuthError(PublishError):
    """401/403: the token is missing, expired or lacks permission (`routerkit community login`)."""

    exit_code = 43


class PayloadTooLargeError(PublishError):
    """413: an attachment is larger than the server accepts; shrink the photos and retry."""

    exit_code = 44


class TrackerSchemaError(PublishError):
    """The tracker lacks routerkit's properties (idempotency_key, signature): a different schema."""

    exit_code = 45


class AttachmentRefused(RouterkitError):
    """An attachment is neither text (redacted) nor a picture (rebuilt): it could hide secrets,
    so it is not sent unless the tester passes ``--raw``."""

    exit_code = 46


# --- journal (50-59) ---------------------------------------------------------------------


class JournalError(RouterkitError):
    exit_code = 50


class SessionNotFound(JournalError):
    exit_code = 51


class SessionMismatch(JournalError):
    """A session of another kind or board was given to resume (e.g. another board's assembly)."""

    exit_code = 52


# --- assembly guide and photos (60-69) ---------------------------------------------------


class GuideError(RouterkitError):
    """A guide file is malformed. Messages name file, line and field."""

    exit_code = 60


class PhotoError(RouterkitError):
    """A photo is unreadable, not an image, or truncated."""

    exit_code = 61


class CheckFailed(RouterkitError):
    """An automatic assembly check failed against the device."""

    exit_code = 62


# --- interruption ------------------------------------------------------------------------


class Interrupted(RouterkitError):
    """The user pressed Ctrl-C; the journey stopped at a safe point."""

    exit_code = 130
