"""A fault-injecting HTTP proxy in front of the real Roundup (or any server), in-process.

``decide(method, path) -> action`` picks what happens to each request:

- ``"pass"``: forward and answer;
- ``"503"`` / ``"429"``: answer an error without forwarding (429 carries Retry-After);
- ``"drop_after"``: forward (the server accepts it!) then close the connection unanswered —
  the client cannot know whether its post exists;
- ``"slow_after"``: forward, then stall past the client's timeout before answering;
- ``"hang_after"``: forward, set ``accepted`` and never answer (for the SIGKILL test).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import httpx


class FaultProxy:
    def __init__(
        self,
        upstream: str,
        decide: Callable[[str, str], str],
        *,
        stall: float = 1.0,
        retry_after: str = "1",
    ) -> None:
        parts = urlsplit(upstream)
        self.upstream_origin = f"{parts.scheme}://{parts.netloc}"
        self.decide = decide
        self.stall = stall
        self.retry_after = retry_after
        self.accepted = threading.Event()
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=60)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                action = proxy.decide(self.command, self.path)
                with proxy._lock:
                    proxy.counts[action] = proxy.counts.get(action, 0) + 1
                if action in ("503", "429"):
                    payload = b'{"error": {"status": %s, "msg": "injected"}}' % action.encode()
                    self.send_response(int(action))
                    if action == "429":
                        self.send_header("Retry-After", proxy.retry_after)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "content-length", "connection")
                }
                if "Origin" in headers:
                    headers["Origin"] = proxy.upstream_origin
                if "Referer" in headers:
                    headers["Referer"] = proxy.upstream_origin + urlsplit(headers["Referer"]).path
                resp = proxy._client.request(
                    self.command, proxy.upstream_origin + self.path, headers=headers, content=body
                )
                if action == "drop_after":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if action == "hang_after":
                    proxy.accepted.set()
                    time.sleep(3600)
                    return
                if action == "slow_after":
                    time.sleep(proxy.stall)
                self.send_response(resp.status_code)
                for k, v in resp.headers.items():
                    if k.lower() not in (
                        "content-length",
                        "transfer-encoding",
                        "connection",
                        "content-encoding",
                    ):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(resp.content)))
                self.end_headers()
                self.wfile.write(resp.content)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}{parts.path}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._client.close()
