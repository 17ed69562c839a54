"""Issue 2 benchmark: peak memory of streaming profiling is flat in the number of rows.

    python -m benchmarks.bench_memory ROWS      (prints JSON with the peak RSS)

Batches of 250k rows (25 features + latency) are generated and folded into a
:class:`~mlmon.profiles.frame.Profiler`; only one batch is alive at a time,
so peak memory should not grow from 1M to 10M rows. Run it once per size in
fresh processes (``run_all.py`` does).
"""

from __future__ import annotations

import json
import sys
import time

from benchmarks.common import make_frame, peak_rss_mib
from mlmon.profiles.frame import Profiler, build_reference

BATCH = 250_000


def main(rows: int) -> None:
    ref = build_reference(make_frame(100_000, seed=1))
    prof = Profiler(ref)
    t = time.perf_counter()
    done = 0
    seed = 10
    while done < rows:
        n = min(BATCH, rows - done)
        prof.update(make_frame(n, seed=seed, shift=0.2))
        seed += 1
        done += n
    result = prof.result()
    elapsed = time.perf_counter() - t
    peak_mib = peak_rss_mib()
    assert result.rows == rows
    print(
        json.dumps(
            {
                "rows": rows,
                "peak_rss_mib": round(peak_mib, 1),
                "seconds_incl_generation": round(elapsed, 2),
            }
        )
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
