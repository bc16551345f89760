"""Release notes bound to a channel: what a build changes and which reports it fixes.

``routerkit firmware publish --notes FILE`` puts the notes into the image's TUF target
(``custom.routerkit.notes``), so they are signed by the channel's key together with the
image's length and hash: a mirror cannot add a "fixes #12" that the publisher never wrote.

The file is YAML (JSON is YAML too)::

    summary: Quieter fan, Wi-Fi survives a reboot
    summary_zh: 风扇更安静，重启后 Wi-Fi 保持连接
    changes:
      - fan curve lowered below 50 °C
    fixes: [12, 15]        # reports this build fixes
    touches: [20]          # reports it changes but may not fix

Report numbers are the tracker's (``#12`` and ``12`` both work).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from toolkit.errors import ConfigError

MAX_BYTES = 32 * 1024
_TEXT_KEYS = ("summary", "summary_zh")
_LIST_KEYS = ("changes", "changes_zh")
_REPORT_KEYS = ("fixes", "touches")


def _report_ids(value: Any, key: str, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        value = [value]
    out = []
    for v in value:
        text = str(v).strip().lstrip("#")
        if isinstance(v, bool) or not re.fullmatch(r"[1-9][0-9]{0,8}", text):
            raise ConfigError(f"{where}: {key}: {v!r} is not a report number")
        if text not in out:
            out.append(text)
    return out


def validate(data: Any, where: str = "notes") -> dict[str, Any]:
    """Check and normalise notes (a mapping) into what goes into the channel."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: release notes must be a mapping (summary, changes, fixes)")
    unknown = sorted(set(data) - {*_TEXT_KEYS, *_LIST_KEYS, *_REPORT_KEYS})
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(map(str, unknown))}",
            hint="known: " + ", ".join((*_TEXT_KEYS, *_LIST_KEYS, *_REPORT_KEYS)),
        )
    out: dict[str, Any] = {}
    for key in _TEXT_KEYS:
        if data.get(key) is not None:
            if not isinstance(data[key], str):
                raise ConfigError(f"{where}: {key} must be text")
            out[key] = data[key].strip()
    for key in _LIST_KEYS:
        value = data.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: {key} must be a list of lines")
        out[key] = [v.strip() for v in value if v.strip()]
    for key in _REPORT_KEYS:
        out[key] = _report_ids(data.get(key), key, where)
    if not (out.get("summary") or out["changes"] or out["fixes"] or out["touches"]):
        raise ConfigError(f"{where}: the notes say nothing (no summary, changes or fixes)")
    return out


def load(path: Path) -> dict[str, Any]:
    """Read and validate a notes file."""
    import yaml

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read release notes {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_BYTES:
        raise ConfigError(f"{path}: release notes over {MAX_BYTES // 1024} KiB")
    try:
        data = yaml.safe_load(raw.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not valid YAML/UTF-8 ({exc})") from None
    return validate(data, str(path))


def reports_named(notes: dict[str, Any] | None) -> dict[str, str]:
    """report id -> 'fixes' or 'touches' (fixes win)."""
    out: dict[str, str] = {}
    for key in ("touches", "fixes"):
        for rid in (notes or {}).get(key) or []:
            out[str(rid)] = key
    return out
