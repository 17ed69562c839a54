"""The edge's HTTP surfaces (the CloudEvents sink, ``/metrics`` and ``/healthz``) on uvicorn.

One :class:`HttpServer` runs one ASGI callable under uvicorn on a thread of its
own, with its own event loop and no signal handlers (the process's SIGTERM
handling stays in :mod:`mlmon.edge.lifecycle`). Every connection is served by
that one loop: idle connections cost no thread.

Bounds, all in :class:`ServeSettings`:

- ``backlog``: the listen queue (the old ``/metrics`` server had 5);
- ``idle_timeout_s``: a connection that sends nothing (a fresh one, or a
  keep-alive one between requests) is closed after this long;
- ``read_timeout_s``: a request whose head or body does not arrive within this
  long is cut off (slow clients cannot hold a connection open by trickling),
  and so is a TLS handshake;
- ``max_connections``: above this many open connections or requests in
  progress, requests are answered 503 (uvicorn's ``limit_concurrency``);
- ``max_header_bytes``: a request head larger than this is refused (400).

Authentication: with ``tls_cert``/``tls_key`` the server speaks TLS only (a plain
HTTP client gets no answer); with ``client_ca`` it also requires a client
certificate signed by that CA; with ``token`` every request must carry
``Authorization: Bearer <token>`` (compared in constant time), else 401.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlmon.errors import ConfigError, EdgeError

__all__ = ["HttpServer", "ServeSettings", "is_loopback", "read_body", "respond"]

log = logging.getLogger("mlmon.edge.serve")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServeSettings:
    """Where and how an edge HTTP surface listens (see the module docstring for each bound)."""

    host: str = "127.0.0.1"
    port: int = 0
    tls_cert: Path | None = None
    tls_key: Path | None = None
    client_ca: Path | None = None
    token: bytes | None = field(default=None, repr=False)
    backlog: int = 1024
    idle_timeout_s: float = 5.0
    read_timeout_s: float = 10.0
    max_connections: int = 4096
    max_header_bytes: int = 64 * 1024

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("tls_cert and tls_key go together: give both or neither")
        if self.client_ca is not None and self.tls_cert is None:
            raise ConfigError("client_ca needs TLS: give tls_cert and tls_key too")
        if self.token is not None and len(self.token) < 16:
            raise ConfigError(
                "the bearer token is shorter than 16 bytes; use e.g. openssl rand -hex 32"
            )
        for name in ("backlog", "max_connections", "max_header_bytes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        if self.idle_timeout_s <= 0 or self.read_timeout_s <= 0:
            raise ConfigError("idle_timeout_s and read_timeout_s must be positive")

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    def authorized(self, scope: Scope) -> bool:
        """Whether the request carries the bearer token (always true when none is configured)."""
        if self.token is None:
            return True
        expected = b"Bearer " + self.token
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                return hmac.compare_digest(bytes(value), expected)
        return False


async def respond(
    send: Send,
    status: int,
    body: bytes = b"",
    content_type: bytes = b"text/plain; charset=utf-8",
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """Send a whole response (ASGI)."""
    head = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    head.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


async def unauthorized(send: Send) -> None:
    body = json.dumps({"error": "unauthorized", "detail": "send Authorization: Bearer <token>"})
    await respond(send, 401, body.encode(), b"application/json", [(b"www-authenticate", b"Bearer")])


async def read_body(receive: Receive, limit: int, timeout_s: float) -> bytes | int:
    """The request body, or the status to answer: 413 over ``limit``, 408 slower than ``timeout_s``."""
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                msg = await receive()
                if msg["type"] == "http.disconnect":
                    return 408
                chunk = msg.get("body", b"")
                size += len(chunk)
                if size > limit:
                    return 413
                chunks.append(chunk)
                if not msg.get("more_body", False):
                    break
    except TimeoutError:
        return 408
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _protocol_class(read_timeout_s: float, idle_timeout_s: float, max_head: int) -> type[Any]:
    """uvicorn's HTTP protocol with an idle timer from the first byte, a head timer and a head cap.

    uvicorn arms its keep-alive timer only after a response: a connection that
    never sends a request (or trickles a head) would stay open. Here a fresh
    connection must send a complete request head within ``idle_timeout_s``, a
    head that has started must be complete within ``read_timeout_s``, and a
    head larger than ``max_head`` bytes is answered 400 and the connection
    closed. The parser is httptools (C) when installed, else h11.
    """
    base: type[Any]
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as base
    except ImportError:  # pragma: no cover - httptools is in the edge extra
        from uvicorn.protocols.http.h11_impl import H11Protocol as base

    class BoundedProtocol(base):
        _head_timer: asyncio.TimerHandle | None = None
        _head_bytes = 0

        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            self._head_timer = self.loop.call_later(idle_timeout_s, self._head_timeout)

        def _waiting_for_head(self) -> bool:
            return self.cycle is None or bool(self.cycle.response_complete)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.transport.is_closing():
                return
            if not self._waiting_for_head():
                self._head_bytes = 0
                self._cancel_head_timer()
                return
            self._head_bytes += len(data)
            if self._head_bytes > max_head:
                self._cancel_head_timer()
                self.send_400_response("Request head too large.")
            elif self._head_timer is None:
                self._head_timer = self.loop.call_later(read_timeout_s, self._head_timeout)

        def on_response_complete(self) -> None:
            self._head_bytes = 0
            self._cancel_head_timer()
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            super().connection_lost(exc)

        def _cancel_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timeout(self) -> None:
            self._head_timer = None
            if self._waiting_for_head() and not self.transport.is_closing():
                self.transport.close()

    return BoundedProtocol


class HttpServer:
    """Run an ASGI callable under uvicorn on a background thread.

    Parameters
    ----------
    app
        The ASGI callable (HTTP only; lifespan events are not sent).
    settings
        Address, TLS, token and bounds.
    name
        Thread name and the name used in errors (``sink``, ``metrics``).
    background
        Coroutine functions started on the server's loop with it and cancelled at
        stop (the sink's periodic hand-over).
    """

    def __init__(
        self,
        app: App,
        settings: ServeSettings,
        name: str,
        background: Iterable[Callable[[], Coroutine[Any, Any, None]]] = (),
    ) -> None:
        self.app = app
        self.settings = settings
        self.name = name
        self.background = list(background)
        self.port = settings.port
        self.loop: asyncio.AbstractEventLoop | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def _config(self) -> Any:
        import uvicorn

        s = self.settings
        kwargs: dict[str, Any] = {}
        if s.tls:
            kwargs.update(ssl_certfile=str(s.tls_cert), ssl_keyfile=str(s.tls_key))
            if s.client_ca is not None:
                kwargs.update(ssl_ca_certs=str(s.client_ca), ssl_cert_reqs=ssl.CERT_REQUIRED)
        return uvicorn.Config(
            self.app,
            http=_protocol_class(s.read_timeout_s, s.idle_timeout_s, s.max_header_bytes),
            lifespan="off",
            log_config=None,  # the edge's JSON logging stays as it is
            access_log=False,  # no access log: paths and addresses are not worth the noise
            server_header=False,
            proxy_headers=False,  # never trust X-Forwarded-For from whoever connects
            backlog=s.backlog,
            timeout_keep_alive=max(1, round(s.idle_timeout_s)),
            timeout_graceful_shutdown=2,
            limit_concurrency=s.max_connections,
            h11_max_incomplete_event_size=s.max_header_bytes,
            **kwargs,
        )

    def _bind(self) -> socket.socket:
        s = self.settings
        family = socket.AF_INET6 if ":" in s.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((s.host, s.port))
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        return sock

    def start(self) -> HttpServer:
        """Bind, load TLS material and start serving; returns self.

        Raises
        ------
        EdgeError
            The address cannot be bound, or the certificate/key/CA cannot be loaded.
        """
        if self._thread is not None:
            return self
        import uvicorn

        try:
            config = self._config()
            config.load()  # reads the certificate and key now, so errors surface here
            sock = self._bind()
        except (OSError, ssl.SSLError) as exc:
            raise EdgeError(
                f"{self.name} cannot listen on {self.settings.host}:{self.settings.port}: "
                f"{type(exc).__name__}: {exc}; check the port and the tls_cert/tls_key/client_ca files"
            ) from exc
        self.port = int(sock.getsockname()[1])
        self._server = uvicorn.Server(config)
        self._ready.clear()
        self._thread = threading.Thread(
            target=self._run, args=(sock,), name=f"mlmon-{self.name}", daemon=True
        )
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            self._thread = None
            raise EdgeError(f"{self.name} failed to start: {self._error}") from self._error
        return self

    def _run(self, sock: socket.socket) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        asyncio.set_event_loop(loop)
        # uvicorn does not pass a TLS handshake timeout (asyncio's default is 60 s): a client
        # that connects and never says hello is held to the read timeout like any other
        create_server = loop.create_server
        handshake_s = self.settings.read_timeout_s

        async def bounded_create_server(*args: Any, **kwargs: Any) -> Any:
            if kwargs.get("ssl") is not None:
                kwargs.setdefault("ssl_handshake_timeout", handshake_s)
            return await create_server(*args, **kwargs)

        loop.create_server = bounded_create_server  # type: ignore[method-assign]

        async def main() -> None:
            tasks: list[asyncio.Task[None]] = [loop.create_task(fn()) for fn in self.background]
            serving = loop.create_task(self._server.serve(sockets=[sock]))
            while not self._server.started and not serving.done():
                await asyncio.sleep(0.01)
            if serving.done() and serving.exception() is not None:
                self._error = serving.exception()
            self._ready.set()
            try:
                await serving
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

        try:
            loop.run_until_complete(main())
        except BaseException as exc:  # reported by start(), or logged at stop
            if not self._ready.is_set():
                self._error = exc
            else:
                log.error("%s server stopped by an error", self.name,
                          extra={"error_type": type(exc).__name__})  # fmt: skip
        finally:
            self._ready.set()
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            sock.close()

    def stop(self, timeout_s: float = 3.0) -> None:
        """Stop accepting, let requests in progress finish (about 2 s at most), and close.

        Returns within about ``timeout_s`` + 1 s even if a connection hangs (the
        process's SIGTERM bound is 10 s and the sink's final commit follows this).
        """
        if self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(1.0)
        self._thread = None
