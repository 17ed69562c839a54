"""The audit log notices what is missing, not only what was altered (issue 17, item 7).

Written by the real :class:`AuditLog` (on S3: the edge role, SSE-KMS, shipped
policy), tampered with as a holder of the bucket would (the moto admin, or the
folder itself) and verified with the reader role: deleting the newest segment,
rolling a segment back to an older sealed copy, deleting an actor's folder,
deleting the newest records of every actor and reordering two segments are each
detected and named by actor, segment and sequence numbers, never by a record's
content. An untampered log, several actors and a restarted writer verify.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mlmon.errors import GovernanceError
from mlmon.governance.audit import AuditLog, ChainHead, load_heads, read_head, verify
from tests.conftest import LakeTarget
from tests.s3server import BUCKET

CANARY = "PATIENT-CANARY-Jane-Roe-1970"
KEY = Ed25519PrivateKey.generate()
PUB = KEY.public_key()


class Bucket:
    """The audit objects as their holder sees them: read, replace, delete any key."""

    def __init__(self, target: LakeTarget, request: pytest.FixtureRequest) -> None:
        self.target = target
        if target.kind == "s3":
            self.admin = request.getfixturevalue("s3_server").boto3_client("admin")
            self.prefix = target.uri.removeprefix(f"s3://{BUCKET}/")
        else:
            self.root = Path(target.uri.removeprefix("file://"))

    def get(self, key: str) -> bytes:
        if self.target.kind == "s3":
            return self.admin.get_object(Bucket=BUCKET, Key=f"{self.prefix}/{key}")["Body"].read()
        return (self.root / key).read_bytes()

    def put(self, key: str, data: bytes) -> None:
        if self.target.kind == "s3":
            self.admin.put_object(Bucket=BUCKET, Key=f"{self.prefix}/{key}", Body=data)
        else:
            (self.root / key).write_bytes(data)

    def delete(self, key: str) -> None:
        if self.target.kind == "s3":
            self.admin.delete_object(Bucket=BUCKET, Key=f"{self.prefix}/{key}")
        else:
            (self.root / key).unlink()

    def keys(self, folder: str) -> list[str]:
        if self.target.kind == "s3":
            listed = self.admin.list_objects_v2(Bucket=BUCKET, Prefix=f"{self.prefix}/{folder}/")
            return sorted(
                o["Key"].removeprefix(f"{self.prefix}/") for o in listed.get("Contents", [])
            )
        return sorted(
            str(p.relative_to(self.root)) for p in (self.root / folder).rglob("*") if p.is_file()
        )

    def delete_folder(self, folder: str) -> None:
        for key in self.keys(folder):
            self.delete(key)


def seg(actor: str, start: int) -> str:
    return f"audit/{actor}/segment-{start:012d}.jsonl"


class Writer:
    """One actor's real audit writer; remembers every sealed copy of each segment it PUT."""

    def __init__(self, target: LakeTarget, state: Path, actor: str, bucket: Bucket, size: int = 4):
        self.args = (target, state, actor, size)
        self.bucket = bucket
        self.actor = actor
        self.copies: dict[str, list[bytes]] = {}
        self.log = self._open()

    def _open(self) -> AuditLog:
        target, state, actor, size = self.args
        return AuditLog(target.uri, state, actor, signing_key=KEY, segment_size=size,
                        echo=False, storage_options=target.write_options or None)  # fmt: skip

    def restart(self) -> None:
        self.log = self._open()

    def write(self, n: int) -> None:
        """``n`` records, each flushed (as the edge does every cycle) and its copy kept."""
        for _ in range(n):
            key = seg(self.actor, self.log.segment_start)  # where the next record goes
            self.log.record("object_written", f"v1/profiles/{CANARY}.parquet", note=CANARY)
            self.log.flush()  # (a record that fills the segment has flushed it already)
            self.copies.setdefault(key, []).append(self.bucket.get(key))

    @property
    def head(self) -> ChainHead:
        head = read_head(self.args[1], self.actor)
        assert head is not None
        return head


@pytest.fixture
def bucket(lake_target: LakeTarget, request: pytest.FixtureRequest) -> Bucket:
    return Bucket(lake_target, request)


def writer(
    lake_target: LakeTarget, tmp_path: Path, bucket: Bucket, actor: str, **kw: Any
) -> Writer:
    return Writer(lake_target, tmp_path / f"state-{actor}", actor, bucket, **kw)


def check(lake_target: LakeTarget, **kw: Any):
    """Verify with the reader role and the signing key's public half."""
    result = verify(lake_target.uri, public_key=PUB,
                    storage_options=lake_target.read_options or None, **kw)  # fmt: skip
    assert CANARY not in str(result) and all(CANARY not in p for p in result.problems)
    return result


def test_an_untampered_log_verifies_with_several_actors_and_after_a_restart(
    lake_target, tmp_path, bucket
):
    a = writer(lake_target, tmp_path, bucket, "edge-a")
    b = writer(lake_target, tmp_path, bucket, "edge-b")
    m = writer(lake_target, tmp_path, bucket, "maintenance")
    a.write(10)
    b.write(5)
    m.write(1)
    a.restart()  # a new process on the same state volume: the chain continues
    a.write(3)
    assert a.head.seq == 13 and a.log.seq == 13
    assert bucket.keys("audit/edge-a") == [seg("edge-a", s) for s in (1, 5, 9, 13)]
    heads = [a.head, b.head, m.head]
    r = check(lake_target, expect=heads, max_age=timedelta(hours=1))
    assert r.ok and r.records == 19, r
    assert {n: c.anchored_at for n, c in r.actors.items()} == {"edge-a": 13, "edge-b": 5, "maintenance": 1}  # fmt: skip
    assert "edge-a: records 1..13 in 4 segment(s)" in str(r) and "complete up to" in str(r)
    # a head taken earlier (yesterday's copy) is still a valid lower bound; with its hash
    third = json.loads(bucket.get(seg("edge-a", 1)).splitlines()[2])
    assert check(lake_target, expect=[ChainHead("edge-a", 3, third["hash"])]).ok
    forked = check(lake_target, expect=[ChainHead("edge-a", 3, "0" * 64, source="head.json")])
    assert forked.problems == [
        "edge-a: record 3 has another hash than head.json: the chain was rewritten from that "
        "record on (or the head belongs to another log)"
    ]


def test_deleting_the_newest_segment_is_detected(lake_target, tmp_path, bucket):
    a = writer(lake_target, tmp_path, bucket, "edge-a")
    a.write(10)
    head = a.head
    bucket.delete(seg("edge-a", 9))
    # the chain that is left is valid: only what the writer knows shows the loss
    assert check(lake_target, expect=[ChainHead("edge-a", 1)]).ok
    r = check(lake_target, expect=[head])
    assert not r.ok and len(r.problems) == 1
    assert r.problems[0] == (
        "edge-a: the log ends with segment-000000000005.jsonl at record 8, but the chain head "
        "in audit-head-edge-a.json says record 10: the newest segment(s) from "
        "segment-000000000009.jsonl on were deleted; records 9..10 are missing"
    )
    r = check(lake_target, expect=[ChainHead("edge-a", 10, source="--expect-actor edge-a:10")])
    assert "--expect-actor edge-a:10 says record 10" in r.problems[0]


def test_rolling_a_segment_back_to_an_older_sealed_copy_is_detected(lake_target, tmp_path, bucket):
    """The reviewer's case: 440 records gone from a 500-record segment, its older seal kept."""
    a = writer(lake_target, tmp_path, bucket, "edge-a", size=500)
    for _ in range(60):
        a.log.record("object_written", f"v1/{CANARY}", note=CANARY)
    a.log.flush()
    older = bucket.get(seg("edge-a", 1))
    for _ in range(440):  # the 500th record closes and PUTs the segment
        a.log.record("object_written", f"v1/{CANARY}", note=CANARY)
    assert a.head.seq == 500
    bucket.put(seg("edge-a", 1), older)
    assert check(lake_target, expect=[ChainHead("edge-a", 1)]).ok  # a valid, sealed chain
    r = check(lake_target, expect=[a.head])
    assert not r.ok
    p = r.problems[0]
    assert p.startswith("edge-a/segment-000000000001.jsonl ends at record 60 (sealed 20")
    assert "says record 500: the segment is older than the head: rolled back to an older copy; records 61..500 are missing" in p  # fmt: skip


def test_a_middle_segment_rolled_back_is_named_without_any_head(lake_target, tmp_path, bucket):
    a = writer(lake_target, tmp_path, bucket, "edge-a")
    a.write(10)  # segments 1..4, 5..8 (its copies: 5, 5..6, 5..7, 5..8), 9..10
    bucket.put(seg("edge-a", 5), a.copies[seg("edge-a", 5)][1])  # the copy sealed at record 6
    r = check(lake_target, expect=[ChainHead("edge-a", 1)])
    assert not r.ok
    assert r.problems[0].startswith(
        "edge-a/segment-000000000005.jsonl is older than segment-000000000009.jsonl: it was "
        "sealed open at record 6 (20"
    )
    assert r.problems[0].endswith("rolled back or reordered; records 7..8 are missing")


def test_reordering_two_segments_is_named(lake_target, tmp_path, bucket):
    a = writer(lake_target, tmp_path, bucket, "edge-a")
    a.write(10)
    first, second = bucket.get(seg("edge-a", 1)), bucket.get(seg("edge-a", 5))
    bucket.put(seg("edge-a", 1), second)
    bucket.put(seg("edge-a", 5), first)
    r = check(lake_target, expect=[a.head])
    assert r.problems == [
        "edge-a/segment-000000000001.jsonl holds records 5..8 but its name says it starts at "
        "record 1: segment-000000000005.jsonl (records 1..4) is older than "
        "segment-000000000001.jsonl, which comes first: rolled back or reordered (the two "
        "segments' contents were swapped)"
    ]


def test_deleting_an_actors_folder_is_detected(lake_target, tmp_path, bucket):
    a = writer(lake_target, tmp_path, bucket, "edge-a")
    b = writer(lake_target, tmp_path, bucket, "edge-b")
    a.write(6)
    b.write(5)
    heads = [a.head, b.head]
    bucket.delete_folder("audit/edge-b")
    assert check(lake_target, expect=[a.head]).ok  # nobody said edge-b must be there
    r = check(lake_target, expect=heads)
    assert not r.ok and len(r.problems) == 1
    assert r.problems[0].startswith("edge-b: no audit records under ")
    assert r.problems[0].endswith(
        "/audit/edge-b/, but the chain head in audit-head-edge-b.json says record 5 was "
        "written: the actor's log was deleted"
    )
    # the whole log gone: "OK: 0 records" is refused even with nothing expected
    bucket.delete_folder("audit/edge-a")
    r = check(lake_target)
    assert not r.ok and r.records == 0
    assert "no audit records under" in r.problems[0] and "--head FILE" in r.problems[0]
    assert "--expect-actor NAME[:MIN_SEQ]" in r.problems[0]
    r = check(lake_target, expect=[ChainHead("edge-a", 1, source="--expect-actor edge-a:1")])
    assert r.problems[0].startswith("edge-a: no audit records under ")


def test_an_actors_log_copied_under_another_actor_is_named(lake_target, tmp_path, bucket):
    """Deleting edge-a's folder and putting edge-b's segments there is not edge-a's log."""
    a = writer(lake_target, tmp_path, bucket, "edge-a")
    b = writer(lake_target, tmp_path, bucket, "edge-b")
    a.write(3)
    b.write(6)
    bucket.delete_folder("audit/edge-a")
    for key in bucket.keys("audit/edge-b"):
        bucket.put(key.replace("edge-b", "edge-a"), bucket.get(key))
    r = check(lake_target, expect=[ChainHead("edge-a", 3)])
    assert r.problems == [
        "edge-a/segment-000000000001.jsonl: record 1 was written by another actor: segments "
        "moved or copied between actors' folders"
    ]
    assert r.actors["edge-b"].last_seq == 6 and not r.actors["edge-b"].broken


def test_deleting_the_newest_records_of_every_actor_is_detected(lake_target, tmp_path, bucket):
    actors = {name: writer(lake_target, tmp_path, bucket, name) for name in ("edge-a", "edge-b", "reports")}  # fmt: skip
    for w in actors.values():
        w.write(7)  # segments 1..4 and 5..7
    heads = [w.head for w in actors.values()]
    # each attacker's best: edge-a's segment rolled back to its sealed copy at record 5;
    # edge-b's records 6..7 cut and its seal kept; reports' records 6..7 cut with the seal
    a5 = seg("edge-a", 5)
    bucket.put(a5, actors["edge-a"].copies[a5][0])
    for name, keep_seal in (("edge-b", True), ("reports", False)):
        lines = bucket.get(seg(name, 5)).decode().splitlines()
        bucket.put(seg(name, 5), ("\n".join(lines[:1] + lines[-1:] * keep_seal) + "\n").encode())
    r = check(lake_target, expect=heads)
    assert not r.ok and len(r.problems) == 3, r.problems
    pa, pb, pr = r.problems
    assert pa.startswith("edge-a/segment-000000000005.jsonl ends at record 5 (sealed ")
    assert pa.endswith("records 6..7 are missing")
    assert pb == "edge-b/segment-000000000005.jsonl: records after 5 were cut off (the seal signs a later record)"  # fmt: skip
    assert pr == "reports/segment-000000000005.jsonl: segment is not sealed (unsigned or its tail was cut off)"  # fmt: skip
    # edge-b and reports are caught by their seals alone; edge-a only by its head
    r = check(lake_target, expect=[ChainHead(n, 1) for n in actors])
    assert [p.split("/", 1)[0] for p in r.problems] == ["edge-b", "reports"]


def test_a_stale_newest_seal_fails_max_age(lake_target, tmp_path, bucket):
    a = writer(lake_target, tmp_path, bucket, "edge-a")
    a.write(3)
    day = timedelta(hours=26)
    assert check(lake_target, expect=[a.head], max_age=day).ok
    later = datetime.now(UTC) + timedelta(days=3)
    r = check(lake_target, expect=[a.head], max_age=day, now=later)
    assert not r.ok and r.problems[0].startswith("edge-a: the newest seal is from 20")
    assert "older than the maximum age 26h" in r.problems[0]
    # a quiet writer that is alive writes a heartbeat, so its seal stays recent
    assert a.log.heartbeat(timedelta(hours=1)) is None  # it wrote a moment ago
    beat = a.log.heartbeat(timedelta(0))
    assert beat is not None and beat.action == "heartbeat" and beat.seq == 4


def test_a_quiet_edge_writes_a_heartbeat_so_its_seal_stays_recent(tmp_path, monkeypatch):
    from mlmon.edge.collector import AUDIT_HEARTBEAT, Collector
    from mlmon.edge.config import load_config
    from tests.edge.test_collector import KEY as HMAC
    from tests.edge.test_collector import _config

    (tmp_path / "logs").mkdir()
    monkeypatch.setenv("MLMON_HMAC_KEY", HMAC)
    c = Collector(load_config(_config(tmp_path, None, tmp_path / "logs")))
    assert c.audit is not None
    c.flush_spool()  # config_loaded was just recorded: no heartbeat yet
    assert c.audit.seq == 1
    c.audit.last_time = (datetime.now(UTC) - AUDIT_HEARTBEAT - timedelta(minutes=1)).isoformat()
    c.flush_spool()
    assert c.audit.seq == 2 and c.audit.sealed is not None and c.audit.sealed["seq"] == 2
    segment = tmp_path / "lake" / "audit" / "edge-test" / "segment-000000000001.jsonl"
    actions = [json.loads(line)["action"] for line in segment.read_text().splitlines()]
    assert actions == ["config_loaded", "heartbeat"]
    head = read_head(tmp_path / "state" / "audit", "edge-test")
    assert head is not None and head.seq == 2
    assert verify(str(tmp_path / "lake"), expect=[head], max_age=timedelta(hours=2)).ok


# --------------------------------------------------------------------------- format 1


def _to_format_1(path: Path) -> None:
    """Rewrite a segment's seal as mlmon wrote it before seal format 2."""
    lines = path.read_text().splitlines()
    seal = json.loads(lines[-1])
    sig = base64.b64encode(KEY.sign(bytes.fromhex(seal["seal"]))).decode()
    lines[-1] = json.dumps({"seal": seal["seal"], "signature": sig, "records": seal["records"]})
    path.write_text("\n".join(lines) + "\n")


def test_segments_and_heads_of_format_1_are_still_read(tmp_path):
    lake, state = tmp_path / "lake", tmp_path / "state"
    log = AuditLog(str(lake), state, "edge-a", signing_key=KEY, segment_size=4, echo=False)
    for _ in range(6):
        log.record("object_written", "v1/x.parquet")
    log.flush()
    for p in (lake / "audit" / "edge-a").iterdir():
        _to_format_1(p)
    head_file = state / "audit-head-edge-a.json"
    old = json.loads(head_file.read_text())
    head_file.write_text(json.dumps({k: old[k] for k in ("seq", "hash", "segment_start", "open")}))
    assert verify(str(lake), public_key=PUB, expect=[ChainHead("edge-a", 6)]).ok
    with pytest.raises(GovernanceError, match="has no 'sealed' entry"):
        load_heads(head_file)
    again = AuditLog(str(lake), state, "edge-a", signing_key=KEY, segment_size=4, echo=False)
    again.record("config_loaded", "edge.yaml")
    again.flush()  # the open segment 5..7 is re-sealed in format 2
    head = load_heads(head_file)[0]
    assert (head.actor, head.seq) == ("edge-a", 7)
    assert verify(str(lake), public_key=PUB, expect=[head]).ok
    # records 8 (closes segment 5..8) and 9 (opens segment 9), both sealed in format 2
    for _ in range(2):
        again.record("config_loaded", "edge.yaml")
        again.flush()
    seg9 = lake / "audit" / "edge-a" / "segment-000000000009.jsonl"
    current = seg9.read_text()
    _to_format_1(seg9)  # a copy of segment 9 from before the upgrade, as a rollback would leave
    r = verify(str(lake), public_key=PUB, expect=[load_heads(head_file)[0]])
    assert r.problems == [
        "edge-a/segment-000000000009.jsonl has an older seal format than "
        "edge-a/segment-000000000005.jsonl: it is older than the segment before it: rolled "
        "back to a copy from before the upgrade"
    ]
    seg9.write_text(current.splitlines()[0] + "\n")  # record 9 without its seal
    r = verify(str(lake), expect=[load_heads(head_file)[0]])  # even without the public key
    assert r.problems[0].startswith("edge-a/segment-000000000009.jsonl has no seal though")


# --------------------------------------------------------------------------- the commands


def _mlmon(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real ``mlmon`` process (the edge runs: its own signals and logging)."""
    return subprocess.run([sys.executable, "-m", "mlmon.cli", *args], capture_output=True,
                          text=True, env=env, timeout=300)  # fmt: skip


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """``mlmon ...`` through :func:`mlmon.cli.main` in this process: (exit code, stdout, stderr)."""
    from mlmon.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def test_cli_refuses_to_verify_without_knowing_what_must_be_there(tmp_path, cli):
    lake = str(tmp_path / "lake")
    log = AuditLog(lake, tmp_path / "state", "edge-a", echo=False)
    log.record("config_loaded", "edge.yaml")
    log.flush()
    none = _mlmon("audit", "verify", lake)  # the real process and its exit code
    assert none.returncode == 2 and "--head FILE" in none.stderr and "--chain-only" in none.stderr
    assert cli("audit", "verify", lake, "--chain-only")[0] == 0
    code, _, err = cli("audit", "verify", lake, "--expect-actor", "edge-a:0")
    assert code == 2 and "NAME:MIN_SEQ" in err
    code, out, _ = cli("audit", "verify", lake, "--expect-actor", "edge-a:1", "--max-age", "26h")
    assert code == 0 and "complete up to the expected record 1" in out
    code, out, _ = cli("audit", "verify", lake, "--expect-actor", "edge-a:2")
    assert code == 1 and "edge-a: the log ends with segment-000000000001.jsonl at record 1" in out
    assert "says record 2: the newest segment was deleted or rolled back" in out
    code, _, err = cli("audit", "verify", lake, "--chain-only", "--max-age", "soon")
    assert code == 2 and "--max-age" in err
    shutil.rmtree(tmp_path / "lake" / "audit" / "edge-a")
    code, out, _ = cli("audit", "verify", lake, "--chain-only")
    assert code == 1 and "no audit records" in out and "--expect-actor" in out


def test_cli_max_age_is_for_the_head_actors_unless_an_actor_is_named(tmp_path, cli, monkeypatch):
    """The daily job: the edge (a --head) seals hourly; maintenance runs once a month."""
    import mlmon.governance.audit as audit

    lake = str(tmp_path / "lake")
    monkeypatch.setattr(audit, "_now", lambda: "2026-01-05T03:00:00.000000+00:00")
    old = AuditLog(lake, tmp_path / "maint", "maintenance", signing_key=KEY, echo=False)
    old.record("retention_applied", lake)
    old.flush()
    monkeypatch.undo()
    edge = AuditLog(lake, tmp_path / "edge", "edge-a", signing_key=KEY, echo=False)
    edge.record("config_loaded", "edge.yaml")
    edge.flush()
    head = str(tmp_path / "edge" / "audit-head-edge-a.json")
    daily = ("audit", "verify", lake, "--head", head, "--expect-actor", "maintenance")
    code, out, _ = cli(*daily, "--max-age", "26h")
    assert code == 0, out
    code, out, _ = cli(*daily, "--max-age", "26h", "--max-age", "maintenance=40d")
    assert code == 1 and out.count("older than the maximum age") == 1
    assert "maintenance: the newest seal is from 2026-01-05T03:00:00" in out
    assert "maximum age 960h" in out and "edge-a" not in out.split("verified:")[0]
    code, out, _ = cli("audit", "verify", lake, "--chain-only", "--max-age", "26h")
    assert code == 1 and "maintenance: the newest seal" in out  # bare, nothing expected: all
    code, _, err = cli(*daily, "--max-age", "bad name=1h")
    assert code == 2 and "is not an actor name" in err


def test_edge_audit_head_then_verify_across_edge_restarts(tmp_path, cli, monkeypatch):
    """`mlmon edge once` twice (a restart: the chain continues), its head, a daily verify."""
    from tests.edge.test_collector import KEY as HMAC
    from tests.edge.test_collector import _config

    (tmp_path / "logs").mkdir()  # no records: the audit log is what is looked at here
    cfg = _config(tmp_path, None, tmp_path / "logs")
    seal_key = tmp_path / "audit-seal.pem"  # the edge signs its seals, as in production
    seal_key.write_bytes(KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    pub = tmp_path / "audit-seal.pub.pem"
    pub.write_bytes(PUB.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))  # fmt: skip
    cfg.write_text(json.dumps({**json.loads(cfg.read_text()), "audit_signing_key": {"file": str(seal_key)}}))  # fmt: skip
    monkeypatch.setenv("MLMON_HMAC_KEY", HMAC)
    for _ in range(2):
        run = _mlmon("edge", "once", "--config", str(cfg))
        assert run.returncode == 0, run.stderr[-2000:]
    code, out, err = cli("edge", "audit-head", "--config", str(cfg))
    assert code == 0, err
    head = json.loads(out)
    assert head["format"] == "mlmon-audit-head/1" and head["actor"] == "edge-test"
    assert head["spooled"] == 0  # the lake took every segment
    (tmp_path / "head.json").write_text(out)
    segment = tmp_path / "lake" / "audit" / "edge-test" / "segment-000000000001.jsonl"
    records = [json.loads(x) for x in segment.read_text().splitlines()[:-1]]
    assert [r["action"] for r in records].count("config_loaded") == 2  # both runs, one chain
    assert head["seq"] == records[-1]["seq"] and head["hash"] == records[-1]["hash"]
    daily = ("audit", "verify", str(tmp_path / "lake"), "--public-key", str(pub),
             "--head", str(tmp_path / "head.json"), "--max-age", "26h")  # fmt: skip
    code, out, _ = cli(*daily)
    assert code == 0 and f"edge-test: records 1..{head['seq']}" in out, out
    segment.unlink()
    code, out, _ = cli(*daily)
    assert code == 1 and "edge-test: no audit records under" in out
    assert f"says record {head['seq']} was written: the actor's log was deleted" in out


def test_the_public_key_pem_round_trip_for_the_cli(tmp_path, cli):
    """--public-key with a head: the signed seals of format 2 verify from the command line."""
    lake = tmp_path / "lake"
    log = AuditLog(str(lake), tmp_path / "state", "edge-a", signing_key=KEY, echo=False)
    log.record("config_loaded", "edge.yaml")
    log.flush()
    pub = tmp_path / "audit.pub"
    pem = (serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    pub.write_bytes(PUB.public_bytes(*pem))
    head = tmp_path / "state" / "audit-head-edge-a.json"  # the writer's own file works too
    code, out, _ = cli("audit", "verify", str(lake), "--public-key", str(pub), "--head", str(head))
    assert code == 0 and "1 records verified" in out
    pub.write_bytes(Ed25519PrivateKey.generate().public_key().public_bytes(*pem))
    code, out, _ = cli("audit", "verify", str(lake), "--public-key", str(pub), "--head", str(head))
    assert code == 1 and "seal signature does not verify" in out


def test_edge_run_audits_its_stop_and_sends_the_open_segment_on_sigterm(tmp_path, cli, monkeypatch):
    """`mlmon edge run`, SIGTERM: the lake's chain ends with collector_stopped and verifies."""
    import os
    import signal
    import time

    from tests.edge.test_collector import KEY as HMAC
    from tests.edge.test_collector import _config

    (tmp_path / "logs").mkdir()
    cfg = _config(tmp_path, None, tmp_path / "logs", schedule="every 1h")
    config = json.loads(cfg.read_text())
    config.pop("metrics")  # nothing to serve: only the audit log is looked at
    cfg.write_text(json.dumps(config))
    env = {**os.environ, "MLMON_HMAC_KEY": HMAC}
    proc = subprocess.Popen([sys.executable, "-m", "mlmon.cli", "edge", "run", "--config", str(cfg)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    segment = tmp_path / "lake" / "audit" / "edge-test" / "segment-000000000001.jsonl"
    try:
        deadline = time.monotonic() + 60
        while not segment.exists():  # the first cycle's flush: the process is up
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][
                -2000:
            ]
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, err[-2000:]
    records = [json.loads(x) for x in segment.read_text().splitlines()]
    assert records[0]["action"] == "config_loaded"
    assert records[-1]["action"] == "collector_stopped"  # sent at exit, not left on the volume
    code, out, _ = cli("edge", "audit-head", "--config", str(cfg))
    assert code == 0 and json.loads(out)["seq"] == records[-1]["seq"]
    (tmp_path / "head.json").write_text(out)
    code, out, _ = cli(
        "audit", "verify", str(tmp_path / "lake"), "--head", str(tmp_path / "head.json")
    )
    assert code == 0, out
