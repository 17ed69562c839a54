"""HTTP for the edge: TLS settings, timeouts, retries with jittered backoff.

The edge talks to model endpoints and job services with one small client
configuration: a custom CA bundle, optional mTLS client certificate, an
optional bearer token, a timeout, and retries with exponential backoff plus
jitter on connection errors, timeouts and 5xx answers (never on 4xx).
Plain ``http://`` is refused unless ``allow_http`` is set (loopback tests).
"""

from __future__ import annotations

import random
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from mlmon.errors import ConfigError

__all__ = ["HttpSettings", "check_url", "make_client", "request_with_retries"]


@dataclass(frozen=True)
class HttpSettings:
    """How the edge reaches one service. The bearer token is redacted in ``repr``."""

    timeout_s: float = 5.0
    retries: int = 2
    backoff_s: float = 0.2
    ca_bundle: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    bearer_token: str | None = field(default=None, repr=False)
    allow_http: bool = False

    def __repr__(self) -> str:
        token = "<redacted>" if self.bearer_token else None
        return (
            f"HttpSettings(timeout_s={self.timeout_s}, retries={self.retries}, backoff_s={self.backoff_s}, "
            f"ca_bundle={self.ca_bundle}, client_cert={self.client_cert}, bearer_token={token}, "
            f"allow_http={self.allow_http})"
        )


def check_url(url: str, settings: HttpSettings, what: str = "endpoint") -> str:
    """Refuse non-TLS URLs unless the settings allow plain HTTP."""
    if url.startswith("https://"):
        return url
    if url.startswith("http://"):
        if settings.allow_http:
            return url
        raise ConfigError(
            f"{what} {url!r} is plain http; production mode accepts only https endpoints "
            "(set allow_http: true for a loopback test setup)"
        )
    raise ConfigError(f"{what} {url!r} is not an http(s) URL")


def make_client(
    settings: HttpSettings, transport: httpx.BaseTransport | None = None
) -> httpx.Client:
    """An ``httpx.Client`` with the TLS, auth and timeout of ``settings``."""
    verify: Any = True
    if settings.ca_bundle is not None or settings.client_cert is not None:
        ctx = ssl.create_default_context(
            cafile=str(settings.ca_bundle) if settings.ca_bundle else None
        )
        if settings.client_cert is not None:
            ctx.load_cert_chain(
                str(settings.client_cert), str(settings.client_key) if settings.client_key else None
            )
        verify = ctx
    headers = {"User-Agent": "mlmon-edge"}
    if settings.bearer_token:
        headers["Authorization"] = f"Bearer {settings.bearer_token}"
    return httpx.Client(
        timeout=httpx.Timeout(settings.timeout_s),
        verify=verify,
        headers=headers,
        transport=transport,
        follow_redirects=False,
    )


def request_with_retries(
    client: httpx.Client, method: str, url: str, settings: HttpSettings, **kwargs: Any
) -> httpx.Response:
    """Send a request; retry connection errors, timeouts and 5xx with jittered backoff.

    Returns the last response (a 5xx after the last retry is returned, not
    raised); raises the last ``httpx.TransportError`` when no answer came.
    """
    attempt = 0
    while True:
        try:
            resp = client.request(method, url, **kwargs)
            if resp.status_code < 500 or attempt >= settings.retries:
                return resp
        except httpx.TransportError:
            if attempt >= settings.retries:
                raise
        delay = settings.backoff_s * (2**attempt)
        time.sleep(delay * (0.5 + random.random()))  # full jitter around the exponential step
        attempt += 1
