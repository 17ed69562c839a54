"""The README's main command: the whole job on the bundled fixtures, into a local lake.

1. build a reference from the fixture baseline (the edge reads it from its own volume);
2. start the demo model server (Open Inference Protocol v2) on 127.0.0.1;
3. run the edge collector for a few cycles: golden samples against the server and a
   fixture inference-log stream (six days, JSONL) into ``./lake``;
4. read the lake back like an analyst: drift by day, latency percentiles, golden checks;
5. render the monthly report (PDF and HTML) through the report notebook.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import yaml

from mlmon.analysis.lake import Lake
from mlmon.cli import EXIT_UNJOINED
from mlmon.errors import MissingExtraError
from mlmon.lake.owned import MARKER, check_claim, check_free, claim_folder, record_owned
from mlmon.lake.references import save_reference
from mlmon.lake.schema import LABELS_UNJOINED, SCHEMA_VERSION, explain_unjoined
from mlmon.profiles.frame import build_reference
from mlmon.profiles.performance import PerformanceSpec
from mlmon.profiles.schema import Schema

MODEL = "risk-model"
FIXTURES = Path(__file__).resolve().parents[2] / "data" / "fixtures"
REPORT_STEM, REPORT_FORMATS = "risk-model_2026-10", ("pdf", "html")
#: What the demo writes into the lake folder and into its own work folder.
LAKE_ENTRIES = (f"v{SCHEMA_VERSION}", "audit")
WORK_ENTRIES = ("reference.parquet", "inference-log", "labels", "state", "edge.yaml")
_HINT = (
    "Choose another folder: mlmon demo --lake OTHER (a new or empty folder), or move those "
    "entries away."
)


def _start_model_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlmon.demo.model_server", "--protocol", "oip_v2", "--port", "0",
         "--model-name", "risk", "--model-version", "1.0"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("listening on "):
        proc.kill()
        raise RuntimeError(f"the demo model server did not start: {line!r}")
    return proc, line.split("listening on ", 1)[1].strip()


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


def _write_stream(folder: Path, fixtures: Path) -> int:
    """The fixture records as the JSONL inference log an edge would tail, one file per 500 records."""
    folder.mkdir(parents=True)
    n = 0
    for f in sorted((fixtures / "inference").glob("*.parquet")):
        df = pl.read_parquet(f).with_columns(
            pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        )
        for i, part in enumerate(df.iter_slices(500)):
            part.write_ndjson(folder / f"{f.stem}-{i:02d}.jsonl")
            n += part.height
    return n


def _outcomes(df: pl.DataFrame, seed: int) -> pl.Series:
    """Outcomes drawn from the fixture model's score (it is calibrated), reproducibly."""
    rng = np.random.default_rng(seed)
    return pl.Series("outcome", (rng.random(df.height) < df["score"].to_numpy()).astype(np.int64))


def _write_labels(folder: Path, fixtures: Path) -> int:
    """Outcomes of 90% of the first four days' predictions, as a hospital would export them later."""
    folder.mkdir(parents=True)
    n = 0
    for f in sorted((fixtures / "inference").glob("*.parquet"))[:4]:
        df = pl.read_parquet(f)
        lab = df.with_columns(_outcomes(df, seed=int(f.stem[-2:]))).sample(fraction=0.9, seed=1)
        lab.select(
            "request_id",
            "outcome",
            (pl.col("timestamp") + pl.duration(days=21)).alias("event_time"),
        ).write_parquet(folder / f"outcomes-{f.stem}.parquet")
        n += lab.height
    return n


def run_demo(
    lake_dir: Path, *, quiet: bool = False, fixtures: Path = FIXTURES, cycles: int = 3
) -> int:
    """Run the demo end to end; returns a process exit code.

    ``lake_dir`` and its siblings ``.{name}-demo`` (the edge's folder) and
    ``{name}-report`` must be new, empty, or the demo's own from an earlier run.

    Raises
    ------
    ForeignFilesError
        One of those folders holds entries the demo did not write; nothing was changed.
    """
    say = (lambda *a: None) if quiet else print
    lake_dir = lake_dir.resolve()
    work = lake_dir.parent / f".{lake_dir.name}-demo"
    report_dir = lake_dir.parent / f"{lake_dir.name}-report"
    # Only folders the demo made (marked .mlmon-owned.json) are cleared, and only of what it
    # wrote; all three are checked before anything changes.
    for folder, names in ((lake_dir, LAKE_ENTRIES), (work, WORK_ENTRIES)):
        check_claim(folder, names, hint=_HINT)
    check_free(report_dir, _report_names(), hint=_HINT)
    left = {d: claim_folder(d, names, by="mlmon demo", hint=_HINT)
            for d, names in ((lake_dir, LAKE_ENTRIES), (work, WORK_ENTRIES))}  # fmt: skip
    try:
        return _run(lake_dir, work, report_dir, say, fixtures, cycles)
    finally:  # whatever the run made (also when it stopped half-way) is the demo's to clear
        for d, before in left.items():
            made = [p.name for p in d.iterdir() if p.name != MARKER and p.name not in before]
            record_owned(d, made, by="mlmon demo")


def _report_names() -> tuple[str, ...]:
    try:
        from mlmon.reports.runner import output_names
    except ImportError:  # the reports extra is missing: no report is written
        return ()
    return output_names(REPORT_STEM, REPORT_FORMATS)


def _run(
    lake_dir: Path, work: Path, report_dir: Path, say: Any, fixtures: Path, cycles: int
) -> int:
    from mlmon.edge.collector import Collector
    from mlmon.edge.config import load_config

    schema = Schema.from_dict(
        yaml.safe_load((fixtures / "schema.yaml").read_text()), source="schema.yaml"
    )
    baseline = pl.read_parquet(fixtures / "reference.parquet")
    ref = build_reference(
        baseline.with_columns(_outcomes(baseline, seed=5)), schema, model=MODEL,
        performance=PerformanceSpec.make("binary", classes=("0", "1"), thresholds=(0.3,)),
        label_column="outcome",
    )  # fmt: skip
    save_reference(ref, work / "reference.parquet")
    say(
        f"1. reference {ref.reference_id}: {len(ref.profiles)} features from {ref.rows} baseline rows"
    )

    records = _write_stream(work / "inference-log", fixtures)
    labelled = _write_labels(work / "labels", fixtures)
    server, url = _start_model_server()
    say(
        f"2. demo model server (Open Inference Protocol v2) at {url}; {records} records in the inference log"
    )
    config = {
        "collector_id": "demo-edge",
        "lake": {"uri": str(lake_dir)},
        "hmac_key": {"env": "MLMON_DEMO_HMAC_KEY"},
        "state_dir": str(work / "state"),
        "window": "6h",
        "allow_http": True,  # the demo model server is plain http on 127.0.0.1
        "metrics": None,
        "models": [
            {
                "name": MODEL,
                "reference": str(work / "reference.parquet"),
                "endpoint": {
                    "url": url,
                    "protocol": "oip_v2",
                    "model_name": "risk",
                    "timeout": "2s",
                },
                "golden": {"file": str(fixtures / "golden.jsonl"), "schedule": "every 1m"},
                "streams": [
                    {"path": str(work / "inference-log"), "format": "jsonl", "kind": "tabular"}
                ],
                # delayed outcomes: a labels folder, joined with predictions kept on the edge
                "performance": {
                    "store_predictions": True,
                    "label_horizon": "60d",
                    "labels_folder": str(work / "labels"),
                    "label_column": "outcome",
                    "schedule": "every 1m",
                },
            }
        ],
    }
    (work / "edge.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    os.environ.setdefault("MLMON_DEMO_HMAC_KEY", secrets.token_hex(32))
    try:
        collector = Collector(load_config(work / "edge.yaml"))
        for i in range(cycles):
            r = collector.run_once()
            say(f"   edge cycle {i + 1}: golden {r.golden_passed}/{r.golden_checks} passed, "
                f"{r.records} records, {r.windows} windows closed, errors: {len(r.errors)}")  # fmt: skip
    finally:
        _stop(server)
    say(f"3. the lake at file://{lake_dir} (edge config: {work / 'edge.yaml'})")

    lake = Lake(str(lake_dir))
    tables = lake.sql(
        "SELECT 'profiles' AS tbl, count(*) AS rows_ FROM profiles UNION ALL SELECT 'latency', count(*) FROM latency "
        "UNION ALL SELECT 'drift', count(*) FROM drift UNION ALL SELECT 'golden', count(*) FROM golden "
        "UNION ALL SELECT 'alerts', count(*) FROM alerts UNION ALL SELECT 'references', count(*) FROM \"references\""
    )
    say("   " + ", ".join(f"{t}: {n} rows" for t, n in tables.iter_rows()))
    drift = lake.drift(MODEL, by="day")
    distance = drift.filter(pl.col("method").is_in(["psi", "jensen_shannon", "ks", "wasserstein"]))
    summary = (
        distance.group_by("period", "feature")
        .agg(pl.col("drifted").sum().alias("methods_flagging"))
        .filter(pl.col("methods_flagging") > 0)
        .sort("period", "feature")
        .with_columns(pl.col("period").dt.date().alias("day"))
        .select("day", "feature", "methods_flagging")
    )
    say(
        "\n4. drift by day, recomputed from merged window profiles (features flagged by PSI, JS, KS or Wasserstein):"
    )
    with pl.Config(tbl_rows=50, tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True):
        say(summary if summary.height else "   no drift found")
        lat = lake.percentiles("latency_ms", model=MODEL, by="day", source="stream")
        wide = lat.pivot("quantile", index="period", values="value").with_columns(
            pl.col("period").dt.date()
        )
        wide.columns = ["day", "p50_ms", "p95_ms", "p99_ms"]
        say("\n   logged inference latency by day (merged sketches):")
        with pl.Config(float_precision=1):
            say(wide)
    golden = lake.read("golden", model=MODEL)
    probe = lake.percentiles("latency_ms", (0.5, 0.95), model=MODEL, by="all", source="probe")
    say(f"\n   golden checks: {int(golden['passed'].sum())}/{golden.height} passed; probe latency "
        f"p50 {probe['value'][0]:.1f} ms, p95 {probe['value'][1]:.1f} ms")  # fmt: skip
    perf = lake.performance(MODEL, by="day", metrics=["accuracy", "roc_auc"])
    joined = _say_outcomes(say, lake, perf, labelled)
    say("   performance by day (realized from the joined outcomes, estimated from scores "
        "everywhere):")  # fmt: skip
    with pl.Config(tbl_rows=50, tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True,
                   float_precision=3):  # fmt: skip
        say(perf.with_columns(pl.col("period").dt.date().alias("day")).select(
            "day", "metric", "realized", "estimated", "lower", "upper", "count_labelled", "count_total"
        ))  # fmt: skip
    alerts = (
        lake.read("alerts", model=MODEL).group_by("rule", "feature").len().sort("rule", "feature")
    )
    say("   alerts: " + ", ".join(f"{r} {f} x{n}" for r, f, n in alerts.iter_rows()))
    try:
        from mlmon.reports.context import period_bounds
        from mlmon.reports.runner import run_report

        start, end = period_bounds("2026-10", None, None)
        done = run_report(str(lake_dir), [MODEL], start, end, str(report_dir), stem=REPORT_STEM,
                          formats=REPORT_FORMATS)  # fmt: skip
        say(f"\n5. monthly report (papermill notebook -> HTML and PDF): {done['pdf']}")
        say(
            f"   {done['html']} (opens offline: Vega is inlined); executed notebook: {done['ipynb']}"
        )
        reports: Path | None = report_dir
    except MissingExtraError as exc:
        say(f"\n5. report skipped: {exc}")
        reports = None
    say(
        f'\nExplore it: .venv/bin/mlmon sql --lake {lake_dir} "SELECT model, date, count(*) FROM profiles GROUP BY ALL"'
    )
    _say_dashboard(say, lake_dir, reports, fixtures)
    return 0 if joined else EXIT_UNJOINED


def _say_dashboard(say: Any, lake_dir: Path, reports: Path | None, fixtures: Path) -> None:
    """The last lines: the one command that serves the dashboard on the demo lake, and where to look.

    The logged inferences are the fixture days; the golden checks ran just now (the edge
    checks the live model server), so the model page's range is the fixture days and the
    golden checks are one click away ("last 24 hours", which ends at the newest data).
    """
    days = sorted(f.stem for f in (fixtures / "inference").glob("*.parquet"))
    base = "http://127.0.0.1:8400"
    page = f"{base}/models/{MODEL}"
    span = f"?range=custom&start={days[0]}&end={days[-1]}" if days else ""
    flag = f" --reports {reports}" if reports is not None else ""
    say(
        f"\n6. the dashboard on this lake (Ctrl-C stops it):\n"
        f"   .venv/bin/mlmon server --lake {lake_dir}{flag} --range-anchor data\n"
        f"   then open {page}{span}\n"
        f"   (the logged days: drift, response time, performance); the golden checks that ran just "
        f"now: {page}?range=24h; every model: {base}/"
        + (f"; the report: {base}/reports" if reports is not None else "")
    )


def _say_outcomes(say: Any, lake: Lake, perf: pl.DataFrame, written: int) -> int:
    """What the edge made of the outcomes, from the lake's ``label_batches``; returns matched."""
    batches = lake.read("label_batches", model=MODEL)
    counts = {c: int(batches[c].sum() or 0) for c in ("records", "matched", *LABELS_UNJOINED)}
    days = sorted({f"{p:%Y-%m-%d}" for p in perf.filter(pl.col("count_labelled") > 0)["period"]})
    say(f"\n   outcomes: {written} written to the labels folder (days 1-4); the edge read "
        f"{counts['records']} in {batches.height} batch(es): {counts['matched']} matched"
        + (f", realized for {days[0]} to {days[-1]}" if days else ""))  # fmt: skip
    for line in explain_unjoined(counts):
        say(f"     {line}")
    if not counts["matched"]:
        say(f"   none of the outcomes joined a prediction (see why above): the realized column "
            f"is empty and the demo exits {EXIT_UNJOINED}")  # fmt: skip
    return counts["matched"]
