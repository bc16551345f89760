"""HTTP plumbing shared by publishers: one pooled client, one mapping of failures to errors.

A single keep-alive ``httpx.Client`` per publisher (40 photos over one connection instead of
40 TCP handshakes), and every failure mapped once:

- connection refused/reset, timeouts, 5xx, 429 → :class:`PublishRetryableError` (with the
  server's ``Retry-After`` in seconds, either form of RFC 9110);
- 401/403 → :class:`PublishAuthError`; 413 → :class:`PayloadTooLargeError`;
- any other 4xx → :class:`PublishError` with the server's own message.
"""

from __future__ import annotations

import email.utils
import time
from typing import Any

from toolkit.errors import (
    PayloadTooLargeError,
    PublishAuthError,
    PublishError,
    PublishRetryableError,
)


def retry_after_seconds(value: str | None) -> float | None:
    """Parse Retry-After: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def server_message(resp: Any) -> str:
    """The error text a Roundup or Discourse server put in its JSON body, else the raw text."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text.strip()[:300]
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("msg"):
            return str(err["msg"])
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            return "; ".join(map(str, errors))
    return resp.text.strip()[:300]


def check(resp: Any, what: str) -> Any:
    """Raise the right PublishError for a failed response; return the response otherwise."""
    code = resp.status_code
    if code < 400:
        return resp
    msg = f"{what}: HTTP {code}: {server_message(resp)}"
    if code == 429 or code >= 500:
        raise PublishRetryableError(
            msg, retry_after=retry_after_seconds(resp.headers.get("Retry-After"))
        )
    if code in (401, 403):
        raise PublishAuthError(msg, hint="log in again with `routerkit community login`")
    if code == 413:
        raise PayloadTooLargeError(
            msg, hint="shrink the photos (`routerkit share --max-photo-px 1024`) and retry"
        )
    raise PublishError(msg)


class Http:
    """A pooled client whose transport errors become PublishRetryableError."""

    def __init__(
        self, base_url: str, headers: dict[str, str], timeout: float = 30.0, transport: Any = None
    ) -> None:
        import httpx

        self._httpx = httpx
        self.client = httpx.Client(
            base_url=base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=5.0),
            follow_redirects=False,
            transport=transport,
        )

    #: a 429 asking for at most this long is waited out in place (so a 40-photo upload
    #: makes progress under a per-minute limit); longer ones go back to the outbox.
    inline_wait_max = 10.0
    inline_retries = 3

    def request(self, method: str, url: str, what: str, **kw: Any) -> Any:
        for attempt in range(self.inline_retries + 1):
            try:
                resp = self.client.request(method, url, **kw)
            except self._httpx.TimeoutException as exc:
                raise PublishRetryableError(f"{what}: timed out ({type(exc).__name__})") from exc
            except self._httpx.TransportError as exc:
                raise PublishRetryableError(
                    f"{what}: server unreachable ({exc})", hint="it is retried later"
                ) from exc
            if resp.status_code != 429 or attempt == self.inline_retries:
                return resp
            wait = retry_after_seconds(resp.headers.get("Retry-After"))
            if wait is None or wait > self.inline_wait_max:
                return resp
            time.sleep(wait)
        return resp

    def close(self) -> None:
        self.client.close()
