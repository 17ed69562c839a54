"""Encryption is not optional: an s3:// lake needs a KMS key or an explicit ``encryption:
bucket-default``, and the edge checks the SSE header of what the bucket stored.

Real components: the moto S3 server with IAM enforced (``s3_server``), real ``mlmon edge once``
processes and demo model servers on 127.0.0.1. moto applies a bucket's default encryption
(PutBucketEncryption) to new objects and says so in the PutObject answer, as S3 does; without
one it stores objects unencrypted (S3 itself has applied SSE-S3 to every new object since
January 2023, so there the bucket-default check sees at least ``AES256``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from typing import Any

import pytest

from mlmon.edge.collector import Collector
from mlmon.edge.config import load_config
from mlmon.errors import ConfigError
from tests.edge.test_operations import ENV, ROOT, _edge_yaml, _golden, _once
from tests.edge.test_outage import small_golden
from tests.s3server import BUCKET, REGION, MotoServer

KMS = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"


def _keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


def _lake(server: MotoServer, uri: str, **extra: Any) -> dict[str, Any]:
    return {"uri": uri, **extra,
            "storage_options": {"endpoint_url": server.endpoint_url,
                                "client_kwargs": {"region_name": REGION}}}  # fmt: skip


def _bucket(server: MotoServer, encrypted: bool) -> str:
    """A fresh bucket of its own (a default encryption must not leak into other tests)."""
    s3 = server.boto3_client("admin")
    name = f"mlmon-enc-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    if encrypted:
        rule = {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms",
                                                        "KMSMasterKeyID": KMS}}  # fmt: skip
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": [rule]})
    return name


def test_an_s3_lake_without_a_kms_key_is_refused_at_start(tmp_path):
    cfg = _edge_yaml(tmp_path / "edge", {}, lake={"uri": "s3://mlmon-lake/lake"})
    done = subprocess.run(
        [sys.executable, "-m", "mlmon.cli", "edge", "run", "--config", str(cfg)],
        env=ENV, capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    err = done.stderr
    assert str(cfg) in err and "lake.sse_kms_key_id is missing" in err
    assert "MLMON_SSE_KMS_KEY_ID" in err and "lake.encryption: bucket-default" in err
    assert "Traceback" not in err
    assert not (tmp_path / "edge" / "state" / "spool").exists()  # refused before anything ran


def test_the_kms_key_fields_are_checked_one_by_one(tmp_path):
    path = tmp_path / "edge.yaml"
    base = {"collector_id": "e", "hmac_key": {"env": "K"}, "state_dir": str(tmp_path / "s"),
            "models": [{"name": "m", "reference": str(tmp_path / "r.parquet")}]}  # fmt: skip
    cases = [
        ({"uri": "s3://b/l"}, {"MLMON_SSE_KMS_KEY_ID": ""}, r"lake\.sse_kms_key_id is empty"),
        ({"uri": "s3://b/l", "sse_kms_key_id": "  "}, {}, r"lake\.sse_kms_key_id is empty"),
        ({"uri": "s3://b/l", "encryption": "bucket-default", "sse_kms_key_id": "k"}, {},
         r"lake\.encryption is bucket-default but lake\.sse_kms_key_id .* keep one"),
        ({"uri": "s3://b/l", "encryption": "none"}, {}, r"lake\.encryption: Input should be"),
        ({"uri": "s3://b/l", "sse_kms_key_id": "k", "read_timeout": "0s"}, {},
         r"lake\.read_timeout: .*not a positive duration"),
    ]  # fmt: skip
    for lake, env, message in cases:
        path.write_text(json.dumps({**base, "lake": lake}))
        with pytest.raises(ConfigError, match=message) as exc:
            load_config(path, env=env)
        assert str(exc.value).startswith(f"{path}: lake")
    # the ways that start: a key (file or environment), bucket-default, or a local lake
    for lake, env in [
        ({"uri": "s3://b/l", "sse_kms_key_id": "alias/mlmon"}, {}),
        ({"uri": "s3://b/l"}, {"MLMON_SSE_KMS_KEY_ID": "alias/mlmon"}),
        ({"uri": "s3://b/l", "encryption": "bucket-default"}, {}),
        ({"uri": str(tmp_path / "lake")}, {}),
    ]:
        path.write_text(json.dumps({**base, "lake": lake}))
        assert load_config(path, env=env).lake.uri == lake["uri"]


def test_with_a_key_every_object_is_sse_kms(tmp_path, model_server, s3_server: MotoServer):
    ok = model_server("--protocol", "oip_v2")
    prefix = s3_server.unique_prefix()
    key, secret = s3_server.credentials("edge", prefix)  # the shipped PutObject-only policy
    lake = _lake(s3_server, f"s3://{BUCKET}/{prefix}", sse_kms_key_id=KMS)
    env = {**ENV, "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret}
    code, out = _once(
        _edge_yaml(tmp_path / "edge", _golden(ok.url, small_golden(tmp_path)), lake=lake), env
    )
    assert code == 0 and out["spooled_objects"] == 0, out
    s3 = s3_server.boto3_client("admin")
    keys = _keys(s3, BUCKET, prefix)
    assert len(keys) >= 5 and any("/golden/" in k for k in keys)
    for k in keys:
        head = s3.head_object(Bucket=BUCKET, Key=k)
        assert (head.get("ServerSideEncryption"), head.get("SSEKMSKeyId")) == ("aws:kms", KMS), k


def test_bucket_default_starts_and_the_edge_sees_the_buckets_sse(
    tmp_path, model_server, s3_server: MotoServer
):
    ok = model_server("--protocol", "oip_v2")
    bucket = _bucket(s3_server, encrypted=True)
    key, secret = s3_server.credentials("admin")  # the edge's policy names the test bucket only
    lake = _lake(s3_server, f"s3://{bucket}/lake", encryption="bucket-default")
    env = {**ENV, "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret}
    cfg = _edge_yaml(tmp_path / "edge", _golden(ok.url, small_golden(tmp_path)), lake=lake)
    done = subprocess.run(
        [sys.executable, "-m", "mlmon.cli", "edge", "once", "--config", str(cfg)],
        env=env, capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    checked = [ln for ln in done.stderr.splitlines() if "lake encryption checked" in ln]
    assert len(checked) == 1 and "with aws:kms (the bucket's default encryption)" in checked[0]
    assert "landed without server-side encryption" not in done.stderr
    s3 = s3_server.boto3_client("admin")
    keys = _keys(s3, bucket, "lake/")
    assert len(keys) >= 5
    for k in keys:
        assert s3.head_object(Bucket=bucket, Key=k)["ServerSideEncryption"] == "aws:kms", k


def test_bucket_default_without_it_warns_in_the_log_and_healthz(
    tmp_path, model_server, s3_server: MotoServer, monkeypatch, caplog
):
    ok = model_server("--protocol", "oip_v2")
    bucket = _bucket(s3_server, encrypted=False)
    key, secret = s3_server.credentials("admin")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("MLMON_HMAC_KEY", "h" * 32)
    lake = _lake(s3_server, f"s3://{bucket}/lake", encryption="bucket-default")
    cfg = load_config(
        _edge_yaml(tmp_path / "edge", _golden(ok.url, small_golden(tmp_path)), lake=lake), env={}
    )
    collector = Collector(cfg)
    report = collector.run_once()
    assert report.errors == [] and report.spooled_objects == 0
    keys = _keys(s3_server.boto3_client("admin"), bucket, "lake/")
    errors = [r for r in caplog.records if "landed without server-side encryption" in r.message]
    # one error per PUT the bucket answered without SSE (the audit segment is PUT twice)
    assert {r.getMessage().rsplit(": ", 1)[1] for r in errors} == {f"{bucket}/{k}" for k in keys}
    [reason] = [r for r in collector.metrics.health()["reasons"] if r.startswith("lake-enc")]
    assert reason.startswith(
        f"lake-encryption: {len(errors)} objects landed without server-side encryption (first: "
    ), reason
    assert "turn on the bucket's default encryption or set lake.sse_kms_key_id" in reason
    assert collector.metrics.health()["status"] == "degraded"
