"""The dashboard's version page: champion and candidate side by side, from the lake alone."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from mlmon.lake.writer import LakeWriter
from mlmon.registry.watch import RegistryEvent, events_frame
from mlmon.server.app import create_app
from mlmon.server.config import load_config

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _check(outcome: str, candidate: str, at: datetime, reasons: str | None) -> dict:
    return {
        "model_version": candidate, "window_start": at, "window_end": at,
        "collector_id": "registry-test", "checked_at": at, "check_id": f"id-{candidate}",
        "registered_model": "risk", "candidate_version": candidate, "champion_version": "1",
        "champion_alias": "champion", "trigger": "version_created", "outcome": outcome,
        "cases": 8, "agreed": 8 if outcome == "pass" else 5, "disagreed": 0 if outcome == "pass" else 3,
        "candidate_errors": 0, "champion_errors": 0, "candidate_pass_rate": 1.0 if outcome == "pass" else 0.625,
        "champion_pass_rate": 1.0, "candidate_latency_p50_ms": 12.5, "champion_latency_p50_ms": 10.0,
        "latency_ratio": 1.25, "output_drift_method": "jensen_shannon", "output_drift": 0.0123,
        "output_drift_threshold": 0.1, "output_feature": "prediction", "reasons": reasons,
    }  # fmt: skip


def test_the_version_page_shows_champion_and_candidate_side_by_side(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    w = LakeWriter(str(lake), collector_id="registry-test", day_rollups=False)
    for i, (outcome, cand, reasons) in enumerate(
        [("pass", "2", None), ("fail", "3", "outputs differ in 3 of 8 cases (37.5%; allowed 0.0%)")]
    ):
        at = T0 + timedelta(hours=i)
        w.write_table("version_checks", "risk", pl.DataFrame([_check(outcome, cand, at, reasons)]),
                      at, at, part=f"c{i}")  # fmt: skip
    events = [RegistryEvent("risk", "version_created", "3"),
              RegistryEvent("risk", "alias_moved", "2", "1", alias="challenger")]  # fmt: skip
    df = events_frame(events, registry_url="https://r", observed_at=T0, collector_id="w")
    # the same events twice (a crash between the lake write and the state save): shown once
    w.write_table("registry_events", "risk", df, T0, T0, part="a")
    w.write_table("registry_events", "risk", df, T0, T0, part="b")
    cfg = tmp_path / "server.yaml"
    cfg.write_text(
        f"lake: {lake}\nauth: {{mode: none}}\n"
        f"audit: {{uri: {tmp_path / 'audit'}, state_dir: {tmp_path / 'state'}}}\n"
    )
    with TestClient(create_app(load_config(cfg, env={})), client=("127.0.0.1", 5000)) as c:
        r = c.get("/models/risk/versions")
        assert r.status_code == 200, r.text
        page = r.text
        assert page.index("outputs differ in 3 of 8 cases") < page.index(">pass<")  # newest first
        assert "<td>1 (champion)</td><td>3</td>" in page
        assert "<td>100.0%</td><td>62.5%</td>" in page
        assert "<td>10.0 ms</td><td>12.5 ms</td>" in page
        assert page.count("<td>alias moved</td><td>2</td><td>1</td><td>challenger</td>") == 1
        assert page.count("<td>version created</td><td>3</td><td></td>") == 1
        assert c.get("/models/nope/versions").status_code == 404
        # the model page: the registry's versions and the aliases on each, the changes replayed
        model_page = c.get("/models/risk").text
        assert "In the model registry" in model_page
        rows = model_page.split('<table class="registry">')[1].split("</table>")[0]
        assert rows.index("<tr><td>3</td>") < rows.index("<tr><td>2</td>")  # newest first
        assert "<tr><td>2</td><td>n/a</td><td>challenger</td>" in rows
        assert "<tr><td>3</td><td>n/a</td><td>none</td>" in rows


def test_registry_aliases_replay_the_watchs_changes_in_order(tmp_path: Path) -> None:
    from mlmon.analysis.lake import Lake
    from mlmon.server.versions import registry_aliases

    w = LakeWriter(str(tmp_path / "lake"), collector_id="w", day_rollups=False)
    steps = [
        [RegistryEvent("risk", "version_seen", "1", alias=None, status="READY"),
         RegistryEvent("risk", "alias_set", "1", alias="champion")],
        [RegistryEvent("risk", "version_created", "2"), RegistryEvent("risk", "version_created", "10"),
         RegistryEvent("risk", "alias_set", "2", alias="challenger")],
        [RegistryEvent("risk", "alias_moved", "2", "1", alias="champion"),
         RegistryEvent("risk", "alias_removed", None, "2", alias="challenger"),
         RegistryEvent("risk", "version_deleted", "10")],
    ]  # fmt: skip
    for i, events in enumerate(steps):
        at = T0 + timedelta(hours=i)
        df = events_frame(events, registry_url="https://r", observed_at=at, collector_id="w")
        w.write_table("registry_events", "risk", df, at, at, part=f"p{i}")
    state = registry_aliases(Lake(str(tmp_path / "lake")), "risk")
    assert [(r["version"], r["aliases"]) for r in state] == [("2", ["champion"]), ("1", [])]
    assert state[1]["status"] == "READY"
    assert registry_aliases(Lake(str(tmp_path / "lake")), "other") == []
