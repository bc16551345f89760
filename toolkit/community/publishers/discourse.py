"""Publish to a Discourse forum (the forum software of OpenWrt, Framework, Home Assistant).

Follows Discourse's documented API:

- auth: ``Api-Key`` + ``Api-Username`` headers (an admin-issued key), or ``User-Api-Key``
  (a key a user granted to this app);
- ``POST /uploads.json`` (multipart: ``type=composer``, ``synchronous=true``, ``file``) per
  attachment; the answer's ``short_url`` (``upload://…``) is what posts reference. Discourse
  de-duplicates uploads by content, so re-uploading after a crash creates nothing new;
- ``POST /posts.json`` with ``title``, ``raw``, ``category``, ``tags[]`` and ``external_id``
  = the outbox item's idempotency key; before that, ``GET /t/external_id/{id}.json`` (301 to
  the topic when it exists, 404 otherwise) — check first, then create;
- replies (adding to an existing report) carry a ``<!-- routerkit:KEY -->`` marker in ``raw``,
  looked up in the topic (``include_raw``) before posting;
- 429 with ``Retry-After`` (and ``extras.wait_seconds``) is retried after that long.

No Discourse runs here: the tests use a contract server written from the API documentation
(tests/community/discourse_contract.py). That is what was tested.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from toolkit.community.publishers import Remote
from toolkit.community.publishers._http import Http, check
from toolkit.errors import PublishAuthError, PublishError, PublishRetryableError

if TYPE_CHECKING:
    from toolkit.community.outbox import Item
    from toolkit.events import Reporter


class DiscoursePublisher:
    name = "discourse"
    #: set by from_config (see publishers/__init__.py); None when built directly
    destination: str | None = None

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        username: str | None = None,
        category: int | None = None,
        tags: list[str] | None = None,
        timeout: float = 60.0,
        transport: Any = None,
    ) -> None:
        self.url = url.rstrip("/")
        headers = {"Accept": "application/json", "User-Agent": "routerkit"}
        if username:
            headers.update({"Api-Key": api_key, "Api-Username": username})
        else:
            headers["User-Api-Key"] = api_key
        self.category = category
        self.tags = list(tags or [])
        self.http = Http(self.url, headers, timeout=timeout, transport=transport)

    @classmethod
    def from_config(cls) -> DiscoursePublisher:
        from toolkit.community import tokens
        from toolkit.community.config import base_url, community_config

        cfg = community_config()
        url = cfg.get("discourse_url")
        if not url:
            raise PublishError(
                "no Discourse forum configured", hint="set [community] discourse_url in config.toml"
            )
        key = tokens.get_token("discourse", url)
        if not key:
            raise PublishAuthError(
                f"no API key for {url}",
                hint=f"`routerkit community login --to discourse --url {url}`",
            )
        pub = cls(
            url,
            key,
            username=cfg.get("discourse_username"),
            category=cfg.get("discourse_category"),
            tags=cfg.get("discourse_tags"),
        )
        pub.destination = base_url(url)
        return pub

    def close(self) -> None:
        self.http.close()

    def _check(self, resp: Any, what: str) -> Any:
        if resp.status_code == 429 and not resp.headers.get("Retry-After"):
            try:  # Discourse also says how long in the body
                wait = float(resp.json().get("extras", {}).get("wait_seconds"))
            except (ValueError, TypeError, AttributeError):
                wait = None
            raise PublishRetryableError(f"{what}: HTTP 429 rate limited", retry_after=wait)
        return check(resp, what)

    # --- lookups ----------------------------------------------------------------------------

    def topic_by_external_id(self, key: str) -> Remote | None:
        resp = self.http.request("GET", f"/t/external_id/{quote(key)}.json", "look up external_id")
        if resp.status_code == 404:
            return None
        if resp.status_code in (301, 302):
            m = re.search(r"/t/([^/]+)/(\d+)", resp.headers.get("Location", ""))
            if not m:
                raise PublishError(
                    f"unexpected redirect for external_id {key}: {resp.headers.get('Location')}"
                )
            return Remote(m.group(2), f"{self.url}/t/{m.group(1)}/{m.group(2)}")
        self._check(resp, "look up external_id")
        data = resp.json()
        return Remote(str(data["id"]), f"{self.url}/t/{data.get('slug', 'topic')}/{data['id']}")

    def topic(self, topic_id: str, *, include_raw: bool = False) -> dict[str, Any]:
        params = {"include_raw": "true"} if include_raw else None
        resp = self._check(
            self.http.request("GET", f"/t/{topic_id}.json", "read topic", params=params),
            "read topic",
        )
        return dict(resp.json())

    def find_by_signature(self, signature: str) -> list[Remote]:
        resp = self._check(
            self.http.request("GET", "/search.json", "search", params={"q": signature}), "search"
        )
        topics = resp.json().get("topics", [])
        return [
            Remote(
                str(t["id"]),
                f"{self.url}/t/{t.get('slug', 'topic')}/{t['id']}",
                str(t.get("title", "")),
            )
            for t in topics
        ]

    # --- publishing -------------------------------------------------------------------------

    def upload(self, name: str, content: bytes, mime: str) -> dict[str, Any]:
        resp = self.http.request(
            "POST",
            "/uploads.json",
            f"upload {name}",
            data={"type": "composer", "synchronous": "true"},
            files={"file": (name, content, mime)},
        )
        return dict(self._check(resp, f"upload {name}").json())

    def _raw(self, item: Item, reporter: Reporter) -> str:
        raw = item.body
        total = sum(a.size for a in item.attachments)
        done = 0
        extra: list[str] = []
        for a in item.attachments:
            up = self.upload(a.name, a.path.read_bytes(), a.mime)
            short = up.get("short_url") or up.get("url")
            if a.mime.startswith("image/"):
                size = (
                    f"|{up['width']}x{up['height']}" if up.get("width") and up.get("height") else ""
                )
                pattern = r"!\[([^\]]*)\]\(" + re.escape(a.name) + r"\)"
                raw = re.sub(pattern, _image_ref(size, str(short)), raw)
            if f"({short})" not in raw:
                extra.append(f"- [{a.name}|attachment]({short}) ({a.size} bytes)")
            done += a.size
            reporter.progress("upload", done, total)
        if extra:
            raw += "\n**Attachments**\n\n" + "\n".join(extra) + "\n"
        return raw

    def publish(self, item: Item, reporter: Reporter) -> dict[str, Any]:
        if item.kind in ("vote", "confirm"):
            # a vote or a verdict must never turn into a forum topic of its own
            raise PublishError(
                f"a {item.kind} needs the Roundup tracker (one vote per tester, the confirmation "
                "count); Discourse has neither here",
                hint="`routerkit outbox drop` it, and vote or confirm with --to roundup",
            )
        if item.kind == "comment":
            return self._reply(item, reporter)
        found = self.topic_by_external_id(item.key)
        if found:
            return Remote(found.id, found.url, item.title, {"reused": True}).to_json()
        raw = self._raw(item, reporter)
        form: dict[str, Any] = {"title": item.title, "raw": raw, "external_id": item.key}
        if self.category is not None:
            form["category"] = str(self.category)
        tags = self.tags + [t for t in item.payload.get("tags", []) if t not in self.tags]
        if tags:
            form["tags[]"] = tags
        resp = self.http.request("POST", "/posts.json", "create topic", data=form)
        if resp.status_code == 422 and "external" in resp.text.lower():
            again = self.topic_by_external_id(item.key)  # created by an earlier, unanswered try
            if again:
                return Remote(again.id, again.url, item.title, {"reused": True}).to_json()
        post = self._check(resp, "create topic").json()
        tid = str(post["topic_id"])
        return Remote(
            tid,
            f"{self.url}/t/{post.get('topic_slug', 'topic')}/{tid}",
            item.title,
            {"post": post.get("id")},
        ).to_json()

    def _reply(self, item: Item, reporter: Reporter) -> dict[str, Any]:
        target = str(item.payload.get("target") or "")
        marker = f"<!-- routerkit:{item.key} -->"
        topic = self.topic(target, include_raw=True)
        for post in topic.get("post_stream", {}).get("posts", []):
            if marker in str(post.get("raw", "")):
                return Remote(
                    target,
                    f"{self.url}/t/{topic.get('slug', 'topic')}/{target}/{post.get('post_number')}",
                    item.title,
                    {"post": post.get("id"), "reused": True},
                ).to_json()
        raw = self._raw(item, reporter) + "\n" + marker + "\n"
        resp = self.http.request(
            "POST", "/posts.json", "reply", data={"topic_id": target, "raw": raw}
        )
        post = self._check(resp, "reply").json()
        return Remote(
            target,
            f"{self.url}/t/{topic.get('slug', 'topic')}/{target}/{post.get('post_number')}",
            item.title,
            {"post": post.get("id")},
        ).to_json()


def _image_ref(size: str, short: str) -> Callable[[re.Match[str]], str]:
    """``![alt](name)`` → ``![alt|WxH](upload://…)``, Discourse's image markup."""

    def repl(m: re.Match[str]) -> str:
        return f"![{m.group(1)}{size}]({short})"

    return repl
