"""Run every benchmark, one fresh process each, and print what each prints.

    python -m benchmarks.run_all [--only profile,memory,...] [--quick]

``make bench`` runs this. The figures and the machine they were measured on
are recorded by hand in ``benchmarks/RESULTS.md``. ``--quick`` shrinks the
slow ones (shorter sink run, fewer images and labels) to check that each still
runs; quick figures are not for RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: name -> (arguments, arguments with --quick)
BENCHMARKS: dict[str, tuple[list[str], list[str]]] = {
    "profile": (["bench_profile", "--repeat", "5"], ["bench_profile", "--repeat", "2"]),
    "memory-1m": (["bench_memory", "1000000"], ["bench_memory", "1000000"]),
    "memory-10m": (["bench_memory", "10000000"], ["bench_memory", "2000000"]),
    "drift": (["bench_drift_recompute"], ["bench_drift_recompute"]),
    "many-windows": (["bench_many_windows"], ["bench_many_windows", "--repeat", "1"]),
    "nannyml-compare": (
        ["bench_nannyml_compare"],
        ["bench_nannyml_compare", "--dataset", "car_loan"],
    ),
    "stream": (["bench_stream", "--rows", "1000000"], ["bench_stream", "--rows", "100000"]),
    "sink": (["bench_sink", "--seconds", "60"], ["bench_sink", "--seconds", "5"]),
    "sink-durable": (
        ["bench_sink_durable", "--seconds", "60", "--mode", "single"],
        ["bench_sink_durable", "--seconds", "5", "--mode", "single"],
    ),
    "sink-durable-batch": (
        ["bench_sink_durable", "--seconds", "60", "--mode", "batch"],
        ["bench_sink_durable", "--seconds", "5", "--mode", "batch"],
    ),
    "sink-idle": (
        ["bench_sink_durable", "--idle", "2000"],
        ["bench_sink_durable", "--idle", "300"],
    ),
    "labels": (["bench_labels"], ["bench_labels", "--n", "100000"]),
    "imaging": (["bench_imaging", "--images", "500"], ["bench_imaging", "--images", "40"]),
    "report": (["bench_report"], ["bench_report"]),
    "deid": (["bench_deid"], ["bench_deid", "--n", "2000", "--repeat", "2"]),
    "server": (["bench_server", "--requests", "100"], ["bench_server", "--requests", "20"]),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    ap.add_argument("--quick", action="store_true", help="smaller runs, to check they still work")
    args = ap.parse_args()
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        ap.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    failed = []
    for name in names:
        full, quick = BENCHMARKS[name]
        module, *rest = quick if args.quick else full
        print(f"== {name}: python -m benchmarks.{module} {' '.join(rest)}", flush=True)
        t = time.perf_counter()
        rc = subprocess.run(
            [sys.executable, "-m", f"benchmarks.{module}", *rest], cwd=ROOT, env=env
        ).returncode
        print(f"== {name}: exit {rc} after {time.perf_counter() - t:.0f} s", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
