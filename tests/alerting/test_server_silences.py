"""Silences and acknowledgements through ``mlmon server``'s API: operators only, audited."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mlmon.alerting import deliver, load_config
from mlmon.governance.audit import verify
from mlmon.server.app import create_app
from mlmon.server.config import load_config as load_server_config
from tests.alerting.conftest import HttpReceiver, LakeData
from tests.alerting.conftest import write_config as write_alerts_config
from tests.server.conftest import TOKENS
from tests.server.conftest import write_config as write_server_config

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


def _bearer(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[who][0]}"}


@pytest.fixture
def client(tmp_path: Path, lake: LakeData, receiver: HttpReceiver) -> Any:
    now = datetime.now(UTC)
    for model in ("risk-model", "sepsis-model"):
        lake.window(model, now - timedelta(minutes=5))
        lake.golden(model, now - timedelta(minutes=5), passed=0, failed=5)
    alerts = write_alerts_config(
        tmp_path / "alerts",
        lake.root,
        [{"name": "ops", "type": "webhook", "url": receiver.url}],
        audit={"uri": str(tmp_path / "audit")},
    )
    assert deliver(load_config(alerts), now=now).started == 2
    path = write_server_config(
        tmp_path / "server",
        lake.root,
        {"mode": "token"},
        alerts={"config": str(alerts)},
        operator_groups=["cardiology"],
    )
    c = TestClient(create_app(load_server_config(path, env={})), raise_server_exceptions=False)
    with c:
        c.alerts = load_config(alerts)  # type: ignore[attr-defined]
        yield c


def test_operators_silence_and_acknowledge_their_models_only(client: Any, tmp_path: Path):
    state = client.get("/api/v1/alerts", headers=_bearer("alice")).json()
    assert [a["model"] for a in state["firing"]] == ["risk-model"]  # not the icu's model
    # ian may see sepsis-model but is no operator
    r = client.post(
        "/api/v1/alerts/silences", json={"model": "sepsis-model"}, headers=_bearer("ian")
    )
    assert r.status_code == 403
    # alice is an operator, but not of a model she may not see
    r = client.post(
        "/api/v1/alerts/silences", json={"model": "sepsis-model"}, headers=_bearer("alice")
    )
    assert r.status_code == 404
    # a form post (what another site could make a browser send) is refused
    r = client.post(
        "/api/v1/alerts/silences",
        content=b"model=risk-model",
        headers={**_bearer("alice"), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 415
    r = client.post(
        "/api/v1/alerts/silences",
        json={"model": "risk-model", "rule": "golden_*", "until": "2h", "reason": "retrain"},
        headers=_bearer("alice"),
    )
    assert r.status_code == 201 and r.json()["by"] == "alice"
    sid = r.json()["id"]
    r = client.post(
        "/api/v1/alerts/acks",
        json={"model": "risk-model", "rule": "golden_pass_rate", "note": "on it"},
        headers=_bearer("alice"),
    )
    assert r.status_code == 201
    r = client.post(
        "/api/v1/alerts/acks",
        json={"model": "risk-model", "rule": "drift:psi"},
        headers=_bearer("alice"),
    )
    assert r.status_code == 409
    state = client.get("/api/v1/alerts", headers=_bearer("alice")).json()
    assert state["firing"][0]["acknowledged_by"] == "alice"
    assert [s["id"] for s in state["silences"]] == [sid]
    assert client.get("/api/v1/alerts", headers=_bearer("ian")).json()["silences"] == []
    r = client.post(f"/api/v1/alerts/silences/{sid}/expire", json={}, headers=_bearer("alice"))
    assert r.status_code == 200
    assert client.get("/api/v1/alerts", headers=_bearer("alice")).json()["silences"] == []
    # three changes, three records of the delivery's audit chain, which verifies
    result = verify(str(tmp_path / "audit"))
    assert result.ok and result.actors["mlmon-alerts"].records == 3, str(result)


def test_openapi_lists_the_alert_routes_with_their_bodies(client: Any) -> None:
    doc = client.get("/api/v1/openapi.json", headers=_bearer("alice")).json()
    routes = {
        (r.path, m.lower())
        for r in client.app.app.routes
        if r.path.startswith("/api/v1/") and r.path != "/api/v1/openapi.json"
        for m in r.methods or ()
        if m != "HEAD"
    }
    assert {(p, m) for p, item in doc["paths"].items() for m in item} == routes
    silence = doc["paths"]["/api/v1/alerts/silences"]["post"]
    schema = silence["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["model"] and {"until", "reason"} <= set(schema["properties"])
    assert {"403", "415"} <= set(silence["responses"])
    r = client.post(  # what the schema says is refused is refused
        "/api/v1/alerts/silences",
        json={"model": "risk-model", "colour": "red"},
        headers=_bearer("alice"),
    )
    assert r.status_code == 400
