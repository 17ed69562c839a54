"""Protocol adapters, probes and golden checks against real model servers on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mlmon.edge.golden import compare, load_golden_set, run_golden
from mlmon.edge.http import HttpSettings, make_client
from mlmon.edge.protocols import Endpoint, probe, register_protocol
from mlmon.errors import ConfigError, DuplicateNameError, UnknownNameError
from tests.edge.servers import start_server

SECRET = b"s" * 32
ROW = {"age": 70, "bmi": 30.5, "creatinine": 1.2, "heart_rate": 88}
EXPECTED = 0.1331  # the demo model's score for ROW: sigmoid(-6 + 3.5 + 0.28 + 0.8 ln 1.2 + 0.2)
FAST = HttpSettings(timeout_s=2.0, retries=1, backoff_s=0.05, allow_http=True)


@pytest.fixture
def server(request):
    srv = start_server(request.param)
    yield srv
    srv.stop()


def _ep(url: str, protocol: str, settings: HttpSettings = FAST, **kw) -> Endpoint:
    return Endpoint(url=url, protocol=protocol, model_name="risk", settings=settings, **kw)


def test_demo_model_score_is_the_documented_one():
    from mlmon.demo.model_server import score

    assert score(ROW) == EXPECTED


@pytest.mark.parametrize(
    ("server", "protocol", "extra"),
    [
        (["--protocol", "oip_v2", "--model-version", "1.3"], "oip_v2", {}),
        (["--protocol", "kserve_v1"], "kserve_v1", {}),
        (["--protocol", "mlflow"], "mlflow", {}),
        (["--protocol", "generic"], "generic_json",
         {"request_template": '{"data": {{inputs}}}', "response_path": "result.scores[0]"}),
    ],
    indirect=["server"],
)  # fmt: skip
def test_each_protocol_against_a_real_server(server, protocol, extra):
    url = server.url + ("/predict" if protocol == "generic_json" else "")
    ep = _ep(url, protocol, **extra)
    with make_client(ep.settings) as client:
        r = probe(client, ep, ROW)
        assert r.ok, r
        assert r.predictions == [EXPECTED]
        assert r.status_code == 200 and r.latency_ms > 0
        if protocol == "oip_v2":
            assert r.model_version == "1.3"
            health = client.get(server.url + ep.adapter.health_path(ep))
            assert health.status_code == 200


@pytest.mark.parametrize("server", [["--protocol", "oip_v2", "--model-version", ""]], indirect=True)
def test_v2_null_version_reported_as_none(server):
    with make_client(FAST) as client:
        r = probe(client, _ep(server.url, "oip_v2"), ROW)
    assert r.ok and r.model_version is None


def test_real_scikit_learn_model_is_probed():
    srv = start_server(["--protocol", "oip_v2"], module="tests.edge.sklearn_server")
    try:
        with make_client(FAST) as client:
            r = probe(client, _ep(srv.url, "oip_v2"), [ROW, {**ROW, "age": 20}])
        assert r.ok and r.predictions == [1, 0]
    finally:
        srv.stop()


@pytest.mark.parametrize(
    ("server", "kind"),
    [
        (["--fault", "stall"], "timeout"),
        (["--fault", "http500"], "http_5xx"),
        (["--fault", "garbage"], "malformed"),
    ],
    indirect=["server"],
)
def test_faulty_endpoints_become_error_kinds(server, kind):
    settings = HttpSettings(timeout_s=0.5, retries=1, backoff_s=0.01, allow_http=True)
    t0 = time.monotonic()
    with make_client(settings) as client:
        r = probe(client, _ep(server.url, "oip_v2", settings), ROW)
    assert not r.ok and r.error_kind == kind
    assert time.monotonic() - t0 < 5  # bounded by timeout x (retries + 1)


@pytest.mark.parametrize("server", [["--fault", "flaky"]], indirect=True)
def test_retries_recover_from_a_flaky_endpoint(server):
    with make_client(FAST) as client:
        r = probe(client, _ep(server.url, "oip_v2"), ROW)
    assert r.ok and r.predictions == [EXPECTED]


def test_unreachable_and_wrong_model():
    with make_client(FAST) as client:
        r = probe(client, _ep("http://127.0.0.1:9", "oip_v2"), ROW)
    assert r.error_kind == "connect" and r.status_code is None
    srv = start_server(["--protocol", "oip_v2"])
    try:
        with make_client(FAST) as client:
            r = probe(client, Endpoint(srv.url, "oip_v2", "nope", FAST), ROW)
        assert r.error_kind == "http_4xx" and r.status_code == 404
    finally:
        srv.stop()


def test_plain_http_is_refused_in_production_mode():
    from mlmon.edge.protocols import client_for

    with pytest.raises(ConfigError, match="plain http; production mode accepts only https"):
        client_for(Endpoint("http://127.0.0.1:1", settings=HttpSettings()))


def test_registry_refuses_duplicates_and_lists_names():
    with pytest.raises(DuplicateNameError):
        register_protocol("oip_v2", object())  # type: ignore[arg-type]
    with pytest.raises(
        UnknownNameError, match="registered: generic_json, kserve_v1, mlflow, oip_v2"
    ):
        Endpoint("https://x", protocol="grpc").adapter  # noqa: B018


# -- TLS ---------------------------------------------------------------------------------
def _cert(subject: str, key, issuer_cert=None, issuer_key=None, ca=False, san=None):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_cert.subject if issuer_cert else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


@pytest.fixture
def pki(tmp_path):
    import ipaddress

    def write(name, cert, key):
        (tmp_path / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (tmp_path / f"{name}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("mlmon test CA", ca_key, ca=True)
    srv_key = ec.generate_private_key(ec.SECP256R1())
    srv = _cert(
        "127.0.0.1", srv_key, ca, ca_key, san=[x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    cli_key = ec.generate_private_key(ec.SECP256R1())
    cli = _cert("mlmon-edge", cli_key, ca, ca_key)
    write("ca", ca, ca_key)
    write("server", srv, srv_key)
    write("client", cli, cli_key)
    return tmp_path


def test_tls_with_custom_ca_mtls_and_bearer_token(pki):
    srv = start_server(["--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key"),
                        "--client-ca", str(pki / "ca.pem"), "--bearer-token", "t0ken"])  # fmt: skip
    try:
        assert srv.url.startswith("https://")
        good = HttpSettings(timeout_s=2, retries=0, ca_bundle=pki / "ca.pem", client_cert=pki / "client.pem",
                            client_key=pki / "client.key", bearer_token="t0ken")  # fmt: skip
        assert "t0ken" not in repr(good)
        with make_client(good) as client:
            r = probe(client, _ep(srv.url, "oip_v2", good), ROW)
        assert r.ok and r.predictions == [EXPECTED]
        no_cert = HttpSettings(
            timeout_s=2, retries=0, ca_bundle=pki / "ca.pem", bearer_token="t0ken"
        )
        with make_client(no_cert) as client:
            assert probe(client, _ep(srv.url, "oip_v2", no_cert), ROW).error_kind in (
                "tls",
                "connect",
            )
        system_ca = HttpSettings(timeout_s=2, retries=0, bearer_token="t0ken")
        with make_client(system_ca) as client:
            assert probe(client, _ep(srv.url, "oip_v2", system_ca), ROW).error_kind == "tls"
        wrong_token = HttpSettings(timeout_s=2, retries=0, ca_bundle=pki / "ca.pem", client_cert=pki / "client.pem",
                                   client_key=pki / "client.key", bearer_token="nope")  # fmt: skip
        with make_client(wrong_token) as client:
            r = probe(client, _ep(srv.url, "oip_v2", wrong_token), ROW)
        assert r.error_kind == "http_4xx" and r.status_code == 401
    finally:
        srv.stop()


# -- golden checks ------------------------------------------------------------------------
def _golden(tmp_path, samples):
    p = tmp_path / "golden.jsonl"
    p.write_text("\n".join(json.dumps(s) for s in samples) + "\n")
    return p


@pytest.mark.parametrize(
    "server", [["--protocol", "oip_v2", "--model-version", "2.0"]], indirect=True
)
def test_golden_checks_record_outcomes_never_payloads(server, tmp_path):
    samples = [
        {"id": "MRN-0042", "inputs": ROW, "expected": EXPECTED, "abs_tol": 1e-3},
        {"id": "jane.doe@example.org", "inputs": ROW, "expected": 0.9, "abs_tol": 1e-3},
        {"id": "g3", "inputs": {**ROW, "age": 71}, "expected": 0.14, "rel_tol": 0.05},
    ]
    frame = run_golden(
        _ep(server.url, "oip_v2"), load_golden_set(_golden(tmp_path, samples)), SECRET
    )
    assert frame["passed"].to_list() == [True, False, True]
    assert frame["error_kind"].to_list() == [None, "mismatch", None]
    assert frame["model_version"].unique().to_list() == ["2.0"]
    text = frame.write_csv()
    for planted in ("MRN-0042", "jane.doe@example.org", "30.5", "0.1331"):
        assert planted not in text
    assert len(frame["sample_id_hmac"][0]) == 64


def test_compare_kinds():
    from mlmon.edge.golden import GoldenSample

    assert compare(GoldenSample("a", ROW, "yes", "label"), ["yes"])
    assert not compare(GoldenSample("a", ROW, "yes", "label"), ["no"])
    assert compare(GoldenSample("a", ROW, [1.0, 2.0], "score", abs_tol=0.01), [[1.001, 2.0]])
    assert not compare(GoldenSample("a", ROW, 1.0, "regression", abs_tol=0.0, rel_tol=0.01), [1.02])
    assert not compare(GoldenSample("a", ROW, 1.0, "score"), [float("nan")])


def test_bad_golden_files_name_file_line_and_field(tmp_path):
    p = tmp_path / "g.jsonl"
    p.write_text('{"id": "a", "inputs": {"x": 1}, "expected": 1}\n{not json\n')
    with pytest.raises(ConfigError, match=r"g\.jsonl: line 2 is not valid JSON"):
        load_golden_set(p)
    p.write_text('{"id": "a", "inputs": {"x": 1}}\n')
    with pytest.raises(ConfigError, match=r"g\.jsonl: record 1: missing field\(s\) expected"):
        load_golden_set(p)
    p.write_text('{"id": "a", "inputs": {"x": 1}, "expected": 1, "kind": "vibes"}\n')
    with pytest.raises(ConfigError, match="kind 'vibes'"):
        load_golden_set(p)
    with pytest.raises(ConfigError, match="does not exist"):
        load_golden_set(tmp_path / "missing.jsonl")
