"""Issue 17 benchmark: the uvicorn sink with its write-ahead log, paced load, counts in the lake.

    python -m benchmarks.bench_sink_durable --seconds 60 --rate 5000 --mode single
    python -m benchmarks.bench_sink_durable --seconds 60 --rate 5000 --mode batch
    python -m benchmarks.bench_sink_durable --idle 2000

The sink (this process, as in ``mlmon edge run``: uvicorn on one thread, every accepted request
in the write-ahead log and fsync-ed before its 202) profiles 25 features per inference into
5-minute windows. A separate process (``benchmarks/sink_load_async.py``) offers ``--rate``
CloudEvents per second over 32 keep-alive connections, one event per request (``single``, as
KServe's logger sends them) or 100 per batched request (``batch``). Afterwards the windows are
written to a local lake; the records read back must equal the inferences acknowledged.

``--idle N`` instead opens N idle connections to the sink and N to ``/metrics``, checks that
the process's thread count does not move, that both still answer, and that every idle
connection is closed by the server after the idle timeout (5 s).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from benchmarks.common import make_frame
from mlmon.analysis.lake import Lake
from mlmon.edge.checkpoint import StreamState
from mlmon.edge.observe import EdgeMetrics, MetricsServer
from mlmon.edge.sink import CloudEventSink, into_states
from mlmon.lake.writer import LakeWriter
from mlmon.profiles.frame import build_reference


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def load(args: argparse.Namespace) -> dict[str, object]:
    ref = build_reference(make_frame(20_000, seed=1).drop("latency_ms"))
    with tempfile.TemporaryDirectory() as d:
        state = StreamState(ref, Path(d) / "state", window=timedelta(minutes=5))
        sink = CloudEventSink({"bench": ref}, b"b" * 32, into_states({"bench": state}),
                              model="bench", wal_dir=Path(d) / "wal").start()  # fmt: skip
        threads_before, cpu0, t0 = _threads(), _cpu_s(), time.perf_counter()
        gen = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.sink_load_async", "--port", str(sink.port),
             "--seconds", str(args.seconds), "--rate", str(args.rate), "--mode", args.mode,
             "--connections", str(args.connections), "--depth", str(args.depth)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        peak = threads_before
        while gen.poll() is None:
            peak = max(peak, _threads())
            time.sleep(0.5)
        out = json.loads(gen.communicate()[0])
        cpu = _cpu_s() - cpu0
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        gen_cpu = children.ru_utime + children.ru_stime
        sink.stop()
        wall = time.perf_counter() - t0
        writer = LakeWriter(str(Path(d) / "lake"), collector_id="bench-sink", k_anonymity=1)
        writer.write_reference("bench", ref)
        for w, part in state.closed_windows(datetime(2100, 1, 1, tzinfo=UTC)):
            writer.write_window("bench", w, ref, source="sink", part=part)
        in_lake = int(
            Lake(str(Path(d) / "lake")).sql(
                "SELECT sum(count) + sum(nulls) AS n FROM profiles WHERE feature = 'num_01'"
            )["n"][0]
        )
        wal_bytes = sum(p.stat().st_size for p in (Path(d) / "wal").glob("wal-*.log"))
    acked = out["events_acked"] // 2
    return {
        "mode": args.mode,
        "offered_events_per_s": args.rate,
        "connections": args.connections,
        "depth": args.depth,
        "seconds": round(out["seconds"], 1),
        "requests": out["requests"],
        "events_sent": out["events_sent"],
        "events_acked": out["events_acked"],
        "events_per_s_acked": round(out["events_acked"] / out["seconds"]),
        "inferences_per_s_acked": round(acked / out["seconds"]),
        "requests_per_s": round(out["requests_acked"] / out["seconds"]),
        "inferences_in_lake": in_lake,
        "acked_equals_lake": in_lake == acked,
        "refused_rounds": out["refused_rounds"],
        "wal_bytes_written": wal_bytes,
        "sink_process_cpu_s": round(cpu, 1),
        "load_generator_cpu_s": round(gen_cpu, 1),
        "wall_s": round(wall, 1),
        "os_threads_before": threads_before,
        "os_threads_peak": peak,
    }


def idle(n: int) -> dict[str, object]:
    ref = build_reference(make_frame(2_000, seed=1).drop("latency_ms"))
    with tempfile.TemporaryDirectory() as d:
        sink = CloudEventSink({"bench": ref}, b"b" * 32, lambda m, df: None, model="bench",
                              wal_dir=Path(d) / "wal").start()  # fmt: skip
        metrics = MetricsServer(EdgeMetrics(), port=0).start()
        before = _threads()
        t0 = time.perf_counter()
        conns = [socket.create_connection(("127.0.0.1", port), timeout=30)
                 for port in (sink.port, metrics.port) for _ in range(n)]  # fmt: skip
        opened_s = time.perf_counter() - t0
        with_idle = _threads()
        health = httpx.get(f"http://127.0.0.1:{metrics.port}/healthz").status_code
        for c in conns:
            c.settimeout(60)
        closed = 0
        for c in conns:
            try:
                if c.recv(1) == b"":
                    closed += 1
            except ConnectionResetError:
                closed += 1
            c.close()
        closed_s = time.perf_counter() - t0
        after = _threads()
        sink.stop()
        metrics.stop()
    return {
        "idle_connections": 2 * n,
        "open_s": round(opened_s, 2),
        "os_threads_before": before,
        "os_threads_with_idle_open": with_idle,
        "os_threads_after": after,
        "healthz_while_idle_open": health,
        "closed_by_server": closed,
        "all_closed_after_s": round(closed_s, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--rate", type=float, default=5000)
    ap.add_argument("--mode", choices=["single", "batch"], default="single")
    ap.add_argument("--connections", type=int, default=None, help="default: 64 single, 4 batch")
    ap.add_argument("--depth", type=int, default=None, help="default: 8 single, 1 batch")
    ap.add_argument("--idle", type=int, default=0, help="idle connections per server instead")
    args = ap.parse_args()
    if args.connections is None:
        args.connections = 64 if args.mode == "single" else 4
    if args.depth is None:
        args.depth = 8 if args.mode == "single" else 1
    print(json.dumps(idle(args.idle) if args.idle else load(args), indent=1))


if __name__ == "__main__":
    main()
