"""`mlmon profile` and `reference build` with bad records: errors name the user's columns, never
mlmon's internal ones (issue 19 item 5); --chunk-rows from the shell; deprecated --k / k_anonymity.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
import yaml

from mlmon.edge.config import load_config
from mlmon.edge.ingest import chunk_windows, read_records
from mlmon.errors import MlmonDeprecationWarning, MlmonError
from mlmon.lake.references import save_reference
from mlmon.profiles.frame import build_reference, profile_windows
from mlmon.profiles.schema import Schema

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "data" / "fixtures"
COLS = "timestamp,age,bmi,creatinine,heart_rate,temperature_k,score,sex,ward,latency_ms"
ROW = "50,20,1,70,310,0.1,F,ED,20"
INTERNAL = ("__mlmon", "__row", "__reason")  # names mlmon's code gives its own columns


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlmon.cli", *args], capture_output=True, text=True, cwd=ROOT,
        timeout=120, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("ref")
    ref = build_reference(
        pl.read_parquet(FIX / "reference.parquet"),
        Schema.from_dict(yaml.safe_load((FIX / "schema.yaml").read_text())),
        model="risk-model",
    )  # fmt: skip
    path = d / "ref.parquet"
    save_reference(ref, path)
    return ref, path


BAD = {
    "wrong dtype": (f"{COLS}\n2026-10-01T00:00:00Z,old,{ROW.split(',', 1)[1]}\n", "'age' is numeric"),
    "missing column": (
        COLS.replace(",creatinine", "") + "\n2026-10-01T00:00:00Z,50,20,70,310,0.1,F,ED,20\n",
        "creatinine",
    ),
    "null timestamps": (f"{COLS}\n2026-10-01T00:00:00Z,{ROW}\n,{ROW}\n", "missing timestamps"),
    "naive timestamps": (f"{COLS}\n2026-10-01T00:00:00,{ROW}\n", "has no UTC offset"),
    "unparseable timestamps": (f"{COLS}\nyesterday Z,{ROW}\n", "'timestamp'"),
    "no timestamp column": (f"{COLS[len('timestamp,'):]}\n{ROW}\n", "no timestamp column"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_records_are_named_in_the_users_terms(reference, tmp_path, case):
    ref, ref_path = reference
    text, expected = BAD[case]
    bad = tmp_path / "bad.csv"
    bad.write_text(text)
    chunked = case in ("null timestamps", "wrong dtype")  # the chunk path, from the shell too
    for extra in ([], ["--chunk-rows", "2"]) if chunked else ([],):
        proc = run("profile", str(bad), "--reference", str(ref_path), "--model", "risk-model",
                   "--lake", str(tmp_path / "lake"), *extra)  # fmt: skip
        assert proc.returncode == 4, (case, extra, proc.stderr)
        assert expected in proc.stderr and "Traceback" not in proc.stderr, (case, proc.stderr)
        assert not any(n in proc.stderr + proc.stdout for n in INTERNAL), (case, proc.stderr)
    # the library functions say the same, in the same terms
    frame = next(read_records(bad))
    for fn in (
        lambda: list(profile_windows(frame, ref, window=timedelta(hours=1))),
        lambda: chunk_windows(frame, ref, rows=2),
    ):
        with pytest.raises(MlmonError) as info:
            fn()
        assert expected in str(info.value), case
        assert not any(n in str(info.value) for n in INTERNAL), case


@pytest.mark.parametrize(
    ("data", "schema", "expected"),
    [
        ({"age": [[1.0], [2.0]], "x": [1.0, 2.0]}, None, "'age' has type List"),
        ({"x": [1.0, 2.0]}, "features: [{name: age, kind: numeric}]", "age"),
        ({"age": ["old", "young"]}, "features: [{name: age, kind: numeric}]", "age"),
    ],
)
def test_reference_build_errors_name_no_internal_column(tmp_path, data, schema, expected):
    path = tmp_path / "base.parquet"
    pl.DataFrame(data).write_parquet(path)
    args = ["reference", "build", "--data", str(path), "--model", "m", "--out", str(tmp_path / "r.parquet")]  # fmt: skip
    if schema is not None:
        (tmp_path / "schema.yaml").write_text(schema + "\n")
        args += ["--schema", str(tmp_path / "schema.yaml")]
    proc = run(*args)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert expected in proc.stderr, proc.stderr
    assert not any(n in proc.stderr + proc.stdout for n in INTERNAL), proc.stderr


def test_profile_chunk_rows_from_the_shell(reference, tmp_path):
    _, ref_path = reference
    files = sorted(map(str, (FIX / "inference").glob("*.parquet")))
    lake = tmp_path / "lake"
    proc = run("profile", *files, "--reference", str(ref_path), "--model", "risk-model",
               "--lake", str(lake), "--chunk-rows", "5000", "--incomplete", "drop")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "profiled 15000 records into 3 chunks of 5000 records (3000 records of the incomplete last chunk dropped)" in proc.stdout  # fmt: skip
    proc = run("profile", *files, "--reference", str(ref_path), "--model", "risk-model",
               "--lake", str(tmp_path / "lake2"), "--chunk-rows", "0")  # fmt: skip
    assert proc.returncode == 2 and "--chunk-rows 0" in proc.stderr, proc.stderr


def test_deprecated_k_flag_warns_once_and_changes_nothing(reference, tmp_path):
    _, ref_path = reference
    files = sorted(map(str, (FIX / "inference").glob("*.parquet")))[:1]
    args = [
        "profile",
        *files,
        "--reference",
        str(ref_path),
        "--model",
        "risk-model",
        "--window",
        "1d",
    ]
    with_k = run(*args, "--lake", str(tmp_path / "a"), "--k", "7")
    without = run(*args, "--lake", str(tmp_path / "b"))
    assert with_k.returncode == 0 == without.returncode, with_k.stderr
    assert with_k.stderr.count("--k is deprecated and ignored") == 1
    assert "docs/security.md section 16" in with_k.stderr
    assert "deprecated" not in without.stderr
    blobs = [sorted(p.read_bytes() for p in (tmp_path / x).rglob("*.parquet")) for x in "ab"]
    assert blobs[0] == blobs[1]  # the same lake, byte for byte


EDGE = """
collector_id: edge-1
lake: {uri: s3://bucket/lake, sse_kms_key_id: alias/mlmon}
hmac_key: {env: MLMON_HMAC_KEY}
state_dir: state
models:
  - name: risk-model
    reference: ref.parquet
    streams:
      - {path: logs, format: jsonl, kind: tabular, schedule: every 1m}
"""


def test_deprecated_k_anonymity_in_edge_yaml_warns(tmp_path):
    path = tmp_path / "edge.yaml"
    path.write_text(EDGE + "k_anonymity: 3\n")
    with pytest.warns(MlmonDeprecationWarning) as caught:
        load_config(path, env={"MLMON_HMAC_KEY": "k" * 32})
    assert len(caught) == 1
    text = str(caught[0].message)
    assert f"{path}: k_anonymity is deprecated and ignored" in text
    assert "docs/security.md section 16" in text
    path.write_text(EDGE)
    with warnings.catch_warnings():
        warnings.simplefilter("error", MlmonDeprecationWarning)
        load_config(path, env={"MLMON_HMAC_KEY": "k" * 32})  # no key: no warning
