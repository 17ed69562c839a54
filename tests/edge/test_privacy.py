"""The security review's canary test: planted PHI never reaches any object the edge writes.

PHI-like strings (names, MRNs, e-mail addresses, phone numbers, free text) are
planted in golden-sample ids and inputs, in stream records (ids, feature values
outside the allow-list, extra columns) and in CloudEvents sent to the sink. The
collector writes to a real S3 API (moto server on 127.0.0.1, IAM enforced) with
credentials that allow only s3:PutObject on the prefix. Every object is then
read back with admin credentials and scanned, as raw bytes and as decoded
Parquet values, for each canary; every object must carry SSE-KMS.
"""

from __future__ import annotations

import io
import json

import httpx
import polars as pl
import pyarrow.parquet as pq
import pytest

from mlmon.edge.collector import Collector
from mlmon.edge.config import load_config
from mlmon.lake.references import save_reference
from mlmon.profiles.frame import build_reference
from mlmon.profiles.schema import FeatureSpec, Schema
from tests.edge.servers import start_server
from tests.s3server import BUCKET

CANARIES = [
    "Jane Q. Canary",
    "MRN-00733291",
    "jane.canary@example.org",
    "+1-555-013-3370",
    "patient reports chest pain since tuesday",
    "ACC-9982171",
]
KMS = "arn:aws:kms:us-east-1:123456789012:key/canary-key"


def test_no_planted_phi_in_any_object(tmp_path, s3_server, s3_prefix, monkeypatch):
    # the edge's credentials come from the environment, as in a pod; the YAML holds none
    key, secret = s3_server.creds["edge"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("MLMON_HMAC_KEY", "c" * 32)

    schema = Schema((FeatureSpec("age", "numeric"), FeatureSpec("bmi", "numeric"), FeatureSpec("creatinine", "numeric"),
                     FeatureSpec("heart_rate", "numeric"), FeatureSpec("ward", "categorical", allowed=("ED", "ICU")),
                     FeatureSpec("prediction", "numeric")))  # fmt: skip
    base = pl.DataFrame({"age": [50.0, 60, 70] * 20, "bmi": [25.0, 27, 30] * 20, "creatinine": [0.9, 1.0, 1.3] * 20,
                         "heart_rate": [70.0, 80, 90] * 20, "ward": ["ED", "ICU", "ED"] * 20,
                         "prediction": [0.1, 0.2, 0.3] * 20})  # fmt: skip
    save_reference(build_reference(base, schema, model="risk-model"), tmp_path / "ref.parquet")

    golden = tmp_path / "golden.jsonl"
    row = {"age": 70, "bmi": 30.5, "creatinine": 1.2, "heart_rate": 88}
    golden.write_text(
        "\n".join(
            json.dumps(
                {"id": c, "inputs": {**row, "note": c}, "expected": 0.1331, "abs_tol": 0.001}
            )
            for c in CANARIES
        )
    )
    logs = tmp_path / "logs"
    logs.mkdir()
    records = [
        {"timestamp": f"2026-10-01T10:{i:02d}:00Z", "request_id": c, "age": 50 + i, "bmi": 27, "creatinine": 1.1,
         "heart_rate": 75, "ward": c if i % 2 else "ED", "patient_name": c, "note": c, "prediction": 0.3,
         "latency_ms": 20}
        for i, c in enumerate(CANARIES * 3)
    ]  # fmt: skip
    (logs / "a.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")

    server = start_server(["--protocol", "oip_v2", "--model-version", "1.0"])
    cfg = {
        "collector_id": "edge-canary",
        "lake": {"uri": f"s3://{BUCKET}/{s3_prefix}", "sse_kms_key_id": KMS,
                 "storage_options": {"endpoint_url": s3_server.endpoint_url}},
        "hmac_key": {"env": "MLMON_HMAC_KEY"},
        "state_dir": str(tmp_path / "state"),
        "window": "1h",
        "allow_http": True,
        "k_anonymity": 2,
        "metrics": None,
        "models": [{
            "name": "risk-model",
            "reference": str(tmp_path / "ref.parquet"),
            "endpoint": {"url": server.url, "protocol": "oip_v2", "model_name": "risk"},
            "golden": {"file": str(golden)},
            "streams": [{"path": str(logs), "format": "jsonl", "kind": "tabular"}],
            "sink": {"port": 0},
        }],
    }  # fmt: skip
    (tmp_path / "edge.yaml").write_text(json.dumps(cfg))
    collector = Collector(load_config(tmp_path / "edge.yaml", env={}))
    collector.start_sinks()
    try:
        sink = collector.sinks["risk-model"]
        with httpx.Client() as client:
            for i, c in enumerate(CANARIES):
                for kind, body in (
                    ("request", {"instances": [{**row, "ward": c, "name": c, "prediction": 0.2}]}),
                    ("response", {"predictions": [0.2], "explanation": c}),
                ):
                    r = client.post(f"http://127.0.0.1:{sink.port}/", content=json.dumps(body), headers={
                        "ce-id": f"{c}-{i}", "ce-type": f"org.kubeflow.serving.inference.{kind}",
                        "ce-time": f"2026-10-01T11:0{i}:00Z", "ce-source": c, "content-type": "application/json"})  # fmt: skip
                    assert r.status_code == 202
        report = collector.run_once()
    finally:
        collector.stop_sinks()
        server.stop()
    assert report.errors == [], report.errors
    assert report.golden_checks == len(CANARIES) and report.records == len(records) + len(CANARIES)

    admin = s3_server.boto3_client("admin")
    keys = [
        o["Key"] for o in admin.list_objects_v2(Bucket=BUCKET, Prefix=s3_prefix).get("Contents", [])
    ]
    tables = {k.split("/")[3] for k in keys if "/v1/" in k}
    assert {"profiles", "latency", "drift", "golden", "references"} <= tables
    assert any("/audit/edge-canary/" in k for k in keys)
    for k in keys:
        head = admin.head_object(Bucket=BUCKET, Key=k)
        assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == KMS, k
        blob = admin.get_object(Bucket=BUCKET, Key=k)["Body"].read()
        if "/audit/" in k:  # audit segments are JSON lines (object keys, hashes, outcomes)
            decoded = json.dumps([json.loads(line) for line in blob.decode().splitlines()])
        else:
            decoded = json.dumps(pq.read_table(io.BytesIO(blob)).to_pylist(), default=str)
        for canary in CANARIES:
            assert canary.encode() not in blob, (canary, k)
            assert canary not in decoded and canary.lower() not in decoded.lower(), (canary, k)
            assert canary not in k
    # and the edge could not read back what it wrote
    with pytest.raises(Exception, match="AccessDenied"):
        s3_server.boto3_client("edge").get_object(Bucket=BUCKET, Key=keys[0])
