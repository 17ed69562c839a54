"""Retention and off-boarding delete only what is theirs to delete; a user's file survives, named."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mlmon.errors import ForeignFilesError
from mlmon.governance.attest import attestation_path, verify_attestation
from mlmon.governance.offboard import list_scopes, offboard
from mlmon.governance.retention import apply, plan

ROOT = Path(__file__).resolve().parents[2]
CANARY = "PATIENT-CANARY-7731"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlmon.cli", *args], capture_output=True, text=True,
                          timeout=180, stdin=subprocess.DEVNULL, cwd=ROOT)  # fmt: skip


def _write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data)
    else:
        path.write_bytes(data)
    return path


def test_retention_deletes_lake_objects_and_keeps_a_users_files_naming_them(tmp_path):
    lake = tmp_path / "lake"
    part = lake / "v1" / "drift" / "model=m" / "date=2020-01-01"
    window = _write(part / "20200101T000000Z-c1.parquet", b"old window")
    rollup = _write(part / "_day-c1.parquet", b"old rollup")
    manifest = _write(part / "_compacted.json", b"{}")
    notes = _write(part / "notes.txt", CANARY)  # a user's file in an expired partition
    stray = _write(lake / "v1" / "drift" / "exports" / "date=2020-01-01" / "e.parquet", CANARY)
    keep = _write(lake / "v1" / "drift" / "model=m" / "date=2099-01-01" / "y.parquet", b"new")

    p = plan(str(lake), today=date(2026, 11, 23))
    assert sorted(p.objects) == sorted(map(str, (window, rollup, manifest)))
    assert p.skipped == [str(notes)]  # `exports/` is no model= partition: not even considered
    result = apply(str(lake), p)
    assert result["deleted"] == 3 and result["ok"]
    assert (
        notes.read_text() == CANARY and stray.read_text() == CANARY and keep.read_bytes() == b"new"
    )

    _write(part / "again.parquet", b"old")
    proc = _cli("retention", "apply", "--lake", str(lake), "--state-dir", str(tmp_path / "st"))
    assert proc.returncode == 0, proc.stderr
    assert "deleted 1 object(s)" in proc.stdout
    assert f"KEPT {notes}" in proc.stdout and "not lake objects; left in place" in proc.stdout
    assert CANARY not in proc.stdout + proc.stderr
    assert notes.read_text() == CANARY


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def test_offboard_deletes_only_the_confirmed_listing(tmp_path, key):
    """A file that arrives after the operator confirmed the listing is not purged, and is named."""
    scope = tmp_path / "vendor"
    listed = _write(scope / "reports" / "r.pdf", b"%PDF vendor copy")
    inventory = list_scopes([str(scope)])
    arrived = _write(scope / "reports" / "user-notes.txt", CANARY)
    att = offboard([str(scope)], None, "op", signing_key=key, inventory=inventory)
    assert not listed.exists() and arrived.read_text() == CANARY
    assert not att.complete and att.body["relist_after"]["keys"] == [str(arrived)]
    assert [e["key"] for e in att.body["manifest"]] == [str(listed)]


def test_an_attestation_is_never_written_over_a_file(tmp_path, key):
    scope = tmp_path / "vendor"
    _write(scope / "x.csv", b"a,b\n")
    att = offboard([str(scope)], None, "op", signing_key=key)
    out = tmp_path / "out"
    taken = attestation_path(out, att.body["started_at"])
    _write(taken, CANARY)  # a file already under the attestation's name
    _write(taken.with_name(taken.stem + "-2.pdf"), CANARY)  # and the next one's PDF
    with pytest.raises(ForeignFilesError) as err:
        att.write(taken)
    assert str(taken) in str(err.value) and CANARY not in str(err.value)
    assert taken.read_text() == CANARY
    free = attestation_path(out, att.body["started_at"])
    assert free.name == taken.stem + "-3.json"
    assert verify_attestation(att.write(free)).ok and taken.read_text() == CANARY


def test_offboard_cli_keeps_a_users_file_in_the_out_folder(tmp_path, key):
    priv = tmp_path / "k.pem"
    priv.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))  # fmt: skip
    scope, out = tmp_path / "vendor", tmp_path / "out"
    _write(scope / "a.pdf", b"%PDF")
    mine = _write(out / "notes.txt", CANARY)
    proc = _cli("offboard", "--scope", str(scope), "--signing-key", str(priv), "--operator", "op",
                "--out", str(out), "--state-dir", str(tmp_path / "st"), "--no-pdf", "--yes")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert mine.read_text() == CANARY and len(list(out.glob("attestation-*.json"))) == 1
