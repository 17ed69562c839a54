"""Protocol adapters and probes against real model servers on 127.0.0.1 (subprocesses)."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from mlmon.edge import protocols
from mlmon.edge.http import HttpSettings, make_client
from mlmon.edge.protocols import (
    PROTOCOLS,
    Endpoint,
    KServeV1,
    check_health,
    extract,
    parse_path,
    probe,
    register_protocol,
)
from mlmon.errors import ConfigError, DuplicateNameError, MlmonError, UnknownNameError

ROW = {"age": 70, "bmi": 30.5, "creatinine": 1.2, "heart_rate": 88}
EXPECTED = 0.1331  # sigmoid(-6 + 0.05*70 + 0.08*3.5 + 0.8*ln 1.2 + 0.02*10)
FAST = HttpSettings(timeout_s=2.0, retries=1, backoff_s=0.05, allow_http=True)


def _ep(url: str, protocol: str = "oip_v2", settings: HttpSettings = FAST, **kw) -> Endpoint:
    return Endpoint(url=url, protocol=protocol, model_name="risk", settings=settings, **kw)


def _counting_client(settings: HttpSettings) -> tuple[httpx.Client, list[httpx.Request]]:
    client = make_client(settings)
    sent: list[httpx.Request] = []
    client.event_hooks["request"] = [sent.append]
    return client, sent


def test_the_demo_model_is_the_documented_logistic_regression():
    import math

    from mlmon.demo.model_server import score

    z = -6 + 0.05 * 70 + 0.08 * (30.5 - 27) + 0.8 * math.log(1.2) + 0.02 * (88 - 78)
    assert score(ROW) == round(1 / (1 + math.exp(-z)), 4) == EXPECTED


GENERIC = {"request_template": '{"data": {{inputs}}}', "response_path": "result.scores"}


@pytest.mark.parametrize(
    ("server_protocol", "protocol", "suffix", "extra"),
    [
        ("oip_v2", "oip_v2", "", {}),
        ("kserve_v1", "kserve_v1", "", {}),
        ("mlflow", "mlflow", "", {}),
        ("generic", "generic_json", "/predict", GENERIC),
        ("generic", "generic_json", "/predict",
         {"request_template": '{"data": {{row}}}', "response_path": "result.scores[0]"}),
    ],
)  # fmt: skip
def test_each_protocol_against_the_real_demo_server(
    model_server, server_protocol, protocol, suffix, extra
):
    srv = model_server("--protocol", server_protocol, "--model-version", "1.3")
    ep = _ep(srv.url + suffix, protocol, **extra)
    with make_client(ep.settings) as client:
        r = probe(client, ep, ROW)
        assert r.ok, r
        assert r.predictions == (EXPECTED,)
        assert r.status_code == 200 and r.latency_ms > 0 and r.error_kind is None
        assert r.model_version == ("1.3" if protocol == "oip_v2" else None)
        health = check_health(client, ep)
        assert health.ok and health.status_code == 200
        if "{{row}}" not in extra.get("request_template", ""):
            rows = [ROW, {**ROW, "age": 20}, {**ROW, "creatinine": 3.0}]
            many = probe(client, ep, rows)
            assert many.ok and len(many.predictions) == 3
            assert many.predictions[0] == EXPECTED and many.predictions[1] < EXPECTED
            assert many.predictions[2] > EXPECTED


def test_oip_null_model_version_falls_back_to_the_metadata(model_server):
    srv = model_server("--protocol", "oip_v2", "--model-version", "3.1", "--null-infer-version")
    with make_client(FAST) as client:
        r = probe(client, _ep(srv.url), ROW)
    assert r.ok and r.model_version == "3.1"


def test_oip_without_any_version_reports_none(model_server):
    srv = model_server("--protocol", "oip_v2", "--model-version", "", "--null-infer-version")
    with make_client(FAST) as client:
        r = probe(client, _ep(srv.url), ROW)
    assert r.ok and r.model_version is None


@pytest.mark.parametrize(
    ("server_protocol", "protocol"), [("oip_v2", "oip_v2"), ("mlflow", "mlflow")]
)
def test_a_trained_scikit_learn_model_is_probed(model_server, server_protocol, protocol):
    srv = model_server("--protocol", server_protocol, module="tests.edge.sklearn_server")
    with make_client(FAST) as client:
        r = probe(client, _ep(srv.url, protocol), [ROW, {**ROW, "age": 20, "creatinine": 0.6}])
    assert r.ok and r.predictions == (1, 0)


def test_stall_becomes_timeout_within_the_configured_timeout_and_retries(model_server):
    srv = model_server("--fault", "stall")
    settings = HttpSettings(timeout_s=0.5, retries=1, backoff_s=0.05, allow_http=True)
    client, sent = _counting_client(settings)
    t0 = time.monotonic()
    with client:
        r = probe(client, _ep(srv.url, settings=settings), ROW)
    elapsed = time.monotonic() - t0
    assert not r.ok and r.error_kind == "timeout" and r.status_code is None
    assert len(sent) == 2
    # two attempts of at most timeout_s each, one backoff of at most 1.5 * backoff_s, slack
    assert 1.0 <= elapsed < 2 * 0.5 + 1.5 * 0.05 + 0.5
    assert r.latency_ms == pytest.approx(elapsed * 1000, rel=0.1)


def test_http500_becomes_http_5xx_after_the_configured_retries(model_server):
    srv = model_server("--fault", "http500")
    settings = HttpSettings(timeout_s=2, retries=2, backoff_s=0.01, allow_http=True)
    client, sent = _counting_client(settings)
    with client:
        r = probe(client, _ep(srv.url, settings=settings), ROW)
    assert (r.ok, r.error_kind, r.status_code) == (False, "http_5xx", 500)
    assert len(sent) == 3


def test_garbage_becomes_malformed_whether_not_json_or_wrong_shape(model_server):
    srv = model_server("--fault", "garbage")
    with make_client(FAST) as client:
        not_json = probe(client, _ep(srv.url), ROW)
        wrong_shape = probe(client, _ep(srv.url), ROW)
    for r in (not_json, wrong_shape):
        assert (r.ok, r.error_kind, r.status_code, r.predictions) == (False, "malformed", 200, ())


def test_flaky_endpoint_recovers_through_retries(model_server):
    srv = model_server("--fault", "flaky")
    client, sent = _counting_client(FAST)
    with client:
        r = probe(client, _ep(srv.url), ROW)
        assert r.ok and r.predictions == (EXPECTED,) and len(sent) == 2
        no_retry = HttpSettings(timeout_s=2, retries=0, allow_http=True)
        r = probe(client, _ep(srv.url, settings=no_retry), ROW)  # request 3: 503 again
    assert (r.error_kind, r.status_code) == ("http_5xx", 503)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_port_is_connect_and_unknown_model_is_http_4xx(model_server):
    with make_client(FAST) as client:
        r = probe(client, _ep(f"http://127.0.0.1:{_free_port()}"), ROW)
        assert (r.ok, r.error_kind, r.status_code) == (False, "connect", None)
        srv = model_server("--protocol", "oip_v2")
        r = probe(client, Endpoint(srv.url, "oip_v2", "nope", FAST), ROW)
    assert (r.error_kind, r.status_code) == ("http_4xx", 404)


# -- TLS -----------------------------------------------------------------------------------
def test_tls_with_a_custom_ca_bundle(model_server, pki):
    srv = model_server("--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key))
    assert srv.url.startswith("https://127.0.0.1:")
    good = HttpSettings(timeout_s=2, retries=0, ca_bundle=pki.ca)
    with make_client(good) as client:
        r = probe(client, _ep(srv.url, settings=good), ROW)
    assert r.ok and r.predictions == (EXPECTED,)
    for untrusted in (HttpSettings(timeout_s=2, retries=0),  # the system store
                      HttpSettings(timeout_s=2, retries=0, ca_bundle=pki.other_ca)):  # fmt: skip
        with make_client(untrusted) as client:
            assert probe(client, _ep(srv.url, settings=untrusted), ROW).error_kind == "tls"


def test_mtls_required_by_the_server_and_bearer_token(model_server, pki):
    srv = model_server("--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key),
                       "--client-ca", str(pki.ca), "--bearer-token", "t0ken")  # fmt: skip
    mtls = {"ca_bundle": pki.ca, "client_cert": pki.client_cert, "client_key": pki.client_key}
    good = HttpSettings(timeout_s=2, retries=0, bearer_token="t0ken", **mtls)
    with make_client(good) as client:
        r = probe(client, _ep(srv.url, settings=good), ROW)
        assert r.ok and r.predictions == (EXPECTED,)
        assert check_health(client, _ep(srv.url, settings=good)).ok
    no_cert = HttpSettings(timeout_s=2, retries=0, ca_bundle=pki.ca, bearer_token="t0ken")
    with make_client(no_cert) as client:
        r = probe(client, _ep(srv.url, settings=no_cert), ROW)
    assert not r.ok and r.error_kind == "tls"
    wrong_token = HttpSettings(timeout_s=2, retries=0, bearer_token="nope", **mtls)
    no_token = HttpSettings(timeout_s=2, retries=0, **mtls)
    for settings in (wrong_token, no_token):
        with make_client(settings) as client:
            r = probe(client, _ep(srv.url, settings=settings), ROW)
        assert (r.error_kind, r.status_code) == ("http_4xx", 401)


def test_plain_http_endpoint_is_refused_unless_allowed(model_server):
    srv = model_server("--protocol", "oip_v2")
    with pytest.raises(ConfigError, match=r"is plain http; .*allow_http=True"):
        Endpoint(srv.url, "oip_v2", "risk", HttpSettings())
    assert Endpoint(srv.url, "oip_v2", "risk", HttpSettings(allow_http=True))


# -- registry and adapters -------------------------------------------------------------------
def test_registry_refuses_duplicates_and_builds_the_miss_message_from_the_table(monkeypatch):
    monkeypatch.setattr(protocols, "PROTOCOLS", dict(PROTOCOLS))
    with pytest.raises(DuplicateNameError, match="'oip_v2' is already registered"):
        register_protocol("oip_v2", KServeV1())
    with pytest.raises(
        UnknownNameError, match="registered: generic_json, kserve_v1, mlflow, oip_v2"
    ):
        Endpoint("https://x.test", protocol="grpc")
    register_protocol("my_v1", KServeV1())
    with pytest.raises(UnknownNameError, match="kserve_v1, mlflow, my_v1, oip_v2"):
        protocols.protocol("grpc")
    register_protocol("oip_v2", KServeV1(), replace=True)
    assert isinstance(protocols.protocol("oip_v2"), KServeV1)
    with pytest.raises(ConfigError, match="lacks request, parse, health, fallback_version"):
        register_protocol("broken", object())  # type: ignore[arg-type]
    assert "broken" not in protocols.PROTOCOLS


def test_a_registered_adapter_is_used_by_probe(model_server, monkeypatch):
    monkeypatch.setattr(protocols, "PROTOCOLS", dict(PROTOCOLS))

    class DoubledV1(KServeV1):
        def parse(self, ep, body):
            preds, _ = super().parse(ep, body)
            return [2 * p for p in preds], "doubled"

    register_protocol("doubled_v1", DoubledV1())
    srv = model_server("--protocol", "kserve_v1")
    with make_client(FAST) as client:
        r = probe(client, _ep(srv.url, "doubled_v1"), ROW)
    assert r.predictions == (2 * EXPECTED,) and r.model_version == "doubled"


def _mock_probe(protocol: str, answer, inputs=ROW, **kw):
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=answer))
    ep = Endpoint("https://m.test", protocol, "risk", HttpSettings(retries=0), **kw)
    with make_client(ep.settings, transport=transport) as client:
        return probe(client, ep, inputs)


def test_oip_outputs_are_reshaped_and_wrong_counts_are_malformed():
    answer = {"model_version": 7, "outputs": [{"name": "p", "shape": [2, 2], "datatype": "FP64",
                                                "data": [0.1, 0.9, 0.8, 0.2]}]}  # fmt: skip
    r = _mock_probe("oip_v2", answer, [ROW, ROW])
    assert r.ok and r.predictions == ([0.1, 0.9], [0.8, 0.2]) and r.model_version == "7"
    assert _mock_probe("oip_v2", answer, ROW).error_kind == "malformed"  # 2 answers, 1 row
    bad_shape = {"outputs": [{"shape": [2, 3], "data": [1, 2]}]}
    assert _mock_probe("oip_v2", bad_shape).error_kind == "malformed"
    assert _mock_probe("kserve_v1", {"predictions": "yes"}).error_kind == "malformed"
    assert _mock_probe("mlflow", [0.5]).error_kind == "malformed"
    generic = {"request_template": '{"x": {{inputs}}}', "response_path": "a.b[3]"}
    assert _mock_probe("generic_json", {"a": {"b": [1]}}, **generic).error_kind == "malformed"


def test_bad_inputs_and_generic_configuration_are_config_errors():
    with pytest.raises(ConfigError, match="non-empty list"):
        _mock_probe("oip_v2", {}, [])
    with pytest.raises(ConfigError, match="feature 'age' has values of types"):
        _mock_probe("oip_v2", {}, [ROW, {**ROW, "age": "old"}])
    with pytest.raises(ConfigError, match="row 1 has features"):
        _mock_probe("mlflow", {}, [ROW, {"age": 1}])
    with pytest.raises(ConfigError, match="needs a request_template containing"):
        Endpoint("https://m.test", "generic_json", request_template='{"x": 1}', response_path="y")
    with pytest.raises(ConfigError, match=r"response path 'a\.\.b'"):
        Endpoint(
            "https://m.test", "generic_json", request_template="{{inputs}}", response_path="a..b"
        )
    with pytest.raises(ConfigError, match="not valid JSON once the placeholder is filled in"):
        _mock_probe("generic_json", {}, request_template='{"x": "{{inputs}}"}', response_path="y")


def test_paths_and_repr_keep_payloads_out():
    assert parse_path("outputs[0].data[1][2]") == ("outputs", 0, "data", 1, 2)
    assert extract({"r": [{"s": [5, 6]}]}, "r[0].s[1]") == 6
    r = _mock_probe("kserve_v1", {"predictions": [0.987654]})
    assert "0.987654" not in repr(r)
    assert issubclass(protocols.MalformedResponse, MlmonError)
