"""Issue 22's "done when", end to end, with nothing of mlmon's own standing in for a component:

a new version registered in a real MLflow registry (moved to the candidate alias) is tested by
``mlmon registry watch`` against the champion, both served by real ``mlflow models serve``; the
failing candidate becomes an alert that ``mlmon alerts deliver`` sends to a real Alertmanager and
an SMTP server (aiosmtpd, STARTTLS); once the candidate's fixed deployment passes its re-test,
the next pass sends the resolve to both.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import yaml

from mlmon.alerting.config import load_config
from mlmon.alerting.deliver import deliver
from mlmon.cli import main
from tests.alerting.conftest import Alertmanager, Smtp, _smtp, alertmanager  # noqa: F401
from tests.edge.pki import pki  # noqa: F401  (the fixture)
from tests.registry.conftest import ADMIN, READER, MlflowServer, Served
from tests.registry.test_watch import _admin
from tests.servers.real import FEATURES, golden_rows

pytestmark = pytest.mark.xdist_group("mlflow-registry")
CANARY = "golden-case-canary"


def test_a_failing_candidate_reaches_alertmanager_and_mail_then_resolves(
    served: Served, mlflow_server: MlflowServer, registry_url: str, alertmanager: Alertmanager,  # noqa: F811
    pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys,  # noqa: F811
) -> None:  # fmt: skip
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", READER[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", READER[1])
    rows = golden_rows(8, seed=11)
    x = np.array([[r[f] for f in FEATURES] for r in rows])
    labels = served.models["1"].predict(x).tolist()  # type: ignore[attr-defined]
    golden = tmp_path / "golden.jsonl"
    golden.write_text("".join(
        json.dumps({"id": f"{CANARY}-{i}", "inputs": r, "expected": int(y), "kind": "label"}) + "\n"
        for i, (r, y) in enumerate(zip(rows, labels, strict=True))
    ))  # fmt: skip
    lake = tmp_path / "lake"
    watch_cfg = {
        "registry": {"url": registry_url},
        "lake": {"uri": str(lake)},
        "state_dir": str(tmp_path / "watch-state"),
        "allow_http": True,
        "models": [{
            "name": "clf",
            "candidate_aliases": ["challenger"],
            "test": {"champion_alias": "champion", "champion_endpoint": served.endpoints["1"].url,
                     "candidate_endpoints": {"3": served.endpoints["3"].url},
                     "golden": str(golden), "protocol": "mlflow", "retries": 0},
        }],
    }  # fmt: skip
    (tmp_path / "watch.yaml").write_text(json.dumps(watch_cfg))
    watch = ["registry", "watch", "--config", str(tmp_path / "watch.yaml")]
    with _smtp("starttls", pki) as smtp:
        alerts_cfg = tmp_path / "alerts.yaml"
        alerts_cfg.write_text(yaml.safe_dump({
            "lake": str(lake),
            "state_dir": str(tmp_path / "alerts-state"),
            "dashboard_url": "https://mlmon.example.org",
            "rules": {"version_checks": {}},
            "receivers": [
                {"name": "am", "type": "alertmanager", "url": alertmanager.url},
                {"name": "mail", "type": "email", "host": "127.0.0.1", "port": smtp.port,
                 "tls": "starttls", "sender": "mlmon@example.org", "to": ["ai-lead@example.org"],
                 "ca_file": str(smtp.ca)},
            ],
            "retry": {"min": "30s", "max": "10m"},
            "timeout": "5s",
        }))  # fmt: skip
        cfg = load_config(alerts_cfg)
        assert main(watch) == 0  # the first poll: an inventory
        try:
            with _admin(mlflow_server.url) as client:  # version 3 becomes the candidate
                client.set_registered_model_alias("clf", "challenger", "3")  # type: ignore[attr-defined]
            assert main(watch) == 0
            assert "FAIL:" in capsys.readouterr().out
        finally:
            with _admin(mlflow_server.url) as client:
                client.delete_registered_model_alias("clf", "challenger")  # type: ignore[attr-defined]

        # Alertmanager judges startsAt/endsAt by its own clock: the passes run at the real time
        first = deliver(cfg, now=datetime.now(UTC))
        assert first.delivered == 2  # one message per receiver
        [shown] = alertmanager.alerts(model="clf")
        assert shown["status"]["state"] == "active"
        assert shown["labels"]["alertname"] == "version_check"
        assert shown["labels"]["subject"] == "3" and shown["labels"]["severity"] == "critical"
        assert "candidate version 3 failed its replication test" in shown["annotations"]["summary"]
        [(tls, mail)] = smtp.messages
        assert tls and "candidate version 3 failed" in mail.content.decode()
        assert deliver(cfg, now=datetime.now(UTC)).delivered == 1  # Alertmanager is refreshed,
        assert len(smtp.messages) == 1  # the mail is not repeated while it fires

        # the candidate's fixed deployment passes its re-test: the check row resolves the alert
        retest = ["registry", "test-candidate", "--model", "clf", "--version", "3",
                  "--endpoint", served.endpoints["2"].url,
                  "--champion-endpoint", served.endpoints["1"].url, "--golden", str(golden),
                  "--protocol", "mlflow", "--allow-http", "--retries", "0",
                  "--registry", registry_url, "--lake", str(lake),
                  "--state-dir", str(tmp_path / "watch-state")]  # fmt: skip
        assert main(retest) == 0
        done = deliver(cfg, now=datetime.now(UTC))
        assert done.resolved == 1
        assert alertmanager.alerts(model="clf") == []
        assert (
            len(smtp.messages) == 2 and "resolved" in smtp.messages[1][1].content.decode().lower()
        )
    sent = "".join(e.content.decode() for _, e in smtp.messages) + json.dumps(shown)
    assert CANARY not in sent and ADMIN[1] not in sent  # no golden case id, no registry secret
