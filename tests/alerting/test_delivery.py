"""Alert delivery end to end: the lake -> rules -> durable outbox -> real receivers on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import threading
from datetime import timedelta
from email import message_from_bytes
from pathlib import Path

import pytest

from mlmon.alerting import deliver, load_config, parse_config
from mlmon.errors import ConfigError
from tests.alerting.conftest import CANARY, NOW, HttpReceiver, LakeData, write_config

HMAC_KEY = "k" * 32


def _webhook(receiver: HttpReceiver, **extra) -> dict:
    return {"name": "ops", "type": "webhook", "url": receiver.url + "/hook", **extra}


def test_webhook_signed_deduplicated_while_firing_one_resolve(
    tmp_path: Path, lake: LakeData, receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("TEST_MLMON_HMAC", HMAC_KEY)
    lake.golden("risk-model", NOW - timedelta(minutes=5), passed=4, failed=6, kind="connect")
    cfg = load_config(
        write_config(tmp_path, lake.root, [_webhook(receiver, hmac_key={"env": "TEST_MLMON_HMAC"})])
    )
    first = deliver(cfg, now=NOW)
    assert (first.started, first.delivered, first.queued) == (1, 1, 0)
    [req] = receiver.requests
    sig = hmac.new(HMAC_KEY.encode(), req.body, hashlib.sha256).hexdigest()
    assert req.headers["X-Mlmon-Signature"] == f"sha256={sig}"
    body = req.json()
    assert req.headers["X-Mlmon-Idempotency-Key"] == body["id"]
    [alert] = body["alerts"]
    assert (body["model"], body["status"], alert["rule"], alert["state"]) == (
        "risk-model",
        "firing",
        "golden_pass_rate",
        "firing",
    )
    assert "40.0% (4 of 10" in alert["summary"] and "connect 6" in alert["summary"]
    assert alert["link"] == "https://mlmon.example.org/models/risk-model"

    # still failing ten minutes later: nothing new is sent
    lake.golden("risk-model", NOW + timedelta(minutes=5), passed=3, failed=7)
    again = deliver(cfg, now=NOW + timedelta(minutes=10))
    assert (again.firing, again.started, again.delivered) == (1, 0, 0)
    assert len(receiver.requests) == 1

    # two hours later the checks pass: exactly one resolved message, then silence
    lake.golden("risk-model", NOW + timedelta(hours=2), passed=10, failed=0)
    for minutes in (125, 135):
        deliver(cfg, now=NOW + timedelta(minutes=minutes))
    assert len(receiver.requests) == 2
    resolved = receiver.requests[1].json()
    assert resolved["status"] == "resolved"
    [ra] = resolved["alerts"]
    assert ra["state"] == "resolved" and ra["since"] == alert["since"] and ra["ended"]
    assert "100.0% (10 of 10" in ra["summary"]


def test_grouped_per_model_and_rate_limited(tmp_path: Path, lake: LakeData, receiver: HttpReceiver):
    for model in ("risk-model", "sepsis-model"):
        lake.window(model, NOW - timedelta(hours=3))  # data, then silence
        lake.golden(model, NOW - timedelta(minutes=5), passed=0, failed=5, kind="timeout")
    path = write_config(
        tmp_path,
        lake.root,
        [_webhook(receiver, rate_limit={"messages": 1, "per": "1h"})],
        rules={"golden": {"min_pass_rate": 0.9}, "missing_data": {"missing_after": "1h"}},
    )
    cfg = load_config(path)
    result = deliver(cfg, now=NOW)
    # golden checks land in a window ending 5 minutes ago: missing_data counts them as data,
    # so each model fires golden only
    assert result.started == 2
    assert (result.delivered, result.rate_limited, result.queued) == (1, 1, 1)
    [first] = receiver.bodies()
    assert {a["model"] for a in first["alerts"]} == {first["model"]}
    held = deliver(cfg, now=NOW + timedelta(minutes=30))
    assert (held.delivered, held.rate_limited) == (0, 1)
    later = deliver(cfg, now=NOW + timedelta(minutes=61))
    assert later.delivered == 1
    models = [b["model"] for b in receiver.bodies()]
    assert sorted(models) == ["risk-model", "sepsis-model"]
    # both models' new alerts (missing data now: no window within an hour) of one pass come
    # as one message per model, each message naming only its model
    for b in receiver.bodies()[2:]:
        assert {a["model"] for a in b["alerts"]} == {b["model"]}


def test_grouping_puts_a_models_changes_into_one_message(
    tmp_path: Path, lake: LakeData, receiver: HttpReceiver
):
    lake.window("risk-model", NOW - timedelta(hours=3), latency_scale=200)
    lake.golden("risk-model", NOW - timedelta(hours=3), passed=1, failed=4)
    path = write_config(
        tmp_path,
        lake.root,
        [_webhook(receiver)],
        rules={
            "golden": {"period": "6h", "min_pass_rate": 0.9},
            "missing_data": {"missing_after": "1h"},
            "latency": {"period": "6h", "objective_ms": 250, "quantile": 0.95},
        },
    )
    result = deliver(load_config(path), now=NOW)
    assert result.started == 3 and result.delivered == 1
    [body] = receiver.bodies()
    assert sorted(a["rule"] for a in body["alerts"]) == [
        "golden_pass_rate",
        "latency_objective",
        "missing_data",
    ]


def test_retried_with_back_off_after_a_500_and_a_receiver_that_is_down(
    tmp_path: Path, lake: LakeData, receiver: HttpReceiver
):
    lake.golden("risk-model", NOW - timedelta(minutes=5), passed=0, failed=5)
    receiver.statuses = [500, 503]
    cfg = load_config(write_config(tmp_path, lake.root, [_webhook(receiver)]))
    r1 = deliver(cfg, now=NOW)
    assert (r1.failed, r1.queued) == (1, 1)
    state = json.loads((tmp_path / "state" / "outbox.json").read_text())
    [msg] = state["messages"]
    assert msg["attempts"] == 1 and msg["last_error"] == "receiver ops: HTTP 500; will retry"
    # not yet due (30 s back-off): nothing is tried
    assert deliver(cfg, now=NOW + timedelta(seconds=10)).failed == 0
    assert deliver(cfg, now=NOW + timedelta(seconds=31)).failed == 1  # the 503
    state = json.loads((tmp_path / "state" / "outbox.json").read_text())
    assert state["messages"][0]["attempts"] == 2  # next wait doubled: 60 s
    assert deliver(cfg, now=NOW + timedelta(seconds=61)).delivered == 0
    r = deliver(cfg, now=NOW + timedelta(seconds=92))
    assert (r.delivered, r.queued) == (1, 0)
    ids = {q.json()["id"] for q in receiver.requests}
    assert len(receiver.requests) == 3 and len(ids) == 1  # one message, one idempotency key

    # a receiver that is down (nothing listens): kept, and sent once it is back
    down = tmp_path / "down"
    from tests.alerting.conftest import free_port

    dead = {"name": "ops", "type": "webhook", "url": f"http://127.0.0.1:{free_port()}/hook"}
    lake.golden("sepsis-model", NOW - timedelta(minutes=5), passed=0, failed=5)
    cfg_down = load_config(write_config(down, lake.root, [dead]))
    r = deliver(cfg_down, now=NOW)
    assert (r.failed, r.queued) == (1, 2)
    errors = [
        m["last_error"]
        for m in json.loads((down / "state" / "outbox.json").read_text())["messages"]
    ]
    assert "receiver ops: no answer (ConnectError); will retry" in errors
    assert not any("127.0.0.1" in e for e in errors)  # never the receiver's URL
    cfg_up = load_config(write_config(down, lake.root, [_webhook(receiver)]))
    r = deliver(cfg_up, now=NOW + timedelta(seconds=31))
    assert (r.delivered, r.queued) == (2, 0)


def test_slack_and_teams_compatible_messages(
    tmp_path: Path, lake: LakeData, receiver: HttpReceiver
):
    lake.golden("risk-model", NOW - timedelta(minutes=5), passed=1, failed=9, kind="http_5xx")
    cfg = load_config(
        write_config(
            tmp_path,
            lake.root,
            [
                {"name": "slack", "type": "slack", "url": receiver.url + "/slack"},
                {"name": "teams", "type": "teams", "url": receiver.url + "/teams"},
            ],
        )
    )
    assert deliver(cfg, now=NOW).delivered == 2
    [slack] = receiver.bodies("/slack")
    assert slack["text"].startswith("risk-model: 1 firing")
    assert slack["blocks"][0]["type"] == "header"
    assert "<https://mlmon.example.org/models/risk-model|" in slack["blocks"][1]["text"]["text"]
    [teams] = receiver.bodies("/teams")
    assert teams["@type"] == "MessageCard" and teams["title"] == "risk-model: 1 firing"
    [section] = teams["sections"]
    assert {"name": "model", "value": "risk-model"} in section["facts"]
    assert section["potentialAction"][0]["targets"][0]["uri"].endswith("/models/risk-model")


def test_email_over_tls(tmp_path: Path, lake: LakeData, smtp_server):
    lake.golden("risk-model", NOW - timedelta(minutes=5), passed=2, failed=8)
    mail = {
        "name": "mail",
        "type": "email",
        "host": "127.0.0.1",
        "port": smtp_server.port,
        "tls": smtp_server.mode,
        "sender": "mlmon@example.org",
        "to": ["ai-lead@example.org"],
        "ca_file": str(smtp_server.ca),
    }
    cfg = load_config(write_config(tmp_path, lake.root, [mail]))
    assert deliver(cfg, now=NOW).delivered == 1
    lake.golden("risk-model", NOW + timedelta(hours=2), passed=10, failed=0)
    assert deliver(cfg, now=NOW + timedelta(hours=2, minutes=5)).delivered == 1
    assert len(smtp_server.messages) == 2
    subjects = []
    for _, envelope in smtp_server.messages:
        m = message_from_bytes(envelope.content)
        subjects.append(m["Subject"])
        assert envelope.rcpt_tos == ["ai-lead@example.org"]
        assert "https://mlmon.example.org/models/risk-model" in m.get_payload()
    assert subjects == ["[mlmon] risk-model: 1 firing", "[mlmon] risk-model: 1 resolved"]


def test_email_refuses_a_server_it_cannot_verify(
    tmp_path: Path, lake: LakeData, smtp_starttls, pki
):
    smtp_server = smtp_starttls
    lake.golden("risk-model", NOW - timedelta(minutes=5), passed=2, failed=8)
    mail = {
        "name": "mail",
        "type": "email",
        "host": "127.0.0.1",
        "port": smtp_server.port,
        "tls": smtp_server.mode,
        "sender": "mlmon@example.org",
        "to": ["ai-lead@example.org"],
        "ca_file": str(pki.other_ca),
    }
    r = deliver(load_config(write_config(tmp_path, lake.root, [mail])), now=NOW)
    assert (r.delivered, r.failed, r.queued) == (0, 1, 1)
    assert smtp_server.messages == []


@pytest.mark.xdist_group("alertmanager")
def test_alertmanager_shows_the_alert_firing_then_resolved(
    tmp_path: Path, lake: LakeData, alertmanager
):
    # Alertmanager judges endsAt against its own clock: the passes run at the real time
    from datetime import UTC, datetime

    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=90)
    model = f"am-model-{os.getpid()}"
    short = timedelta(seconds=30)
    lake.golden(model, t0 - timedelta(seconds=10), passed=0, failed=5, kind="timeout", length=short)
    am = {"name": "am", "type": "alertmanager", "url": alertmanager.url}
    cfg = load_config(write_config(tmp_path, lake.root, [am], rules={"golden": {"period": "1m"}}))
    assert deliver(cfg, now=t0).delivered == 1
    [shown] = alertmanager.alerts(model=model)
    assert shown["status"]["state"] == "active"
    assert shown["labels"] == {
        "alertname": "golden_pass_rate",
        "model": model,
        "severity": "warning",
    }
    assert shown["annotations"]["dashboard"] == f"https://mlmon.example.org/models/{model}"
    assert "0 of 5" in shown["annotations"]["summary"]
    # still firing on the next pass: re-sent (Alertmanager drops alerts not refreshed)
    assert deliver(cfg, now=t0 + timedelta(seconds=1)).delivered == 1
    assert len(alertmanager.alerts(model=model)) == 1
    t1 = datetime.now(UTC).replace(microsecond=0)
    lake.golden(model, t1 - timedelta(seconds=10), passed=5, failed=0, length=short)
    result = deliver(cfg, now=t1)
    assert (result.resolved, result.delivered) == (1, 1)
    # resolved: endsAt is the time of the pass, now past, so the active list no longer has it
    assert alertmanager.alerts(model=model) == []


@pytest.mark.slow
def test_nothing_is_lost_when_the_process_is_killed_mid_delivery(
    tmp_path: Path, lake: LakeData, receiver: HttpReceiver
):
    lake.golden("risk-model", NOW - timedelta(minutes=5), passed=0, failed=5)
    path = write_config(tmp_path, lake.root, [_webhook(receiver)])
    receiver.hold = threading.Event()
    cmd = [sys.executable, "-m", "mlmon.cli", "alerts", "deliver", "--config", str(path)]
    cmd += ["--now", NOW.isoformat()]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert receiver.arrived.wait(60), proc.stderr.read() if proc.stderr else ""
        os.kill(proc.pid, signal.SIGKILL)  # while the receiver holds the request
        proc.wait(30)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        receiver.hold.set()
    assert proc.returncode == -signal.SIGKILL
    state = json.loads((tmp_path / "state" / "outbox.json").read_text())
    [queued] = state["messages"]
    assert queued["attempts"] == 0  # the process died before it could count the attempt
    receiver.hold = None
    again = deliver(load_config(path), now=NOW)  # a new process: everything from the state dir
    assert (again.started, again.delivered, again.queued) == (0, 1, 0)
    ids = {r.json()["id"] for r in receiver.requests}
    assert ids == {queued["id"]}  # at least once, with the same idempotency key
    assert json.loads((tmp_path / "state" / "outbox.json").read_text())["messages"] == []


def test_messages_name_model_feature_figures_and_link_only(
    tmp_path: Path, lake: LakeData, receiver: HttpReceiver, smtp_starttls
):
    """Canaries in every text column the rules read (version, sample HMAC) reach no message."""
    lake.window("risk-model", NOW - timedelta(minutes=30), shift=25)
    lake.golden("risk-model", NOW - timedelta(minutes=5), passed=0, failed=5)
    receivers = [
        _webhook(receiver),
        {"name": "slack", "type": "slack", "url": receiver.url + "/slack"},
        {"name": "teams", "type": "teams", "url": receiver.url + "/teams"},
        {
            "name": "mail",
            "type": "email",
            "host": "127.0.0.1",
            "port": smtp_starttls.port,
            "tls": smtp_starttls.mode,
            "sender": "mlmon@example.org",
            "to": ["lead@example.org"],
            "ca_file": str(smtp_starttls.ca),
        },
    ]
    rules = {
        "golden": {"min_pass_rate": 0.9},
        "drift": {"period": "24h", "methods": ["psi"]},
        "latency": {"period": "6h", "objective_ms": 10},
    }
    cfg = load_config(write_config(tmp_path, lake.root, receivers, rules=rules))
    result = deliver(cfg, now=NOW)
    assert result.started == 3 and result.delivered == 4
    texts = [r.body.decode() for r in receiver.requests]
    texts += [e.content.decode() for _, e in smtp_starttls.messages]
    for text in texts:
        assert CANARY not in text
        assert "test-edge" not in text  # the collector id
    hook = receiver.bodies("/hook")[0]
    drift = next(a for a in hook["alerts"] if a["rule"] == "drift:psi")
    assert drift["feature"] == "age"
    assert drift["link"] == "https://mlmon.example.org/models/risk-model/features/age"
    assert drift["summary"].startswith("age drifted: psi ")
    allowed = {"key", "rule", "model", "subject", "feature", "state", "severity", "summary"}
    assert set(drift) == allowed | {"value", "threshold", "since", "ended", "link"}


@pytest.mark.parametrize(
    ("change", "names"),
    [
        ({"receivers": [{"type": "pager"}]}, "receivers[0].type: 'pager'"),
        ({"receivers": [{"type": "webhook", "name": "x"}]}, "receivers[0] (x).url: missing"),
        (
            {"receivers": [{"type": "webhook", "url": {"env": "NO_SUCH_MLMON_VAR"}}]},
            "receivers[0] (webhook-0).url: environment variable NO_SUCH_MLMON_VAR is not set",
        ),
        (
            {"receivers": [{"type": "slack", "url": "ftp://secret-token-123"}]},
            "receivers[0] (slack-0).url: not an http(s) URL",
        ),
        (
            {
                "receivers": [
                    {"type": "email", "host": "h", "sender": "a@b", "to": "c@d", "tls": "none"}
                ]
            },
            "receivers[0] (email-0).tls: 'none'",
        ),
        ({"rules": {"golden": {"min_pass_rate": 2}}}, "rules.golden.min_pass_rate: 2"),
        ({"rules": {"latency": {"objective_ms": "fast"}}}, "rules.latency.objective_ms"),
        ({"rules": {"drift": {"perod": "1h"}}}, "rules.drift: unknown key(s) perod"),
        (
            {"rules": {"missing_data": {"missing_after": "soon"}}},
            "rules.missing_data.missing_after",
        ),
        ({"rules": {"speed": {}}}, "rules: unknown key(s) speed"),
        ({"retry": {"min": "x"}}, "retry.min"),
        (
            {"receivers": [{"type": "webhook", "url": "http://a", "rate_limit": {"messages": 0}}]},
            "receivers[0] (webhook-0).rate_limit.messages: 0",
        ),
        ({"rules": {"missing_data": {"expect": 3}}}, "rules.missing_data.expect: expected a list"),
        ({"outbox": {"max_messages": 0}}, "outbox.max_messages: expected a whole number"),
        ({"outbox": {"max_bytes": "1MB"}}, "outbox.max_bytes: expected a whole number"),
        ({"outbox": {"max_size": 5}}, "outbox: unknown key(s) max_size"),
    ],
)
def test_a_bad_config_names_the_key(tmp_path: Path, change: dict, names: str):
    doc = {
        "lake": str(tmp_path / "lake"),
        "state_dir": "state",
        "dashboard_url": "https://mlmon.example.org",
        "rules": {"golden": {}},
        "receivers": [{"type": "webhook", "url": "http://127.0.0.1:9/"}],
        **change,
    }
    with pytest.raises(ConfigError) as err:
        parse_config(doc, tmp_path, source="alerts.yaml")
    assert f"alerts.yaml: {names}" in str(err.value)
    assert "secret-token-123" not in str(err.value)


def test_a_secret_file_readable_by_others_is_refused(tmp_path: Path):
    secret = tmp_path / "hook-url"
    secret.write_text("https://hooks.example.org/T000/B000/secret\n")
    os.chmod(secret, 0o644)
    doc = {
        "lake": "lake",
        "state_dir": "state",
        "dashboard_url": "https://x.example.org",
        "rules": {"golden": {}},
        "receivers": [{"type": "slack", "url": {"file": "hook-url"}}],
    }
    with pytest.raises(ConfigError, match=r"url: .* chmod 600") as err:
        parse_config(doc, tmp_path)
    assert "secret" not in str(err.value).replace(str(tmp_path), "")
    os.chmod(secret, 0o600)
    cfg = parse_config(doc, tmp_path)
    assert "secret" not in repr(cfg.receivers[0])


def _queued(box, model: str, state: str, severity: str, at) -> None:
    alert = {"key": f"k-{model}", "rule": "golden_pass_rate", "model": model, "subject": None,
             "feature": None, "state": state, "severity": severity, "summary": f"{model} figures",
             "value": 0.5, "threshold": 0.9, "since": at.isoformat(),
             "ended": at.isoformat() if state == "resolved" else None,
             "link": f"https://mlmon.example.org/models/{model}"}  # fmt: skip
    box.enqueue("ops", model, [alert], at, "change")


def test_a_full_outbox_drops_resolved_and_lower_severity_first_and_says_so_once(
    tmp_path: Path, lake: LakeData, receiver: HttpReceiver
):
    from mlmon.alerting.deliver import PassResult, bound_outbox
    from mlmon.alerting.outbox import Outbox, locked

    cfg = load_config(
        write_config(
            tmp_path,
            lake.root,
            [_webhook(receiver)],
            outbox={"max_messages": 10},
            audit={"uri": str(tmp_path / "audit")},
        )
    )
    t = NOW - timedelta(hours=6)
    with locked(cfg.state_dir):
        box = Outbox(cfg.state_dir)
        for i in range(4):  # a receiver down for hours: twelve messages queued
            _queued(box, f"resolved-{i}", "resolved", "critical", t + timedelta(minutes=i))
            _queued(box, f"warn-{i}", "firing", "warning", t + timedelta(minutes=10 + i))
            _queued(box, f"crit-{i}", "firing", "critical", t + timedelta(minutes=20 + i))
        first = PassResult()
        bound_outbox(box, cfg, NOW, first)
        assert first.dropped == 2  # the two oldest resolved; no firing alert lost
        [notice] = [m for m in box.messages if m.kind == "notice"]
        assert notice.alerts[0]["severity"] == "warning" and notice.alerts[0]["value"] == 2
        assert "No firing alert among them" in notice.alerts[0]["summary"]
        for i in range(4, 10):
            _queued(box, f"crit-{i}", "firing", "critical", t + timedelta(minutes=20 + i))
        second = PassResult()
        bound_outbox(box, cfg, NOW + timedelta(minutes=5), second)
        box.save()
    # 17 queued, 10 kept: the other resolved, then the warnings, then the oldest critical
    assert second.dropped == 7
    kept = sorted(m.model for m in box.messages if m.kind == "change")
    assert kept == sorted(f"crit-{i}" for i in range(1, 10))
    assert len(box.messages) == 10
    r = deliver(cfg, now=NOW + timedelta(minutes=6), evaluate_rules=False)
    assert (r.delivered, r.queued) == (10, 0)
    notices = [b for b in receiver.bodies() if b["model"] == "(alert outbox)"]
    assert len(notices) == 1  # one notice, counting both drops
    [alert] = notices[0]["alerts"]
    assert (alert["rule"], alert["subject"], alert["severity"], alert["value"]) == (
        "outbox_dropped",
        "ops",
        "critical",
        9,
    )
    names = ["golden_pass_rate warn-0", "golden_pass_rate warn-1", "golden_pass_rate warn-2",
             "golden_pass_rate warn-3", "golden_pass_rate crit-0"]  # fmt: skip
    assert alert["dropped_firing"] == names
    assert "Firing alerts among them: " + "; ".join(names) in alert["summary"]
    records = [
        json.loads(line)
        for seg in sorted((tmp_path / "audit" / "audit").rglob("*"))
        if seg.is_file()
        for line in seg.read_text().splitlines()
    ]
    drops = [r["details"] for r in records if r.get("action") == "alert_outbox_dropped"]
    assert [(d["messages"], d["firing_alerts"]) for d in drops] == [(2, 0), (7, 5)]
    # the byte bound alone: messages of about 4.4 kB, three fit in 16 kB; the oldest go
    with locked(cfg.state_dir):
        box = Outbox(cfg.state_dir)
        for i in range(8):
            _queued(box, f"m-{i}", "firing", "warning", NOW + timedelta(minutes=i))
            box.messages[-1].alerts[0]["summary"] = "x" * 4000
        gone = box.bound(1000, 16 * 1024)
        assert [m.model for m in gone] == [f"m-{i}" for i in range(5)]
