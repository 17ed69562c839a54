"""mlmon replaces or deletes only what it wrote: the folder marker, and compaction's own objects."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from mlmon.analysis.lake import Lake
from mlmon.edge.ingest import WindowAccumulator
from mlmon.errors import ConfigError, ForeignFilesError
from mlmon.lake.owned import (
    MARKER,
    check_claim,
    check_free,
    claim_folder,
    owned_names,
    record_owned,
)
from mlmon.lake.storage import open_storage
from mlmon.lake.writer import LakeWriter
from mlmon.profiles.frame import build_reference

HINT = "Choose another folder with --out OTHER."


def test_a_name_taken_by_a_users_file_is_refused_naming_it_never_its_content(tmp_path):
    (tmp_path / "report.pdf").write_text("PATIENT-CANARY-7731")
    with pytest.raises(ForeignFilesError) as err:
        check_free(tmp_path, ["report.pdf", "report.html"], hint=HINT)
    msg = str(err.value)
    assert str(tmp_path) in msg and "report.pdf" in msg and "report.html" not in msg
    assert "PATIENT-CANARY" not in msg and HINT in msg
    assert isinstance(err.value, ConfigError) and isinstance(err.value, FileExistsError)
    assert (tmp_path / "report.pdf").read_text() == "PATIENT-CANARY-7731"
    # once recorded as mlmon's (it wrote it), the same name may be replaced
    record_owned(tmp_path, ["report.pdf"], by="test")
    check_free(tmp_path, ["report.pdf", "report.html"], hint=HINT)
    assert owned_names(tmp_path) == {"report.pdf"}


def test_a_marker_naming_paths_outside_the_folder_is_not_trusted(tmp_path):
    outside = tmp_path / "precious.txt"
    outside.write_text("keep")
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / MARKER).write_text(json.dumps({"entries": ["../precious.txt"]}))
    assert owned_names(folder) is None
    (folder / "x").write_text("someone's")
    with pytest.raises(ForeignFilesError, match=r"holds 1 entry mlmon did not write \(x\)"):
        claim_folder(folder, by="test", hint=HINT)
    assert outside.read_text() == "keep" and (folder / "x").read_text() == "someone's"


def test_claim_clears_only_what_the_marker_lists(tmp_path):
    folder = tmp_path / "demo"
    assert claim_folder(folder, ["v1"], by="test", hint=HINT) == frozenset()
    assert (folder / MARKER).is_file()
    (folder / "v1").mkdir()
    (folder / "v1" / "a.parquet").write_bytes(b"x")
    record_owned(folder, ["v1"], by="test")
    (folder / "notes.txt").write_text("added by the user later")
    left = claim_folder(folder, ["v1"], by="test", hint=HINT)
    assert left == {"notes.txt"} and not (folder / "v1").exists()
    assert (folder / "notes.txt").read_text() == "added by the user later"
    # a user's entry under a name the caller is about to write is refused, nothing cleared
    (folder / "v1").write_text("user's v1")
    with pytest.raises(ForeignFilesError, match="v1"):
        check_claim(folder, ["v1"], hint=HINT)
    assert (folder / "v1").read_text() == "user's v1"


def _lake(tmp_path):
    rng = np.random.default_rng(3)
    t0 = datetime(2026, 10, 1, tzinfo=UTC)
    n = 800
    secs = np.sort(rng.uniform(0, 2 * 86400, n))
    df = pl.DataFrame(
        {
            "timestamp": pl.Series(
                [t0 + timedelta(seconds=float(s)) for s in secs], dtype=pl.Datetime("us", "UTC")
            ),
            "x": rng.normal(0, 1, n),
        }
    )
    ref = build_reference(df.drop("timestamp"), model="m")
    writer = LakeWriter(str(tmp_path / "lake"), collector_id="c1", k_anonymity=1)
    acc = WindowAccumulator(ref, window=timedelta(hours=6))
    acc.add(df)
    acc.flush(writer, "m")
    return tmp_path / "lake"


def test_compaction_leaves_a_users_file_and_deletes_only_its_own_objects(tmp_path, caplog):
    lake_dir = _lake(tmp_path)
    day = lake_dir / "v1" / "profiles" / "model=m" / "date=2026-10-01"
    notes = day / "notes.txt"
    notes.write_text("PATIENT-CANARY-7731")
    assert len(Lake(str(lake_dir)).compact("profiles", model="m")) == 2
    assert notes.read_text() == "PATIENT-CANARY-7731"
    # the manifest of that day (inside the partition, or in a compacted/ prefix of its own)
    [manifest_path] = [
        p
        for p in lake_dir.rglob("_compacted.json")
        if {"profiles", "date=2026-10-01"} <= set(p.parts)
    ]
    cdir, manifest = manifest_path.parent, json.loads(manifest_path.read_text())
    first = cdir / manifest["data"]
    assert first.is_file()
    # a manifest naming a user's file as its old rollup: compaction deletes its own old
    # compacted object, never the user's file, and says so naming the path
    theirs = cdir / "theirs.txt"
    theirs.write_text("PATIENT-CANARY-7731")
    manifest_path.write_text(json.dumps({**manifest, "rollup": theirs.name}))
    window = next(f for f in sorted(day.glob("*.parquet")) if not f.name.startswith("_"))
    (day / "zz-late.parquet").write_bytes(
        window.read_bytes()
    )  # a late window: compaction runs again
    with caplog.at_level(logging.WARNING, logger="mlmon.lake.reader"):
        assert len(Lake(str(lake_dir)).compact("profiles", model="m", min_objects=1)) == 1
    assert theirs.read_text() == notes.read_text() == "PATIENT-CANARY-7731"
    assert not first.exists()
    refused = [r.getMessage() for r in caplog.records]
    assert any(str(theirs) in m and "left in place" in m for m in refused), refused
    assert not any("CANARY" in m for m in refused)
    new = json.loads(manifest_path.read_text())
    assert new["generation"] == 2 and (cdir / new["data"]).is_file()


def test_storage_folder_on_s3_keeps_a_users_object(s3_server, s3_prefix):
    """The same rule on an s3:// output prefix (report outputs): existence checked by key."""
    from tests.s3server import BUCKET

    admin = s3_server.boto3_client("admin")
    admin.put_object(Bucket=BUCKET, Key=f"{s3_prefix}/out/r.pdf", Body=b"someone's")
    st = open_storage(f"s3://{BUCKET}/{s3_prefix}/out", s3_server.storage_options("admin"))
    with pytest.raises(
        ForeignFilesError, match=rf"s3://{BUCKET}/{s3_prefix}/out holds 1 entry .*\(r\.pdf\)"
    ):
        check_free(st, ["r.pdf", "r.html"], hint=HINT)
    record_owned(st, ["r.html"], by="test")
    assert owned_names(st) == {"r.html"}
    assert (
        admin.get_object(Bucket=BUCKET, Key=f"{s3_prefix}/out/r.pdf")["Body"].read() == b"someone's"
    )
