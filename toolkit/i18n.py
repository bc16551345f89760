"""English and Simplified Chinese for the weekly loop (votes, confirmations, changes, the
weekly page and the share card).

The language comes from ``--lang``, else ``ROUTERKIT_LANG``, else the locale
(``LC_ALL``, ``LC_MESSAGES``, ``LANG``: ``zh_CN.UTF-8`` gives Chinese), else English.
Messages are English msgids looked up in :data:`ZH_CN`; ``tests/core/test_i18n.py`` fails
when a message used in the code has no Chinese translation.
"""

from __future__ import annotations

import os

LANGS = ("en", "zh-CN")

#: msgid -> Simplified Chinese. Placeholders ({n}, {build} ...) are kept as they are.
ZH_CN: dict[str, str] = {
    # CLI messages
    "voted for #{id}: {votes} vote(s)": "已为 #{id} 投票：共 {votes} 票",
    "you had already voted for #{id} ({votes} vote(s))": "你已为 #{id} 投过票（共 {votes} 票）",
    "vote queued (not sent yet: {error}); `routerkit outbox retry` sends it later": (
        "投票已排队（尚未发送：{error}）；`routerkit outbox retry` 稍后发送"
    ),
    "request filed: {url}": "需求已提交：{url}",
    "queued (not sent yet: {error}); `routerkit outbox retry` uploads it later": (
        "已排队（尚未发送：{error}）；`routerkit outbox retry` 稍后上传"
    ),
    "confirmed #{id} {verdict} on build {build}: {verified}": (
        "已确认 #{id} 在版本 {build} 上{verdict}：{verified}"
    ),
    "fixed": "已修复",
    "still broken": "仍未修复",
    "no open requests or bugs": "没有未关闭的需求或缺陷",
    "votes": "票数",
    "no release notes in {channel}": "{channel} 中没有发布说明",
    "(yours: {how})": "（你的：{how}）",
    "filed": "提交",
    "voted": "投票",
    "me too": "我也遇到",
    "confirmed": "已确认",
    "fixes": "修复",
    "touches": "涉及",
    "Build {version} claims to fix report(s) you care about:": (
        "版本 {version} 声称修复了你关注的报告："
    ),
    "Tell the community: routerkit confirm {id} --fixed | --still-broken": (
        "告诉社区：routerkit confirm {id} --fixed | --still-broken"
    ),
    "card written: {path} ({width}×{height}); its QR code opens {url}": (
        "分享卡片已生成：{path}（{width}×{height}）；二维码指向 {url}"
    ),
    "weekly page written: {path}": "周报页面已生成：{path}",
    # weekly page
    "routerkit weekly": "routerkit 周报",
    "Week of {start} to {end}": "{start} 至 {end} 这一周",
    "Builds this week": "本周构建",
    "Fixed reports": "已修复的报告",
    "Most-voted requests and bugs": "得票最多的需求和缺陷",
    "Shared builds": "本周分享的组装",
    "Assembly-time leaderboard": "组装用时排行榜",
    "No builds this week.": "本周没有构建。",
    "No fixed reports this week.": "本周没有已修复的报告。",
    "No open requests or bugs.": "没有未关闭的需求或缺陷。",
    "No build logs shared this week.": "本周没有分享的组装日志。",
    "build": "构建",
    "report": "报告",
    "title": "标题",
    "verified": "验证",
    "kind": "类型",
    "status": "状态",
    "rank": "名次",
    "tester": "测试者",
    "time": "用时",
    "board": "板卡",
    "bug": "缺陷",
    "request": "需求",
    "anonymous": "匿名",
    "verified by {n}": "{n} 位测试者已验证",
    "Made with routerkit from the tracker and the signed channel.": (
        "由 routerkit 根据跟踪器和签名的发布通道生成。"
    ),
    # share card
    "sample {sample}": "样机 {sample}",
    "firmware {version}": "固件 {version}",
    "assembled in {time}": "组装用时 {time}",
    "rank {rank} of {total} on {board}": "{board} 排名 {rank}/{total}",
    "Scan for the build log": "扫码查看组装日志",
}


_chosen: str | None = None


def choose(lang: str | None) -> None:
    """Set the language for this process (the CLI's ``--lang``); None goes back to the
    environment."""
    global _chosen
    _chosen = lang


def current(explicit: str | None = None) -> str:
    """The language to use: 'en' or 'zh-CN' (see the module docstring)."""
    for value in (
        explicit,
        _chosen,
        os.environ.get("ROUTERKIT_LANG"),
        os.environ.get("LC_ALL"),
        os.environ.get("LC_MESSAGES"),
        os.environ.get("LANG"),
    ):
        if not value:
            continue
        low = value.lower().replace("_", "-")
        if low.startswith("zh"):
            return "zh-CN"
        if low.startswith("en") or low in ("c", "posix", "c.utf-8"):
            return "en"
    return "en"


def t(msgid: str, lang: str | None = None, **values: object) -> str:
    """The message in ``lang`` (default: :func:`current`), with ``values`` filled in."""
    lang = lang or current()
    text = ZH_CN.get(msgid, msgid) if lang == "zh-CN" else msgid
    return text.format(**values) if values else text


def both(msgid: str, **values: object) -> str:
    """'English · 中文' for places both languages share (the page's headings, the card)."""
    en, zh = t(msgid, "en", **values), t(msgid, "zh-CN", **values)
    return en if en == zh else f"{en} · {zh}"
