"""Retention that keeps what is in use and never breaks the audit chain (issue 18, items 1 and 6).

On the moto S3 server with IAM enforced and users made from ``deploy/iam/*.json`` as
shipped: the edge role writes the audit log (signed) and the windows, the maintenance
role runs retention, the reader role verifies. Audit records 552 days old are retired
behind a signed checkpoint and ``audit verify`` says so; a deletion no checkpoint covers
is still named; a reference that kept windows name stays; lifecycle rules are right at
the bucket root and have no audit rule; nonsense ``--days`` are refused naming the
table; every shipped role gets an exit code and a message, never a traceback.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import polars as pl
import pyarrow as pa
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mlmon.cli import main
from mlmon.governance import audit
from mlmon.governance.audit import AuditLog, ChainHead, verify
from mlmon.governance.retention import apply, lifecycle_configuration, plan
from mlmon.lake.writer import LakeWriter
from mlmon.profiles.frame import build_reference
from tests.s3server import BUCKET, REGION, moto_policy, policy

ROOT = Path(__file__).resolve().parents[2]
CANARY = "PATIENT-CANARY-John-Doe-1961"
KEY = Ed25519PrivateKey.generate()
PUB = KEY.public_key()
TODAY = datetime.now(UTC).date()
OLD = datetime.now(UTC) - timedelta(days=552)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlmon.cli", *args], capture_output=True, text=True, timeout=180,
        stdin=subprocess.DEVNULL, cwd=ROOT, env=dict(os.environ),
    )  # fmt: skip


@dataclass
class _Ran:
    returncode: int
    stdout: str
    stderr: str


def _main(capsys: pytest.CaptureFixture[str], *args: str) -> _Ran:
    """``mlmon`` in this process (the same ``main`` as the command; an exception it does not
    turn into an exit code fails the test, as a traceback would)."""
    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return _Ran(code, out.out, out.err)


def _opts_flags(opts: dict[str, Any]) -> list[str]:
    return ["--storage-option", f"key={opts['key']}", "--storage-option",
            f"secret={opts['secret']}", "--storage-option", f"endpoint_url={opts['endpoint_url']}"]  # fmt: skip


def _keys(admin: Any, prefix: str) -> set[str]:
    listed = admin.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/")
    return {o["Key"].removeprefix(f"{prefix}/") for o in listed.get("Contents", [])}


def _write_log(monkeypatch, lake, opts, state, actor, times, *, size=3) -> AuditLog:
    """The edge role writes ``len(times)`` signed records, each at its time, flushed each time."""
    log = AuditLog(lake, state, actor, signing_key=KEY, segment_size=size, echo=False,
                   storage_options=opts)  # fmt: skip
    for t in times:
        monkeypatch.setattr(audit, "_now", lambda t=t: t.isoformat(timespec="microseconds"))
        log.record("window_written", f"{actor}/{CANARY}", patient=CANARY)
        log.flush()
    monkeypatch.undo()
    return log


@pytest.fixture
def signed_log(s3_server, s3_prefix, monkeypatch, tmp_path):
    """edge-a: records 1..6 552 days old (two full segments), 7..8 recent; edge-b: records
    1..2 552 days old (one open segment: the writer stopped)."""
    lake = f"s3://{BUCKET}/{s3_prefix}"
    edge = s3_server.storage_options("edge", prefix=s3_prefix)
    old = [OLD + timedelta(minutes=i) for i in range(6)]
    recent = [datetime.now(UTC) - timedelta(hours=2 - i) for i in range(2)]
    a = _write_log(monkeypatch, lake, edge, tmp_path / "a", "edge-a", old + recent)
    b = _write_log(monkeypatch, lake, edge, tmp_path / "b", "edge-b", old[:2])
    return lake, a, b


def test_audit_retention_retires_old_segments_behind_a_signed_checkpoint(
    s3_server, s3_prefix, signed_log
):
    lake, a, b = signed_log
    admin = s3_server.boto3_client("admin")
    maint = s3_server.storage_options("maintenance", prefix=s3_prefix)
    p = plan(lake, storage_options=maint)  # the default: audit 365 days
    assert [(r.actor, r.first_seq, r.checkpoint.last_seq) for r in p.audit] == [
        ("edge-a", 1, 6), ("edge-b", 1, 2)]  # fmt: skip
    result = apply(lake, p, storage_options=maint)
    assert result["ok"] and result["audit_segments"] == 3
    left = {k for k in _keys(admin, s3_prefix) if k.startswith("audit/")}
    assert left == {
        "audit/edge-a/checkpoint-000000000006.json",
        "audit/edge-a/segment-000000000007.jsonl",
        "audit/edge-b/checkpoint-000000000002.json",
    }
    reader = s3_server.storage_options("reader", prefix=s3_prefix)
    heads = [ChainHead("edge-a", 8, a.last_hash), ChainHead("edge-b", 2, b.last_hash)]
    v = verify(lake, public_key=PUB, storage_options=reader, expect=heads)
    text = str(v)
    assert v.ok, text
    assert v.records == 2
    assert f"edge-a: records 1..6 retired by retention on {TODAY}, checkpoint signed" in text
    assert (
        f"edge-b: records 1..2 retired by retention on {TODAY}, checkpoint signed; fully retired"
        in text
    )
    assert "removed" not in text and CANARY not in text
    # a second run finds nothing more to retire, and the chain still verifies
    again = plan(lake, storage_options=maint)
    assert again.audit == [] and again.audit_kept == []
    # edge-b's writer comes back: it re-writes its open segment whole (records 1..3); records up
    # to the checkpoint are skipped, the checkpoint's record keeps its hash
    b.record("window_written", f"edge-b/{CANARY}")
    b.flush()
    heads[1] = ChainHead("edge-b", 3, b.last_hash)
    v = verify(lake, public_key=PUB, storage_options=reader, expect=heads)
    assert v.ok, str(v)
    assert v.actors["edge-b"].first_seq == 3 and v.actors["edge-b"].records == 1


def test_a_deletion_not_covered_by_a_checkpoint_is_still_detected(s3_server, s3_prefix, signed_log):
    lake, a, _b = signed_log
    admin = s3_server.boto3_client("admin")
    maint = s3_server.storage_options("maintenance", prefix=s3_prefix)
    # edge-a writes on: records 9..12, so segment 7 is full and segment 10 follows
    for _ in range(4):
        a.record("window_written", f"edge-a/{CANARY}")
        a.flush()
    apply(lake, plan(lake, storage_options=maint), storage_options=maint)
    reader = s3_server.storage_options("reader", prefix=s3_prefix)
    head = [ChainHead("edge-a", 12, a.last_hash)]
    assert verify(lake, public_key=PUB, storage_options=reader, expect=head).ok

    def problems() -> str:
        v = verify(lake, public_key=PUB, storage_options=reader, expect=head)
        assert not v.ok
        assert CANARY not in str(v)
        return "\n".join(v.problems)

    seg7 = f"{s3_prefix}/audit/edge-a/segment-000000000007.jsonl"
    body7 = admin.get_object(Bucket=BUCKET, Key=seg7)["Body"].read()
    admin.delete_object(Bucket=BUCKET, Key=seg7)  # the first segment after the checkpoint
    assert "record(s) 7..9 were removed" in problems()
    admin.put_object(Bucket=BUCKET, Key=seg7, Body=body7)
    cp = f"{s3_prefix}/audit/edge-a/checkpoint-000000000006.json"
    cp_body = admin.get_object(Bucket=BUCKET, Key=cp)["Body"].read()
    admin.delete_object(Bucket=BUCKET, Key=cp)  # the checkpoint itself
    assert "record(s) 1..6 were removed" in problems()
    forged = json.loads(cp_body)  # a checkpoint claiming more than its seal signs
    forged["last_seq"], forged["hash"] = 9, a.last_hash
    admin.put_object(Bucket=BUCKET, Key=cp.replace("06.json", "09.json"), Body=json.dumps(forged))
    assert "checkpoint's seal is for another actor, record or hash" in problems()
    admin.delete_object(Bucket=BUCKET, Key=cp.replace("06.json", "09.json"))
    resealed = json.loads(cp_body)  # the seal altered to match: its signature fails
    resealed["seal"]["last_seq"] = resealed["last_seq"] = 9
    resealed["seal"]["seal"] = resealed["hash"] = a.last_hash
    admin.put_object(Bucket=BUCKET, Key=cp.replace("06.json", "09.json"), Body=json.dumps(resealed))
    assert "checkpoint's seal signature does not verify" in problems()
    # a holder of the bucket (no key) turns the genuine seal of the recent segment 7..9 into a
    # checkpoint and deletes records 1..9: the seal is signed, but younger than the retention
    seal7 = json.loads(body7.decode().splitlines()[-1])
    early = {**json.loads(cp_body), "last_seq": 9, "hash": seal7["seal"], "time": seal7["time"],
             "seal": seal7}  # fmt: skip
    cp9 = cp.replace("06.json", "09.json")
    admin.put_object(Bucket=BUCKET, Key=cp9, Body=json.dumps(early))
    admin.delete_object(Bucket=BUCKET, Key=seg7)
    assert "younger than the audit retention of 365 days: deleted before their time" in problems()
    admin.put_object(Bucket=BUCKET, Key=seg7, Body=body7)
    admin.delete_object(Bucket=BUCKET, Key=cp9)
    admin.put_object(Bucket=BUCKET, Key=cp, Body=cp_body)
    assert verify(lake, public_key=PUB, storage_options=reader, expect=head).ok


def test_retention_apply_cli_retires_audit_and_verify_cli_says_so(
    s3_server, s3_prefix, signed_log, tmp_path
):
    lake, a, _b = signed_log
    maint = s3_server.storage_options("maintenance", prefix=s3_prefix)
    reader = s3_server.storage_options("reader", prefix=s3_prefix)
    pub, priv = tmp_path / "pub.pem", tmp_path / "priv.pem"
    pub.write_bytes(PUB.public_bytes(serialization.Encoding.PEM,
                                     serialization.PublicFormat.SubjectPublicKeyInfo))  # fmt: skip
    priv.write_bytes(KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))  # fmt: skip
    r = _cli("retention", "apply", "--lake", lake, "--state-dir", str(tmp_path / "m"),
             "--audit-signing-key", str(priv), *_opts_flags(maint))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "audit/edge-a: records 1..6 in 2 segment(s) past retention" in r.stdout
    assert "deleted 3 object(s) (3 audit segment(s) behind 2 checkpoint(s))" in r.stdout
    head = tmp_path / "head.json"
    head.write_text(json.dumps({"actor": "edge-a", "seq": 8, "hash": a.last_hash}))
    v = _cli("audit", "verify", lake, "--public-key", str(pub), "--head", str(head),
             "--expect-actor", "edge-b:2", "--expect-actor", "maintenance", *_opts_flags(reader))  # fmt: skip
    assert v.returncode == 0, v.stdout + v.stderr
    assert "records 1..6 retired by retention on" in v.stdout
    assert "edge-b: records 1..2 retired by retention on" in v.stdout
    assert "Traceback" not in v.stderr and CANARY not in v.stdout + v.stderr


def test_a_reference_is_kept_while_a_kept_window_names_it(s3_server, s3_prefix, capsys):
    lake = f"s3://{BUCKET}/{s3_prefix}"
    edge = s3_server.storage_options("edge", prefix=s3_prefix)
    w = LakeWriter(lake, collector_id="edge-1", storage_options=edge, day_rollups=False)
    built = datetime.now(UTC) - timedelta(days=187)

    in_use_ref = build_reference(pl.DataFrame({"age": [1.0, 2.0, 3.0] * 4}), model="risk",
                                 k=1, created_at=built)  # fmt: skip
    unused_ref = build_reference(pl.DataFrame({"age": [7.0, 8.0, 9.0] * 4}), model="risk",
                                 k=1, created_at=built)  # fmt: skip
    assert in_use_ref.reference_id != unused_ref.reference_id
    in_use = w.write_reference("risk", in_use_ref)
    unused = w.write_reference("risk", unused_ref)
    other = w.write_reference("other", in_use_ref)
    recent = datetime.now(UTC) - timedelta(days=10)
    old = datetime.now(UTC) - timedelta(days=120)
    rid = in_use_ref.reference_id
    for model, at in (("risk", recent), ("other", old)):
        drift = pa.table({"window_start": [at], "window_end": [at + timedelta(minutes=5)],
                          "collector_id": ["edge-1"], "reference_id": [rid], "feature": ["age"],
                          "method": ["psi"], "value": [0.1]})  # fmt: skip
        w.write_table("drift", model, drift, at, at + timedelta(minutes=5))
    maint = s3_server.storage_options("maintenance", prefix=s3_prefix)
    p = plan(lake, storage_options=maint)
    key = f"{BUCKET}/{s3_prefix}/"
    # risk's windows of 10 days ago name ref-in-use: it stays; model "other" has no kept window
    assert p.in_use == [key + in_use.path.removeprefix(key)]
    assert key + unused.path.removeprefix(key) in p.objects
    assert key + other.path.removeprefix(key) in p.objects
    assert apply(lake, p, storage_options=maint)["ok"]
    left = _keys(s3_server.boto3_client("admin"), s3_prefix)
    assert in_use.path.removeprefix(key) in left
    assert unused.path.removeprefix(key) not in left and other.path.removeprefix(key) not in left
    kept = in_use.path.removeprefix(key)
    r = _main(capsys, "retention", "plan", "--lake", lake, *_opts_flags(maint))
    assert r.returncode == 0 and f"IN USE {key}{kept}" in r.stdout
    # once the windows naming it are past retention too, the reference goes with them
    r = _main(capsys, "retention", "plan", "--lake", lake, "--days", "drift=5", *_opts_flags(maint))
    assert r.returncode == 0 and "IN USE" not in r.stdout
    assert (
        "2 partition(s), 2 object(s)" in r.stdout and f"{key}{kept}".rsplit("/", 1)[0] in r.stdout
    )


def _check_aws_shape(conf: dict[str, Any]) -> None:
    """The documented shape of a PutBucketLifecycleConfiguration rule (AWS SDK reference,
    https://boto3.amazonaws.com/v1/documentation/api/1.26.98/reference/services/s3/bucketlifecycleconfiguration/rules.html):
    ``ID`` "cannot be longer than 255 characters", ``Expiration.Days`` "must be a non-zero
    positive integer", the prefix under ``Filter`` (the rule-level ``Prefix`` "is no longer
    used"), ``Status`` Enabled; keys relative to the bucket (no leading '/'); IDs unique; at
    most 1,000 rules a bucket (Amazon S3 User Guide)."""
    rules = conf["Rules"]
    assert 0 < len(rules) <= 1000
    assert len({r["ID"] for r in rules}) == len(rules)
    for r in rules:
        assert set(r) == {"ID", "Filter", "Status", "Expiration"}
        assert len(r["ID"]) <= 255 and r["Status"] == "Enabled"
        assert set(r["Filter"]) == {"Prefix"} and not r["Filter"]["Prefix"].startswith("/")
        assert r["Filter"]["Prefix"].endswith("/")
        days = r["Expiration"]["Days"]
        assert isinstance(days, int) and not isinstance(days, bool) and days >= 1


@pytest.mark.parametrize(
    ("lake", "prefix"),
    [
        (f"s3://{BUCKET}", ""),
        (f"s3://{BUCKET}/", ""),
        (f"s3://{BUCKET}/hospital/lake", "hospital/lake/"),
    ],
)
def test_lifecycle_rules_are_right_at_the_bucket_root_and_below_and_never_touch_audit(
    s3_server, lake, prefix, capsys
):
    r = _main(capsys, "retention", "lifecycle", "--lake", lake, "--days", "profiles=30")
    assert r.returncode == 0, r.stderr
    conf = json.loads(r.stdout)
    _check_aws_shape(conf)
    rules = {x["ID"]: x for x in conf["Rules"]}
    assert rules["mlmon-profiles"]["Filter"]["Prefix"] == f"{prefix}v1/profiles/"
    assert rules["mlmon-profiles"]["Expiration"]["Days"] == 30
    assert rules["mlmon-drift-rollups"]["Filter"]["Prefix"] == f"{prefix}v1/rollups/drift/"
    assert all(x["Filter"]["Prefix"].startswith(f"{prefix}v1/") for x in conf["Rules"])
    assert BUCKET not in r.stdout  # the bucket name is never taken for a prefix
    # nothing that only `retention apply` may retire: the audit log, a reference (maybe in use)
    for kept in (f"{prefix}audit/edge-1/segment-000000000001.jsonl",
                 f"{prefix}v1/references/model=m/date=2026-01-01/r.parquet",
                 f"{prefix}v1/rollups/references/model=m/date=2026-01-01/day-e.parquet"):  # fmt: skip
        assert not any(kept.startswith(x["Filter"]["Prefix"]) for x in conf["Rules"]), kept
    admin = s3_server.boto3_client("admin")
    admin.put_bucket_lifecycle_configuration(Bucket=BUCKET, LifecycleConfiguration=conf)
    back = admin.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]
    assert {x["ID"]: x["Filter"]["Prefix"] for x in back} == {
        x["ID"]: x["Filter"]["Prefix"] for x in conf["Rules"]}  # fmt: skip


@pytest.mark.parametrize(
    ("flag", "named"),
    [
        ("audit=0", "'audit'"),
        ("profiles=-5", "'profiles'"),
        ("drift=1.5", "'drift'"),
        ("golden=ninety", "'golden'"),
        ("profile=30", "no table 'profile'"),
        ("=30", "is not TABLE=DAYS"),
        ("alerts", "is not TABLE=DAYS"),
    ],
)
def test_nonsense_days_are_refused_naming_the_table(tmp_path, flag, named, capsys):
    for sub in ("plan", "apply", "lifecycle"):
        lake = f"s3://{BUCKET}/lake" if sub == "lifecycle" else str(tmp_path / "lake")
        r = _main(
            capsys, "retention", sub, "--lake", lake, "--days", flag, "--state-dir", str(tmp_path)
        )
        assert r.returncode == 2, (sub, r.stdout, r.stderr)
        assert named in r.stderr and "Traceback" not in r.stderr
        assert '"Days"' not in r.stdout and not (tmp_path / "lake").exists()


def test_lifecycle_refuses_an_audit_rule_and_a_lake_that_is_not_on_s3(tmp_path, capsys):
    for table in ("audit", "references"):
        r = _main(capsys, "retention", "lifecycle", "--lake", f"s3://{BUCKET}/lake", "--days",
                  f"{table}=30")  # fmt: skip
        assert r.returncode == 2 and f"no lifecycle rule for '{table}'" in r.stderr
        assert f"retention apply --days {table}=N" in r.stderr and not r.stdout
    r = _main(capsys, "retention", "lifecycle", "--lake", str(tmp_path))
    assert r.returncode == 2 and "not an S3 lake" in r.stderr
    assert lifecycle_configuration("") == lifecycle_configuration("/")


def _deny_delete_user(
    s3_server, prefix: str, denied: list[str], no_put: str | None = None
) -> dict[str, str]:
    """The maintenance policy for ``prefix`` plus an explicit Deny of DeleteObject on some keys
    (a legal hold), and of PutObject on ``no_put``, made through the admin user's IAM client."""
    doc = json.loads(policy("maintenance", prefix))
    doc["Statement"].append({"Sid": "LegalHold", "Effect": "Deny", "Action": ["s3:DeleteObject"],
                             "Resource": [f"arn:aws:s3:::{BUCKET}/{k}" for k in denied]})  # fmt: skip
    if no_put:
        doc["Statement"].append({"Sid": "NoPut", "Effect": "Deny", "Action": ["s3:PutObject"],
                                 "Resource": f"arn:aws:s3:::{BUCKET}/{no_put}"})  # fmt: skip
    iam = boto3.client("iam", endpoint_url=s3_server.endpoint_url, region_name=REGION,
                       aws_access_key_id=s3_server.creds["admin"][0],
                       aws_secret_access_key=s3_server.creds["admin"][1])  # fmt: skip
    name = "hold-" + hashlib.sha256(f"{prefix}{no_put}".encode()).hexdigest()[:12]
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=moto_policy(json.dumps(doc)))
    ak = iam.create_access_key(UserName=name)["AccessKey"]
    return {"key": ak["AccessKeyId"], "secret": ak["SecretAccessKey"],
            "endpoint_url": s3_server.endpoint_url}  # fmt: skip


def _old_partitions(admin: Any, prefix: str) -> list[str]:
    day = (TODAY - timedelta(days=200)).isoformat()
    keys = [f"{prefix}/v1/{t}/model=m/date={day}/w-{i}.parquet"
            for t in ("profiles", "golden") for i in range(2)]  # fmt: skip
    for k in keys:
        admin.put_object(Bucket=BUCKET, Key=k, Body=CANARY.encode())
    return keys


@pytest.mark.parametrize("role", ["edge", "reader", "maintenance"])
def test_every_shipped_role_gets_an_exit_code_and_a_message_never_a_traceback(
    s3_server, s3_prefix, tmp_path, role, capsys
):
    admin = s3_server.boto3_client("admin")
    keys = _old_partitions(admin, s3_prefix)
    lake = f"s3://{BUCKET}/{s3_prefix}"
    flags = _opts_flags(s3_server.storage_options(role, prefix=s3_prefix))
    planned = _main(capsys, "retention", "plan", "--lake", lake, *flags)
    applied = _main(
        capsys, "retention", "apply", "--lake", lake, "--state-dir", str(tmp_path), *flags
    )
    for r in (planned, applied):
        assert "Traceback" not in r.stderr and CANARY not in r.stdout + r.stderr
    left = _keys(admin, s3_prefix)
    if role == "edge":  # may not list: exit 3, naming what it could not list
        assert planned.returncode == 3 and applied.returncode == 3
        assert "access denied" in applied.stderr and "maintenance role" in applied.stderr
        assert all(k.removeprefix(f"{s3_prefix}/") in left for k in keys)
    elif role == "reader":  # lists, may not write audit: deletes nothing, exit 3
        assert planned.returncode == 0 and "2 partition(s), 4 object(s)" in planned.stdout
        assert applied.returncode == 3 and "nothing was deleted" in applied.stderr
        assert all(k.removeprefix(f"{s3_prefix}/") in left for k in keys)
    else:
        assert planned.returncode == 0 and applied.returncode == 0, applied.stderr
        assert not any(k.removeprefix(f"{s3_prefix}/") in left for k in keys)


def test_refused_deletes_are_each_named_before_any_other_failure(
    s3_server, s3_prefix, tmp_path, capsys
):
    admin = s3_server.boto3_client("admin")
    keys = _old_partitions(admin, s3_prefix)
    held = [keys[0], keys[3]]
    creds = _deny_delete_user(s3_server, s3_prefix, held)
    lake = f"s3://{BUCKET}/{s3_prefix}"
    r = _main(
        capsys,
        "retention",
        "apply",
        "--lake",
        lake,
        "--state-dir",
        str(tmp_path),
        *_opts_flags(creds),
    )
    assert r.returncode == 1, r.stderr
    lines = r.stderr.splitlines()
    refused = [ln for ln in lines if ln.strip().startswith("REFUSED")]
    assert sorted(ln.split()[1] for ln in refused) == sorted(f"{BUCKET}/{k}" for k in held)
    assert lines[: len(refused)] == refused  # named first, before any other line
    assert "2 key(s) refused" in lines[-1] and "Traceback" not in r.stderr
    assert CANARY not in r.stdout + r.stderr
    left = _keys(admin, s3_prefix)
    assert sorted(k for k in keys if k.removeprefix(f"{s3_prefix}/") in left) == sorted(held)
    seg = next(k for k in left if k.startswith("audit/maintenance/"))
    body = admin.get_object(Bucket=BUCKET, Key=f"{s3_prefix}/{seg}")["Body"].read().decode()
    assert '"action": "retention_started"' in body and '"refused": 2' in body
    _ = date


def test_an_unreadable_kept_window_keeps_the_models_references(tmp_path, capsys):
    """What a corrupt (or vanished) window names is unknown: its model's references stay,
    the object is named, and nothing raises."""
    lake = tmp_path / "lake"
    w = LakeWriter(str(lake), collector_id="edge-1", day_rollups=False)
    built = datetime.now(UTC) - timedelta(days=187)
    ref = build_reference(pl.DataFrame({"age": [1.0, 2.0, 3.0] * 4}), model="risk", k=1,
                          created_at=built)  # fmt: skip
    kept_ref = w.write_reference("risk", ref).path
    at = datetime.now(UTC) - timedelta(days=3)
    window = lake / "v1" / "drift" / "model=risk" / f"date={at.date()}" / "w-edge-1.parquet"
    window.parent.mkdir(parents=True)
    window.write_bytes(b"PAR1 not parquet " + CANARY.encode())
    p = plan(str(lake))
    assert p.in_use == [kept_ref] and str(window) in p.unreadable and p.objects == []
    r = _main(capsys, "retention", "apply", "--lake", str(lake), "--state-dir", str(tmp_path / "s"))
    assert r.returncode == 0, r.stderr
    assert f"UNREADABLE {window}" in r.stdout and f"IN USE {kept_ref}" in r.stdout
    assert Path(kept_ref).exists() and CANARY not in r.stdout + r.stderr


def test_refused_keys_come_before_a_failed_closing_audit_record(
    s3_server, s3_prefix, tmp_path, capsys
):
    """The closing ``retention_applied`` record cannot be written (its segment's key is
    denied: the opening record filled segment 1, so the closing one starts segment 501):
    the refused keys are still named first, then the audit failure, exit 3."""
    admin = s3_server.boto3_client("admin")
    keys = _old_partitions(admin, s3_prefix)
    state = tmp_path / "m"
    filler = AuditLog(str(tmp_path / "elsewhere"), state, "maintenance", echo=False)
    for _ in range(499):  # kept on the volume: the next record fills the segment and flushes it
        filler.record("noted", "filler")
    assert filler.seq == 499 and not (tmp_path / "elsewhere").exists()
    creds = _deny_delete_user(s3_server, s3_prefix, [keys[1]],
                              no_put=f"{s3_prefix}/audit/maintenance/segment-000000000501.jsonl")  # fmt: skip
    lake = f"s3://{BUCKET}/{s3_prefix}"
    r = _main(capsys, "retention", "apply", "--lake", lake, "--state-dir", str(state),
              *_opts_flags(creds))  # fmt: skip
    assert r.returncode == 3, r.stderr
    lines = r.stderr.splitlines()
    assert lines[0].split()[:2] == ["REFUSED", f"{BUCKET}/{keys[1]}"]
    assert "retention_applied audit record" in lines[1] and "refused PUT" in lines[1]
    assert "deleted 3 object(s)" in r.stdout and CANARY not in r.stdout + r.stderr
    seg1 = admin.get_object(
        Bucket=BUCKET, Key=f"{s3_prefix}/audit/maintenance/segment-000000000001.jsonl"
    )
    assert '"action": "retention_started"' in seg1["Body"].read().decode()


def test_a_malformed_checkpoint_is_named_never_a_traceback(tmp_path, capsys):
    """A checkpoint file that is not one (garbage, a list, a malformed seal or time, a name
    that is not its record) is a problem naming the file; retention retires nothing there."""
    lake = tmp_path / "lake"
    log = AuditLog(str(lake), tmp_path / "w", "edge-a", signing_key=KEY, segment_size=2, echo=False)
    for _ in range(3):
        log.record("window_written", CANARY)
        log.flush()
    folder = lake / "audit" / "edge-a"
    good = {"actor": "edge-a", "last_seq": 1, "hash": "a" * 64, "time": None, "retired_on": "x"}
    for body in (b"\x00garbage " + CANARY.encode(), b"[1, 2]", json.dumps({**good, "seal": "x"}),
                 json.dumps({**good, "time": 5}), json.dumps({**good, "last_seq": 2}),
                 json.dumps({**good, "seal": {"seal_version": "two"}})):  # fmt: skip
        cp = folder / "checkpoint-000000000001.json"
        cp.write_bytes(body if isinstance(body, bytes) else body.encode())
        v = verify(str(lake), public_key=PUB, expect=[ChainHead("edge-a", 3)])
        assert not v.ok and v.problems[0].startswith("edge-a/checkpoint-000000000001.json: ")
        assert CANARY not in str(v)
        p = plan(str(lake), days={"audit": 1}, today=TODAY + timedelta(days=5))
        assert p.audit == [] and p.audit_kept[0].startswith("edge-a/checkpoint-000000000001.json")
        r = _main(capsys, "audit", "verify", str(lake), "--expect-actor", "edge-a")
        assert r.returncode == 1 and "checkpoint-000000000001.json" in r.stdout
        cp.unlink()
