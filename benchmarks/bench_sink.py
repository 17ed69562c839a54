"""Issue 3 benchmark: the HTTP sink under a loopback load generator, counts checked in the lake.

    python -m benchmarks.bench_sink [--seconds 60]

The sink (this process) profiles every joined inference into 5-minute
windows (25 features); a separate load-generator process sends KServe logger
CloudEvents (a request and a response per inference) over 4 keep-alive
connections for ``--seconds``. Afterwards the windows are written to a local
lake and the number of profiled records read back from it must equal the
number of inferences the generator sent.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta

from benchmarks.common import make_frame
from mlmon.analysis.lake import Lake
from mlmon.edge.ingest import WindowAccumulator
from mlmon.edge.sink import CloudEventSink
from mlmon.lake.writer import LakeWriter
from mlmon.profiles.frame import build_reference


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60)
    args = ap.parse_args()
    frame = make_frame(20_000, seed=1).drop("latency_ms")
    ref = build_reference(frame)
    acc = WindowAccumulator(ref, window=timedelta(minutes=5))
    lock = threading.Lock()

    def on_records(model, df):
        with lock:
            acc.add(df)

    sink = CloudEventSink(
        {"bench": ref}, b"b" * 32, on_records, model="bench", batch_rows=5000
    ).start()
    t0 = time.perf_counter()
    gen = subprocess.run(
        [sys.executable, "-m", "benchmarks.sink_load", "--port", str(sink.port), "--seconds", str(args.seconds)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    sink.stop()
    elapsed = time.perf_counter() - t0
    load = json.loads(gen.stdout)
    with tempfile.TemporaryDirectory() as d:
        writer = LakeWriter(d, collector_id="bench-sink", k_anonymity=1)
        writer.write_reference("bench", ref)
        acc.flush(writer, "bench", with_drift=False)
        in_lake = int(
            Lake(d).sql(
                "SELECT sum(count) + sum(nulls) AS n FROM profiles WHERE feature = 'num_01'"
            )["n"][0]
        )
    result = {
        "seconds": round(load["seconds"], 1),
        "inferences_sent": load["inferences_sent"],
        "inferences_per_s": round(load["inferences_sent"] / load["seconds"]),
        "cloudevents_per_s": round(2 * load["inferences_sent"] / load["seconds"]),
        "records_in_lake": in_lake,
        "equal": in_lake == load["inferences_sent"],
        "bad_records": dict(sink.bad_records),
        "wall_s": round(elapsed, 1),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
