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


def _audit_actions(folder: Path) -> list[tuple[str, str, str]]:
    """(action, target, principal) of every record the delivery's audit chain holds."""
    import json

    out = []
    for seg in sorted((folder / "audit").rglob("*")):
        if seg.is_file():
            for line in seg.read_text().splitlines():
                rec = json.loads(line)
                if "seq" in rec:
                    out.append((rec["action"], rec["target"], rec["details"].get("principal")))
    return out


def test_dashboard_buttons_need_an_operator_the_same_origin_and_the_session_token(
    client: Any, tmp_path: Path
):
    import re

    from mlmon.server.alert_forms import COOKIE, csrf_token

    # ian (no operator) sees his model's firing alert but no button
    page = client.get("/models/sepsis-model", headers=_bearer("ian"))
    assert page.status_code == 200 and 'id="alert-actions"' in page.text
    assert "golden_pass_rate" in page.text and '<form class="alert-' not in page.text
    assert COOKIE not in page.headers.get("set-cookie", "")
    # alice (operator) gets the buttons, each with the token of her session cookie
    page = client.get("/models/risk-model", headers=_bearer("alice"))
    assert page.status_code == 200
    assert 'class="alert-silence"' in page.text and 'class="alert-ack"' in page.text
    cookie = page.cookies[COOKIE]
    assert "httponly" in page.headers["set-cookie"].lower()
    assert "samesite=strict" in page.headers["set-cookie"].lower()
    [token] = set(re.findall(r'name="csrf" value="([0-9a-f]{64})"', page.text))
    assert token == csrf_token(cookie, "alice") != csrf_token(cookie, "ian")
    client.cookies.clear()

    own = {"Origin": "http://testserver", "Cookie": f"{COOKIE}={cookie}"}
    form = {"rule": "golden_pass_rate", "subject": "", "until": "1h", "csrf": token}

    def post(who: str, path: str, headers: dict[str, str], data: dict[str, str]) -> Any:
        return client.post(
            path, data=data, headers={**_bearer(who), **headers}, follow_redirects=False
        )

    silence = "/models/risk-model/alerts/silence"
    # a non-operator is refused before anything else is looked at
    assert post("ian", "/models/sepsis-model/alerts/silence", own, form).status_code == 403
    # cross-site posts: no origin at all, another origin, a browser saying cross-site
    assert post("alice", silence, {"Cookie": own["Cookie"]}, form).status_code == 403
    evil = {**own, "Origin": "https://evil.example"}
    assert post("alice", silence, evil, form).status_code == 403
    cross = {**own, "Sec-Fetch-Site": "cross-site"}
    assert post("alice", silence, cross, form).status_code == 403
    # same origin, but no token, a wrong one, or the right one without its cookie
    assert post("alice", silence, own, {**form, "csrf": ""}).status_code == 403
    assert post("alice", silence, own, {**form, "csrf": "0" * 64}).status_code == 403
    assert post("alice", silence, {"Origin": own["Origin"]}, form).status_code == 403
    other = {**own, "Cookie": f"{COOKIE}={'1' * 64}"}
    assert post("alice", silence, other, form).status_code == 403
    # another team's model: as one that does not exist
    assert post("alice", "/models/sepsis-model/alerts/silence", own, form).status_code == 404
    assert _audit_actions(tmp_path / "audit") == []  # nothing changed so far
    # the real thing: silence, then acknowledge, each back to the page
    r = post("alice", silence, {**own, "Sec-Fetch-Site": "same-origin"}, form)
    assert r.status_code == 303 and r.headers["location"].startswith("/models/risk-model")
    r = post("alice", "/models/risk-model/alerts/ack", own, form)
    assert r.status_code == 303
    state = client.get("/api/v1/alerts", headers=_bearer("alice")).json()
    assert state["firing"][0]["acknowledged_by"] == "alice"
    assert [s["by"] for s in state["silences"]] == ["alice"]
    assert _audit_actions(tmp_path / "audit") == [
        ("alert_silence", "risk-model|golden_pass_rate|*", "alice"),
        ("alert_acknowledge", "golden_pass_rate|risk-model|", "alice"),
    ]


def test_the_server_runs_the_delivery_loop_when_asked_and_stops_it(
    tmp_path: Path, lake: LakeData, receiver: HttpReceiver, capsys: pytest.CaptureFixture[str]
):
    import threading

    from mlmon.errors import ConfigError

    lake.golden("risk-model", datetime.now(UTC) - timedelta(minutes=5), passed=0, failed=5)
    alerts = write_alerts_config(
        tmp_path / "alerts", lake.root, [{"name": "ops", "type": "webhook", "url": receiver.url}]
    )
    path = write_server_config(
        tmp_path / "server",
        lake.root,
        {"mode": "token"},
        alerts={"config": str(alerts), "deliver": True},
    )
    with TestClient(create_app(load_server_config(path, env={}))):
        assert receiver.arrived.wait(120)  # the loop's first pass, in the server's process
        assert "mlmon-alerts-delivery" in {t.name for t in threading.enumerate()}
    assert "mlmon-alerts-delivery" not in {t.name for t in threading.enumerate()}  # stopped
    [body] = receiver.bodies()
    assert body["model"] == "risk-model" and body["alerts"][0]["rule"] == "golden_pass_rate"
    bad = write_server_config(
        tmp_path / "bad", lake.root, {"mode": "token"}, alerts={"deliver": True}
    )
    with pytest.raises(ConfigError, match=r"alerts\.deliver: needs alerts\.config"):
        load_server_config(bad, env={})
    # the flag of `mlmon server` asks the same, and says what is missing (exit 2, no server)
    from mlmon.cli import main

    plain = write_server_config(tmp_path / "plain", lake.root, {"mode": "token"})
    assert main(["server", "--config", str(plain), "--deliver-alerts", "--port", "0"]) == 2
    assert "--deliver-alerts needs alerts: {config: alerts.yaml}" in capsys.readouterr().err
