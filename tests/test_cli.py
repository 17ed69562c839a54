"""The `mlmon` command as a shell user runs it: real subprocesses, real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "data" / "fixtures"
MLMON = [sys.executable, "-m", "mlmon.cli"]


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*MLMON, *args], capture_output=True, text=True, cwd=ROOT, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"mlmon {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


@pytest.fixture(scope="module")
def fixture_lake(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    lake, ref = d / "lake", d / "ref.parquet"
    run("reference", "build", "--data", str(FIX / "reference.parquet"), "--schema", str(FIX / "schema.yaml"),
        "--model", "risk-model", "--out", str(ref), "--lake", str(lake))  # fmt: skip
    out = run("profile", *map(str, sorted((FIX / "inference").glob("*.parquet"))), "--reference", str(ref),
              "--model", "risk-model", "--lake", str(lake), "--window", "1h").stdout  # fmt: skip
    assert "profiled 18000 records into 144 windows" in out
    return lake, ref


def test_drift_finds_the_planted_drift_and_nothing_else(fixture_lake):
    lake, _ = fixture_lake
    out = run(
        "drift", "--lake", str(lake), "--model", "risk-model", "--by", "day", "--format", "json"
    ).stdout
    df = pl.DataFrame(json.loads(out))
    distance = df.filter(
        pl.col("method").is_in(["psi", "jensen_shannon", "hellinger", "ks", "wasserstein"])
    )
    flagged = distance.filter(pl.col("drifted")).with_columns(
        pl.col("period").str.slice(0, 10).alias("day")
    )
    pairs = set(zip(flagged["day"], flagged["feature"], strict=True))
    planted = {
        (d, f) for d in ("2026-10-04", "2026-10-05", "2026-10-06") for f in ("age", "ward", "score")
    }
    assert pairs == planted  # found where planted, nowhere else
    # the test of independence is a p-value: undrifted features stay above 0.05 except by chance
    chi = df.filter(
        (pl.col("method") == "chi_square") & ~pl.col("feature").is_in(["age", "ward", "score"])
    )
    assert chi["drifted"].sum() <= 2, chi.filter(pl.col("drifted"))


def test_percentiles_sql_and_formats(fixture_lake, tmp_path):
    lake, _ = fixture_lake
    csv = run(
        "percentiles",
        "--lake",
        str(lake),
        "--model",
        "risk-model",
        "--by",
        "all",
        "--format",
        "csv",
    ).stdout
    p = pl.read_csv(csv.encode())
    raw = pl.concat([pl.read_parquet(f) for f in sorted((FIX / "inference").glob("*.parquet"))])
    import numpy as np

    exact = np.quantile(raw["latency_ms"].to_numpy(), [0.5, 0.95, 0.99], method="lower")
    assert np.all(np.abs(p["value"].to_numpy() - exact) <= 0.01 * exact)
    out = tmp_path / "x.parquet"
    run("sql", "--lake", str(lake), "SELECT date, count(*) AS n FROM profiles GROUP BY date ORDER BY date",
        "--format", "parquet", "--out", str(out))  # fmt: skip
    assert pl.read_parquet(out).height == 6
    table = run("sql", "--lake", str(lake), "SELECT count(*) AS n FROM latency").stdout
    assert "144" in table


def test_fail_on_drift_exit_code(fixture_lake):
    lake, _ = fixture_lake
    proc = run("drift", "--lake", str(lake), "--model", "risk-model", "--start", "2026-10-04", "--end", "2026-10-05",
               "--methods", "psi", "--fail-on-drift", "--only-drifted", check=False)  # fmt: skip
    assert proc.returncode == 1 and "age" in proc.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["drift", "--model", "m"], 2, "no lake given"),
        (["drift", "--lake", "ftp://x", "--model", "m"], 2, "scheme 'ftp'"),
        (["drift", "--lake", "/tmp", "--model", "m", "--methods", "kl"], 2, "unknown drift method 'kl'"),
        (["drift", "--lake", "/tmp", "--model", "m", "--start", "2026-10-01T00:00"], 4, "no UTC offset"),
        (["sql", "--lake", "/tmp", "SELEC 1"], 2, "SQL error"),
        (["drift", "--lake", "/tmp", "--model", "nope"], 3, "model 'nope': the lake /tmp holds no data for any model"),
        (["performance", "--lake", "/tmp", "--model", "nope"], 3, "model 'nope': the lake /tmp holds no data for any model"),
        (["profile", "/nonexistent.csv", "--reference", "/nonexistent.parquet", "--model", "m", "--lake", "/tmp"], 4,
         "no such file"),
    ],
)  # fmt: skip
def test_errors_a_shell_user_can_act_on(args, code, message):
    proc = run(*args, check=False)
    assert proc.returncode == code, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_records_that_do_not_match_the_reference(fixture_lake, tmp_path):
    lake, ref = fixture_lake
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"timestamp": "2026-10-01T00:00:00Z", "age": "old", "bmi": 1}\n')
    proc = run(
        "profile",
        str(bad),
        "--reference",
        str(ref),
        "--model",
        "risk-model",
        "--lake",
        str(lake),
        check=False,
    )
    assert proc.returncode == 4
    assert "lacks feature column(s) creatinine" in proc.stderr
    naive = tmp_path / "naive.csv"
    cols = "timestamp,age,bmi,creatinine,heart_rate,temperature_k,score,sex,ward,latency_ms"
    naive.write_text(cols + "\n2026-10-01T00:00:00,50,20,1,70,310,0.1,F,ED,20\n")
    proc = run(
        "profile",
        str(naive),
        "--reference",
        str(ref),
        "--model",
        "risk-model",
        "--lake",
        str(lake),
        check=False,
    )
    assert proc.returncode == 4 and "has no UTC offset" in proc.stderr
    wrong_type = tmp_path / "wt.csv"
    wrong_type.write_text(cols + "\n2026-10-01T00:00:00Z,old,20,1,70,310,0.1,F,ED,20\n")
    proc = run("profile", str(wrong_type), "--reference", str(ref), "--model", "risk-model", "--lake", str(lake),
               check=False)  # fmt: skip
    assert proc.returncode == 4 and "'age' is numeric in the reference" in proc.stderr


def test_drift_statistics_columns_and_thresholds_per_method_and_feature(fixture_lake):
    """Issue 19 item 3: --threshold METHOD=V and FEATURE:METHOD=V; statistic, dof, p_value."""
    lake, _ = fixture_lake
    out = run("drift", "--lake", str(lake), "--model", "risk-model", "--by", "all", "--format", "json",
              "--threshold", "psi=0.5", "--threshold", "age:psi=0.01", "--threshold", "ward:js=0.2").stdout  # fmt: skip
    df = pl.DataFrame(json.loads(out))
    got = {(r["feature"], r["method"]): r for r in df.iter_rows(named=True)}
    assert got[("age", "psi")]["threshold"] == 0.01 and got[("ward", "psi")]["threshold"] == 0.5
    assert got[("ward", "jensen_shannon")]["threshold"] == 0.2
    assert got[("age", "jensen_shannon")]["threshold"] == 0.1  # the default
    chi = got[("age", "chi_square")]
    assert chi["statistic"] > 0 and chi["dof"] >= 1 and chi["p_value"] == chi["value"]
    ks = got[("age", "ks")]
    assert ks["statistic"] == ks["value"] and 0 <= ks["p_value"] <= 1 and ks["dof"] is None
    w = got[("age", "wasserstein")]
    assert w["statistic"] > w["value"] > 0  # raw W1 in years beside W1 / std (std of age > 1)


@pytest.mark.parametrize(
    ("threshold", "message"),
    [
        ("psy=0.2", "'psy', which is not a drift method; methods: chi2, chi_square, hellinger"),
        ("agee:psi=0.2", "threshold for feature 'agee'"),
        ("psi", "expected METHOD=VALUE or FEATURE:METHOD=VALUE"),
        ("ward:ks=0.1", "ks does not apply to the categorical feature 'ward'"),
    ],
)
def test_drift_bad_thresholds_name_what_is_valid(fixture_lake, threshold, message):
    lake, _ = fixture_lake
    proc = run("drift", "--lake", str(lake), "--model", "risk-model", "--by", "all",
               "--threshold", threshold, check=False)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_reference_build_stores_data_driven_thresholds(tmp_path):
    from mlmon.analysis.thresholds import data_driven_thresholds
    from mlmon.lake.references import load_reference

    out = tmp_path / "ref.parquet"
    run("reference", "build", "--data", str(FIX / "reference.parquet"), "--schema", str(FIX / "schema.yaml"),
        "--model", "risk-model", "--out", str(out), "--data-driven-thresholds",
        "--threshold-chunks", "8", "--threshold-std", "2.5")  # fmt: skip
    ref = load_reference(out)
    want = data_driven_thresholds(pl.read_parquet(FIX / "reference.parquet"), ref, chunks=8, k=2.5)
    assert ref.drift_thresholds == want and set(want) == set(ref.profiles)


@pytest.fixture
def nannyml_like(tmp_path):
    """A NannyML-style baseline: an id, a period marker, the target, the model's decision."""
    import numpy as np

    rng = np.random.default_rng(5)
    n = 400
    df = pl.DataFrame({
        "id": np.arange(n), "customer_id": rng.permutation(n) + 10_000,
        "note": [f"free text {i}" for i in range(n)], "period": ["reference"] * n,
        "x": rng.normal(0, 1, n), "grade": rng.integers(1, 4, n),
        "work_home": rng.choice(["yes", "no"], n), "target": rng.integers(0, 2, n),
        "y_pred_proba": rng.random(n),
    })  # fmt: skip
    path = tmp_path / "baseline.parquet"
    df.write_parquet(path)
    return path


def test_reference_build_discrete_max(nannyml_like, tmp_path):
    """Issue 19 item 2: a 3-valued integer feature is discrete by default (one bin per value);
    --discrete-max 0 keeps reference-quantile bins; a negative value is refused."""
    from mlmon.lake.references import load_reference
    from mlmon.profiles.frame import build_reference

    out = tmp_path / "ref.parquet"
    run("reference", "build", "--data", str(nannyml_like), "--model", "m", "--out", str(out),
        "--target", "target", "--ignore", "period,note", "--discrete-max", "0")  # fmt: skip
    ref = load_reference(out)
    assert ref.profiles["grade"].support is None
    default = build_reference(pl.read_parquet(nannyml_like).select("grade"))
    assert default.profiles["grade"].support.tolist() == [1.0, 2.0, 3.0]
    bad = run("reference", "build", "--data", str(nannyml_like), "--model", "m", "--out",
              str(out), "--discrete-max", "-1", check=False)  # fmt: skip
    assert bad.returncode == 2 and "--discrete-max must be 0 or more" in bad.stderr


def test_reference_build_schema_flags_and_identifier_columns(nannyml_like, tmp_path):
    """Issue 19 item 5: --categorical, --ignore, --target, --prediction without a schema file;
    identifier-like columns are not monitored, with a warning naming them."""
    from mlmon.lake.references import load_reference

    out = tmp_path / "ref.parquet"
    proc = run("reference", "build", "--data", str(nannyml_like), "--model", "m", "--out", str(out),
               "--categorical", "grade", "--ignore", "period", "--target", "target",
               "--prediction", "y_pred_proba", "--task", "binary")  # fmt: skip
    ref = load_reference(out)
    assert set(ref.schema.names) == {"x", "grade", "work_home", "y_pred_proba"}
    assert ref.profiles["grade"].kind == "categorical" and ref.profiles["x"].kind == "numeric"
    assert ref.performance is not None  # labels from --target, scores from --prediction
    for col, why in (("id", "name"), ("customer_id", "name"), ("note", "every value is distinct")):
        assert f"column {col!r} is not monitored" in proc.stderr and why in proc.stderr
    assert "'period'" not in proc.stderr  # ignored on request: no warning
    assert "__mlmon" not in proc.stderr + proc.stdout


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--categorical", "grad"], "--categorical 'grad': no such column in"),
        (["--target", "label"], "--target 'label': no such column"),
        (["--schema", str(FIX / "schema.yaml"), "--ignore", "x"], "--ignore describe the columns"),
    ],
)
def test_reference_build_schema_flag_errors(nannyml_like, tmp_path, flags, message):
    proc = run("reference", "build", "--data", str(nannyml_like), "--model", "m",
               "--out", str(tmp_path / "r.parquet"), *flags, check=False)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
