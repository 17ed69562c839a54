"""Silences and acknowledgements: honoured by the delivery, and audited (issue 22 item 4, core)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from mlmon.alerting import deliver, load_config
from mlmon.alerting.outbox import Outbox
from mlmon.alerting.silences import open_silences
from mlmon.errors import ConfigError
from mlmon.governance.audit import verify
from tests.alerting.conftest import NOW, HttpReceiver, LakeData, write_config


def _config(tmp_path: Path, lake: LakeData, receiver: HttpReceiver, **extra):
    hook = [{"name": "ops", "type": "webhook", "url": receiver.url}]
    return load_config(
        write_config(tmp_path, lake.root, hook, audit={"uri": str(tmp_path / "audit")}, **extra)
    )


def test_a_silence_holds_back_messages_until_it_ends_and_is_audited(
    tmp_path: Path, lake: LakeData, receiver: HttpReceiver
):
    cfg = _config(tmp_path, lake, receiver)
    box = open_silences(cfg)
    s = box.silence(
        "risk-*", NOW + timedelta(hours=1), by="jdoe", reason="planned retrain", now=NOW,
        rule="golden_*",
    )  # fmt: skip
    lake.golden("risk-model", NOW - timedelta(minutes=5), passed=0, failed=5)
    lake.golden("sepsis-model", NOW - timedelta(minutes=5), passed=0, failed=5)
    r = deliver(cfg, now=NOW)
    assert (r.started, r.delivered) == (2, 1)
    assert [b["model"] for b in receiver.bodies()] == ["sepsis-model"]  # risk-model is silenced
    lake.golden("risk-model", NOW + timedelta(minutes=55), passed=0, failed=5)
    assert deliver(cfg, now=NOW + timedelta(minutes=58)).delivered == 0  # still silenced
    # the silence ended and the alert still fires: it is announced now, once
    lake.golden("risk-model", NOW + timedelta(minutes=65), passed=0, failed=5)
    assert deliver(cfg, now=NOW + timedelta(minutes=70)).delivered == 1
    late = receiver.bodies()[-1]
    assert late["model"] == "risk-model" and late["alerts"][0]["state"] == "firing"
    assert deliver(cfg, now=NOW + timedelta(minutes=71)).delivered == 0
    result = verify(str(tmp_path / "audit"))
    assert result.ok, str(result)
    assert result.actors["mlmon-alerts"].records == 1  # the silence
    assert s.id and s.by == "jdoe"


def test_an_alert_that_fires_and_clears_within_a_silence_sends_nothing(
    tmp_path: Path, lake: LakeData, receiver: HttpReceiver
):
    cfg = _config(tmp_path, lake, receiver)
    open_silences(cfg).silence(
        "risk-model", NOW + timedelta(hours=3), by="jdoe", reason="", now=NOW
    )
    lake.golden("risk-model", NOW - timedelta(minutes=5), passed=0, failed=5)
    assert deliver(cfg, now=NOW).started == 1
    lake.golden("risk-model", NOW + timedelta(hours=1), passed=5, failed=0)
    r = deliver(cfg, now=NOW + timedelta(hours=1, minutes=5))
    assert (r.resolved, r.delivered) == (1, 0)
    assert receiver.requests == []


def test_an_acknowledgement_names_who_in_the_resolve_and_needs_a_firing_alert(
    tmp_path: Path, lake: LakeData, receiver: HttpReceiver
):
    cfg = _config(tmp_path, lake, receiver)
    box = open_silences(cfg)
    with pytest.raises(ConfigError, match="is not firing"):
        box.acknowledge("golden_pass_rate|risk-model|", by="jdoe", note="", now=NOW, firing=set())
    lake.golden("risk-model", NOW - timedelta(minutes=5), passed=0, failed=5)
    deliver(cfg, now=NOW)
    firing = set(Outbox(cfg.state_dir).firing)
    box.acknowledge("golden_pass_rate|risk-model|", by="jdoe", note="on it", now=NOW, firing=firing)
    with pytest.raises(ConfigError, match="operator name"):
        box.acknowledge(
            "golden_pass_rate|risk-model|", by="J Doe <x>", note="", now=NOW, firing=firing
        )
    lake.golden("risk-model", NOW + timedelta(hours=1), passed=5, failed=0)
    deliver(cfg, now=NOW + timedelta(hours=1, minutes=5))
    resolved = receiver.bodies()[-1]["alerts"][0]
    assert (resolved["state"], resolved["acknowledged_by"]) == ("resolved", "jdoe")
    assert open_silences(cfg).acks == {}  # the acknowledgement ended with the alert
    result = verify(str(tmp_path / "audit"))
    assert result.ok and result.actors["mlmon-alerts"].records == 1, str(result)


def test_silences_need_an_audit_log(tmp_path: Path, lake: LakeData, receiver: HttpReceiver):
    hook = [{"name": "ops", "type": "webhook", "url": receiver.url}]
    cfg = load_config(write_config(tmp_path, lake.root, hook))
    with pytest.raises(ConfigError, match="audit: missing"):
        open_silences(cfg)


def test_the_cli_silences_acknowledges_and_shows_the_state(
    tmp_path: Path, lake: LakeData, receiver: HttpReceiver, capsys: pytest.CaptureFixture[str]
):
    from datetime import UTC, datetime

    from mlmon.cli import main

    now = datetime.now(UTC)
    lake.golden("risk-model", now - timedelta(minutes=5), passed=0, failed=5)
    receiver.statuses = [500]
    hook = [{"name": "ops", "type": "webhook", "url": receiver.url}]
    path = write_config(tmp_path, lake.root, hook, audit={"uri": str(tmp_path / "audit")})
    cfg = ["--config", str(path)]
    assert main(["alerts", "deliver", *cfg]) == 1  # the receiver failed: kept, exit 1
    assert "1 failed" in capsys.readouterr().out
    assert main(["alerts", "ack", *cfg, "--model", "risk-model", "--rule", "golden_pass_rate",
                 "--by", "jdoe"]) == 0  # fmt: skip
    assert main(["alerts", "silence", *cfg, "--model", "sepsis-*", "--until", "1h",
                 "--by", "jdoe", "--reason", "maintenance"]) == 0  # fmt: skip
    sid = capsys.readouterr().out.split("silence ")[1].split()[0]
    assert main(["alerts", "status", *cfg]) == 0
    out = capsys.readouterr().out
    assert "firing golden_pass_rate|risk-model| since" in out and "acknowledged by jdoe" in out
    assert f"silence {sid} sepsis-* * * until" in out and "queued messages: 1" in out
    assert main(["alerts", "silence", *cfg, "--expire", sid, "--by", "jdoe"]) == 0
    assert main(["alerts", "ack", *cfg, "--model", "risk-model", "--rule", "drift:psi",
                 "--by", "jdoe"]) == 2  # fmt: skip
    assert "is not firing" in capsys.readouterr().err
    result = verify(str(tmp_path / "audit"))
    assert result.ok and result.actors["mlmon-alerts"].records == 3, str(result)
