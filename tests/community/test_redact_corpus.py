"""The redaction corpus: realistic router dumps with planted secrets; nothing planted survives.

``redaction_corpus/`` holds files written in the formats testers really attach (OpenWrt UCI
configs, ``uci show``, an Asuswrt nvram dump, logread, dmesg, hostapd/wpa_supplicant configs,
wg-quick, ppp secrets, shadow, dhcp.leases, an HTTP dump, JSON, TR-069 XML, a Chinese export).
``manifest.json`` lists, per file, every planted value by kind and lines that must come out
unchanged. Run ``python -m tests.community.test_redact_corpus`` for the figures.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from toolkit.community.attachments import prepare_attachment
from toolkit.community.redact import RULES, Redactor

CORPUS = Path(__file__).parent / "redaction_corpus"
MANIFEST: dict[str, dict[str, object]] = {
    k: v
    for k, v in json.loads((CORPUS / "manifest.json").read_text(encoding="utf-8")).items()
    if not k.startswith("_")
}
SALT = b"c" * 32
# rules the corpus has no occasion for (a router dump holds no /home paths or bench prompts):
# they have their own cases in test_redact.py
NOT_IN_CORPUS = {"home_path", "shell_prompt_host"}


@dataclass
class Figures:
    files: int = 0
    planted: int = 0
    kinds: set[str] = field(default_factory=set)
    survivors: list[tuple[str, str, str]] = field(default_factory=list)  # (file, kind, value)
    harmless: int = 0
    harmless_lost: list[tuple[str, str]] = field(default_factory=list)
    rule_hits: Counter[str] = field(default_factory=Counter)

    def line(self) -> str:
        return (
            f"redaction corpus: {self.files} files, {len(self.kinds)} secret kinds, {self.planted} planted values, "
            f"{len(self.survivors)} survivors; {self.harmless} harmless lines, {len(self.harmless_lost)} mangled; "
            f"{len(self.rule_hits)} rules fired"
        )


def redact_corpus(newline: str = "\n") -> tuple[Figures, dict[str, str]]:
    """Redact every corpus file, its lines ended by ``newline`` (a console, or a config saved
    on Windows, ends them in CRLF)."""
    figures, outputs = Figures(), {}
    for name, spec in MANIFEST.items():
        r = Redactor(SALT)
        out = r.text((CORPUS / name).read_text(encoding="utf-8").replace("\n", newline))
        outputs[name] = out
        figures.files += 1
        figures.rule_hits.update(r.counts)
        for kind, values in spec["secrets"].items():  # type: ignore[attr-defined]
            figures.kinds.add(kind)
            for value in values:
                figures.planted += 1
                if value in out:
                    figures.survivors.append((name, kind, value))
        for keep in spec["keep"]:  # type: ignore[attr-defined]
            figures.harmless += 1
            if keep not in out:
                figures.harmless_lost.append((name, keep))
    return figures, outputs


def test_manifest_names_every_corpus_file_and_plants_really_are_there() -> None:
    files = {p.name for p in CORPUS.iterdir() if p.name != "manifest.json"}
    assert files == set(MANIFEST)
    for name, spec in MANIFEST.items():
        text = (CORPUS / name).read_text(encoding="utf-8")
        for kind, values in spec["secrets"].items():  # type: ignore[attr-defined]
            for value in values:
                assert value in text, f"{name}: planted {kind} {value!r} is not in the file"
        for keep in spec["keep"]:  # type: ignore[attr-defined]
            assert keep in text, f"{name}: harmless {keep!r} is not in the file"


def test_nothing_planted_survives_and_harmless_text_does() -> None:
    figures, _ = redact_corpus()
    print(figures.line())  # quoted in the README's privacy section
    assert figures.planted >= 150 and len(figures.kinds) >= 15
    assert figures.survivors == []
    assert figures.harmless_lost == []


def test_nothing_planted_survives_with_crlf_line_ends_either() -> None:
    """Consoles and Windows editors end lines in CRLF: a rule anchored at the end of a line
    must not miss a value followed by a CR (UCI ``option key '…'\\r`` once did)."""
    figures, outputs = redact_corpus("\r\n")
    assert figures.survivors == []
    assert figures.harmless_lost == []
    assert all("\r\n" in out for out in outputs.values() if out.strip())  # line ends kept


@pytest.mark.parametrize("kind", sorted({k for spec in MANIFEST.values() for k in spec["secrets"]}))  # type: ignore[attr-defined]
def test_each_planted_kind_is_removed(kind: str) -> None:
    figures, _ = redact_corpus()
    assert [s for s in figures.survivors if s[1] == kind] == []


def test_every_rule_fires_on_the_corpus() -> None:
    figures, _ = redact_corpus()
    silent = {rule.name for rule in RULES} - set(figures.rule_hits) - NOT_IN_CORPUS
    assert silent == set()


def test_the_same_identifier_gets_the_same_token_across_files_of_one_report() -> None:
    r = Redactor(SALT)
    leases = r.text((CORPUS / "dhcp.leases").read_text())
    logs = r.text((CORPUS / "logread.txt").read_text())
    token = r.token("mac", "5c:e9:1e:8a:31:07")
    assert token in leases and token in logs


def test_corpus_files_attached_to_a_report_leave_clean(tmp_path: Path) -> None:
    """Through the attachment path: by content, as text, including a GB18030 Chinese export."""
    r = Redactor(SALT)
    zh = tmp_path / "backup_gbk.cfg"
    zh.write_bytes((CORPUS / "config_zh.txt").read_text(encoding="utf-8").encode("gb18030"))
    paths = [CORPUS / name for name in MANIFEST] + [zh]
    payload = b"".join(prepare_attachment(p, r).blob.data for p in paths)
    for name, spec in {**MANIFEST, zh.name: MANIFEST["config_zh.txt"]}.items():
        for kind, values in spec["secrets"].items():  # type: ignore[attr-defined]
            for value in values:
                assert value.encode() not in payload, (name, kind, value)
    assert "操作成功：密码已修改".encode() in payload  # decoded, redacted, sent as UTF-8


if __name__ == "__main__":
    figures, _ = redact_corpus()
    print(figures.line())
    for file, kind, value in figures.survivors:
        print(f"  survivor: {file}: {kind} {value}")
    print("  kinds: " + ", ".join(sorted(figures.kinds)))
    print("  rule hits: " + ", ".join(f"{k} ×{v}" for k, v in sorted(figures.rule_hits.items())))
