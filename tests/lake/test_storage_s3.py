"""Least privilege on a real S3 API (moto server, IAM enforced) with the shipped policy files."""

from __future__ import annotations

import hashlib
import os

import pytest
from botocore.exceptions import ClientError

from mlmon.errors import LakeUnreachable, LakeWriteDenied
from mlmon.lake.storage import open_storage, put_object
from tests.s3server import BUCKET, MotoServer


def _code(exc: ClientError) -> str:
    return str(exc.response["Error"].get("Code"))


def test_edge_credentials_can_only_put(s3_server: MotoServer, s3_prefix: str):
    key_id = "arn:aws:kms:us-east-1:123456789012:key/abcd"
    st = open_storage(
        f"s3://{BUCKET}/{s3_prefix}", s3_server.storage_options("edge", sse_kms_key_id=key_id)
    )
    small = b"x" * 1000
    big = os.urandom(6 * 1024 * 1024)  # above s3fs's multipart threshold
    put_object(st, st.path("v1/profiles/model=m/date=2026-10-01/a.parquet"), small)
    put_object(st, st.path("v1/profiles/model=m/date=2026-10-01/big.parquet"), big)

    admin = s3_server.boto3_client("admin")
    for name, blob in (("a", small), ("big", big)):
        key = f"{s3_prefix}/v1/profiles/model=m/date=2026-10-01/{name}.parquet"
        head = admin.head_object(Bucket=BUCKET, Key=key)
        assert head["ServerSideEncryption"] == "aws:kms"
        assert head["SSEKMSKeyId"] == key_id  # moto echoes the id as sent (AWS returns the ARN)
        body = admin.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert hashlib.sha256(body).digest() == hashlib.sha256(blob).digest()

    edge = s3_server.boto3_client("edge")
    key = f"{s3_prefix}/v1/profiles/model=m/date=2026-10-01/a.parquet"
    with pytest.raises(ClientError) as e:
        edge.get_object(Bucket=BUCKET, Key=key)
    assert _code(e.value) == "AccessDenied"
    with pytest.raises(ClientError) as e:
        edge.list_objects_v2(Bucket=BUCKET, Prefix=s3_prefix)
    assert _code(e.value) == "AccessDenied"
    with pytest.raises(ClientError) as e:
        edge.delete_object(Bucket=BUCKET, Key=key)
    assert _code(e.value) == "AccessDenied"
    with pytest.raises(ClientError) as e:
        edge.head_object(Bucket=BUCKET, Key=key)
    assert _code(e.value) in ("403", "AccessDenied")
    # outside its prefix the edge cannot even put
    other = open_storage(f"s3://{BUCKET}/elsewhere", s3_server.storage_options("edge"))
    with pytest.raises(LakeWriteDenied, match="s3:PutObject"):
        put_object(other, other.path("x.parquet"), b"x")


def test_reader_reads_but_cannot_delete_and_bulk_delete_fails_silently(
    s3_server: MotoServer, s3_prefix: str
):
    admin = s3_server.boto3_client("admin")
    key = f"{s3_prefix}/v1/golden/model=m/date=2026-10-01/g.parquet"
    admin.put_object(Bucket=BUCKET, Key=key, Body=b"golden")
    reader = open_storage(f"s3://{BUCKET}/{s3_prefix}", s3_server.storage_options("reader"))
    assert reader.fs.cat_file(f"{BUCKET}/{key}") == b"golden"
    assert reader.fs.ls(f"{BUCKET}/{s3_prefix}/v1/golden/model=m/date=2026-10-01", detail=False)
    # the silent trap (facts.md): DeleteObjects answers 200 with per-key AccessDenied and s3fs raises nothing
    reader.fs.rm(f"{BUCKET}/{key}")
    assert admin.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"golden"
    with pytest.raises(ClientError) as e:
        s3_server.boto3_client("reader").delete_object(Bucket=BUCKET, Key=key)
    assert _code(e.value) == "AccessDenied"


def test_retried_put_is_idempotent(s3_server: MotoServer, s3_prefix: str):
    st = open_storage(f"s3://{BUCKET}/{s3_prefix}", s3_server.storage_options("edge"))
    path = st.path("v1/drift/model=m/date=2026-10-01/w.parquet")
    put_object(st, path, b"same")
    put_object(st, path, b"same")
    admin = s3_server.boto3_client("admin")
    listing = admin.list_objects_v2(Bucket=BUCKET, Prefix=f"{s3_prefix}/v1/drift/")
    assert [o["Key"] for o in listing["Contents"]] == [
        f"{s3_prefix}/v1/drift/model=m/date=2026-10-01/w.parquet"
    ]


def test_missing_bucket_and_unreachable_endpoint_are_named(s3_server: MotoServer):
    st = open_storage("s3://no-such-bucket/lake", s3_server.storage_options("admin"))
    with pytest.raises((LakeUnreachable, LakeWriteDenied), match="no-such-bucket"):
        put_object(st, st.path("x"), b"x")
    dead = open_storage(
        "s3://mlmon-lake/lake",
        {**s3_server.storage_options("admin"), "endpoint_url": "http://127.0.0.1:9"},
    )
    with pytest.raises(LakeUnreachable, match="mlmon-lake"):
        put_object(dead, dead.path("x"), b"x")


def test_server_process_is_stopped_by_pid():
    server = MotoServer().start()
    pid = server.proc.pid
    server.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
