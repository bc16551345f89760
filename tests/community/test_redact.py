"""Every redaction rule has a test: the secret goes, the context stays, identifiers hash."""

from __future__ import annotations

import pytest

from toolkit.community.redact import RULES, Redactor, installation_salt

SALT = b"s" * 32

# (rule, input, secret that must vanish, text that must survive)
CASES = [
    (
        "private_key",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEsecret\n-----END RSA PRIVATE KEY-----",
        "MIIEsecret",
        "private key",
    ),
    (
        "private_key",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXkt\n-----END OPENSSH PRIVATE KEY-----",
        "b3BlbnNzaC1rZXkt",
        "private key",
    ),
    (
        "ppp_secret",
        '# Secrets for authentication using CHAP\n# client server secret IP\n"bob@isp.example" * "ChapPw1" *',
        "ChapPw1",
        "# client server secret IP",
    ),
    (
        "ppp_secret",
        "root@gw:~# cat /etc/ppp/pap-secrets\nkunde4711 * PapPw2",
        "PapPw2",
        "cat /etc/ppp/pap-secrets",
    ),
    (
        "shadow_hash",
        "root:$1$abcdefgh$0123456789abcdefghijkl:19683:0:99999:7:::",
        "0123456789abcdefghijkl",
        "root:",
    ),
    (
        "shadow_hash",
        "lena:$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o:19700::",
        "X3DX6M94c7o",
        ":19700::",
    ),
    (
        "shadow_hash",
        "b:$2b$12$KIXQJq3zVhYlW0e1mS9pFe7wq0zT5:1::",
        "KIXQJq3zVhYlW0e1mS9pFe7wq0zT5",
        "b:",
    ),
    (
        "dhcp_lease",
        "1764061500 5c:e9:1e:8a:31:07 192.168.31.142 Lenas-iPad 01:5c:e9:1e:8a:31:07",
        "Lenas-iPad",
        "1764061500 mac-",
    ),
    (
        "dhcp_lease",
        "dnsmasq-dhcp[1873]: DHCPACK(br-lan) 10.0.0.9 5c:e9:1e:8a:31:07 Toms-Phone",
        "Toms-Phone",
        "DHCPACK(br-lan)",
    ),
    (
        "dhcp_lease",
        "config host\n\toption name 'Annas-MacBook'\n\toption mac '3c:22:fb:7a:10:5e'\n",
        "Annas-MacBook",
        "option name 'host-",
    ),
    (
        "authorization",
        "Proxy-Authorization: Basic cHJveHk6UHc=",
        "cHJveHk6UHc=",
        "Proxy-Authorization: Basic ",
    ),
    ("cookie", "Cookie: sysauth=CookieSecret; theme=dark", "CookieSecret", "Cookie: sysauth="),
    (
        "cookie",
        "Set-Cookie: sid=SetCookieSecret; Path=/; HttpOnly",
        "SetCookieSecret",
        "; Path=/; HttpOnly",
    ),
    ("bearer", "curl -H 'Bearer abcDEF123456789xyz' x", "abcDEF123456789xyz", "curl -H 'Bearer "),
    (
        "jwt",
        "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl here",
        "eyJzdWIiOiIxIn0",
        "here",
    ),
    (
        "vendor_token",
        "GH ghp_abcdefghijklmnopqrstuvwxyz0123 ok",
        "ghp_abcdefghijklmnopqrstuvwxyz0123",
        " ok",
    ),
    (
        "url_credentials",
        "fetch https://bob:Hunter2@example.com/fw.img",
        "Hunter2",
        "example.com/fw.img",
    ),
    (
        "wifi_key",
        "\toption key 'Wlan-Secret-1'\n\toption encryption 'psk2'",
        "Wlan-Secret-1",
        "option encryption 'psk2'",
    ),
    ("wifi_key", '\toption sae_password "Sae-Secret"', "Sae-Secret", "option sae_password"),
    (
        "wifi_key",
        "wireless.default_radio0.key='UciShowKey'",
        "UciShowKey",
        "wireless.default_radio0.key=",
    ),
    ("wifi_key", "wl0_wpa_psk=Nvram Psk With Spaces", "Psk With Spaces", "wl0_wpa_psk="),
    ("wifi_key", "wpa_passphrase=HostapdSecret", "HostapdSecret", "wpa_passphrase="),
    ("wifi_key", 'network={\n psk="SupplicantSecret"\n}', "SupplicantSecret", "network={"),
    ("wifi_key", "<KeyPassphrase>XmlKey</KeyPassphrase>", "XmlKey", "<KeyPassphrase>"),
    ("wifi_key", "无线密码：ZhWifi", "ZhWifi", "无线密码："),
    (
        "wireguard_key",
        "PrivateKey = kEfZkDW+VM5Q7RJj9a3c1TmrIQqjQxG4DUs5ZbVBtGQ=",
        "kEfZkDW+VM5Q",
        "PrivateKey = ",
    ),
    (
        "wireguard_key",
        "\toption preshared_key 'FpCyhws9cxw='",
        "FpCyhws9cxw=",
        "option preshared_key",
    ),
    ("api_key", "X-Api-Key: HeaderKey-5e6f", "HeaderKey-5e6f", "X-Api-Key: "),
    ("api_key", '{"api_key": "K3yK3yK3y", "fan": "ok"}', "K3yK3yK3y", '"fan": "ok"'),
    ("secret", "\toption auth_secret 'RadiusSecret'", "RadiusSecret", "option auth_secret"),
    ("token", "GET /status?access_token=QueryTok&lang=de", "QueryTok", "&lang=de"),
    ("password", "login password=pa55word user=admin", "pa55word", "user=admin"),
    ("password", '<Account user="admin" password="XmlAttrPw"/>', "XmlAttrPw", 'user="admin"'),
    ("password", "http_passwd=NvramPw", "NvramPw", "http_passwd="),
    ("password", "管理密码：ZhAdmin 口令＝ZhKou", "ZhAdmin", "管理密码："),
    ("password", "admin password＝FullWidth1", "FullWidth1", "admin password＝"),
    ("serial", "Serial Number: ES00012345", "ES00012345", "Serial Number: sn-"),
    ("serial", '{"serial": "ABC-98765"}', "ABC-98765", '"serial": "sn-'),
    ("serial", "nvmem: SN: 37245/A1X00915", "37245/A1X00915", "SN: sn-"),
    ("serial", "序列号：37245/A1Z77102", "A1Z77102", "序列号：sn-"),
    (
        "username",
        "\toption username 'ab1234567@t-online.de'",
        "ab1234567",
        "option username 'user-",
    ),
    ("username", "用户名：wangxiaoming", "wangxiaoming", "用户名：user-"),
    ("ssid", "\toption ssid 'Mueller-Home'", "Mueller-Home", "option ssid 'ssid-"),
    ("hostname", "option hostname 'kitchen-router'", "kitchen-router", "option hostname"),
    ("hostname", "Host: router.example.net", "router.example.net", "Host: host-"),
    ("mac", "eth0 HWaddr 52:54:00:12:34:56 up", "52:54:00:12:34:56", "mac-"),
    ("mac", "wlan AA-BB-CC-DD-EE-0F", "AA-BB-CC-DD-EE-0F", "mac-"),
    ("mac", "  10    0050.56c0.0008    DYNAMIC", "0050.56c0.0008", "DYNAMIC"),
    ("mac", "ethaddr=A0B1C2D3E4F6", "A0B1C2D3E4F6", "ethaddr=mac-"),
    ("email", "reported by tester@example.org", "tester@example.org", "reported by email-"),
    ("shell_prompt_host", "root@benchpi:~# uname", "benchpi", "# uname"),
    ("lan_hostname", "ping nas.lan failed", "nas.lan", "failed"),
    ("home_path", "saved /home/alice/photos/1.jpg", "alice", "~/photos/1.jpg"),
    ("home_path", "key in /root/.ssh/id_ed25519", "/root/", "~/.ssh"),
    ("ipv4", "inet 192.168.1.20/24 brd", "192.168.1.20", "/24 brd"),
    ("ipv6", "inet6 2001:db8::42/64 scope global", "2001:db8::42", "scope global"),
    ("ipv6", "inet6 fe80::5054:ff:fe12:3456%eth0", "fe80::5054:ff:fe12:3456", "inet6"),
]


@pytest.mark.parametrize(
    ("rule", "text", "secret", "kept"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)]
)
def test_rule_removes_secret_and_keeps_context(
    rule: str, text: str, secret: str, kept: str
) -> None:
    r = Redactor(SALT)
    out = r.text(text)
    assert secret not in out
    assert kept in out
    assert r.counts[rule] >= 1


def test_every_rule_has_a_case() -> None:
    assert {rule.name for rule in RULES} <= {c[0] for c in CASES}


def test_identifiers_hash_stably_per_installation_and_differ_between_installations() -> None:
    line = "MAC 52:54:00:12:34:56 serial: ES123456 ip 10.1.2.3"
    assert Redactor(SALT).text(line) == Redactor(SALT).text(line)
    assert Redactor(SALT).text(line) != Redactor(b"t" * 32).text(line)
    # the same MAC in another spelling is the same identifier
    assert Redactor(SALT).text("52-54-00-12-34-56") == Redactor(SALT).text("52:54:00:12:34:56")


def test_harmless_text_is_left_alone() -> None:
    text = "U-Boot 2023.01 booted at 12:34:56, version 1.2.3, loopback 127.0.0.1 and ::1, crc32 0xdeadbeef"
    assert Redactor(SALT).text(text) == text


def test_known_literal_values_are_redacted_on_word_boundaries() -> None:
    r = Redactor(SALT)
    r.add_known("benchbox", "host")
    out = r.text("benchbox says hi to benchboxes")
    assert out.startswith("host-") and "benchboxes" in out


def test_installation_salt_is_created_once_and_private(tmp_path) -> None:
    salt = installation_salt(tmp_path)
    assert salt == installation_salt(tmp_path) and len(salt) == 32
    assert (tmp_path / "salt").stat().st_mode & 0o077 == 0


def test_same_mac_in_every_spelling_is_one_token() -> None:
    r = Redactor(SALT)
    spellings = [
        "94:83:c4:12:ab:00",
        "94:83:C4:12:AB:00",
        "94-83-C4-12-AB-00",
        "9483.c412.ab00",
        "macaddr=9483C412AB00",
    ]
    tokens = {r.text(s).split("=")[-1] for s in spellings}
    assert len(tokens) == 1 and tokens.pop().startswith("mac-")


def test_harmless_router_text_survives() -> None:
    text = "\n".join(
        [
            "user.notice root: password changed successfully",
            "kernel: Firmware version 20230627 build 1.2.3.4",
            "<SoftwareVersion>1.0.4.2</SoftwareVersion>",
            "fw_version=3.0.0.4.386",
            "\toption key '1'",  # WEP key index, not a key
            "\toption netmask '255.255.255.0'",
            "wpa_key_mgmt=WPA-PSK SAE",
            "wpa_psk_file=/var/run/hostapd-phy0-ap0.psk",
            '"password_min_length": 8',
            "root@OpenWrt:~# uci show",
            '{"hostname": "OpenWrt"}',
            "option public_key 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg='",
            "操作成功：密码已修改",
            "pppd: can't open /etc/ppp/chap-secrets",
            "procd: Instance dnsmasq::cfg01411c s in a crash loop 6 crashes",
        ]
    )
    r = Redactor(SALT)
    assert r.text(text) == text, dict(r.counts)


def test_a_name_learned_from_a_config_is_redacted_where_it_appears_bare() -> None:
    r = Redactor(SALT)
    r.learn("1764061500 5c:e9:1e:8a:31:07 192.168.31.142 Lenas-iPad *")
    assert "Lenas-iPad" not in r.text("hostapd: Lenas-iPad disconnected")
