"""A contract server for Discourse's documented API (no Discourse can run here).

Implements just what routerkit uses, the way docs.discourse.org describes it:

- auth: ``Api-Key`` + ``Api-Username``, or ``User-Api-Key``; anything else → 403 with
  ``{"errors": [...], "error_type": "invalid_access"}``;
- ``POST /uploads.json`` multipart (``type=composer`` required, ``synchronous``, ``file``) →
  ``{id, url, short_url: "upload://<sha1>.<ext>", original_filename, filesize, width, height,
  extension}``; the same content uploaded twice returns the same upload (sha1 de-dup);
  a file over ``max_upload`` → 413;
- ``POST /posts.json`` (form) with ``title`` + ``raw`` (+ ``category``, ``tags[]``,
  ``external_id``) creates a topic; with ``topic_id`` a reply. A taken ``external_id`` → 422;
- ``GET /t/external_id/{id}.json`` → 301 to ``/t/{slug}/{id}.json``, or 404;
- ``GET /t/{id}.json`` (``include_raw``), ``GET /search.json?q=``;
- rate limiting: more than ``rate_limit`` requests within ``window`` seconds → 429 with
  ``Retry-After`` (seconds until the window frees up) and
  ``{"error_type": "rate_limit", "extras": {"wait_seconds": N}}``.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import threading
import time
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class DiscourseContract:
    def __init__(
        self,
        *,
        api_key: str = "k" * 64,
        username: str = "tester",
        user_api_key: str | None = None,
        rate_limit: int = 0,
        window: float = 1.0,
        max_upload: int = 4 * 1024 * 1024,
    ) -> None:
        self.api_key, self.username, self.user_api_key = api_key, username, user_api_key
        self.rate_limit, self.window, self.max_upload = rate_limit, window, max_upload
        self.recent: list[float] = []
        self.uploads: dict[str, dict[str, Any]] = {}  # sha1 -> upload
        self.upload_bytes: dict[str, bytes] = {}
        self.topics: dict[int, dict[str, Any]] = {}
        self.requests = 0
        self.rate_limited = 0
        self.lock = threading.Lock()
        contract = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: object) -> None:
                pass

            def reply(self, code: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def handle_any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with contract.lock:
                    contract.requests += 1
                    now = time.monotonic()
                    contract.recent = [t for t in contract.recent if now - t < contract.window]
                    limited = (
                        bool(contract.rate_limit) and len(contract.recent) >= contract.rate_limit
                    )
                    if limited:
                        contract.rate_limited += 1
                        wait = max(1, math.ceil(contract.window - (now - contract.recent[0])))
                    else:
                        contract.recent.append(now)
                if not contract.authorised(self.headers):
                    return self.reply(
                        403,
                        {
                            "errors": [
                                "You are not permitted to view the requested resource. "
                                "The API username or key is invalid."
                            ],
                            "error_type": "invalid_access",
                        },
                    )
                if limited:
                    w = wait
                    return self.reply(
                        429,
                        {
                            "errors": [
                                f"You’ve performed this action too many times. Please wait {w} seconds before trying again."
                            ],
                            "error_type": "rate_limit",
                            "extras": {"wait_seconds": w},
                        },
                        {"Retry-After": str(w)},
                    )
                code, payload, headers = contract.route(self.command, self.path, self.headers, body)
                self.reply(code, payload, headers)

            do_GET = do_POST = handle_any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def authorised(self, h: Any) -> bool:
        if h.get("Api-Key"):
            return bool(h.get("Api-Key") == self.api_key and h.get("Api-Username") == self.username)
        return bool(self.user_api_key and h.get("User-Api-Key") == self.user_api_key)

    # --- routes ---------------------------------------------------------------------------

    def route(
        self, method: str, path: str, headers: Any, body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        url = urlsplit(path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        with self.lock:
            if method == "POST" and url.path == "/uploads.json":
                return self.create_upload(headers, body)
            if method == "POST" and url.path == "/posts.json":
                return self.create_post(parse_qs(body.decode()))
            m = re.fullmatch(r"/t/external_id/([^/]+)\.json", url.path)
            if method == "GET" and m:
                t = next((t for t in self.topics.values() if t["external_id"] == m.group(1)), None)
                if t is None:
                    return (
                        404,
                        {
                            "errors": ["The requested URL or resource could not be found."],
                            "error_type": "not_found",
                        },
                        {},
                    )
                return 301, {}, {"Location": f"/t/{t['slug']}/{t['id']}.json"}
            m = re.fullmatch(r"/t/(?:[^/]+/)?(\d+)\.json", url.path)
            if method == "GET" and m and int(m.group(1)) in self.topics:
                return (
                    200,
                    self.topic_json(int(m.group(1)), query.get("include_raw") in ("true", "1")),
                    {},
                )
            if method == "GET" and url.path == "/search.json":
                q = query.get("q", "")
                hits = [t for t in self.topics.values() if any(q in p["raw"] for p in t["posts"])]
                return (
                    200,
                    {
                        "posts": [],
                        "topics": [
                            {"id": t["id"], "title": t["title"], "slug": t["slug"]} for t in hits
                        ],
                    },
                    {},
                )
        return (
            404,
            {
                "errors": ["The requested URL or resource could not be found."],
                "error_type": "not_found",
            },
            {},
        )

    def create_upload(self, headers: Any, body: bytes) -> tuple[int, Any, dict[str, str]]:
        msg = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + headers["Content-Type"].encode() + b"\r\n\r\n" + body
        )
        fields: dict[str, Any] = {}
        for part in msg.iter_parts():
            fields[part.get_param("name", header="content-disposition")] = part
        if "file" not in fields:
            return 422, {"errors": ["param is missing or the value is empty: file"]}, {}
        if fields.get("type") is None or fields["type"].get_content().strip() != "composer":
            return (
                422,
                {
                    "errors": [
                        "type must be one of avatar, profile_background, card_background, custom_emoji, composer"
                    ]
                },
                {},
            )
        part = fields["file"]
        data = part.get_payload(decode=True)
        if len(data) > self.max_upload:
            return 413, {"errors": ["Request Entity Too Large"]}, {}
        sha1 = hashlib.sha1(data).hexdigest()
        if sha1 not in self.uploads:
            name = part.get_filename() or "file"
            ext = name.rsplit(".", 1)[-1].lower()
            width = height = None
            try:
                from PIL import Image

                with Image.open(io.BytesIO(data)) as im:
                    width, height = im.size
            except Exception:  # noqa: BLE001 - not an image
                pass
            uid = len(self.uploads) + 1
            self.uploads[sha1] = {
                "id": uid,
                "url": f"/uploads/default/original/1X/{sha1}.{ext}",
                "original_filename": name,
                "filesize": len(data),
                "width": width,
                "height": height,
                "extension": ext,
                "short_url": f"upload://{sha1[:27]}.{ext}",
                "short_path": f"/uploads/short-url/{sha1[:27]}.{ext}",
                "human_filesize": f"{len(data) // 1024} KB",
                "retain_hours": None,
            }
            self.upload_bytes[sha1] = data
        return 200, self.uploads[sha1], {}

    def create_post(self, form: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        one = {k: v[-1] for k, v in form.items()}
        raw = one.get("raw", "")
        if len(raw) < 20:
            return 422, {"errors": ["Body is too short (minimum is 20 characters)"]}, {}
        if "topic_id" in one:
            t = self.topics.get(int(one["topic_id"]))
            if t is None:
                return (
                    404,
                    {
                        "errors": ["The requested URL or resource could not be found."],
                        "error_type": "not_found",
                    },
                    {},
                )
            post = {
                "id": 1000 + sum(len(x["posts"]) for x in self.topics.values()),
                "post_number": len(t["posts"]) + 1,
                "raw": raw,
            }
            t["posts"].append(post)
            return 200, {**post, "topic_id": t["id"], "topic_slug": t["slug"]}, {}
        title = one.get("title", "")
        if len(title) < 15:
            return 422, {"errors": ["Title is too short (minimum is 15 characters)"]}, {}
        ext_id = one.get("external_id")
        if ext_id and len(ext_id) > 50:
            return 422, {"errors": ["External ID is too long (maximum is 50 characters)"]}, {}
        if ext_id and any(t["external_id"] == ext_id for t in self.topics.values()):
            return 422, {"errors": ["External has already been taken"]}, {}
        tid = len(self.topics) + 1
        slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:50] or "topic"
        post = {"id": 1000 + tid * 100, "post_number": 1, "raw": raw}
        self.topics[tid] = {
            "id": tid,
            "title": title,
            "slug": slug,
            "external_id": ext_id,
            "category_id": int(one["category"]) if "category" in one else None,
            "tags": form.get("tags[]", []),
            "posts": [post],
        }
        return 200, {**post, "topic_id": tid, "topic_slug": slug}, {}

    def topic_json(self, tid: int, include_raw: bool) -> dict[str, Any]:
        t = self.topics[tid]
        posts = [
            {
                "id": p["id"],
                "post_number": p["post_number"],
                "cooked": f"<p>{p['raw'][:80]}</p>",
                **({"raw": p["raw"]} if include_raw else {}),
            }
            for p in t["posts"]
        ]
        return {
            "id": t["id"],
            "title": t["title"],
            "slug": t["slug"],
            "external_id": t["external_id"],
            "category_id": t["category_id"],
            "tags": t["tags"],
            "posts_count": len(posts),
            "post_stream": {"posts": posts},
        }
