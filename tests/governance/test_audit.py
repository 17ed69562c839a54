"""The audit chain: every kind of tampering is named, with its record and segment."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mlmon.governance.audit import AuditLog, verify


@pytest.fixture
def chain(tmp_path):
    key = Ed25519PrivateKey.generate()
    log = AuditLog(
        str(tmp_path / "lake"),
        tmp_path / "state",
        "edge-1",
        signing_key=key,
        segment_size=4,
        echo=False,
    )
    for i in range(10):
        log.record(
            "object_written",
            f"v1/profiles/model=m/date=2026-10-01/w{i}.parquet",
            bytes=100 + i,
            sha256="ab" * 32,
        )
    log.flush()
    seg_dir = tmp_path / "lake" / "audit" / "edge-1"
    return key, seg_dir, tmp_path / "lake"


def _lines(p: Path) -> list[str]:
    return p.read_text().splitlines()


def _rewrite(p: Path, lines: list[str]) -> None:
    p.write_text("\n".join(lines) + "\n")


def test_intact_chain_verifies_and_survives_a_restart(chain, tmp_path):
    key, seg_dir, lake = chain
    assert sorted(p.name for p in seg_dir.iterdir()) == [
        "segment-000000000001.jsonl", "segment-000000000005.jsonl", "segment-000000000009.jsonl"]  # fmt: skip
    result = verify(str(lake), public_key=key.public_key())
    assert result.ok and result.records == 10, result
    again = AuditLog(
        str(lake), tmp_path / "state", "edge-1", signing_key=key, segment_size=4, echo=False
    )
    assert again.record("config_loaded", "edge.yaml", sha256="cd" * 32).seq == 11
    again.flush()
    assert verify(str(lake), public_key=key.public_key()).records == 11


def test_altered_record_is_named(chain):
    key, seg_dir, lake = chain
    p = seg_dir / "segment-000000000005.jsonl"
    lines = _lines(p)
    rec = json.loads(lines[1])
    rec["outcome"] = "denied"
    lines[1] = json.dumps(rec, sort_keys=True)
    _rewrite(p, lines)
    r = verify(str(lake), public_key=key.public_key())
    assert not r.ok and "segment-000000000005.jsonl: record 6 was altered" in r.problems[0]


def test_removed_record_is_named(chain):
    key, seg_dir, lake = chain
    p = seg_dir / "segment-000000000001.jsonl"
    lines = _lines(p)
    del lines[1]
    _rewrite(p, lines)
    r = verify(str(lake), public_key=key.public_key())
    assert "record(s) 2..2 were removed before record 3" in r.problems[0]


def test_inserted_record_is_named(chain):
    key, seg_dir, lake = chain
    p = seg_dir / "segment-000000000005.jsonl"
    lines = _lines(p)
    fake = json.loads(lines[0])
    fake.update(target="forged", prev_hash="f" * 64)
    from mlmon.governance.audit import AuditRecord

    fake["hash"] = AuditRecord(**fake).computed_hash()
    lines[0] = json.dumps(fake, sort_keys=True)
    _rewrite(p, lines)
    r = verify(str(lake), public_key=key.public_key())
    assert (
        "record 5 was inserted or replaced" in r.problems[0]
        and "segment-000000000005" in r.problems[0]
    )


def test_reordered_records_are_named(chain):
    key, seg_dir, lake = chain
    p = seg_dir / "segment-000000000001.jsonl"
    lines = _lines(p)
    lines[1], lines[2] = lines[2], lines[1]
    _rewrite(p, lines)
    r = verify(str(lake), public_key=key.public_key())
    assert not r.ok and "segment-000000000001.jsonl" in r.problems[0]
    assert "removed" in r.problems[0] or "out of order" in r.problems[0]


def test_truncated_tail_is_detected_only_with_a_signing_key(chain):
    key, seg_dir, lake = chain
    p = seg_dir / "segment-000000000009.jsonl"
    lines = _lines(p)
    _rewrite(p, [lines[0], lines[-1]])  # record 10 cut, the seal kept
    r = verify(str(lake), public_key=key.public_key())
    assert "were cut off" in r.problems[0]
    _rewrite(p, [lines[0]])  # record 10 and the seal cut
    assert "is not sealed" in verify(str(lake), public_key=key.public_key()).problems[0]
    # without the key the unsealed newest segment still stands out after a sealed one, but a
    # cut that keeps an (unsigned, forgeable) seal consistent cannot be seen: sign in production
    assert "has no seal though" in verify(str(lake)).problems[0]


def test_cli_audit_verify(chain, tmp_path):
    key, seg_dir, lake = chain
    from cryptography.hazmat.primitives import serialization

    pub = tmp_path / "audit.pub"
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    ok = subprocess.run([sys.executable, "-m", "mlmon.cli", "audit", "verify", str(lake), "--public-key", str(pub),
                         "--expect-actor", "edge-1:10"], capture_output=True, text=True)  # fmt: skip
    assert ok.returncode == 0 and "10 records verified" in ok.stdout
    p = seg_dir / "segment-000000000001.jsonl"
    _rewrite(p, _lines(p)[1:])
    bad = subprocess.run([sys.executable, "-m", "mlmon.cli", "audit", "verify", str(lake), "--public-key", str(pub),
                          "--expect-actor", "edge-1:10"], capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 1 and "removed" in bad.stdout


def test_unflushed_records_survive_a_restart_from_the_journal(tmp_path):
    """Each record is one appended journal line (not the whole head file rewritten): records
    not yet flushed are replayed by the next writer; a line cut short by a crash, or one that
    does not continue the chain, ends the replay; the chain then verifies."""
    key = Ed25519PrivateKey.generate()
    lake, state = tmp_path / "lake", tmp_path / "state"

    def writer() -> AuditLog:
        return AuditLog(str(lake), state, "srv", signing_key=key, segment_size=50, echo=False)

    log = writer()
    for i in range(3):
        log.record("http_get", f"/models/m{i}", "200")
    log.flush()  # 1..3 in the head file; the journal starts again
    for i in range(3, 7):
        log.record("http_get", f"/models/m{i}", "200")  # 4..7 only in the journal
    journal = state / "audit-open-srv.jsonl"
    assert len(journal.read_text().splitlines()) == 4
    assert len(json.loads((state / "audit-head-srv.json").read_text())["open"]) == 3

    again = writer()
    assert [r["seq"] for r in again.open_records] == [1, 2, 3, 4, 5, 6, 7]
    assert again.record("http_get", "/", "200").seq == 8
    again.flush()
    assert journal.read_text() == ""
    assert verify(str(lake), public_key=key.public_key()).records == 8

    # a crash in the middle of a line: records before it are kept, the torn one is not
    again.record("http_get", "/a", "200")  # 9
    again.record("http_get", "/b", "200")  # 10
    lines = journal.read_text().splitlines()
    journal.write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])
    third = writer()
    assert third.seq == 9
    # a line that does not continue the chain (altered hash link) is not taken
    third.record("http_get", "/c", "200")  # 10
    forged = json.loads(journal.read_text().splitlines()[-1])
    forged["prev_hash"] = "0" * 64
    assert len(journal.read_text().splitlines()) == 1  # the torn tail was dropped at start
    journal.write_text(json.dumps(forged) + "\n")
    fourth = writer()
    assert fourth.seq == 9
    fourth.record("http_get", "/d", "200")
    fourth.flush()
    result = verify(str(lake), public_key=key.public_key())
    assert result.ok and result.records == 10, result
