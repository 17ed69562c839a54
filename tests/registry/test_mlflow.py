"""The MLflow adapter against a real tracking server: reads, attribution, errors, read-only."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

import pytest

from mlmon.errors import ConfigError, MlmonError
from mlmon.registry import (
    AttributionRule,
    MlflowRegistry,
    ModelRegistry,
    RegistryAuth,
    RegistryAuthError,
    RegistryError,
    RegistryUnreachable,
    UnknownAlias,
    UnknownModel,
    UnknownVersion,
    attribute,
)
from mlmon.registry.mlflow_rest import API
from tests.registry.conftest import OUTSIDER

# The real servers these tests start are session fixtures: one worker runs them all, so each
# server starts once per run (make test: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("mlflow-registry")


def test_reads_versions_aliases_tags_and_runs(registry_url, reader_auth, mlflow_server, proxy):
    with MlflowRegistry(registry_url, auth=reader_auth) as reg:
        assert isinstance(reg, ModelRegistry)
        model = reg.model("risk")
        versions = reg.versions("risk")
        v1 = reg.version("risk", "1")
        champion = reg.alias("risk", "champion")
    assert model.aliases == {"champion": "1", "challenger": "2"}
    assert model.tags == {"team": "cardiology"}
    assert [v.version for v in versions] == ["2", "1"]
    assert [v.aliases for v in versions] == [("challenger",), ("champion",)]
    assert [v.run_id for v in versions] == [mlflow_server.run_ids["2"], mlflow_server.run_ids["1"]]
    assert v1 == champion == versions[1]
    assert v1.tags["mlmon.endpoint_version"] == "1.0"
    assert v1.status == "READY"
    assert v1.created_at is not None
    assert abs(datetime.now(UTC) - v1.created_at) < timedelta(hours=1)
    assert proxy.requests, "the proxy saw no request: the test does not exercise it"
    assert {m for m, _, _ in proxy.requests} == {"GET"}
    assert all(auth and auth.startswith("Basic ") for _, _, auth in proxy.requests)


def test_attribution_rules(registry_url, reader_auth, mlflow_server):
    with MlflowRegistry(registry_url, auth=reader_auth) as reg:
        versions = reg.versions("risk")
        untagged = reg.versions("untagged")
    assert attribute(versions, "2.0").version == "2"  # auto: the tag
    assert attribute(versions, "2") is None  # auto with a tag present: not the number
    assert attribute(versions, "2", AttributionRule("version")).version == "2"
    run1 = mlflow_server.run_ids["1"]
    assert attribute(versions, run1, AttributionRule("run_id")).version == "1"
    assert attribute(versions, "9.9") is None
    assert attribute(untagged, "1").version == "1"  # auto without the tag: the number
    assert attribute(untagged, "1", AttributionRule("tag")) is None


def test_ambiguous_attribution_names_both_versions(registry_url, reader_auth):
    with MlflowRegistry(registry_url, auth=reader_auth) as reg:
        versions = reg.versions("risk")
    clash = AttributionRule("tag", tag="team")  # neither version has it: no clash
    assert clash.table(versions) == {}
    from dataclasses import replace

    doubled = [replace(v, tags={"mlmon.endpoint_version": "x"}) for v in versions]
    with pytest.raises(RegistryError, match=r"versions 2 and 1 both map to endpoint version 'x'"):
        attribute(doubled, "x")


def test_unknown_model_version_alias(registry_url, reader_auth):
    with MlflowRegistry(registry_url, auth=reader_auth) as reg:
        with pytest.raises(UnknownModel, match=r"model 'nope' is not registered .*--model"):
            reg.versions("nope")
        with pytest.raises(UnknownVersion, match=r"no version '7'.*registered versions: 2, 1"):
            reg.version("risk", "7")
        with pytest.raises(UnknownAlias, match=r"no alias 'production'.*champion -> 1"):
            reg.alias("risk", "production")
        with pytest.raises(UnknownModel):
            reg.alias("nope", "champion")
    assert issubclass(UnknownModel, LookupError) and issubclass(UnknownModel, MlmonError)


def test_no_credentials_is_401_with_the_fix(registry_url):
    with (
        MlflowRegistry(registry_url, auth=RegistryAuth()) as reg,
        pytest.raises(RegistryAuthError, match=r"answered 401 .*MLFLOW_TRACKING_TOKEN"),
    ):
        reg.model("risk")


def test_bearer_token_is_sent(registry_url, proxy):
    with (
        MlflowRegistry(registry_url, auth=RegistryAuth(token="t0ken")) as reg,
        # this server takes basic auth only: it answers 401 (or, with its credential cache on,
        # 500); either way mlmon raises a RegistryError naming the registry
        pytest.raises(RegistryError, match=r"model registry http://127\.0\.0\.1:\d+ answered"),
    ):
        reg.model("risk")
    assert proxy.requests[0][2] == "Bearer t0ken"
    assert "t0ken" not in repr(reg)


def test_not_allowed_is_403_naming_the_permission(registry_url):
    auth = RegistryAuth(username=OUTSIDER[0], password=OUTSIDER[1])
    with (
        MlflowRegistry(registry_url, auth=auth) as reg,
        pytest.raises(RegistryAuthError, match=r"answered 403 for model 'risk'.*READ permission"),
    ):
        reg.versions("risk")


def test_unreachable_registry():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with (
        MlflowRegistry(f"http://127.0.0.1:{port}", auth=RegistryAuth(), timeout_s=2) as reg,
        pytest.raises(RegistryUnreachable, match=r"cannot reach the model registry .*--registry"),
    ):
        reg.model("risk")


def test_not_an_mlflow_server(model_server):
    demo = model_server("--protocol", "oip_v2")
    with (
        MlflowRegistry(demo.url, auth=RegistryAuth()) as reg,
        pytest.raises(RegistryError, match="answered 404"),
    ):
        reg.model("risk")


def test_write_requests_are_refused_before_sending(registry_url, reader_auth, proxy):
    with MlflowRegistry(registry_url, auth=reader_auth) as reg:
        with pytest.raises(RegistryError, match="refusing to send POST"):
            reg._client.post(API + "registered-models/create", json={"name": "x"})
        with pytest.raises(RegistryError, match="refusing to send DELETE"):
            reg._client.delete(API + "registered-models/delete", params={"name": "risk"})
        # MLflow's read-only search POST passes the hook and reaches the server (whose
        # basic-auth app answers 403 to a POST from a READ user: mlmon itself only GETs)
        reg._client.post(API + "registered-models/search", json={})
    assert [m for m, _, _ in proxy.requests] == ["POST"]
    assert proxy.writes() == []


def test_bad_urls_and_auth_config():
    with pytest.raises(ConfigError, match="not an http"):
        MlflowRegistry("ftp://x", auth=RegistryAuth())
    with pytest.raises(ConfigError, match="plain http"):
        MlflowRegistry("http://mlflow.example.com", auth=RegistryAuth())
    with pytest.raises(ConfigError, match="not both"):
        RegistryAuth(token="t", username="u", password="p")
    with pytest.raises(ConfigError, match="both a user name and a password"):
        RegistryAuth(username="u")
    with pytest.raises(ConfigError, match=r"CA bundle /nope\.pem does not exist"):
        RegistryAuth(ca_bundle="/nope.pem")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="MY_TOKEN is not set"):
        RegistryAuth.from_env({}, token_env="MY_TOKEN")
    env = {"MLFLOW_TRACKING_USERNAME": "u", "MLFLOW_TRACKING_PASSWORD": "p"}
    assert RegistryAuth.from_env(env).username == "u"
    assert RegistryAuth.from_env({"MLFLOW_TRACKING_TOKEN": "t"}).token == "t"
