"""mlmon's multivariate drift against NannyML's DataReconstructionDriftCalculator (issue 19, item 7).

On NannyML's three synthetic datasets, with NannyML's defaults (PCA keeping 65%
of the variance, mean imputation, most-frequent imputation and frequency
encoding of categorical features, band = mean +/- 3 std of the reference
chunks) and the same chunks (5,000 consecutive rows):

- NannyML 0.13.1 runs in its own environment (benchmarks/nannyml/.venv) in a
  subprocess, usage logging off;
- mlmon builds a reference with ``multivariate=True`` and profiles each chunk;
  a chunk's value is its profile's mean reconstruction error.

Prints per dataset the largest relative difference of the per-chunk error (reference
and analysis chunks), the band, alert agreement and both run times.

    python -m benchmarks.bench_multivariate [--datasets binary,multiclass,car_loan]
    python -m benchmarks.bench_multivariate --windows [--rows 50000] [--days 1200] [--repeat 3]

``--windows``: what the reconstruction error adds to ``profile_windows``: ``--rows``
records (25 features + latency, :mod:`benchmarks.bench_many_windows`' data) into daily
windows against the same reference built without and with ``multivariate=True``; best
of ``--repeat`` each, in one process.

``--memory`` (with ``--windows``): peak RSS of ``profile_windows`` on 1M rows x 25
features into 240 windows, each case in a fresh process after reading the records
(``/proc/self/clear_refs`` resets the peak): the reference without and with the PCA,
and with the PCA but every row in one window.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

import numpy as np
import polars as pl

from mlmon.profiles.frame import build_reference, profile_frame, profile_windows
from mlmon.profiles.schema import FeatureSpec, Schema
from tests import nannyml_data

CHUNK = 5000
#: The model inputs of each dataset (NannyML's docs list the same).
FEATURES = {
    "binary": [
        "distance_from_office",
        "salary_range",
        "gas_price_per_litre",
        "public_transportation_cost",
        "wfh_prev_workday",
        "workday",
        "tenure",
    ],
    "multiclass": [
        "acq_channel",
        "app_behavioral_score",
        "requested_credit_limit",
        "app_channel",
        "credit_bureau_score",
        "stated_income",
        "is_customer",
    ],
    "car_loan": [
        "car_value",
        "salary_range",
        "debt_to_income_ratio",
        "loan_length",
        "repaid_loan_on_prev_car",
        "size_of_downpayment",
        "driver_tenure",
    ],
}

NANNYML_SCRIPT = r"""
import json, sys, time
import pandas as pd
import nannyml as nml
data, name, chunk, features = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
reference = pd.read_parquet(f"{data}/{name}_reference.parquet")
analysis = pd.read_parquet(f"{data}/{name}_analysis.parquet")
t0 = time.perf_counter()
calc = nml.DataReconstructionDriftCalculator(column_names=features, chunk_size=chunk)
calc.fit(reference)
res = calc.calculate(analysis).to_df()
seconds = time.perf_counter() - t0
rows = [
    {
        "period": r[("chunk", "period")],
        "value": float(r[("reconstruction_error", "value")]),
        "upper": r[("reconstruction_error", "upper_threshold")],
        "lower": r[("reconstruction_error", "lower_threshold")],
        "alert": bool(r[("reconstruction_error", "alert")]),
    }
    for _, r in res.iterrows()
]
print(json.dumps({"seconds": seconds, "rows": rows, "components": int(calc._pca.n_components_)}))
"""


def run_nannyml(name: str) -> dict[str, Any]:
    """NannyML's per-chunk results for one dataset (its own interpreter, logging off)."""
    data = nannyml_data.export()
    env = dict(os.environ, NML_DISABLE_USAGE_LOGGING="1")
    out = subprocess.run(
        [
            str(nannyml_data.nannyml_python()),
            "-c",
            NANNYML_SCRIPT,
            str(data),
            name,
            str(CHUNK),
            json.dumps(FEATURES[name]),
        ],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def schema_for(reference: pl.DataFrame, features: list[str]) -> Schema:
    """NannyML's split: strings and booleans categorical, numbers continuous."""
    specs = []
    for f in features:
        dtype = reference.schema[f]
        kind = "categorical" if dtype in (pl.String, pl.Boolean) else "numeric"
        specs.append(FeatureSpec(f, kind))  # type: ignore[arg-type]
    return Schema(tuple(specs), latency=None, version=None)


def run_mlmon(name: str) -> dict[str, Any]:
    """mlmon's per-chunk mean errors and band, on the same chunks."""
    reference, analysis, _ = nannyml_data.load(name)
    features = FEATURES[name]
    t0 = time.perf_counter()
    ref = build_reference(
        reference,
        schema_for(reference, features),
        multivariate=True,
        multivariate_chunks=reference.height // CHUNK,
    )
    mv = ref.multivariate
    assert mv is not None
    values = []
    for lo in range(0, analysis.height - CHUNK + 1, CHUNK):
        prof = profile_frame(analysis.slice(lo, CHUNK), ref).multivariate
        assert prof is not None
        values.append(prof.mean)
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "reference": mv.chunk_means.tolist(),
        "analysis": values,
        "lower": mv.lower,
        "upper": mv.upper,
        "alerts": [mv.alert(v) for v in values],
        "components": int(mv.components.shape[0]),
    }


def compare(name: str) -> dict[str, Any]:
    nml = run_nannyml(name)
    ours = run_mlmon(name)
    nref = [r["value"] for r in nml["rows"] if r["period"] == "reference"]
    nana = [r for r in nml["rows"] if r["period"] == "analysis"]
    theirs = np.asarray(nref + [r["value"] for r in nana])
    mine = np.asarray(ours["reference"] + ours["analysis"])
    rel = np.abs(mine - theirs) / np.abs(theirs)
    upper = nana[0]["upper"]
    lower = nana[0]["lower"]
    agree = sum(a == r["alert"] for a, r in zip(ours["alerts"], nana, strict=True))
    return {
        "dataset": name,
        "chunks": len(theirs),
        "components": (ours["components"], nml["components"]),
        "max_rel_diff": float(rel.max()),
        "upper": (ours["upper"], upper),
        "lower": (ours["lower"], lower),
        "alerts": (sum(ours["alerts"]), sum(r["alert"] for r in nana)),
        "agree": f"{agree}/{len(nana)}",
        "seconds": (ours["seconds"], nml["seconds"]),
    }


def windows(rows: int, days: int, repeat: int) -> dict[str, Any]:
    """profile_windows into daily windows, without and with the reference's PCA."""
    from datetime import timedelta

    from benchmarks.bench_many_windows import best, records
    from benchmarks.common import make_frame

    base = make_frame(100_000, seed=1)
    plain = build_reference(base)
    with_pca = build_reference(base, multivariate=True)
    df = records(rows, days)
    step = timedelta(days=1)
    n = len(list(profile_windows(df, with_pca, window=step)))
    t_plain = best(lambda: list(profile_windows(df, plain, window=step)), repeat)
    t_pca = best(lambda: list(profile_windows(df, with_pca, window=step)), repeat)
    mv = with_pca.multivariate
    assert mv is not None
    t_err = best(lambda: mv.errors(df), repeat)
    return {
        "rows": rows,
        "windows": n,
        "features": len(mv.features),
        "components": int(mv.components.shape[0]),
        "without_pca_s": round(t_plain, 3),
        "with_pca_s": round(t_pca, 3),
        "errors_only_s": round(t_err, 3),
        "ratio": round(t_pca / t_plain, 2),
    }


def memory_case(path: str, case: str) -> dict[str, Any]:
    """One ``--memory`` case in this fresh process (see the module docstring)."""
    import gc
    from datetime import timedelta
    from pathlib import Path

    from benchmarks.bench_many_windows import DAY_US, T0
    from benchmarks.common import make_frame, peak_rss_mib

    base = make_frame(100_000, seed=1)
    ref = build_reference(base, multivariate=case != "plain")
    del base
    df = pl.read_parquet(path)
    step = timedelta(microseconds=DAY_US * 10 // 240)
    if case == "pca-one-window":
        df = df.with_columns(pl.lit(T0).dt.replace_time_zone("UTC").alias("timestamp"))
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")
    before = peak_rss_mib()
    t = time.perf_counter()
    windows = rows = 0
    for w in profile_windows(df, ref, window=step):  # one at a time, as the edge writes them
        windows += 1
        rows += w.profile.rows
    return {
        "case": case,
        "windows": windows,
        "rows": rows,
        "frame_mib": round(df.estimated_size() / 2**20, 1),
        "rss_before_mib": round(before, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "seconds": round(time.perf_counter() - t, 2),
    }


def memory(rows: int) -> list[dict[str, Any]]:
    import tempfile
    from pathlib import Path

    from benchmarks.bench_many_windows import records

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "records.parquet")
        records(rows, 10).write_parquet(path)
        for case in ("plain", "pca", "pca-one-window"):
            proc = subprocess.run(
                [sys.executable, "-m", "benchmarks.bench_multivariate", "--case", case, path],
                capture_output=True,
                text=True,
                check=True,
            )
            out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default=",".join(nannyml_data.DATASETS))
    ap.add_argument("--windows", action="store_true", help="time profile_windows with the PCA")
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--days", type=int, default=1200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--memory", action="store_true", help="with --windows: peak memory, 1M rows")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("path", nargs="?", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.case:
        print(json.dumps(memory_case(args.path, args.case)))
        return 0
    if args.windows and args.memory:
        for r in memory(1_000_000 if args.rows == 50_000 else args.rows):
            print(json.dumps(r))
        return 0
    if args.windows:
        print(json.dumps(windows(args.rows, args.days, args.repeat)))
        return 0
    print(
        "dataset     chunks  components(mlmon,nml)  max rel diff  upper band (mlmon / nml)"
        "        alerts (mlmon,nml)  agree  seconds (mlmon / nml)"
    )
    for name in args.datasets.split(","):
        r = compare(name)
        lower = r["lower"][1]
        nml_lower = (
            "none"
            if lower is None or (isinstance(lower, float) and np.isnan(lower))
            else f"{lower:.6f}"
        )
        print(
            f"{r['dataset']:<11} {r['chunks']:>6}  {r['components'][0]:>10},{r['components'][1]:<10}"
            f"  {r['max_rel_diff']:.2e}    {r['upper'][0]:.6f} / {r['upper'][1]:.6f}"
            f" (lower {r['lower'][0]:.4f} / {nml_lower})  {r['alerts'][0]:>6},{r['alerts'][1]:<6}"
            f"  {r['agree']:>5}  {r['seconds'][0]:.2f} / {r['seconds'][1]:.2f}"
        )
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
