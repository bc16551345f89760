"""Privacy: scrub secrets and identifiers from everything that leaves the machine.

Texts (console transcripts, selftest JSON, dmesg, attached configs, the build log itself) go
through :meth:`Redactor.text`. Pictures are not handled here: they are rebuilt from their
pixels by :func:`toolkit.guide.photos.clean_image` (see ``toolkit.community.attachments``).

Secrets and identifiers are found by their labels in the syntaxes real router dumps use (OpenWrt
UCI and ``uci show``, nvram, hostapd/wpa_supplicant, wg-quick, ppp secrets, shadow,
dhcp.leases, HTTP headers, URLs, JSON, XML, Chinese labels with full-width punctuation) and by
their shape (PEM blocks, JWTs, vendor tokens, MACs in every spelling, IP addresses).

Identifiers that help triage (MAC addresses, serial numbers, IP addresses, hostnames, DHCP
client names, user names, SSIDs — WiGLE maps an SSID to a street) are not blanked but replaced
by a **salted hash**: the salt is per installation (``data_dir()/community/salt``), so two
reports from the same bench still match each other, while nobody else can reverse or correlate
them. Secrets (Wi-Fi keys, passwords, tokens, private keys, password hashes) are blanked.

Judgement calls, kept on purpose: a dotted quad after a version label ("build 1.2.3.4",
``<SoftwareVersion>``) is a version, not an address; netmasks, loopback and multicast
addresses say nothing about the tester; ``option key '1'`` is a WEP key *index*; default host
names (OpenWrt) and generic accounts (root, admin) stay readable. Cookie headers lose every
value; a ``name=value`` line (nvram, hostapd) loses everything after the ``=``.

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
    """One redaction rule: ``name`` is the kind counted in ``Redactor.counts``."""

    name: str
    pattern: re.Pattern[str]
    replace: Callable[[re.Match[str], Redactor], str]


Replace = Callable[[re.Match[str], "Redactor"], str]

# Account and host names that say nothing about the tester: kept so logs stay readable.
GENERIC_USERS = frozenset(
    {
        "root",
        "admin",
        "administrator",
        "user",
        "guest",
        "nobody",
        "daemon",
        "ftp",
        "network",
        "dnsmasq",
        "ubus",
        "logd",
    }
)
DEFAULT_HOSTS = frozenset({"openwrt", "lede", "localhost", "router", "gateway", "buildhost"})
# ``option key '1'``: with WEP, ``key`` is the index of the key in use, never a key (WEP keys
# are 5+ characters, WPA passphrases 8+).
_KEY_INDEXES = frozenset({"0", "1", "2", "3", "4"})
_TOKEN_RE = re.compile(r"[a-z]+-[0-9a-f]{10}")


def _splice(m: re.Match[str], group: str, new: str) -> str:
    start, end = m.start(group) - m.start(0), m.end(group) - m.start(0)
    whole = m.group(0)
    return whole[:start] + new + whole[end:]


def _blank(group: str = "value", keep: frozenset[str] = frozenset()) -> Replace:
    """Blank the value, keep the label and the quoting."""

    def repl(m: re.Match[str], r: Redactor) -> str:
        value = m.group(group)
        if not value or value.startswith(SECRET) or value in keep:
            return m.group(0)
        return _splice(m, group, SECRET)

    return repl


def _hashed(prefix: str, group: str = "value", keep: frozenset[str] = frozenset()) -> Replace:
    """Replace an identifier by its salted hash; remember it so bare mentions go too."""

    def repl(m: re.Match[str], r: Redactor) -> str:
        value = m.group(group)
        if (
            not value
            or value == SECRET
            or _TOKEN_RE.fullmatch(value)
            or value.lower() in keep
            or (len(value) <= 2 and value.isdigit())
        ):
            return m.group(0)
        # once seen in a structured place (option hostname, serial:), the value is redacted
        # wherever it shows up bare ("failed on kitchen-router")
        if len(value) >= 4 and value not in r.known:
            r.known[value] = prefix
            r.learned = True
        return _splice(m, group, r.token(prefix, value))

    return repl


# --- labelled values: one family of rules per kind -----------------------------------------
#
# A secret or identifier is found by its label, in every syntax router dumps use:
#   UCI            option key 'v' / list key "v" / option key v
#   uci show       wireless.default_radio0.key='v'
#   assignments    nvram wl0_wpa_psk=v, hostapd wpa_passphrase=v, shell FOO_TOKEN=v,
#                  URL query &token=v, WireGuard "PrivateKey = v", YAML "password: v",
#                  JSON "password": "v", XML attributes password="v", full-width ＝ and ：
#   XML elements   <KeyPassphrase>v</KeyPassphrase>
#   Chinese labels 无线密码：v, 序列号：v, 用户名：v
# Labels may carry a prefix (wl0_, wan0_pppoe_, http_, X-) and a suffix (_x, a digit).

_PREFIX = r"(?<![\w-])(?:[\w.@\[\]-]*?[._-])?"
_SEP = r"[\"']?[ \t]*(?:=|:|：|＝)[ \t]*"


def _family(
    kind: str,
    names: str,
    action: Replace,
    *,
    uci_names: str | None = None,
    unquoted: str = r"[^\s&;\"']+",
    zh: str | None = None,
) -> list[Rule]:
    """The rules that find values labelled ``names`` (a regex, case-insensitive)."""
    uci = uci_names or names
    rules = [
        Rule(
            kind,
            re.compile(
                rf"(?P<name>\b(?:option|list)[ \t]+(?:{uci})[ \t]+)(?P<q>['\"]?)(?P<value>[^'\"\n]*?)(?P=q)(?=[ \t\r]*$)",
                re.M | re.I,
            ),
            action,
        ),
        Rule(
            kind,
            re.compile(
                rf"(?P<name>{_PREFIX}(?:{names})(?:_x|\d)?{_SEP})(?P<q>[\"'])(?P<value>[^\"'\n]*)(?P=q)",
                re.I,
            ),
            action,
        ),
        # a whole "name=value" line (nvram, hostapd, wg-quick): the value runs to the end of the
        # line, because WPA passphrases and SSIDs may contain spaces
        Rule(
            kind,
            re.compile(
                rf"^(?P<name>[ \t]*(?:[\w.@\[\]-]*?[._-])?(?:{names})(?:_x|\d)?[ \t]*(?:=|＝)[ \t]*)(?![\"'])(?P<value>(?:(?!&[\w.-]+=)[^\n])*?)[ \t\r]*$",
                re.M | re.I,
            ),
            action,
        ),
        Rule(
            kind,
            re.compile(
                rf"(?P<name>{_PREFIX}(?:{names})(?:_x|\d)?{_SEP})(?![\"'])(?P<value>{unquoted})",
                re.I,
            ),
            action,
        ),
        Rule(
            kind,
            re.compile(
                rf"<(?P<tag>[\w:.-]*?(?:{names}))(?:\s[^<>]*)?>(?P<value>[^<]*)</(?P=tag)\s*>", re.I
            ),
            action,
        ),
    ]
    if zh:
        rules.append(
            Rule(
                kind,
                re.compile(
                    rf"(?P<name>[\u3400-\u9fff\w]*?(?:{zh})[ \t]*(?:=|:|：|＝)[ \t]*)(?P<value>[^\s，。；]+)"
                ),
                action,
            )
        )
    return rules


def _ip(m: re.Match[str], r: Redactor) -> str:
    text = m.group(0)
    candidate = text.split("%", 1)[0]
    try:
        addr = ipaddress.ip_address(candidate)
    except ValueError:
        return text  # a version number or a clock time, not an address
    if addr.is_loopback or addr.is_unspecified or addr.is_multicast:
        return text  # says nothing about the tester, helps debugging
    if addr.version == 4 and addr.is_reserved:
        return text  # 255.255.255.0 and friends: netmasks, not hosts
    if addr.version == 4 and _VERSION_LABEL.search(m.string, max(0, m.start() - 24), m.start()):
        return text  # "build 1.2.3.4", "<SoftwareVersion>1.0.4.2": a version, not an address
    return r.token("ip", str(addr))


_VERSION_LABEL = re.compile(
    r"(?:version|firmware|\bver|\bv|\bbuild|\brelease|\bfw|\brev(?:ision)?|版本)[\W_]{0,3}\Z", re.I
)


def _mac(m: re.Match[str], r: Redactor) -> str:
    value = m.group("value")
    digits = re.sub(r"[^0-9A-Fa-f]", "", value).lower()
    if len(digits) != 12:
        return m.group(0)
    canonical = ":".join(digits[i : i + 2] for i in range(0, 12, 2))  # one token for every spelling
    return _splice(m, "value", r.token("mac", canonical))


def _home(m: re.Match[str], r: Redactor) -> str:
    return "~"


def _cookie(m: re.Match[str], r: Redactor) -> str:
    """Cookie: every value goes; Set-Cookie: the cookie's value goes, its attributes stay."""
    header, value = m.group("name"), m.group("value")
    pairs = value.split(";")
    count = len(pairs) if not header.lower().lstrip().startswith("set-") else 1
    for i in range(count):
        key, eq, _v = pairs[i].partition("=")
        if eq:
            pairs[i] = f"{key}={SECRET}"
    return header + ";".join(pairs)


def _ppp_secrets(m: re.Match[str], r: Redactor) -> str:
    """/etc/ppp/chap-secrets and pap-secrets: ``client server secret [addresses]`` per line."""
    out = []
    for line in m.group("body").split("\n"):
        fields = re.findall(r'"[^"]*"|\S+', line)
        if len(fields) >= 3 and not line.lstrip().startswith("#"):
            client, secret = fields[0], fields[2]
            bare = client.strip('"')
            line = line.replace(secret, '"' + SECRET + '"' if secret.startswith('"') else SECRET, 1)
            if bare and bare != "*" and bare.lower() not in GENERIC_USERS:
                line = line.replace(bare, r.token("user", bare), 1)
                r.known.setdefault(bare, "user")
        out.append(line)
    return m.group("head") + "\n".join(out)


def _dhcp_sections(m: re.Match[str], r: Redactor) -> str:
    """``config host`` / ``config domain`` in /etc/config/dhcp: ``option name`` is a client's name."""
    return re.sub(
        r"(?P<name>\boption[ \t]+name[ \t]+)(?P<q>['\"]?)(?P<value>[^'\"\n]*?)(?P=q)(?=[ \t\r]*$)",
        lambda n: _HOST(n, r),
        m.group(0),
        flags=re.M,
    )


def _lease(m: re.Match[str], r: Redactor) -> str:
    """/tmp/dhcp.leases: ``expiry MAC IP hostname client-id`` (MAC and IP go by their own rules)."""
    line = m.group(0)
    host, cid = m.group("host"), m.group("cid")
    if cid != "*":
        line = (
            line[: m.start("cid") - m.start(0)]
            + r.token("cid", cid.lower())
            + line[m.end("cid") - m.start(0) :]
        )
    if host != "*":
        line = (
            line[: m.start("host") - m.start(0)]
            + r.token("host", host)
            + line[m.end("host") - m.start(0) :]
        )
        r.known.setdefault(host, "host")
        r.learned = True
    return line


_HOST = _hashed("host", keep=DEFAULT_HOSTS)
_HEX2 = r"[0-9A-Fa-f]{2}"

RULES: list[Rule] = [
    Rule(
        "private_key",
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----.*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|\Z)",
            re.S,
        ),
        lambda m, r: "<redacted private key>",
    ),
    Rule(
        "ppp_secret",
        # the file's own header comment, or a "cat …/chap-secrets" / "==> …/pap-secrets <==" line
        re.compile(
            r"(?P<head>(?:#[ \t]*Secrets for authentication using (?:CHAP|PAP)[^\n]*"
            r"|^[^\n]*\b(?:cat|less|more|head|tail)\b[^\n]*(?:chap|pap)-secrets[ \t]*"
            r"|^==>[ \t]*\S*(?:chap|pap)-secrets[ \t]*<==[ \t]*)\n)"
            r"(?P<body>(?:[^\n]*\S[^\n]*(?:\n|\Z))*)",
            re.I | re.M,
        ),
        _ppp_secrets,
    ),
    Rule(
        "shadow_hash",
        re.compile(r"\$(?:1|2[abxy]|5|6|y|gy|7|md5|sha1)\$[\w./$=,-]{8,}"),
        lambda m, r: SECRET,
    ),
    Rule(
        "dhcp_lease",
        re.compile(
            rf"^(?P<ts>\d{{9,11}})[ \t]+(?P<mac>{_HEX2}(?::{_HEX2}){{5}})[ \t]+(?P<ip>[0-9A-Fa-f.:]+)[ \t]+"
            r"(?P<host>\S+)[ \t]+(?P<cid>\S+)[ \t\r]*$",
            re.M,
        ),
        _lease,
    ),
    Rule(
        "dhcp_lease",
        re.compile(
            rf"(?P<name>\bDHCP[A-Z]+\([\w.-]+\)[ \t]+(?:[\d.]+[ \t]+)?{_HEX2}(?::{_HEX2}){{5}}[ \t]+)"
            r"(?P<value>[^\s*][^\s]*)[ \t\r]*$",
            re.M,
        ),
        _hashed("host", keep=DEFAULT_HOSTS),
    ),
    Rule(
        "dhcp_lease",
        re.compile(r"^config[ \t]+(?:host|domain)\b.*?(?=^config\b|\Z)", re.M | re.S),
        _dhcp_sections,
    ),
    Rule(
        "authorization",
        re.compile(
            r"(?P<name>\b(?:Proxy-)?Authorization[ \t]*:[ \t]*(?:[A-Za-z-]+[ \t]+)?)(?P<value>[^\s'\"]+)",
            re.I,
        ),
        _blank(),
    ),
    Rule(
        "cookie",
        re.compile(
            r"(?P<name>^[ \t]*(?:Set-)?Cookie[ \t]*:[ \t]*)(?P<value>[^\r\n]*)", re.M | re.I
        ),
        _cookie,
    ),
    Rule(
        "bearer",
        re.compile(r"(?P<name>\b(?:Bearer|Basic|Token)\s+)(?P<value>[A-Za-z0-9._~+/=-]{8,})"),
        _blank(),
    ),
    Rule(
        "jwt",
        re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+"),
        lambda m, r: SECRET,
    ),
    Rule(
        "vendor_token",
        re.compile(
            r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|AKIA[0-9A-Z]{16}"
            r"|xox[abpr]-[A-Za-z0-9-]{10,}|glpat-[A-Za-z0-9_-]{20})"
        ),
        lambda m, r: SECRET,
    ),
    Rule(
        "url_credentials",
        re.compile(r"(?P<name>\b[a-z][a-z0-9+.-]*://)(?P<value>[^\s/@:]+:[^\s/@]+)(?=@)", re.I),
        _blank(),
    ),
    # uci show: wireless.default_radio0.key='…' (a bare "key" label is too common elsewhere)
    Rule(
        "wifi_key",
        re.compile(
            r"(?P<name>\bwireless\.[\w@\[\]-]+\.key\d?=)(?P<q>['\"]?)(?P<value>[^'\"\n]*?)(?P=q)(?=\s|$)"
        ),
        _blank(keep=_KEY_INDEXES),
    ),
    *_family(
        "wifi_key",
        r"wpa_passphrase|passphrase|sae_password|wpa_psk|psk|wep_key\d?|key\d|wps_(?:device_)?pin"
        r"|ap_pin|pincode",
        _blank(keep=_KEY_INDEXES),
        uci_names=r"key\d?|psk|sae_password|wpa_passphrase|wep_key\d?|pin|wps_pin",
        zh=r"(?:无线|WiFi|WLAN|wifi|Wi-Fi)密码",
    ),
    *_family("wireguard_key", r"private_?key|pre_?shared_?key|privkey|priv_key(?:_pwd)?", _blank()),
    *_family(
        "api_key",
        r"api[_-]?key|apikey|auth[_-]?key|access[_-]?key(?:_id)?|secret[_-]?key|app[_-]?key",
        _blank(),
    ),
    *_family(
        "secret", r"secret|radius_key|acct_key", _blank(), uci_names=r"\w*secret|\w*radius_key"
    ),
    *_family("token", r"token|sessionid|session_id", _blank()),
    *_family(
        "password",
        r"password|passwd|passcode|pass|pwd|pw\d?",
        _blank(),
        uci_names=r"\w*password|\w*passwd",
        zh=r"密码|口令|密钥|密匙",
    ),
    *_family(
        "serial",
        r"serial(?:[ _-]?(?:number|num|no)|#)?|serialno|sn|s/n",
        _hashed("sn"),
        unquoted=r"[A-Za-z0-9][\w./-]{3,}",
        zh=r"序列号|串号|SN码",
    ),
    *_family(
        "username",
        r"username|user_name|user|identity|login_?name",
        _hashed("user", keep=GENERIC_USERS),
        zh=r"用户名|账号|帐号|账户",
    ),
    *_family(
        "ssid",
        r"ssid|essid",
        _hashed("ssid"),
        unquoted=r"[^\s&\"']+",
        zh=r"无线名称|WiFi名称|网络名称",
    ),
    *_family(
        "hostname",
        r"hostname|host",
        _HOST,
        uci_names=r"hostname|\w+_host(?:name)?",
        unquoted=r"[A-Za-z0-9][\w.-]*",
        zh=r"主机名",
    ),
    # MAC addresses in every spelling: aa:bb:cc:dd:ee:ff, AA-BB-…, Cisco's aabb.ccdd.eeff
    Rule(
        "mac",
        re.compile(
            rf"(?<![0-9A-Fa-f:-])(?P<value>{_HEX2}([:-])(?:{_HEX2}\2){{4}}{_HEX2})(?![0-9A-Fa-f:-])"
        ),
        _mac,
    ),
    Rule(
        "mac",
        re.compile(r"(?<![\w.])(?P<value>[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4})(?![\w.])"),
        _mac,
    ),
    # … and aabbccddeeff where a label says it is one (U-Boot ethaddr, nvram, "MAC地址")
    Rule(
        "mac",
        re.compile(
            r"(?P<name>(?<![\w-])(?:[\w.]*?[._-])?(?:mac(?:_?addr(?:ess)?)?|hwaddr|eth\d*addr|bssid|MAC地址)"
            r"[\"']?[ \t]*(?:=|:|：|＝)?[ \t]*[\"']?)(?P<value>[0-9A-Fa-f]{12})(?![0-9A-Fa-f])",
            re.I,
        ),
        _mac,
    ),
    Rule(
        "email",
        re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b"),
        lambda m, r: r.token("email", m.group(0).lower()),
    ),
    Rule(
        "shell_prompt_host",
        re.compile(
            r"(?P<name>\b[a-z_][a-z0-9_-]*@)(?P<value>[A-Za-z0-9][A-Za-z0-9.-]*)(?=:[~/]|\s*[#$]\s)"
        ),
        _hashed("host", keep=DEFAULT_HOSTS),
    ),
    Rule(
        "lan_hostname",
        re.compile(
            r"\b(?P<value>[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.(?:lan|local|home|internal|localdomain|home\.arpa))\b",
            re.I,
        ),
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
