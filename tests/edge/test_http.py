"""HTTP settings, URL policy and the retry rules (MockTransport: counts attempts exactly)."""

from __future__ import annotations

import httpx
import pytest

from mlmon.edge.http import HttpSettings, check_url, make_client, request_with_retries
from mlmon.errors import ConfigError


def _counting(answers):
    """A transport answering from ``answers`` (status codes or exceptions), recording requests."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers[min(len(seen), len(answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer, json={})

    return httpx.MockTransport(handle), seen


def _send(answers, settings, *, idempotent=True):
    transport, seen = _counting(answers)
    waits: list[float] = []
    with make_client(settings, transport=transport) as client:
        try:
            resp = request_with_retries(client, "POST", "https://m.test/x", settings,
                                        idempotent=idempotent, sleep=waits.append)  # fmt: skip
        except httpx.HTTPError as exc:
            resp = exc
    return resp, seen, waits


def test_5xx_and_timeouts_are_retried_with_growing_jittered_backoff():
    settings = HttpSettings(retries=3, backoff_s=1.0)
    resp, seen, waits = _send([503, httpx.ReadTimeout("slow"), 500, 200], settings)
    assert resp.status_code == 200 and len(seen) == 4
    assert len(waits) == 3
    for k, w in enumerate(waits):
        assert 0.5 * 2**k <= w <= 1.5 * 2**k


def test_4xx_is_not_retried_and_the_last_5xx_is_returned():
    resp, seen, _ = _send([404], HttpSettings(retries=3))
    assert resp.status_code == 404 and len(seen) == 1
    resp, seen, _ = _send([500], HttpSettings(retries=2, backoff_s=0))
    assert resp.status_code == 500 and len(seen) == 3


def test_transport_error_after_the_last_retry_is_raised():
    resp, seen, _ = _send([httpx.ConnectError("refused")], HttpSettings(retries=1, backoff_s=0))
    assert isinstance(resp, httpx.ConnectError) and len(seen) == 2


def test_requests_with_side_effects_are_retried_only_when_never_sent():
    settings = HttpSettings(retries=3, backoff_s=0)
    resp, seen, _ = _send([httpx.ConnectError("refused"), 201], settings, idempotent=False)
    assert resp.status_code == 201 and len(seen) == 2
    resp, seen, _ = _send([httpx.ReadTimeout("slow"), 201], settings, idempotent=False)
    assert isinstance(resp, httpx.ReadTimeout) and len(seen) == 1
    resp, seen, _ = _send([502, 201], settings, idempotent=False)
    assert resp.status_code == 502 and len(seen) == 1


def test_bearer_token_is_sent_and_redacted_in_repr():
    settings = HttpSettings(bearer_token="s3cret-t0ken")
    assert "s3cret-t0ken" not in repr(settings) and "bearer_token='***'" in repr(settings)
    assert "s3cret-t0ken" not in str(settings)
    _, seen, _ = _send([200], settings)
    assert seen[0].headers["Authorization"] == "Bearer s3cret-t0ken"


def test_plain_http_is_refused_unless_allowed():
    with pytest.raises(
        ConfigError, match=r"'http://10\.0\.0\.5:8080/v2' is plain http.*allow_http"
    ):
        check_url("http://10.0.0.5:8080/v2", HttpSettings())
    assert check_url("http://127.0.0.1:1", HttpSettings(allow_http=True))
    assert check_url("HTTPS://models.internal", HttpSettings())
    with pytest.raises(ConfigError, match="not an absolute http"):
        check_url("ftp://models.internal", HttpSettings(allow_http=True))
    with pytest.raises(ConfigError, match="plain http"), make_client(HttpSettings()) as client:
        request_with_retries(client, "GET", "http://127.0.0.1:1/", HttpSettings())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timeout_s": 0}, "timeout_s is 0"),
        ({"timeout_s": float("inf")}, "timeout_s is inf"),
        ({"retries": -1}, "retries is -1"),
        ({"retries": 1.5}, "retries is 1.5"),
        ({"backoff_s": -0.1}, "backoff_s is -0.1"),
        ({"client_cert": "c.pem"}, "needs both client_cert and client_key"),
    ],
)
def test_settings_are_validated(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        HttpSettings(**kwargs)


def test_unreadable_tls_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"ca_bundle .*missing\.pem: cannot load CA"):
        make_client(HttpSettings(ca_bundle=tmp_path / "missing.pem"))
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(ConfigError, match=r"client_cert .*junk\.pem.*cannot load the mTLS"):
        make_client(
            HttpSettings(client_cert=tmp_path / "junk.pem", client_key=tmp_path / "junk.pem")
        )
