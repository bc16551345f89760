"""Privacy: scrub secrets and identifiers from everything that leaves the machine.

Texts (console transcripts, selftest JSON, dmesg, the build log itself) go through
:meth:`Redactor.text`; photos go through :func:`strip_image_metadata` once more, even though
the photo pipeline already stripped them, because a photo dropped into the session by hand
(or a pipeline bug) must not leak GPS or a serial number in EXIF.

Identifiers that help triage (MAC addresses, serial numbers, IP addresses, hostnames) are not
blanked but replaced by a **salted hash**: the salt is per installation (``data_dir()/community/
salt``), so two reports from the same bench still match each other, while nobody else can
reverse or correlate them. Secrets (Wi-Fi keys, passwords, tokens, private keys) are blanked.

Each rule is a named :class:`Rule`; ``Redactor.counts`` says how many hits each rule had, which
the share preview shows so a tester sees *that* something was removed.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
import secrets
import socket
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from toolkit import paths
from toolkit.errors import PhotoError
from toolkit.record import atomic_write

SECRET = "<redacted>"


def installation_salt(directory: Path | None = None) -> bytes:
    """The per-installation salt, created (0600) on first use."""
    path = (directory or paths.data_dir() / "community") / "salt"
    try:
        data = path.read_bytes()
        if len(data) >= 16:
            return data
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, secrets.token_bytes(32))
    os.chmod(path, 0o600)
    return path.read_bytes()


@dataclass(frozen=True)
class Rule:
    name: str
    pattern: re.Pattern[str]
    replace: Callable[[re.Match[str], Redactor], str]


def _keep_name(group: str = "name") -> Callable[[re.Match[str], Redactor], str]:
    """Keep the key (``option key``) and quoting, blank the value."""

    def repl(m: re.Match[str], r: Redactor) -> str:
        return m.group(group) + m.group("q") + SECRET + m.group("q")

    return repl


def _hashed(prefix: str, group: str = "value") -> Callable[[re.Match[str], Redactor], str]:
    def repl(m: re.Match[str], r: Redactor) -> str:
        whole, value = m.group(0), m.group(group)
        # once seen in a structured place (option hostname, serial:), the value is redacted
        # wherever it shows up bare ("failed on kitchen-router")
        if len(value) >= 4 and value not in r.known:
            r.known[value] = prefix
            r.learned = True
        start, end = m.start(group) - m.start(0), m.end(group) - m.start(0)
        return whole[:start] + r.token(prefix, value) + whole[end:]

    return repl


def _ip(m: re.Match[str], r: Redactor) -> str:
    text = m.group(0)
    candidate = text.split("%", 1)[0]
    try:
        addr = ipaddress.ip_address(candidate)
    except ValueError:
        return text  # a version number or a clock time, not an address
    if addr.is_loopback or addr.is_unspecified:
        return text  # says nothing about the tester, helps debugging
    return r.token("ip", str(addr))


def _home(m: re.Match[str], r: Redactor) -> str:
    return "~"


_Q = r"(?P<q>['\"]?)"
_V = r"(?P<value>[^\s'\"]+)"

RULES: list[Rule] = [
    Rule(
        "private_key",
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----.*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|\Z)",
            re.S,
        ),
        lambda m, r: "<redacted private key>",
    ),
    # OpenWrt UCI: option key 'secret' / option password / option sae_password / list key
    Rule(
        "wifi_key",
        re.compile(
            r"(?P<name>\b(?:option|list)\s+(?:key|key\d|psk|password|sae_password|wpa_passphrase|auth_secret|priv_key_pwd)\s+)"
            + _Q
            + r"(?P<value>[^'\"\n]*?)(?P=q)(?=\s|$)",
            re.M,
        ),
        _keep_name(),
    ),
    # hostapd / wpa_supplicant: wpa_passphrase=..., psk="...", wpa_psk=..., sae_password=...
    Rule(
        "wifi_psk",
        re.compile(
            r"(?P<name>\b(?:wpa_passphrase|wpa_psk|psk|sae_password|wep_key\d)\s*=\s*)" + _Q + r"(?P<value>[^'\"\n]*)(?P=q)",
            re.I,
        ),
        _keep_name(),
    ),
    Rule(
        "url_credentials",
        re.compile(r"(?P<name>\b[a-z][a-z0-9+.-]*://)(?P<q>)(?P<value>[^\s/@:]+:[^\s/@]+)(?=@)", re.I),
        _keep_name(),
    ),
    Rule(
        "bearer",
        re.compile(r"(?P<name>\b(?:Bearer|Basic|Token)\s+)(?P<q>)(?P<value>[A-Za-z0-9._~+/=-]{8,})"),
        _keep_name(),
    ),
    Rule(
        "jwt",
        re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+"),
        lambda m, r: SECRET,
    ),
    Rule(
        "vendor_token",
        re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|AKIA[0-9A-Z]{16}|xox[abpr]-[A-Za-z0-9-]{10,}|glpat-[A-Za-z0-9_-]{20})"),
        lambda m, r: SECRET,
    ),
    # password=..., "password": "...", passwd: ..., api_key=..., token: ..., secret=...
    Rule(
        "password_or_token",
        re.compile(
            r"(?P<name>[\"']?\b(?:[A-Za-z_-]*(?:password|passwd|passphrase|secret|token|api[_-]?key|apikey|auth[_-]?key|access[_-]?key)[A-Za-z_-]*)[\"']?\s*[:=]\s*)"
            + _Q
            + r"(?P<value>[^\s'\",}]+)(?P=q)",
            re.I,
        ),
        _keep_name(),
    ),
    Rule(
        "serial",
        re.compile(
            r"(?P<name>[\"']?\b(?:serial(?:[ _-]?(?:number|no|num))?|s/?n|board_serial|serialno)[\"']?\s*[:=#]\s*[\"']?)(?P<value>[A-Za-z0-9][A-Za-z0-9._-]{3,})",
            re.I,
        ),
        _hashed("sn"),
    ),
    Rule(
        "mac",
        re.compile(r"(?<![0-9A-Fa-f:-])(?P<value>(?:[0-9A-Fa-f]{2}([:-]))(?:[0-9A-Fa-f]{2}\2){4}[0-9A-Fa-f]{2})(?![0-9A-Fa-f:-])"),
        lambda m, r: r.token("mac", m.group("value").lower().replace("-", ":")),
    ),
    Rule(
        "email",
        re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b"),
        lambda m, r: r.token("email", m.group(0).lower()),
    ),
    Rule(
        "hostname",
        re.compile(
            r"(?P<name>\b(?:option\s+hostname\s+|hostname\s*[:=]\s*|host\s*[:=]\s*)[\"']?)(?P<value>[A-Za-z0-9][A-Za-z0-9.-]*)",
            re.I,
        ),
        _hashed("host"),
    ),
    Rule(
        "shell_prompt_host",
        re.compile(r"(?P<name>\b[a-z_][a-z0-9_-]*@)(?P<value>[A-Za-z0-9][A-Za-z0-9.-]*)(?=:[~/]|\s*[#$]\s)"),
        _hashed("host"),
    ),
    Rule(
        "lan_hostname",
        re.compile(r"\b(?P<value>[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.(?:lan|local|home|internal|localdomain|home\.arpa))\b", re.I),
        _hashed("host"),
    ),
    Rule(
        "home_path",
        re.compile(r"(?:/home/|/Users/)[^/\s'\"]+|(?<![\w/])/root(?=/|\b)"),
        _home,
    ),
    Rule(
        "ipv4",
        re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]*\d)"),
        _ip,
    ),
    Rule(
        "ipv6",
        re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?:%[\w.]+)?(?![\w:])"),
        _ip,
    ),
]


@dataclass
class Redactor:
    """Apply every rule to text; count hits per rule; hash identifiers with the salt."""

    salt: bytes
    known: dict[str, str] = field(default_factory=dict)  # literal value -> kind (serial, host...)
    counts: Counter[str] = field(default_factory=Counter)
    learned: bool = False

    @classmethod
    def for_installation(cls, extra_known: Iterable[tuple[str, str]] = ()) -> Redactor:
        """A redactor with this installation's salt; knows this host's name and login."""
        red = cls(installation_salt())
        host = socket.gethostname()
        if host and host not in ("localhost",):
            red.add_known(host, "host")
        for env in ("USER", "LOGNAME"):
            user = os.environ.get(env)
            if user and user not in ("root",) and len(user) >= 3:
                red.add_known(user, "user")
        for value, kind in extra_known:
            red.add_known(value, kind)
        return red

    def add_known(self, value: str, kind: str) -> None:
        """Redact this literal wherever it appears (e.g. the board serial read from the device)."""
        if value and len(value) >= 4:
            self.known[value] = kind

    def token(self, prefix: str, value: str) -> str:
        """``prefix-<10 hex>``: stable per installation, useless to anyone else."""
        digest = hmac.new(self.salt, value.encode(), hashlib.sha256).hexdigest()[:10]
        return f"{prefix}-{digest}"

    def learn(self, *texts: str) -> None:
        """Pre-scan texts for identifiers so that a hostname first named late (a config dump
        at the end of a log) is also redacted where it appears bare earlier."""
        saved = Counter(self.counts)
        for t in texts:
            self.text(t)
        self.counts = saved

    def text(self, text: str) -> str:
        """Redact one text. Known literals first, then the rules, then literals learned from
        the rules (a hostname named in ``option hostname`` and bare elsewhere)."""
        self.learned = False
        text = self._known(text)
        for rule in RULES:
            text = self._apply(rule, text)
        if self.learned:
            text = self._known(text)
        return text

    def _known(self, text: str) -> str:
        for value in sorted(self.known, key=len, reverse=True):
            if value not in text:
                continue
            kind = self.known[value]
            pattern = re.compile(r"(?<![\w-])" + re.escape(value) + r"(?![\w-])")
            text, hits = pattern.subn(self.token(kind, value), text)
            self.counts[f"known_{kind}"] += hits
        return text

    def _apply(self, rule: Rule, text: str) -> str:
        def repl(m: re.Match[str]) -> str:
            new = rule.replace(m, self)
            if new != m.group(0):
                self.counts[rule.name] += 1
            return new

        return rule.pattern.sub(repl, text)

    def bytes_text(self, data: bytes) -> bytes:
        """Redact a text attachment given as bytes (undecodable bytes survive as U+FFFD)."""
        return self.text(data.decode("utf-8", errors="replace")).encode()


# --- photos ---------------------------------------------------------------------------------

_JPEG_KEEP_APP = {0xE0, 0xEE}  # JFIF, Adobe (colour transform matters for decoding)


def strip_image_metadata(data: bytes) -> tuple[bytes, list[str]]:
    """Remove EXIF/GPS/XMP/IPTC/comments from a JPEG or PNG, losslessly when possible.

    Returns (clean bytes, names of what was removed). JPEG: drop APP1..APP15 except Adobe and
    ICC profiles, and COM segments, keeping the entropy-coded data byte for byte. PNG: drop
    text/time/EXIF chunks. Anything else is re-encoded by Pillow as PNG (no metadata).
    A photo with an EXIF orientation other than 1 is transposed first, so stripping the tag
    does not turn it on its side.
    """
    if data[:3] == b"\xff\xd8\xff":
        if _jpeg_orientation(data) not in (None, 1):
            data = _reencode(data, "JPEG")
        return _strip_jpeg(data)
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return _strip_png(data)
    return _reencode(data, "PNG"), ["reencoded"]


def _jpeg_segments(data: bytes) -> Iterable[tuple[int, int, int]]:
    """(marker, start, end) of each header segment up to SOS."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise PhotoError("corrupt JPEG: segment marker expected")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        yield marker, pos, pos + 2 + length
        if marker == 0xDA:  # start of scan: the rest is image data
            return
        pos += 2 + length
    raise PhotoError("truncated JPEG")


def _strip_jpeg(data: bytes) -> tuple[bytes, list[str]]:
    out = bytearray(data[:2])
    removed: list[str] = []
    tail_from = len(data)
    for marker, start, end in _jpeg_segments(data):
        body = data[start + 4 : end]
        keep = True
        if marker == 0xFE:
            keep, what = False, "comment"
        elif 0xE1 <= marker <= 0xEF and marker not in _JPEG_KEEP_APP:
            keep = marker == 0xE2 and body.startswith(b"ICC_PROFILE")
            what = "exif" if body.startswith(b"Exif") else "xmp" if b"xap" in body[:40] else f"app{marker - 0xE0}"
        if marker == 0xDA:
            tail_from = start
            break
        if keep:
            out += data[start:end]
        else:
            removed.append(what)
    out += data[tail_from:]
    return bytes(out), removed


_PNG_DROP = {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"}


def _strip_png(data: bytes) -> tuple[bytes, list[str]]:
    out = bytearray(data[:8])
    removed: list[str] = []
    pos = 8
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if kind in _PNG_DROP:
            removed.append(kind.decode("latin-1"))
        else:
            out += data[pos:end]
        pos = end
        if kind == b"IEND":
            break
    return bytes(out), removed


def _jpeg_orientation(data: bytes) -> int | None:
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            value = im.getexif().get(0x0112)
            return int(value) if value is not None else None
    except Exception:  # noqa: BLE001 - an unreadable EXIF block is removed anyway
        return None


def _reencode(data: bytes, fmt: str) -> bytes:
    import io

    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as src:
            im = ImageOps.exif_transpose(src)
            if fmt == "JPEG" and im.mode not in ("RGB", "L"):
                im = im.convert("RGB")
            out = io.BytesIO()
            # a plain save: no exif=, no icc passed back, so nothing old survives
            im.save(out, fmt, quality=90) if fmt == "JPEG" else im.save(out, fmt)
            return out.getvalue()
    except (UnidentifiedImageError, OSError) as exc:
        raise PhotoError(f"cannot read photo to strip its metadata: {exc}") from exc
