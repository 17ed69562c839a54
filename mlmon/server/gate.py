"""One ASGI middleware in front of every request: identity, rate limit, security headers,
error pages without stack traces, and an audit record of the answer.

The security headers (every answer, errors included)::

    Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self';
        style-src-attr 'unsafe-inline'; img-src 'self' data:; connect-src 'self';
        font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'
    X-Frame-Options: DENY
    X-Content-Type-Options: nosniff
    Referrer-Policy: no-referrer
    Cross-Origin-Opener-Policy: same-origin
    Cross-Origin-Resource-Policy: same-origin
    Permissions-Policy: camera=(), microphone=(), geolocation=()
    Cache-Control: no-store                      (pages and API; the script may be cached)
    Strict-Transport-Security: max-age=31536000  (only when the server speaks TLS itself)

No inline script is needed: charts are JSON data islands (``type="application/json"``, not
executed) drawn by ``/static/mlmon.js``, which uses Vega's expression interpreter
(no ``eval``). Inline ``style=""`` attributes (Vega's SVG) are allowed, ``<style>`` is not.
"""

from __future__ import annotations

import html
import json
import logging
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from mlmon.server.auth import Principal, Unauthenticated, authenticate
from mlmon.server.config import ServerConfig

__all__ = ["CSP", "Gate", "RateLimiter", "error_body"]

log = logging.getLogger("mlmon.server")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]
_PUBLIC = ("/healthz", "/static/")


class RateLimiter:
    """A token bucket per key: ``requests`` per ``per_seconds``, refilled continuously."""

    def __init__(self, requests: int, per_seconds: float) -> None:
        self.capacity = float(requests)
        self.rate = requests / per_seconds
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> tuple[bool, float]:
        """``(allowed, seconds until a request is allowed again)``."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if len(self._buckets) > 10_000:  # bound the memory under a flood of keys
                self._buckets.clear()
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return True, 0.0
            self._buckets[key] = (tokens, now)
            return False, (1 - tokens) / self.rate


def error_body(status: int, message: str, api: bool) -> tuple[bytes, bytes]:
    """``(body, content type)`` of an error answer: JSON for the API, a small page otherwise."""
    if api:
        return json.dumps({"status": status, "error": message}).encode(), b"application/json"
    titles = {
        400: "Bad request",
        401: "Sign-in needed",
        404: "Not found",
        429: "Too many requests",
        500: "Something went wrong",
    }
    title = titles.get(status, "Error")
    page = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{title} - mlmon</title><link rel=stylesheet href=/static/mlmon.css>"
        "<link rel=icon href=/static/favicon.svg type=image/svg+xml></head>"
        f"<body><main><h1>{title}</h1><p>{html.escape(message)}</p>"
        "<p><a href=/>Back to the overview</a></p></main></body></html>"
    )
    return page.encode(), b"text/html; charset=utf-8"


class Gate:
    """The middleware; ``audit`` is called with ``(principal, method, path, status, client)``."""

    def __init__(
        self,
        app: ASGIApp,
        config: ServerConfig,
        audit: Callable[[str, str, str, int, str], None] | None = None,
        tls: bool = False,
    ) -> None:
        self.app = app
        self.config = config
        self.audit = audit
        self.limiter = RateLimiter(config.rate_requests, config.rate_per.total_seconds())
        self.headers = list(_HEADERS)
        if tls:
            self.headers.append((b"strict-transport-security", b"max-age=31536000"))

    async def _send_error(
        self,
        send: Send,
        status: int,
        message: str,
        api: bool,
        extra: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        body, ctype = error_body(status, message, api)
        headers = [
            (b"content-type", ctype),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
            *self.headers,
            *extra,
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        client = (scope.get("client") or ("", 0))[0] or ""
        api = path.startswith("/api/")
        public = path == "/healthz" or path.startswith("/static/")
        headers: dict[str, str] = {}
        for k, v in scope["headers"]:
            # a header sent on several lines counts as one comma-joined value (RFC 9110 5.3):
            # oauth2-proxy may send each group on a line of its own, and a repeated user or
            # secret header then fails the name check or the comparison instead of the last
            # line winning
            name, value = k.decode("latin-1").lower(), v.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        status = {"code": 0}
        principal: Principal | None = None
        who = "anonymous"
        try:
            try:
                principal = authenticate(self.config, client, headers)
                who = principal.name
            except Unauthenticated as exc:
                if not public:
                    extra = (
                        [(b"www-authenticate", b'Bearer realm="mlmon"')]
                        if self.config.auth.mode == "token"
                        else []
                    )
                    status["code"] = 401
                    await self._send_error(send, 401, exc.reason, api, extra)
                    return
            allowed, wait = self.limiter.allow(f"user:{who}" if principal else f"ip:{client}")
            if not allowed:
                status["code"] = 429
                await self._send_error(
                    send,
                    429,
                    "Too many requests; wait a moment and retry.",
                    api,
                    [(b"retry-after", str(max(1, round(wait))).encode())],
                )
                return
            scope.setdefault("state", {})["principal"] = principal

            async def send_with_headers(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status["code"] = message["status"]
                    own = message.get("headers", [])
                    # a route may set a stricter policy of its own (an HTML report's sandbox,
                    # mlmon.server.reports.REPORT_CSP); every other security header is the gate's
                    csp = [(k, v) for k, v in own if k.lower() == b"content-security-policy"]
                    hdrs = [(k, v) for k, v in own if k.lower() not in {h for h, _ in self.headers}]
                    if not any(k.lower() == b"cache-control" for k, _ in hdrs):
                        hdrs.append((b"cache-control", b"no-store"))
                    gate = [
                        h for h in self.headers if not (csp and h[0] == b"content-security-policy")
                    ]
                    message["headers"] = hdrs + csp[:1] + gate
                await send(message)

            try:
                await self.app(scope, receive, send_with_headers)
            except Exception:
                ref = secrets.token_hex(4)
                log.exception("request %s %s failed (reference %s)", scope.get("method"), path, ref)
                if status["code"]:
                    raise  # the answer was started: the server closes the connection
                status["code"] = 500
                await self._send_error(
                    send,
                    500,
                    f"The server could not answer this request "
                    f"(reference {ref}); the error is in the server log.",
                    api,
                )
        finally:
            if self.audit is not None:
                try:
                    self.audit(who, scope.get("method", ""), path, status["code"] or 500, client)
                except Exception:  # the answer is already out; the server log keeps the failure
                    log.exception(
                        "the audit record of %s %s was not written", scope.get("method"), path
                    )
