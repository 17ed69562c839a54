"""Nothing free-text reaches the lake, the state volume or the log (issue 17, items 5).

A patient-like string is planted in every channel a value can come in by: the
log file's ``model_version`` and extra fields, the model's V1 and V2 answers,
its metadata endpoint, a response header, the CloudEvents of a logged stream
and of the sink (attributes, headers, bodies), label files (label values, a
version column) and the bearer token the edge sends. The real ``mlmon edge
run`` (``-vv``) and ``mlmon edge once`` (``-v``) then run against real model
servers on 127.0.0.1, and every Parquet object of the lake, every file of the
state folder (Parquet decoded, the rest as bytes) and the captured stdout and
stderr are searched: no canary anywhere, and the versions that were planted
show up as ``h:`` hashes.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from mlmon.edge.logs import CLIENT_LOGGERS
from mlmon.lake.freetext import HASHED_VERSION, VersionGuard, hash_version, is_lake_version
from mlmon.lake.references import save_reference
from mlmon.lake.schema import TABLES
from mlmon.lake.writer import LakeWriter
from mlmon.profiles.frame import build_reference
from mlmon.profiles.performance import PerformanceSpec
from mlmon.profiles.schema import FeatureSpec, Schema
from tests.edge.servers import ROOT, start_server

KEY = "free-text-test-hmac-key-0123456789"
TOKEN = "tok-Canary-7731-bearer-secret"
# one canary per channel, so a failure says which channel leaked; all share "MRN-0073"
CH = {
    name: f"Jane Canary {name} MRN-0073{i:02d} has chest pain"
    for i, name in enumerate(
        ["logversion", "logextra", "v2answer", "metadata", "v1answer", "header", "cehdr",
         "ceversion", "sinkhdr", "sinkversion", "labelvalue", "labelversion", "labelextra"]
    )
}  # fmt: skip
# versions that fit the version alphabet but are identifiers: hashed like the others
ID_VERSIONS = ["078-05-1120", "MRN0073555"]
NEEDLES = [*CH.values(), "MRN-0073", "Jane Canary", TOKEN, *ID_VERSIONS]
T0 = datetime(2026, 10, 1, 10, 0, tzinfo=UTC)


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _reference(path: Path) -> None:
    rng = np.random.default_rng(7)
    n = 300
    df = pl.DataFrame({
        "age": rng.uniform(30, 90, n), "bmi": rng.uniform(20, 35, n),
        "creatinine": rng.uniform(0.6, 2.0, n), "heart_rate": rng.uniform(60, 110, n),
        "ward": rng.choice(["ED", "ICU"], n).tolist(), "score": rng.uniform(0, 1, n),
    })  # fmt: skip
    df = df.with_columns(pl.Series("label", (rng.random(n) < df["score"].to_numpy()).astype(int)))
    schema = Schema(
        (FeatureSpec("age", "numeric"), FeatureSpec("bmi", "numeric"),
         FeatureSpec("creatinine", "numeric"), FeatureSpec("heart_rate", "numeric"),
         FeatureSpec("ward", "categorical", allowed=("ED", "ICU"))),
    )  # fmt: skip
    spec = PerformanceSpec.make("binary", classes=("0", "1"), thresholds=(0.2,), bins=20)
    ref = build_reference(df, schema, model="risk", performance=spec, label_column="label")
    save_reference(ref, path)


def _ce(eid: str, kind: str, t: datetime, data: dict, **extra: object) -> dict:
    return {"specversion": "1.0", "id": eid, "type": f"org.kubeflow.serving.inference.{kind}",
            "source": "http://localhost:9081/", "time": _iso(t), "data": data, **extra}  # fmt: skip


def _inputs(tmp: Path) -> dict[str, Path]:
    """Log files, CloudEvent logs, golden sets and label files, each carrying its canary."""
    row = {"age": 70, "bmi": 30.5, "creatinine": 1.2, "heart_rate": 88}
    golden = tmp / "golden.jsonl"
    _jsonl(
        golden,
        [{"id": f"g{i}", "inputs": row, "expected": 0.1331, "abs_tol": 0.001} for i in range(3)],
    )
    logs = tmp / "logs"
    logs.mkdir()
    _jsonl(logs / "a.jsonl", [
        {"timestamp": _iso(T0 + timedelta(minutes=i)), "request_id": f"r{i}", **row, "ward": "ED",
         "model_version": CH["logversion"] if i % 2 else ID_VERSIONS[i // 4 % 2] if i % 4 == 0
         else "2.0", "note": CH["logextra"],
         "prediction": 0.3, "latency_ms": 20}
        for i in range(20)
    ])  # fmt: skip
    ce_logs = tmp / "ce_logs"
    ce_logs.mkdir()
    events = []
    for i in range(5):
        t = T0 + timedelta(minutes=i)
        events.append(_ce(f"e{i}", "request", t, {"instances": [{**row, "ward": "ICU"}]},
                          inferenceservicename=CH["cehdr"], **{"ce-note": CH["cehdr"]}))  # fmt: skip
        events.append({
            "headers": {"Ce-Id": f"e{i}", "Ce-Type": "org.kubeflow.serving.inference.response",
                        "Ce-Time": _iso(t + timedelta(milliseconds=30)), "Ce-Source": CH["cehdr"],
                        "X-Note": CH["cehdr"]},
            "body": json.dumps({"predictions": [0.4], "model_version": CH["ceversion"]}),
        })  # fmt: skip
    _jsonl(ce_logs / "a.jsonl", events)
    labels = tmp / "labels"
    labels.mkdir()
    # labels of the tabular stream's ids, joined through the prediction store
    _jsonl(labels / "l1.jsonl", [
        {"request_id": f"r{i}", "label": CH["labelvalue"] if i % 3 == 0 else i % 2,
         "event_time": _iso(T0 + timedelta(days=3)), "model_version": CH["labelversion"],
         "comment": CH["labelextra"]}
        for i in range(20)
    ])  # fmt: skip
    scored = tmp / "scored_labels"
    scored.mkdir()
    # labels that carry the score, prediction time and the version themselves
    _jsonl(scored / "s1.jsonl", [
        {"request_id": f"x{i}", "label": i % 2, "score": 0.25 + i / 100,
         "predicted_at": _iso(T0 + timedelta(minutes=i)), "event_time": _iso(T0 + timedelta(days=2)),
         "model_version": CH["labelversion"] if i % 2 else "3.1", "comment": CH["labelextra"]}
        for i in range(12)
    ])  # fmt: skip
    return {"golden": golden, "logs": logs, "ce_logs": ce_logs, "labels": labels, "scored": scored}


def _config(tmp: Path, inputs: dict[str, Path], urls: dict[str, str], sink_port: int) -> Path:
    every = {"schedule": "every 1s"}
    perf_store = {"store_predictions": True, "label_horizon": "365d", "labels_folder": str(inputs["labels"]),
                  "version_column": "model_version", **every}  # fmt: skip
    perf_scored = {"labels_folder": str(inputs["scored"]), "score_column": "score",
                   "prediction_time_column": "predicted_at", "version_column": "model_version", **every}  # fmt: skip
    bearer = {"bearer_token": {"env": "CANARY_TOKEN"}}
    golden = {"file": str(inputs["golden"]), **every}
    ref = str(tmp / "ref.parquet")
    cfg = {
        "collector_id": "edge-free-text",
        "lake": {"uri": str(tmp / "lake")},
        "hmac_key": {"env": "MLMON_HMAC_KEY"},
        "state_dir": str(tmp / "state"),
        "window": "1h",
        "lateness": "0s",
        "allow_http": True,
        "k_anonymity": 1,
        "metrics": None,
        "models": [
            {"name": "m-v2", "reference": ref,
             "endpoint": {"url": urls["v2"], "protocol": "oip_v2", "model_name": "risk", **bearer},
             "golden": golden, "streams": [{"path": str(inputs["logs"]), "format": "jsonl", **every}],
             "sink": {"host": "127.0.0.1", "port": sink_port}, "performance": perf_store},
            {"name": "m-meta", "reference": ref,
             "endpoint": {"url": urls["meta"], "protocol": "oip_v2", "model_name": "risk", **bearer},
             "golden": golden,
             "streams": [{"path": str(inputs["ce_logs"]), "format": "jsonl", "kind": "kserve_cloudevents", **every}],
             "performance": perf_scored},
            {"name": "m-v1", "reference": ref,
             "endpoint": {"url": urls["v1"], "protocol": "kserve_v1", "model_name": "risk", **bearer},
             "golden": golden},
        ],
    }  # fmt: skip
    path = tmp / "edge.yaml"
    path.write_text(json.dumps(cfg))
    return path


def _post_sink_events(port: int) -> None:
    row = {"age": 61, "bmi": 26.0, "creatinine": 1.0, "heart_rate": 77, "ward": "ED"}
    deadline = time.monotonic() + 60
    with httpx.Client(timeout=5) as client:
        while True:  # the sink listens once the edge has started
            try:
                client.get(f"http://127.0.0.1:{port}/")
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the sink never listened"
                time.sleep(0.2)
        for i in range(4):
            t = _iso(T0 + timedelta(minutes=30 + i))
            for kind, body in (
                ("request", {"instances": [row], "patient": CH["sinkhdr"]}),
                ("response", {"predictions": [0.2], "model_version": CH["sinkversion"]}),
            ):
                r = client.post(f"http://127.0.0.1:{port}/", content=json.dumps(body), headers={
                    "ce-id": f"s{i}", "ce-type": f"org.kubeflow.serving.inference.{kind}",
                    "ce-specversion": "1.0", "ce-time": t, "ce-source": CH["sinkhdr"],
                    "ce-inferenceservicename": CH["sinkhdr"], "ce-patient": CH["sinkhdr"],
                    "content-type": "application/json"})  # fmt: skip
                assert r.status_code == 202, r.text


def _objects(lake: Path, table: str, model: str) -> list[Path]:
    return sorted((lake / "v1" / table / f"model={model}").rglob("*.parquet"))


def _wait_for(check, proc: subprocess.Popen, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert proc.poll() is None, f"the edge exited ({proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} after {timeout:g} s"
        time.sleep(0.3)


def _edge(args: list[str], env: dict[str, str], out: Path) -> subprocess.Popen:
    """``python -m mlmon.cli ARGS`` with stderr to ``out`` and stdout next to it (files: never full)."""
    with open(out.with_suffix(".out"), "wb") as stdout, open(out, "wb") as stderr:
        return subprocess.Popen([sys.executable, "-m", "mlmon.cli", *args], cwd=ROOT, env=env,
                                stdout=stdout, stderr=stderr)  # fmt: skip


def _decoded(path: Path, blob: bytes) -> str:
    """Every value of a Parquet file (all columns, nested too), its schema metadata and path."""
    table = pq.read_table(pa.BufferReader(blob))
    meta = {
        k.decode(errors="replace"): v.decode(errors="replace")
        for k, v in (table.schema.metadata or {}).items()
    }
    return json.dumps([str(path), table.column_names, meta, table.to_pylist()], default=str)  # fmt: skip


def _leaks(text: str) -> list[str]:
    low = text.lower()
    return [n for n in NEEDLES if n.lower() in low]


def test_planted_strings_reach_no_object_state_file_or_log_line(tmp_path: Path) -> None:
    _reference(tmp_path / "ref.parquet")
    inputs = _inputs(tmp_path)
    common = ["--bearer-token", TOKEN]
    servers = {
        "v2": start_server(["--canary", CH["header"], "--protocol", "oip_v2", "--model-version",
                            CH["v2answer"], *common], module="tests.edge.canary_server"),
        "meta": start_server(["--canary", CH["header"], "--protocol", "oip_v2", "--model-version",
                              CH["metadata"], "--null-infer-version", *common],
                             module="tests.edge.canary_server"),
        "v1": start_server(["--canary", CH["v1answer"], "--protocol", "kserve_v1", *common],
                           module="tests.edge.canary_server"),
    }  # fmt: skip
    port = _free_port()
    cfg = _config(tmp_path, inputs, {k: s.url for k, s in servers.items()}, port)
    env = {**os.environ, "MLMON_HMAC_KEY": KEY, "CANARY_TOKEN": TOKEN}
    lake = tmp_path / "lake"
    logs = [tmp_path / "run-vv.log", tmp_path / "once-v.log"]
    try:
        run = _edge(["-vv", "edge", "run", "--config", str(cfg)], env, logs[0])
        try:
            _post_sink_events(port)
            for model, table in (("m-v2", "golden"), ("m-meta", "golden"), ("m-v1", "golden"),
                                 ("m-v2", "label_batches"), ("m-meta", "label_batches")):  # fmt: skip
                _wait_for(lambda m=model, t=table: _objects(lake, t, m), run, f"{table} of {model}")
            _wait_for(lambda: any("-sink-" in p.name for p in _objects(lake, "profiles", "m-v2")),
                      run, "the sink's window")  # fmt: skip
            _wait_for(lambda: _objects(lake, "profiles", "m-meta"), run, "the CloudEvent window")
        finally:
            os.kill(run.pid, signal.SIGTERM)
            assert run.wait(timeout=60) == 0
        once = _edge(["-v", "edge", "once", "--config", str(cfg)], env, logs[1])
        assert once.wait(timeout=120) in (0, 1)  # 1: a golden mismatch is reported, not an error
    finally:
        for s in servers.values():
            s.stop()

    # the planted versions arrived and were replaced by their keyed hash, never dropped silently
    versions: set[str | None] = set()
    for p in lake.rglob("*.parquet"):
        t = pq.read_table(p)
        if "model_version" in t.column_names:
            versions |= set(t.column("model_version").to_pylist())
    for channel in ("logversion", "ceversion", "sinkversion", "labelversion"):
        assert hash_version(CH[channel], KEY.encode()) in versions, channel
    for v in ID_VERSIONS:  # a version string that is an identifier (an SSN, a record number)
        assert hash_version(v, KEY.encode()) in versions, v
    assert {"2.0", "3.1"} <= versions  # good versions are kept as they are
    assert all(v is None or is_lake_version(v) for v in versions), versions
    # a probe ignores a reported version that is not a version string (protocols.probe)
    for channel in ("v2answer", "metadata", "v1answer"):
        assert hash_version(CH[channel], KEY.encode()) not in versions, channel

    found: list[tuple[str, list[str]]] = []
    files = [p for p in [*lake.rglob("*"), *(tmp_path / "state").rglob("*")] if p.is_file()]
    assert sum(p.suffix == ".parquet" for p in files) > 20
    tables = {
        p.relative_to(lake).parts[1]
        for p in lake.rglob("*.parquet")
        if p.relative_to(lake).parts[0] == "v1"
    }
    assert {
        "profiles",
        "latency",
        "drift",
        "golden",
        "performance",
        "label_batches",
        "references",
    } <= tables
    for p in files:
        blob = p.read_bytes()
        text = blob.decode("utf-8", errors="replace")
        if blob[:4] == b"PAR1":
            text += _decoded(p, blob)
        found += [(str(p), hits) for hits in [_leaks(text + str(p))] if hits]
    for log in logs:
        for out in (log, log.with_suffix(".out")):
            found += [
                (str(out), hits) for hits in [_leaks(out.read_text(errors="replace"))] if hits
            ]
    assert found == []
    # no line of an HTTP client library at all: no headers (the X-Model-Note canary above), no
    # Authorization or bearer token, no request URLs (httpx's INFO line)
    for log in logs:
        out = log.read_text() + log.with_suffix(".out").read_text()
        assert "X-Model-Note" not in out and "Authorization" not in out and "Bearer" not in out
        assert "HTTP Request:" not in out
        loggers = {
            json.loads(line)["logger"] for line in out.splitlines() if line.startswith('{"time"')
        }
        assert any(n.startswith("mlmon") for n in loggers)
        assert not any(n == c or n.startswith(c + ".") for n in loggers for c in CLIENT_LOGGERS), (
            loggers
        )
    # the replacement is logged, with a count and no value
    stderr = logs[0].read_text()
    assert "not version strings" in stderr and "replaced by their HMAC" in stderr
    # and the -vv run did log at DEBUG (so the client loggers had a chance to speak)
    assert any(
        json.loads(line).get("level") == "debug"
        for line in stderr.splitlines()
        if line.startswith("{")
    )


def test_every_string_column_of_every_table_has_a_known_origin() -> None:
    """The inventory of docs/security.md: a new string column fails here until it is classified."""
    origin = {
        "model_version": "outside (logs, answers, metadata, CloudEvents, label files): VersionGuard",
        "collector_id": "config, checked to a name alphabet",
        "reference_id": "content hash of the reference",
        "feature": "config (the reference's schema)",
        "kind": "code: numeric or categorical",
        "categories": "config (the reference's allow-list) and __other__",
        "source": "code: stream, sink, probe, batch",
        "method": "config (drift method ids)",
        "sample_id_hmac": "HMAC of the golden sample id",
        "error_kind": "code: a closed set of probe outcomes",
        "rule": "code and config (rule ids)",
        "severity": "code",
        "state": "code: firing or resolved",
        "message": "code: rule, feature, method and numbers",
        "schema_json": "config (the reference's schema)",
        "drift_thresholds_json": "computed from the reference: numbers per feature and method",
        "binning": "code: quantiles, nannyml or fixed (the reference's binning rule)",
        "multivariate_json": "computed from the reference: PCA numbers and the vocabulary's names",
        "role": "code: predictions, labels or reference",
        "batch_id": "content hash of the labels file, or the source",
        "task": "config (the reference's performance spec)",
        "classes": "config (the reference's performance spec)",
        "rules_sha256": "hash of the approved samples rules",
        "record": "opt-in samples: only fields with an approved de-identification rule",
        "segment": "config (the reference schema's segment column names)",
        "segment_value": "config (the reference's segment allow-list, declared or learned "
        "with the k rule) and __other__",
        # registry_events and version_checks (issue 22): registry metadata, each value kept only
        # when it is a version string (VersionGuard, else its keyed hash or null)
        "event_id": "content hash of the registry change",
        "registered_model": "registry metadata (model name): VersionGuard",
        "event": "code: a closed set of registry change kinds",
        "registered_version": "registry metadata (version name): VersionGuard",
        "previous_version": "registry metadata (version name): VersionGuard",
        "alias": "registry metadata (alias name): VersionGuard",
        "stage": "registry metadata (MLflow stage): VersionGuard",
        "previous_stage": "registry metadata (MLflow stage): VersionGuard",
        "status": "registry metadata (registration status): VersionGuard",
        "check_id": "content hash of the version check",
        "candidate_version": "registry metadata (version name): VersionGuard",
        "champion_version": "registry metadata (version name): VersionGuard",
        "champion_alias": "registry metadata (alias name): VersionGuard",
        "trigger": "code: manual, version_created, alias_set or alias_moved",
        "outcome": "code: pass, fail or error",
        "output_feature": "config (the reference's schema)",
        "output_drift_method": "config (drift method ids)",
        "reasons": "code: checks, counts and numbers",
    }
    strings = set()
    for t in TABLES.values():
        for c in t.columns:
            ty = c.type.value_type if pa.types.is_list(c.type) else c.type
            if pa.types.is_string(ty) or pa.types.is_large_string(ty):
                strings.add(c.name)
    assert strings == set(origin)


def test_the_writer_hashes_a_bad_version_in_rows_and_keys(tmp_path: Path) -> None:
    """The writer is the last gate: rows and object keys made elsewhere are checked too."""
    key = KEY.encode()
    w = LakeWriter(str(tmp_path / "lake"), collector_id="e", versions=VersionGuard(key))
    t = T0
    rows = pl.DataFrame({
        "model_version": [CH["logversion"], "1.2", None], "raised_at": [t] * 3, "rule": ["r"] * 3,
        "severity": ["info"] * 3, "state": ["firing"] * 3, "window_start": [t] * 3,
        "window_end": [t + timedelta(hours=1)] * 3, "collector_id": ["e"] * 3,
    })  # fmt: skip
    rec = w.write_table(
        "alerts", "m", rows, t, t + timedelta(hours=1), part=w._version_part(CH["logversion"])
    )
    got = pq.read_table(rec.path).column("model_version").to_pylist()
    assert got == [hash_version(CH["logversion"], key), "1.2", None]
    assert HASHED_VERSION.fullmatch(got[0]) and w.versions.replaced == 2  # the row and the key
    assert rec.path.endswith(f"-v{hashlib.sha256(got[0].encode()).hexdigest()[:10]}.parquet")
    # without a key a bad version is dropped, never written
    plain = LakeWriter(str(tmp_path / "lake2"), collector_id="e")
    rec = plain.write_table("alerts", "m", rows, t, t + timedelta(hours=1))
    assert pq.read_table(rec.path).column("model_version").to_pylist() == [None, "1.2", None]


def test_record_versions_of_any_type_are_checked_before_profiling(caplog) -> None:
    """Numbers become text; text outside the alphabet, lists and objects never pass as versions."""
    key = KEY.encode()
    guard = VersionGuard(key)
    df = pl.DataFrame({"model_version": [3, 3, None, 12], "x": [1.0, 2.0, 3.0, 4.0]})
    assert guard.frame(df, "records").get_column("model_version").to_list() == [
        "3",
        "3",
        None,
        "12",
    ]
    assert guard.replaced == 0
    text = pl.DataFrame({"model_version": ["v 2", "2.0", "x" * 65, "h:0123456789abcdef", "v 2"]})
    with caplog.at_level("WARNING", logger="mlmon.lake.freetext"):
        got = guard.frame(text, "the records of a stream").get_column("model_version").to_list()
    assert got == [hash_version("v 2", key), "2.0", hash_version("x" * 65, key), "h:0123456789abcdef",
                   hash_version("v 2", key)]  # fmt: skip
    assert guard.replaced == 3
    assert "3 model_version value(s) from the records of a stream" in caplog.text
    assert "v 2" not in caplog.text and "x" * 65 not in caplog.text
    nested = pl.DataFrame({"model_version": [[CH["logversion"]], None]})
    out = guard.frame(nested, "records").get_column("model_version").to_list()
    assert out == [None, None] and guard.replaced == 4
