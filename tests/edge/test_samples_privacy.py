"""The canary test again, with opt-in samples on: no planted PHI reaches any object, k holds.

PHI-like strings are planted in request ids, in a free-text field that the samples
rules redact, in a field they HMAC, in a kept low-risk categorical (values outside the
allow-list), in fields the rules drop and in columns the reference does not know, in
stream records and in CloudEvents sent to the sink. The collector writes to a moto S3
server (IAM enforced, PutObject-only credentials). Every object is read back as admin
and scanned, raw and decoded; every samples batch is checked for k-anonymity over the
declared quasi-identifiers. Without a ``samples:`` section nothing is written under
``samples/``; retries sample the same records; the cap and the suppression counts are
audited.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pyarrow.parquet as pq

from mlmon.edge.collector import Collector
from mlmon.edge.config import load_config
from mlmon.governance.deid import hmac_id
from mlmon.lake.references import save_reference
from mlmon.profiles.frame import build_reference
from mlmon.profiles.schema import FeatureSpec, Schema
from tests.edge.test_privacy import CANARIES
from tests.s3server import BUCKET

# free text in the note field: each canary inside a sentence a clinician might write
NOTES = [
    "Seen by Jane Q. Canary",
    "MRN-00733291 reviewed",
    "mail jane.canary@example.org",
    "call +1-555-013-3370",
    "patient reports chest pain since tuesday",
    "ACC-9982171 pending",
]
KMS = "arn:aws:kms:us-east-1:123456789012:key/canary-key"
SECRET = "c" * 32
K = 3
SAMPLES: dict[str, Any] = {
    "rate": 1.0,
    "max_per_window": 1000,
    "k": K,
    "low_risk": ["ward"],
    "quasi_identifiers": ["age", "ward"],
    "fields": {
        "age": {"rule": "generalise", "width": 100, "top": 90},
        "ward": "keep",
        "note": "redact",
        "clinician": "hmac",
        "timestamp": {"rule": "generalise", "truncate": "month"},
        "bmi": "drop",
    },
}


def _reference(tmp_path: Path) -> Path:
    schema = Schema((FeatureSpec("age", "numeric"), FeatureSpec("bmi", "numeric"),
                     FeatureSpec("ward", "categorical", allowed=("ED", "ICU")),
                     FeatureSpec("note", "categorical", allowed=()),
                     FeatureSpec("clinician", "categorical", allowed=()),
                     FeatureSpec("prediction", "numeric")))  # fmt: skip
    base = pl.DataFrame({"age": [50.0, 60, 70] * 20, "bmi": [25.0, 27, 30] * 20,
                         "ward": ["ED", "ICU", "ED"] * 20, "note": ["ok"] * 60,
                         "clinician": ["c1"] * 60, "prediction": [0.1, 0.2, 0.3] * 20})  # fmt: skip
    path = tmp_path / "ref.parquet"
    save_reference(build_reference(base, schema, model="risk-model"), path)
    return path


def _stream_records() -> list[dict[str, Any]]:
    records = [
        {"timestamp": f"2026-10-01T10:{i:02d}:00Z", "request_id": c, "age": 50 + i, "bmi": 27,
         "ward": c if i % 2 else "ED", "note": NOTES[i % len(NOTES)], "clinician": c,
         "patient_name": c, "prediction": 0.3, "latency_ms": 20}
        for i, c in enumerate(CANARIES * 3)
    ]  # fmt: skip
    # one record alone in its class (age 95 -> "90+"): suppressed by the k-anonymity check
    records.append(
        {**records[0], "timestamp": "2026-10-01T10:30:00Z", "request_id": "r-old", "age": 95}
    )
    return records


def _config(tmp_path: Path, lake: dict[str, Any], samples: Any, sink: bool = False) -> Path:
    logs = tmp_path / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    (logs / "a.jsonl").write_text("\n".join(json.dumps(r) for r in _stream_records()) + "\n")
    model: dict[str, Any] = {
        "name": "risk-model",
        "reference": str(_reference(tmp_path)),
        "streams": [{"path": str(logs), "format": "jsonl", "kind": "tabular"}],
    }
    if sink:
        model["sink"] = {"port": 0}
    if samples is not None:
        model["samples"] = samples
    cfg = {"collector_id": "edge-canary", "lake": lake, "hmac_key": {"env": "MLMON_HMAC_KEY"},
           "state_dir": str(tmp_path / "state"), "window": "1h", "allow_http": True,
           "k_anonymity": 2, "metrics": None, "models": [model]}  # fmt: skip
    path = tmp_path / "edge.yaml"
    path.write_text(json.dumps(cfg))
    return path


def _assert_k_anonymous(blob: bytes, where: str) -> pl.DataFrame:
    rows = pl.read_parquet(io.BytesIO(blob))
    assert rows.height > 0, where
    assert set(rows["k"].to_list()) == {K}, where
    records = pl.DataFrame([json.loads(r) for r in rows["record"]])
    sizes = records.group_by(SAMPLES["quasi_identifiers"]).len()["len"]
    assert sizes.min() >= K, (where, sizes.to_list())
    return records


def test_no_planted_phi_in_any_object_with_samples_on(tmp_path, s3_server, s3_prefix, monkeypatch):
    key, secret = s3_server.creds["edge"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("MLMON_HMAC_KEY", SECRET)
    lake = {"uri": f"s3://{BUCKET}/{s3_prefix}", "sse_kms_key_id": KMS,
            "storage_options": {"endpoint_url": s3_server.endpoint_url}}  # fmt: skip
    collector = Collector(load_config(_config(tmp_path, lake, SAMPLES, sink=True), env={}))
    collector.start_sinks()
    try:
        port = collector.sinks["risk-model"].port
        with httpx.Client() as client:
            for i, c in enumerate(CANARIES):
                for kind, body in (
                    ("request", {"instances": [{"age": 70, "bmi": 30.5, "ward": c, "note": NOTES[i],
                                                "clinician": c, "name": c, "prediction": 0.2}]}),
                    ("response", {"predictions": [0.2], "explanation": c}),
                ):  # fmt: skip
                    r = client.post(f"http://127.0.0.1:{port}/", content=json.dumps(body), headers={
                        "ce-id": f"{c}-{i}", "ce-type": f"org.kubeflow.serving.inference.{kind}",
                        "ce-time": f"2026-10-01T11:0{i}:00Z", "ce-source": c, "content-type": "application/json"})  # fmt: skip
                    assert r.status_code == 202
        report = collector.run_once()
    finally:
        collector.stop_sinks()
    assert report.errors == [], report.errors
    assert report.records == len(_stream_records()) + len(CANARIES)

    admin = s3_server.boto3_client("admin")
    keys = [
        o["Key"] for o in admin.list_objects_v2(Bucket=BUCKET, Prefix=s3_prefix).get("Contents", [])
    ]
    samples = [k for k in keys if "/v1/samples/" in k]
    assert len(samples) == 2, samples  # one batch per window per source: stream0 (10h), sink (11h)
    # key: ...-samples-{source}[-part]; these October windows are older than the state's
    # part memory, so they carry the generation label ("late-g1") a first write never uses
    assert any("-samples-stream0" in k for k in samples)
    assert any("-samples-sink" in k for k in samples)
    audit_blobs = []
    for k in keys:
        head = admin.head_object(Bucket=BUCKET, Key=k)
        assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == KMS, k
        blob = admin.get_object(Bucket=BUCKET, Key=k)["Body"].read()
        if "/audit/" in k:
            lines = [json.loads(line) for line in blob.decode().splitlines()]
            audit_blobs += lines
            decoded = json.dumps(lines)
        else:
            decoded = json.dumps(pq.read_table(io.BytesIO(blob)).to_pylist(), default=str)
        for canary in CANARIES:
            assert canary.encode() not in blob, (canary, k)
            assert canary.lower() not in decoded.lower(), (canary, k)
            assert canary not in k
        if k in samples:
            records = _assert_k_anonymous(blob, k)
            assert set(records.columns) == {"age", "ward", "note", "clinician", "timestamp"}
            assert "bmi" not in decoded and "patient_name" not in decoded
            assert set(records["timestamp"]) == {"2026-10"}
            assert set(records["ward"]) <= {"ED", "ICU", "__other__"}
            # the rules ran (not a silent drop): tokens and HMACs in place of the canaries
            assert set(records["note"]) == {"Seen by [NAME]", "[MRN] reviewed", "mail [EMAIL]",
                                            "call [PHONE]", "[TEXT]", "[MRN] pending"}  # fmt: skip
            assert set(records["clinician"]) == {hmac_id(SECRET.encode(), c) for c in CANARIES}
    # the lone "90+" record was suppressed, and the audit trail says so
    batches = [r for r in audit_blobs if r["action"] == "samples_batch"]
    stream = next(r for r in batches if "-samples-stream0" in r["target"])
    assert stream["details"]["sampled"] == len(_stream_records())
    assert stream["details"]["suppressed"] == 1
    assert stream["details"]["written"] == len(_stream_records()) - 1
    # and so do the Prometheus counters (all sources of the model together)
    rows = collector.metrics.samples_rows
    assert rows.labels("risk-model", "suppressed")._value.get() >= 1
    assert rows.labels("risk-model", "written")._value.get() >= stream["details"]["written"]
    written = {r["target"] for r in audit_blobs if r["action"] == "object_written"}
    assert all(any(t.endswith(k) for t in written) for k in samples)


def _run_local(tmp_path: Path, samples: Any, monkeypatch) -> tuple[Collector, Path]:
    monkeypatch.setenv("MLMON_HMAC_KEY", SECRET)
    lake = tmp_path / "lake"
    c = Collector(load_config(_config(tmp_path, {"uri": str(lake)}, samples), env={}))
    report = c.run_once()
    assert report.errors == [], report.errors
    return c, lake


def test_without_a_samples_section_nothing_is_written_under_samples(tmp_path, monkeypatch):
    _, lake = _run_local(tmp_path, None, monkeypatch)
    written = [p.relative_to(lake).as_posix() for p in lake.rglob("*") if p.is_file()]
    assert any(p.startswith("v1/profiles/") for p in written)
    assert not any("samples" in p for p in written), written
    assert not (lake / "v1" / "samples").exists()
    audit = "".join(p.read_text() for p in (lake / "audit").rglob("*.jsonl"))
    assert "samples_batch" not in audit


def test_a_retry_samples_the_same_records_into_the_same_object(tmp_path, monkeypatch):
    cfg = {**SAMPLES, "rate": 0.5}
    _, lake_a = _run_local(tmp_path / "a", cfg, monkeypatch)
    _, lake_b = _run_local(tmp_path / "b", cfg, monkeypatch)  # fresh state: every record read again
    (a,) = (lake_a / "v1" / "samples").rglob("*.parquet")
    (b,) = (lake_b / "v1" / "samples").rglob("*.parquet")
    assert a.relative_to(lake_a) == b.relative_to(lake_b)
    assert a.read_bytes() == b.read_bytes()
    n = pl.read_parquet(a).height
    assert 0 < n < len(_stream_records())  # rate 0.5 sampled some, not all
    records = _assert_k_anonymous(a.read_bytes(), str(a))
    assert records.height == n


def test_cap_per_window_keeps_the_lowest_keys_and_is_audited(tmp_path, monkeypatch):
    cfg = {**SAMPLES, "max_per_window": 6, "quasi_identifiers": ["age"]}
    c, lake = _run_local(tmp_path, cfg, monkeypatch)
    (obj,) = (lake / "v1" / "samples").rglob("*.parquet")
    rows = pl.read_parquet(obj)
    assert rows.height <= 6
    (sampler_stats,) = [r for r in _audit(lake) if r["action"] == "samples_batch"]
    d = sampler_stats["details"]
    assert d["sampled"] == len(_stream_records()) and d["capped"] == len(_stream_records()) - 6
    assert d["written"] == rows.height and d["suppressed"] == 6 - rows.height
    # the six kept are the six records with the lowest sample keys, whatever their order
    # (their clinician HMACs tell them apart), less the lone "90+" row if it was among them
    ranked = sorted(
        _stream_records(), key=lambda r: int(hmac_id(SECRET.encode(), r["request_id"])[:13], 16)
    )[:6]
    expect = sorted(hmac_id(SECRET.encode(), r["clinician"]) for r in ranked if r["age"] < 90)
    assert sorted(json.loads(r)["clinician"] for r in rows["record"]) == expect
    assert rows["rules_sha256"].unique().to_list() == [c.config.models[0].samples.sha256]


def _audit(lake: Path) -> list[dict[str, Any]]:
    lines = "".join(p.read_text() for p in sorted((lake / "audit").rglob("*.jsonl")))
    return [json.loads(line) for line in lines.splitlines()]


def test_issue_18_ssn_and_address_in_a_redacted_note_never_reach_samples(tmp_path, monkeypatch):
    """The finding: `123-45-6789` and "patient lives at 12 Elm Street Springfield" were written.

    With the approved rules of this file (``note: redact``, 3 words), the SSN passed every
    pattern and the number in the address split the sentence into runs short enough for the
    free-text rule. Only decoding showed it: compressed Parquet hides the bytes.
    """
    leaks = ["123-45-6789", "patient lives at 12 Elm Street Springfield"]
    monkeypatch.setattr("tests.edge.test_samples_privacy.NOTES", [*leaks, "SSN 123 45 6789"])
    _, lake = _run_local(tmp_path, SAMPLES, monkeypatch)
    (obj,) = (lake / "v1" / "samples").rglob("*.parquet")
    decoded = json.dumps(pq.read_table(obj).to_pylist(), default=str)
    notes = {json.loads(r)["note"] for r in pl.read_parquet(obj)["record"]}
    assert notes == {"[ID]", "[TEXT]", "SSN [ID]"}, notes
    for needle in ("123-45-6789", "123 45 6789", "123456789", "Elm", "Springfield", "12 Elm"):
        assert needle not in decoded, needle
    (batch,) = [r for r in _audit(lake) if r["action"] == "samples_batch"]
    assert batch["details"]["detected"]["note:us_ssn"] > 0
    assert batch["details"]["detected"]["note:free_text"] > 0
