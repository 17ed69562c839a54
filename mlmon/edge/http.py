"""HTTP for the edge: TLS settings, timeouts, retries with jittered backoff.

The edge talks to model endpoints and job services through one small, frozen
configuration (:class:`HttpSettings`): a timeout, retries with exponential
backoff plus jitter, a custom CA bundle, an optional mTLS client certificate
and an optional bearer token. Plain ``http://`` is refused unless
``allow_http`` is set (a loopback test set-up); redirects are never followed.

Which failures are retried (:func:`request_with_retries`):

=========================================  ===========  ===============
failure                                    idempotent   not idempotent
=========================================  ===========  ===============
connection refused / connect timeout       retried      retried
read/write timeout, dropped connection     retried      not retried
5xx answer                                 retried      not retried
4xx answer                                 not retried  not retried
=========================================  ===========  ===============

A request that triggers a job is *not idempotent*: once it may have reached
the server, a retry could start the job twice.
"""

from __future__ import annotations

import math
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from mlmon.errors import ConfigError

__all__ = [
    "ATTEMPT_SECONDS",
    "DEFAULT_BACKOFF_S",
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT_S",
    "MAX_BACKOFF_S",
    "HttpSettings",
    "check_url",
    "make_client",
    "request_with_retries",
]

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_RETRIES = 2
DEFAULT_BACKOFF_S = 0.2
MAX_BACKOFF_S = 30.0
"""No single wait between two attempts is longer than this, whatever the attempt number."""
ATTEMPT_SECONDS = "mlmon.attempt_seconds"
"""Key in ``response.extensions``: duration of the attempt that got this answer, seconds."""

_SENT_FAILURES = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
"""Transport failures after which the request may have reached the server."""
_UNSENT_FAILURES = (httpx.ConnectError, httpx.ConnectTimeout)
"""Transport failures that prove the request never reached the server."""


def _as_path(value: Path | str | None, name: str) -> Path | None:
    if value is None or isinstance(value, Path):
        return value
    if isinstance(value, str) and value:
        return Path(value)
    raise ConfigError(f"HttpSettings.{name} must be a file path; got {value!r}")


@dataclass(frozen=True)
class HttpSettings:
    """How the edge reaches one service.

    Parameters
    ----------
    timeout_s
        Timeout of each phase of one attempt (connect, write, read), seconds.
    retries
        Further attempts after the first one (0 = try once).
    backoff_s
        Base of the exponential backoff: attempt ``k`` waits about
        ``backoff_s * 2**k`` seconds, jittered by ±50 %, at most ``MAX_BACKOFF_S``.
    ca_bundle
        PEM file of the CA certificates that sign the server (default: the
        system store).
    client_cert, client_key
        PEM certificate and key for mutual TLS; both or neither.
    bearer_token
        Sent as ``Authorization: Bearer ...``; shown as ``'***'`` in ``repr``.
    allow_http
        Accept plain ``http://`` URLs (loopback tests only).

    Examples
    --------
    >>> HttpSettings(bearer_token="s3cret")
    HttpSettings(timeout_s=5.0, retries=2, backoff_s=0.2, ca_bundle=None, client_cert=None, client_key=None, bearer_token='***', allow_http=False)
    """

    timeout_s: float = DEFAULT_TIMEOUT_S
    retries: int = DEFAULT_RETRIES
    backoff_s: float = DEFAULT_BACKOFF_S
    ca_bundle: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    bearer_token: str | None = field(default=None, repr=False)
    allow_http: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.timeout_s, bool) or not isinstance(self.timeout_s, int | float):
            raise ConfigError(f"HttpSettings.timeout_s must be seconds; got {self.timeout_s!r}")
        if not (math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise ConfigError(
                f"HttpSettings.timeout_s is {self.timeout_s}; use a positive number of seconds, e.g. 5"
            )
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ConfigError(
                f"HttpSettings.retries is {self.retries!r}; use a whole number >= 0 (0 = try once)"
            )
        if isinstance(self.backoff_s, bool) or not isinstance(self.backoff_s, int | float):
            raise ConfigError(f"HttpSettings.backoff_s must be seconds; got {self.backoff_s!r}")
        if not (math.isfinite(self.backoff_s) and self.backoff_s >= 0):
            raise ConfigError(
                f"HttpSettings.backoff_s is {self.backoff_s}; use a number of seconds >= 0, e.g. 0.2"
            )
        for name in ("ca_bundle", "client_cert", "client_key"):
            object.__setattr__(self, name, _as_path(getattr(self, name), name))
        if (self.client_cert is None) != (self.client_key is None):
            raise ConfigError(
                "HttpSettings: mutual TLS needs both client_cert and client_key; "
                f"got client_cert={self.client_cert}, client_key={self.client_key}"
            )

    def __repr__(self) -> str:
        token = "'***'" if self.bearer_token else "None"
        return (
            f"HttpSettings(timeout_s={self.timeout_s!r}, retries={self.retries!r}, "
            f"backoff_s={self.backoff_s!r}, ca_bundle={self.ca_bundle!r}, "
            f"client_cert={self.client_cert!r}, client_key={self.client_key!r}, "
            f"bearer_token={token}, allow_http={self.allow_http!r})"
        )


def check_url(url: str, settings: HttpSettings, what: str = "endpoint url") -> str:
    """Return ``url`` if the settings allow it; refuse plain HTTP unless ``allow_http``.

    Parameters
    ----------
    url
        Absolute ``https://`` (or, with ``allow_http``, ``http://``) URL.
    settings
        The settings the URL will be used with.
    what
        How the caller names the URL in its configuration, for the message.

    Returns
    -------
    str
        The same URL.

    Raises
    ------
    ConfigError
        The URL is not absolute http(s), or is plain http without ``allow_http``.

    Examples
    --------
    >>> check_url("https://models.internal/v2", HttpSettings())
    'https://models.internal/v2'
    """
    parts = urlsplit(url) if isinstance(url, str) else None
    scheme = parts.scheme.lower() if parts else ""
    if parts is None or scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{what} {url!r} is not an absolute http(s) URL; expected e.g. 'https://host:8443'"
        )
    if scheme == "http" and not settings.allow_http:
        raise ConfigError(
            f"{what} {url!r} is plain http; the edge accepts only https:// URLs. "
            "Use the https URL of the service, or set allow_http=True (allow_http: true "
            "in edge.yaml) for a loopback test set-up"
        )
    return url


def _ssl_context(settings: HttpSettings) -> ssl.SSLContext:
    try:
        ctx = ssl.create_default_context(
            cafile=str(settings.ca_bundle) if settings.ca_bundle else None
        )
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"ca_bundle {settings.ca_bundle}: cannot load CA certificates ({exc}); "
            "expected a readable PEM file of CA certificates"
        ) from exc
    if settings.client_cert is not None:
        try:
            ctx.load_cert_chain(str(settings.client_cert), str(settings.client_key))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"client_cert {settings.client_cert} / client_key {settings.client_key}: "
                f"cannot load the mTLS client certificate ({exc}); expected readable PEM files "
                "holding a certificate and its matching private key"
            ) from exc
    return ctx


def make_client(
    settings: HttpSettings, *, transport: httpx.BaseTransport | None = None
) -> httpx.Client:
    """Return an ``httpx.Client`` with the TLS, auth and timeout of ``settings``.

    Parameters
    ----------
    settings
        Timeout, CA bundle, client certificate and bearer token.
    transport
        Replace the network transport (``httpx.MockTransport`` in unit tests).

    Returns
    -------
    httpx.Client
        Close it (``with make_client(s) as client: ...``) when done.

    Raises
    ------
    ConfigError
        The CA bundle or the client certificate cannot be loaded.

    Examples
    --------
    >>> with make_client(HttpSettings(timeout_s=1)) as client:
    ...     client.timeout.read
    1
    """
    verify: ssl.SSLContext | bool = True
    if settings.ca_bundle is not None or settings.client_cert is not None:
        verify = _ssl_context(settings)
    headers = {"User-Agent": "mlmon-edge"}
    if settings.bearer_token:
        headers["Authorization"] = f"Bearer {settings.bearer_token}"
    return httpx.Client(
        timeout=httpx.Timeout(settings.timeout_s),
        verify=verify,
        headers=headers,
        transport=transport,
        follow_redirects=False,
        trust_env=False,
    )


def _backoff(settings: HttpSettings, attempt: int) -> float:
    step = min(MAX_BACKOFF_S, settings.backoff_s * 2**attempt)
    return step * random.uniform(0.5, 1.5)


def request_with_retries(
    client: httpx.Client,
    method: str,
    url: str,
    settings: HttpSettings,
    *,
    idempotent: bool = True,
    sleep: Callable[[float], None] = time.sleep,
    **kwargs: Any,
) -> httpx.Response:
    """Send a request, retrying transient failures with jittered exponential backoff.

    Parameters
    ----------
    client
        A client from :func:`make_client`.
    method, url
        The request; ``url`` is checked with :func:`check_url`.
    settings
        ``retries`` and ``backoff_s`` come from here.
    idempotent
        ``False`` for requests with side effects (triggering a job): only
        failures that prove the request never reached the server are retried.
    sleep
        Waits between attempts (replace it in unit tests).
    **kwargs
        Passed to ``client.request`` (``json=``, ``content=``, ``headers=``).

    Returns
    -------
    httpx.Response
        The first answer that is not retried; a 5xx after the last attempt
        is returned, not raised. ``response.extensions[ATTEMPT_SECONDS]`` is the
        time of the attempt that got it (sending the request to reading the
        body): earlier failed attempts and the back-off are not in it.

    Raises
    ------
    ConfigError
        ``url`` is not allowed by ``settings``.
    httpx.HTTPError
        The last transport error when no answer came.

    Examples
    --------
    >>> transport = httpx.MockTransport(lambda request: httpx.Response(204))
    >>> with make_client(HttpSettings(), transport=transport) as client:
    ...     request_with_retries(client, "GET", "https://x.test/ping", HttpSettings()).status_code
    204
    """
    check_url(url, settings)
    retryable = _SENT_FAILURES if idempotent else _UNSENT_FAILURES
    attempt = 0
    while True:
        t0 = time.perf_counter()
        try:
            resp = client.request(method, url, **kwargs)
            resp.extensions[ATTEMPT_SECONDS] = time.perf_counter() - t0
        except retryable:
            if attempt >= settings.retries:
                raise
        else:
            if resp.status_code < 500 or not idempotent or attempt >= settings.retries:
                return resp
            resp.close()
        sleep(_backoff(settings, attempt))
        attempt += 1
