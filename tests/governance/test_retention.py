"""Retention on the moto S3 server: expired partitions go, the rest is untouched byte for byte."""

from __future__ import annotations

import os
import time
from datetime import date

from mlmon.governance.retention import apply, lifecycle_configuration, plan
from mlmon.lake.storage import open_storage
from tests.s3server import BUCKET


def _put(admin, key, body):
    admin.put_object(Bucket=BUCKET, Key=key, Body=body)


def test_plan_and_apply_delete_only_expired_partitions(s3_server, s3_prefix):
    admin = s3_server.boto3_client("admin")
    old = f"{s3_prefix}/v1/profiles/model=m/date=2026-01-05/a.parquet"
    new = f"{s3_prefix}/v1/profiles/model=m/date=2026-11-20/b.parquet"
    audit = f"{s3_prefix}/audit/edge-1/segment-000000000001.jsonl"
    for k in (old, new, audit):
        _put(admin, k, k.encode())
    lake = f"s3://{BUCKET}/{s3_prefix}"
    p = plan(
        lake,
        today=date(2026, 11, 23),
        storage_options=s3_server.storage_options("maintenance", prefix=s3_prefix),
    )
    assert p.objects == [f"{BUCKET}/{old}"] and p.partitions == [
        f"{BUCKET}/{old.rsplit('/', 1)[0]}"
    ]
    result = apply(
        lake, p, storage_options=s3_server.storage_options("maintenance", prefix=s3_prefix)
    )
    assert result == {"deleted": 1, "refused": [], "ok": True, "partitions": 1,
                      "audit_segments": 0, "checkpoints": []}  # fmt: skip
    keys = {o["Key"] for o in admin.list_objects_v2(Bucket=BUCKET, Prefix=s3_prefix)["Contents"]}
    assert keys == {new, audit}
    assert admin.get_object(Bucket=BUCKET, Key=new)["Body"].read() == new.encode()


def test_refused_deletes_are_reported_by_key(s3_server, s3_prefix):
    admin = s3_server.boto3_client("admin")
    old = f"{s3_prefix}/v1/golden/model=m/date=2026-01-05/g.parquet"
    _put(admin, old, b"x")
    lake = f"s3://{BUCKET}/{s3_prefix}"
    reader = s3_server.storage_options("reader", prefix=s3_prefix)
    p = plan(lake, today=date(2026, 11, 23), storage_options=reader)
    result = apply(lake, p, storage_options=reader)  # the reader holds no delete right
    assert not result["ok"] and result["refused"][0]["key"] == f"{BUCKET}/{old}"
    assert admin.get_object(Bucket=BUCKET, Key=old)["Body"].read() == b"x"


def test_lifecycle_configuration_is_accepted_and_reads_back(s3_server, s3_prefix):
    conf = lifecycle_configuration(s3_prefix, days={"profiles": 30})
    admin = s3_server.boto3_client("admin")
    admin.put_bucket_lifecycle_configuration(Bucket=BUCKET, LifecycleConfiguration=conf)
    back = admin.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]
    assert {r["ID"]: r["Expiration"]["Days"] for r in back}["mlmon-profiles"] == 30
    assert {r["ID"] for r in back} == {r["ID"] for r in conf["Rules"]}
    open_storage(f"s3://{BUCKET}/{s3_prefix}", s3_server.storage_options("admin"))


def test_cli_plan_apply_and_audit_on_a_local_lake(tmp_path):
    import subprocess
    import sys

    lake = tmp_path / "lake"
    old = lake / "v1" / "drift" / "model=m" / "date=2020-01-01" / "x.parquet"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"old")
    keep = lake / "v1" / "drift" / "model=m" / "date=2099-01-01" / "y.parquet"
    keep.parent.mkdir(parents=True)
    keep.write_bytes(b"new")
    # an interrupted write's temp file in a partition within retention: two hours old goes,
    # one being written now stays (tests/lake/test_storage_local.py makes one by a real kill)
    stale, young = keep.parent / ".tmp-a1b2c3.part", keep.parent / ".tmp-d4e5f6.part"
    stale.write_bytes(b"half")
    young.write_bytes(b"half")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))

    def run(*args):
        return subprocess.run([sys.executable, "-m", "mlmon.cli", "retention", *args, "--lake", str(lake),
                               "--state-dir", str(tmp_path / "st")], capture_output=True, text=True)  # fmt: skip

    planned = run("plan")
    assert (
        planned.returncode == 0 and "1 partition(s), 1 object(s)" in planned.stdout and old.exists()
    )
    assert f"PARTIAL {stale}" in planned.stdout and str(young) not in planned.stdout
    assert stale.exists()
    applied = run("apply")
    assert applied.returncode == 0 and "deleted 2 object(s)" in applied.stdout
    assert not old.exists() and keep.read_bytes() == b"new"
    assert not stale.exists() and young.exists()
    from mlmon.governance.audit import verify

    assert verify(str(lake)).ok
    seg = next((lake / "audit" / "maintenance").iterdir()).read_text()
    assert '"action": "retention_applied"' in seg and '"deleted": 2' in seg


def test_retention_expires_a_tables_rollups_and_compactions_with_it(s3_server, s3_prefix):
    """Day rollups and compacted objects live beside their table (docs/lake.md): they hold the
    same records, so they expire with the table's partition, and nothing else goes."""
    admin = s3_server.boto3_client("admin")
    part_old, part_new = "model=m/date=2026-01-05", "model=m/date=2026-11-20"
    keys = {
        f"v1/profiles/{part_old}/w.parquet": True,
        f"v1/rollups/profiles/{part_old}/day-edge-1.parquet": True,
        f"v1/compacted/profiles/{part_old}/compacted-000001.parquet": True,
        f"v1/compacted/profiles/{part_old}/rollup-000001.parquet": True,
        f"v1/compacted/profiles/{part_old}/_compacted.json": True,
        f"v1/rollups/profiles/{part_new}/day-edge-1.parquet": False,
        f"v1/compacted/profiles/{part_new}/_compacted.json": False,
    }
    for k in keys:
        _put(admin, f"{s3_prefix}/{k}", b"x")
    lake = f"s3://{BUCKET}/{s3_prefix}"
    opts = s3_server.storage_options("maintenance", prefix=s3_prefix)
    p = plan(lake, today=date(2026, 11, 23), storage_options=opts)
    expired = sorted(f"{BUCKET}/{s3_prefix}/{k}" for k, gone in keys.items() if gone)
    assert sorted(p.objects) == expired
    assert apply(lake, p, storage_options=opts)["deleted"] == len(expired)
    left = {o["Key"] for o in admin.list_objects_v2(Bucket=BUCKET, Prefix=s3_prefix)["Contents"]}
    assert left == {f"{s3_prefix}/{k}" for k, gone in keys.items() if not gone}
    rules = {r["ID"]: r["Filter"]["Prefix"] for r in lifecycle_configuration("p")["Rules"]}
    assert rules["mlmon-profiles-rollups"] == "p/v1/rollups/profiles/"
    assert rules["mlmon-profiles-compacted"] == "p/v1/compacted/profiles/"
