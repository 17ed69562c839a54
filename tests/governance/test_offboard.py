"""Off-boarding purges on a local folder and on the moto S3 server, with signed attestations.

The S3 tests use the shipped ``maintenance`` policy (list + get + delete) scoped to the
test's prefix; the delete-denied case adds one explicit ``Deny s3:DeleteObject`` on one
key to that policy, made through the admin user's IAM client.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pypdf import PdfReader

from mlmon.errors import ConfigError
from mlmon.governance.attest import (
    ManifestEntry,
    Refusal,
    build_body,
    sign,
    verify_attestation,
)
from mlmon.governance.audit import AuditLog
from mlmon.governance.audit import verify as verify_audit
from mlmon.governance.offboard import list_scopes, offboard
from mlmon.reports.attestation import render_attestation_pdf
from tests.s3server import BUCKET, REGION, moto_policy, policy

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def key_files(tmp_path: Path, key: Ed25519PrivateKey) -> tuple[Path, Path]:
    priv, pub = tmp_path / "offboard-key.pem", tmp_path / "offboard-pub.pem"
    priv.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))  # fmt: skip
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))  # fmt: skip
    return priv, pub


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlmon.cli", *args], capture_output=True, text=True, timeout=180,
        stdin=subprocess.DEVNULL, cwd=ROOT, env={**os.environ, **(env or {})},
    )  # fmt: skip


def _tree(root: Path) -> dict[str, bytes]:
    files = {
        "reports/model=risk/2026-10.pdf": b"%PDF report" * 100,
        "reports/model=risk/2026-11.html": b"<html>report</html>",
        "cache/profiles/date=2026-11-01/p.parquet": os.urandom(5000),
        "extracts/export.csv": b"a,b\n1,2\n",
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


# -- local folder -------------------------------------------------------------------------------


def test_local_clean_purge_deletes_everything_and_attests_it(tmp_path, key):
    scope = tmp_path / "vendor"
    files = _tree(scope)
    sibling = tmp_path / "vendor-keep" / "x.txt"
    sibling.parent.mkdir()
    sibling.write_bytes(b"not in scope")
    audit = AuditLog(tmp_path / "audit-lake", tmp_path / "state", "maintenance", echo=False)
    att = offboard([scope.as_uri()], None, "J. Doe", signing_key=key, audit=audit)

    b = att.body
    assert att.complete and b["relist_after"] == {"objects": 0, "keys": [], "errors": [],
                                                  "empty": True}  # fmt: skip
    assert b["listed_before"] == {"objects": 4, "bytes": sum(map(len, files.values()))}
    assert b["deleted"] == b["listed_before"] and b["refused"] == []
    expected = sorted(
        (str(scope / rel), len(data), hashlib.sha256(data).hexdigest())
        for rel, data in files.items()
    )
    assert [(e["key"], e["size"], e["sha256"]) for e in b["manifest"]] == expected
    assert list(scope.rglob("*")) == []  # files and their (data-bearing) folder names
    assert scope.is_dir() and sibling.read_bytes() == b"not in scope"
    assert b["operator"] == "J. Doe" and b["scopes"] == [scope.as_uri()]
    assert b["started_at"] <= b["finished_at"]
    check = verify_attestation(att.write(tmp_path / "out" / "att.json"))
    assert check.ok and check.complete, check.problems
    assert verify_audit(tmp_path / "audit-lake").ok
    seg = next((tmp_path / "audit-lake" / "audit" / "maintenance").iterdir()).read_text()
    rec = json.loads(seg.splitlines()[0])
    assert rec["action"] == "purge_executed" and rec["outcome"] == "ok"
    assert rec["details"]["deleted"] == 4 and rec["details"]["refused"] == 0
    assert "export.csv" not in seg  # counts, never the keys


def test_objects_written_during_the_purge_make_it_not_complete(tmp_path, key):
    """A writer still running: it re-creates a deleted report and adds a new one."""
    scope = tmp_path / "vendor"
    _tree(scope)
    recreated = scope / "extracts" / "export.csv"
    late = scope / "reports" / "late.pdf"

    def writer(url: str) -> None:
        if url == str(recreated):
            recreated.write_bytes(b"written again by a job that was not stopped")
            late.write_bytes(b"new")

    att = offboard([str(scope)], None, "op", signing_key=key, progress=writer)
    b = att.body
    assert not att.complete and b["outcome"].startswith("NOT complete")
    assert sorted(b["relist_after"]["keys"]) == sorted([str(recreated), str(late)])
    assert [r["key"] for r in b["refused"]] == [str(recreated)]
    assert b["refused"][0]["reason"] == "still listed after its delete was answered as success"
    assert str(recreated) not in {e["key"] for e in b["manifest"]}  # only what is really gone
    assert b["deleted"]["objects"] == 3 and b["listed_before"]["objects"] == 4
    assert verify_attestation(att.write(tmp_path / "att.json")).ok


def test_empty_or_missing_scope_is_refused_unless_allowed(tmp_path, key):
    with pytest.raises(
        ConfigError, match=r"holds no objects: is the URI right\? Pass --allow-empty"
    ):
        list_scopes([(tmp_path / "typo").as_uri()])
    att = offboard([str(tmp_path / "typo")], None, "op", signing_key=key, allow_empty=True)
    assert att.complete and att.body["deleted"]["objects"] == 0
    with pytest.raises(ConfigError, match="refusing to purge a whole filesystem"):
        list_scopes(["file:///"])
    with pytest.raises(ConfigError, match="no operator given"):
        offboard([str(tmp_path)], None, " ", signing_key=key)


def test_cli_local_refuses_without_yes_then_purges_and_verifies(tmp_path, key_files):
    priv, pub = key_files
    scope = tmp_path / "vendor"
    _tree(scope)
    out = tmp_path / "out"
    args = ["offboard", "--scope", str(scope), "--signing-key", str(priv), "--operator", "J. Doe",
            "--out", str(out), "--state-dir", str(tmp_path / "st")]  # fmt: skip
    refused = _cli(*args)
    assert refused.returncode == 2 and "pass --yes" in refused.stderr
    assert "4 object(s)" in refused.stdout and len(list(scope.rglob("*.*"))) == 4
    inside = _cli(*args[:-4], "--out", str(scope / "att"), "--yes")
    assert inside.returncode == 2 and "is inside --scope" in inside.stderr
    done = _cli(*args, "--yes")
    assert done.returncode == 0, done.stderr
    assert "outcome: complete" in done.stdout and list(scope.rglob("*")) == []
    [att] = out.glob("attestation-*.json")
    assert att.with_suffix(".pdf").is_file()
    check = _cli("attest", "verify", str(att), "--public-key", str(pub))
    assert check.returncode == 0 and "signed by the given public key" in check.stdout


# -- S3 (moto server, IAM enforced) -------------------------------------------------------------


def _put_s3_tree(s3_server, prefix: str) -> dict[str, bytes]:
    admin = s3_server.boto3_client("admin")
    objects = {
        f"{prefix}/reports/model=risk/2026-10.pdf": b"%PDF" * 300,
        f"{prefix}/reports/model=risk/2026-11.pdf": b"%PDF-1.7 second",
        f"{prefix}/reports/nested/deep/x.json": b"{}",
        f"{prefix}/reports-old/keep.pdf": b"sibling prefix: not in scope",
        f"{prefix}/v1/profiles/model=risk/date=2026-11-01/p.parquet": b"lake: not in scope",
    }
    for k, body in objects.items():
        admin.put_object(Bucket=BUCKET, Key=k, Body=body)
    return objects


def _keys(s3_server, prefix: str) -> set[str]:
    admin = s3_server.boto3_client("admin")
    return {
        o["Key"] for o in admin.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    }


def test_s3_clean_purge_with_the_maintenance_role(s3_server, s3_prefix, key, tmp_path):
    objects = _put_s3_tree(s3_server, s3_prefix)
    opts = s3_server.storage_options("maintenance", prefix=s3_prefix)
    scope = f"s3://{BUCKET}/{s3_prefix}/reports"
    audit = AuditLog(f"s3://{BUCKET}/{s3_prefix}", tmp_path / "state", "maintenance",
                     storage_options=opts, echo=False)  # fmt: skip
    att = offboard([scope], opts, "ops@vendor", signing_key=key, audit=audit)

    assert att.complete, att.body["outcome"]
    in_scope = {k: v for k, v in objects.items() if k.startswith(f"{s3_prefix}/reports/")}
    assert [(e["key"], e["size"], e["sha256"]) for e in att.body["manifest"]] == sorted(
        (f"s3://{BUCKET}/{k}", len(v), hashlib.sha256(v).hexdigest()) for k, v in in_scope.items()
    )
    left = _keys(s3_server, s3_prefix)
    assert not any(k.startswith(f"{s3_prefix}/reports/") for k in left)
    assert {f"{s3_prefix}/reports-old/keep.pdf",
            f"{s3_prefix}/v1/profiles/model=risk/date=2026-11-01/p.parquet"} <= left  # fmt: skip
    assert any(k.startswith(f"{s3_prefix}/audit/maintenance/segment-") for k in left)
    assert att.body["relist_after"]["empty"] is True
    assert verify_attestation(att.write(tmp_path / "att.json")).ok
    assert verify_audit(f"s3://{BUCKET}/{s3_prefix}", storage_options=opts).ok


def _lake_objects(prefix: str) -> dict[str, bytes]:
    """A whole lake: tables, rollups, audit segments, samples, reports."""
    base = f"{prefix}/" if prefix else ""
    return {
        f"{base}v1/profiles/model=risk/date=2026-11-01/w-0000.parquet": os.urandom(3000),
        f"{base}v1/metrics/model=risk/date=2026-11-01/w-0000.parquet": os.urandom(1000),
        f"{base}v1/rollups/model=risk/day=2026-11-01.parquet": b"rollup",
        f"{base}v1/samples/model=risk/date=2026-11-01/s.parquet": b"samples",
        f"{base}audit/edge/segment-000001.jsonl": b'{"action": "window_written"}\n',
        f"{base}reports/model=risk/2026-11.pdf": b"%PDF" * 50,
        f"{base}exports/patient-0042/": b"",  # a folder marker: its name carries data too
    }


def _iam_user(s3_server, name: str, document: str) -> dict[str, str]:
    iam = boto3.client("iam", endpoint_url=s3_server.endpoint_url, region_name=REGION,
                       aws_access_key_id=s3_server.creds["admin"][0],
                       aws_secret_access_key=s3_server.creds["admin"][1])  # fmt: skip
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=moto_policy(document))
    ak = iam.create_access_key(UserName=name)["AccessKey"]
    return {"key": ak["AccessKeyId"], "secret": ak["SecretAccessKey"]}


def _offboard_cli(s3_server, scope: str, creds: dict[str, str], key_files, tmp_path: Path,
                  *extra: str) -> subprocess.CompletedProcess[str]:  # fmt: skip
    priv, _ = key_files
    return _cli(
        "offboard", "--scope", scope, "--signing-key", str(priv), "--operator", "ops@vendor",
        "--out", str(tmp_path / "out"), "--state-dir", str(tmp_path / "st"), "--yes", "--no-pdf",
        "--storage-option", f"key={creds['key']}", "--storage-option", f"secret={creds['secret']}",
        "--storage-option", f"endpoint_url={s3_server.endpoint_url}", *extra,
        env={"AWS_DEFAULT_REGION": REGION},
    )  # fmt: skip


def _assert_whole_lake_purged(r, bucket_keys_after: set[str], objects, key_files, tmp_path):
    assert r.returncode == 0, r.stdout + r.stderr
    assert "outcome: complete" in r.stdout and "RE-LIST FAILED" not in r.stderr
    assert bucket_keys_after == set()  # a fresh listing by the admin user: nothing left
    [path] = (tmp_path / "out").glob("attestation-*.json")
    b = json.loads(path.read_text())["attestation"]
    assert b["deleted"]["objects"] == len(objects) == b["listed_before"]["objects"]
    assert b["relist_after"] == {"objects": 0, "keys": [], "errors": [], "empty": True}
    v = _cli("attest", "verify", str(path), "--public-key", str(key_files[1]))
    assert v.returncode == 0 and "the purge it attests was complete" in v.stdout


def test_s3_whole_lake_at_a_prefix_purged_with_exactly_the_maintenance_policy(
    s3_server, s3_prefix, key_files, tmp_path
):
    """Before: every object deleted, then the re-list HEADed the prefix key itself (not
    granted by the policy): "NOT complete", exit 1."""
    admin = s3_server.boto3_client("admin")
    objects = _lake_objects(s3_prefix)
    for k, body in objects.items():
        admin.put_object(Bucket=BUCKET, Key=k, Body=body)
    sibling = f"{s3_prefix}-other/keep.parquet"  # shares the prefix's first characters
    admin.put_object(Bucket=BUCKET, Key=sibling, Body=b"not in the lake")
    name = "maint-" + hashlib.sha256(s3_prefix.encode()).hexdigest()[:12]
    creds = _iam_user(s3_server, name, policy("maintenance", s3_prefix))  # as shipped
    r = _offboard_cli(s3_server, f"s3://{BUCKET}/{s3_prefix}", creds, key_files, tmp_path)
    _assert_whole_lake_purged(r, _keys(s3_server, f"{s3_prefix}/"), objects, key_files, tmp_path)
    assert _keys(s3_server, sibling) == {sibling}
    # a re-run says the scope is empty (it no longer fails to list it), and lists it if asked
    opts = {"key": creds["key"], "secret": creds["secret"], "endpoint_url": s3_server.endpoint_url,
            "client_kwargs": {"region_name": REGION}}  # fmt: skip
    with pytest.raises(ConfigError, match="holds no objects"):
        list_scopes([f"s3://{BUCKET}/{s3_prefix}"], opts)
    assert list_scopes([f"s3://{BUCKET}/{s3_prefix}"], opts, allow_empty=True).objects == 0


def test_s3_whole_lake_at_the_bucket_root_purged_with_exactly_the_maintenance_policy(
    s3_server, key, tmp_path
):
    """A lake at the root of its own bucket, the policy filled in as deploy/iam/README.md says."""
    admin = s3_server.boto3_client("admin")
    bucket = "mlmon-root-" + os.urandom(4).hex()
    admin.create_bucket(Bucket=bucket)
    objects = _lake_objects("")
    for k, body in objects.items():
        admin.put_object(Bucket=bucket, Key=k, Body=body)
    doc = policy("maintenance", "", bucket=bucket)
    assert f"arn:aws:s3:::{bucket}/*" in doc and "//" not in doc.replace("arn:aws:s3:::", "")
    creds = _iam_user(s3_server, f"maint-{bucket}", doc)
    opts = {"key": creds["key"], "secret": creds["secret"], "endpoint_url": s3_server.endpoint_url,
            "client_kwargs": {"region_name": REGION}}  # fmt: skip
    att = offboard([f"s3://{bucket}"], opts, "ops@vendor", signing_key=key)
    assert att.complete, att.body["outcome"]
    assert {o["Key"] for o in admin.list_objects_v2(Bucket=bucket).get("Contents", [])} == set()
    assert att.body["deleted"]["objects"] == len(objects) == att.body["listed_before"]["objects"]
    assert att.body["relist_after"] == {"objects": 0, "keys": [], "errors": [], "empty": True}
    (tmp_path / "pub.pem").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))  # fmt: skip
    check = verify_attestation(att.write(tmp_path / "att.json"), tmp_path / "pub.pem")
    assert check.ok and check.key_pinned and check.complete
    # the same user cannot touch the shared bucket: the policy names only its own
    other = boto3.client("s3", endpoint_url=s3_server.endpoint_url, region_name=REGION,
                         aws_access_key_id=creds["key"], aws_secret_access_key=creds["secret"])  # fmt: skip
    with pytest.raises(ClientError):
        other.list_objects_v2(Bucket=BUCKET, Prefix="lake/")


def _deny_delete_user(s3_server, prefix: str, denied_key: str) -> dict[str, str]:
    """The maintenance policy for ``prefix`` plus an explicit Deny of DeleteObject on one key."""
    doc = json.loads(policy("maintenance", prefix))
    doc["Statement"].append({"Sid": "LegalHoldOnOneObject", "Effect": "Deny",
                             "Action": ["s3:DeleteObject"],
                             "Resource": f"arn:aws:s3:::{BUCKET}/{denied_key}"})  # fmt: skip
    iam = boto3.client("iam", endpoint_url=s3_server.endpoint_url, region_name=REGION,
                       aws_access_key_id=s3_server.creds["admin"][0],
                       aws_secret_access_key=s3_server.creds["admin"][1])  # fmt: skip
    name = "deny-one-" + hashlib.sha256(prefix.encode()).hexdigest()[:12]
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=moto_policy(json.dumps(doc)))
    ak = iam.create_access_key(UserName=name)["AccessKey"]
    return {"key": ak["AccessKeyId"], "secret": ak["SecretAccessKey"]}


def test_s3_purge_with_one_delete_denied_object_is_not_complete(
    s3_server, s3_prefix, key_files, tmp_path
):
    objects = _put_s3_tree(s3_server, s3_prefix)
    denied = f"{s3_prefix}/reports/model=risk/2026-11.pdf"
    creds = _deny_delete_user(s3_server, s3_prefix, denied)
    priv, pub = key_files
    out = tmp_path / "out"
    r = _cli(
        "offboard", "--scope", f"s3://{BUCKET}/{s3_prefix}/reports", "--signing-key", str(priv),
        "--operator", "ops@vendor", "--out", str(out), "--state-dir", str(tmp_path / "st"),
        "--storage-option", f"key={creds['key']}", "--storage-option", f"secret={creds['secret']}",
        "--storage-option", f"endpoint_url={s3_server.endpoint_url}", "--yes",
        env={"AWS_DEFAULT_REGION": REGION},
    )  # fmt: skip
    assert r.returncode == 1, r.stderr
    assert "outcome: NOT complete" in r.stdout
    assert f"NOT DELETED s3://{BUCKET}/{denied} (delete refused (PermissionError" in r.stderr
    left = _keys(s3_server, f"{s3_prefix}/reports/")
    assert left == {denied}  # the other objects are gone
    admin = s3_server.boto3_client("admin")
    assert admin.get_object(Bucket=BUCKET, Key=denied)["Body"].read() == objects[denied]

    [path] = out.glob("attestation-*.json")
    b = json.loads(path.read_text())["attestation"]
    assert b["complete"] is False and b["outcome"].startswith("NOT complete: 1 object(s)")
    assert [x["key"] for x in b["refused"]] == [f"s3://{BUCKET}/{denied}"]
    assert "Access Denied" in b["refused"][0]["reason"]
    assert b["refused"][0]["sha256"] == hashlib.sha256(objects[denied]).hexdigest()
    assert b["relist_after"]["keys"] == [f"s3://{BUCKET}/{denied}"]
    assert b["deleted"]["objects"] == 2 and b["listed_before"]["objects"] == 3
    # the attestation of an incomplete purge is itself valid, says it is not complete, and
    # exits 1 unless the verifier accepts a partial purge
    v = _cli("attest", "verify", str(path), "--public-key", str(pub))
    assert v.returncode == 1 and "is valid" in v.stderr and "NOT complete" in v.stderr
    v = _cli("attest", "verify", str(path), "--public-key", str(pub), "--allow-incomplete")
    assert v.returncode == 0 and "NOT complete" in v.stdout
    text = " ".join(PdfReader(path.with_suffix(".pdf")).pages[0].extract_text().split())
    assert "NOT COMPLETE" in text and "2026-11.pdf" in text


def test_s3_reader_role_deletes_nothing_and_says_so(s3_server, s3_prefix, key):
    _put_s3_tree(s3_server, s3_prefix)
    reader = s3_server.storage_options("reader", prefix=s3_prefix)
    att = offboard([f"s3://{BUCKET}/{s3_prefix}/reports"], reader, "op", signing_key=key)
    assert not att.complete and att.body["deleted"]["objects"] == 0
    assert len(att.body["refused"]) == 3 == att.body["relist_after"]["objects"]
    assert all(r["reason"].startswith("delete refused") for r in att.body["refused"])
    assert len(_keys(s3_server, f"{s3_prefix}/reports/")) == 3


# -- PDF ---------------------------------------------------------------------------------------


def _pdf_text(path: Path) -> tuple[int, str]:
    reader = PdfReader(path)
    return len(reader.pages), " ".join(reader.pages[0].extract_text().split())


def test_pdf_of_a_clean_purge_is_one_page_with_the_facts(tmp_path, key):
    scope = tmp_path / "vendor"
    _tree(scope)
    att = offboard([scope.as_uri()], None, "J. Doe", signing_key=key)
    pdf = render_attestation_pdf(att.write(tmp_path / "att.json"), tmp_path / "att.pdf")
    pages, text = _pdf_text(pdf)
    assert pages == 1
    assert scope.as_uri() in text.replace(" ", "") or str(scope) in text
    assert "COMPLETE: every object listed was deleted" in text and "NOT COMPLETE" not in text
    assert "4 object(s)" in text and "J. Doe" in text
    flat = text.replace(" ", "")
    assert att.body["manifest_sha256"] in flat
    assert att.signature["public_key_fingerprint"] in flat
    png = subprocess.run(["pdftoppm", "-png", "-r", "50", "-singlefile", str(pdf),
                          str(tmp_path / "page")], capture_output=True)  # fmt: skip
    assert png.returncode == 0 and (tmp_path / "page.png").stat().st_size > 5000


def test_pdf_stays_one_page_for_a_large_incomplete_manifest(tmp_path, key):
    long = "deep/" * 30
    entries = [ManifestEntry(f"mlmon-lake/acme/reports/{long}obj-{i:05d}.parquet", i * 10,
                             hashlib.sha256(str(i).encode()).hexdigest()) for i in range(5000)]  # fmt: skip
    refused = [Refusal(f"mlmon-lake/acme/held/{long}r-{i}.pdf", "delete refused (PermissionError: "
                       "Access Denied)") for i in range(60)]  # fmt: skip
    body = build_body(
        scopes=["s3://mlmon-lake/acme/reports", "s3://mlmon-lake/acme/held", "/var/cache/mlmon"],
        operator="ops@vendor", tool_version="0.1.0", started_at="2026-11-23T09:00:00+00:00",
        finished_at="2026-11-23T09:10:00+00:00", listed_objects=5060, listed_bytes=10**9,
        manifest=entries, refused=refused, remaining=[r.key for r in refused],
    )  # fmt: skip
    path = sign(body, key).write(tmp_path / "big.json")
    pdf = render_attestation_pdf(path, tmp_path / "big.pdf")
    pages, text = _pdf_text(pdf)
    assert pages == 1
    assert "NOT COMPLETE" in text and "5,000 object(s)" in text and "Not deleted (60)" in text
    assert "more entries" in text and "r-0.pdf" in text
    assert body["manifest_sha256"] in text.replace(" ", "")
    (tmp_path / "big.png").unlink(missing_ok=True)
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-singlefile", str(pdf), str(tmp_path / "big")],
                   check=True)  # fmt: skip
    assert (tmp_path / "big.png").is_file()
