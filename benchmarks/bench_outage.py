"""Issue 17 benchmark: a bucket outage of 10+ minutes under ``mlmon edge run``.

    python -m benchmarks.bench_outage [--warmup 60] [--refused 300] [--hang 330] [--after 60]

Real components on 127.0.0.1, each stopped by its own pid: a moto S3 server with IAM enforced
(the edge has the shipped PutObject-only policy), a TCP forwarder in front of it
(``tests.edge.tcpproxy``: the network path to the bucket), two demo model servers, and one
``mlmon edge run`` with two models whose golden sets run every ``--every`` seconds, 1-minute
windows and SSE-KMS. After ``--warmup`` the forwarder is stopped (connections refused) for
``--refused`` seconds, then ``tests.edge.blackhole`` listens on its port (every connection
accepted, never answered) for ``--hang`` seconds; then the forwarder comes back.

Reported: the golden runs' lateness against their interval (gap between two runs of a model
minus the interval: max and p95, during the outage and overall), the spool's peak size, the
time from the bucket's return until the spool is empty and /healthz is ok (``drain_s``), split
into the wait for the breaker's next attempt (``detect_s``, at most ``lake.retry_max``, 60 s by
default) and the sending itself (``send_s``), and exact counts:
every object the edge's audit log says it wrote is in the bucket or still in the spool, every
golden row the edge counted (``mlmon_edge_probes_total``) is in the bucket exactly once.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import polars as pl

from tests.edge.servers import RunningServer, start_server
from tests.edge.test_operations import FIX, _free_port, _reference
from tests.s3server import BUCKET, MotoServer

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("risk-a", "risk-b")


def _metrics(base: str) -> tuple[dict[str, float], dict[str, Any]]:
    text = httpx.get(f"{base}/metrics", timeout=5).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(r"^(mlmon_edge_[a-z_]+)(\{[^}]*\})? (\S+)$", line)
        if m:
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out, httpx.get(f"{base}/healthz", timeout=5).json()


def _probes(metrics: dict[str, float]) -> int:
    return int(sum(v for k, v in metrics.items() if k.startswith("mlmon_edge_probes_total{")))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--warmup", type=float, default=60)
    ap.add_argument("--refused", type=float, default=300)
    ap.add_argument("--hang", type=float, default=330)
    ap.add_argument("--after", type=float, default=60)
    ap.add_argument("--every", type=int, default=10, help="golden interval, seconds")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mlmon-outage-"))
    started: list[RunningServer] = []
    moto = MotoServer().start()
    edge = None
    try:
        prefix = moto.unique_prefix()
        key, secret = moto.credentials("edge", prefix)
        proxy = start_server(["--to", f"127.0.0.1:{moto.port}"], "tests.edge.tcpproxy")
        started.append(proxy)
        s3_port = int(proxy.url.rsplit(":", 1)[1])
        models = []
        for name in MODELS:
            srv = start_server(["--protocol", "oip_v2"])
            started.append(srv)
            models.append({
                "name": name, "reference": str(_reference(work)),
                "endpoint": {"url": srv.url, "protocol": "oip_v2", "model_name": "risk",
                             "timeout": "2s", "retries": 0},
                "golden": {"file": str(FIX / "golden.jsonl"), "schedule": f"every {args.every}s"},
            })  # fmt: skip
        metrics_port = _free_port()
        cfg = {
            "collector_id": "edge-outage", "state_dir": str(work / "state"), "window": "1m",
            "hmac_key": {"env": "MLMON_HMAC_KEY"}, "allow_http": True,
            "metrics": {"host": "127.0.0.1", "port": metrics_port},
            "lake": {"uri": f"s3://{BUCKET}/{prefix}", "sse_kms_key_id": moto.kms_key_arn,
                     "storage_options": {"endpoint_url": proxy.url,
                                         "client_kwargs": {"region_name": "us-east-1"}}},
            "models": models,
        }  # fmt: skip
        (work / "edge.yaml").write_text(json.dumps(cfg))
        env = {**os.environ, "MLMON_HMAC_KEY": "h" * 32, "AWS_ACCESS_KEY_ID": key,
               "AWS_SECRET_ACCESS_KEY": secret}  # fmt: skip
        log = open(work / "edge.log", "w")  # noqa: SIM115 - closed below
        edge = subprocess.Popen(
            [sys.executable, "-m", "mlmon.cli", "edge", "run", "--config", str(work / "edge.yaml")],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip
        base = f"http://127.0.0.1:{metrics_port}"
        samples: list[tuple[float, dict[str, float], dict[str, Any]]] = []

        def watch(seconds: float) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                try:
                    m, h = _metrics(base)
                    samples.append((time.time(), m, h))
                except httpx.HTTPError:
                    pass
                time.sleep(2)

        watch(args.warmup)
        t_down = time.time()
        proxy.stop()  # refused
        watch(args.refused)
        hole = start_server(["--port", str(s3_port)], "tests.edge.blackhole")  # hangs
        started.append(hole)
        watch(args.hang)
        hole.stop()
        t_up = time.time()
        proxy = start_server(["--to", f"127.0.0.1:{moto.port}", "--port", str(s3_port)],
                             "tests.edge.tcpproxy")  # fmt: skip
        started.append(proxy)
        drained_at = None
        deadline = time.monotonic() + 900
        while drained_at is None and time.monotonic() < deadline:
            m, h = _metrics(base)
            samples.append((time.time(), m, h))
            lake_ok = not [r for r in h["reasons"] if r.startswith("lake")]
            if m.get("mlmon_edge_buffer_objects", 1) == 0 and lake_ok:
                drained_at = time.time()
            time.sleep(0.5)
        watch(args.after)
        final, _ = _metrics(base)
        os.kill(edge.pid, signal.SIGTERM)
        edge.wait(timeout=60)
        log.close()

        # -- what reached the bucket ----------------------------------------------------------
        s3 = moto.boto3_client("admin")
        keys: list[str] = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", [])]
        in_bucket = {f"{BUCKET}/{k}" for k in keys}
        spool_dir = work / "state" / "spool"
        spooled = {json.loads(p.read_text())["path"] for p in spool_dir.glob("*.json")}
        written = set()
        back_at = None  # the breaker's first successful PUT after the outage
        for line in (work / "edge.log").read_text().splitlines():
            if '"object_written"' in line:
                written.add(json.loads(line)["audit"]["target"])
            elif "lake reachable again" in line and back_at is None:
                back_at = datetime.fromisoformat(json.loads(line)["time"]).timestamp()
        missing = sorted(written - in_bucket - spooled)
        sse = {s3.head_object(Bucket=BUCKET, Key=k).get("ServerSideEncryption") for k in keys}
        golden_rows = []
        for k in keys:
            if "/golden/" in k:
                body = s3.get_object(Bucket=BUCKET, Key=k)["Body"].read()
                model = re.search(r"model=([^/]+)", k).group(1)  # type: ignore[union-attr]
                golden_rows.append(
                    pl.read_parquet(io.BytesIO(body)).with_columns(pl.lit(model).alias("model"))
                )
        rows = pl.concat(golden_rows)
        dupes = rows.height - rows.unique(["model", "checked_at", "sample_id_hmac"]).height

        # -- the probe schedule -----------------------------------------------------------------
        late_all, late_out = [], []
        for model in MODELS:
            times = sorted(
                {t.timestamp() for t in rows.filter(pl.col("model") == model)["checked_at"]}
            )
            for a, b in itertools.pairwise(times):
                lateness = (b - a) - args.every
                late_all.append(lateness)
                if t_down <= b <= t_up:
                    late_out.append(lateness)
        peak_objects = max(m.get("mlmon_edge_buffer_objects", 0) for _, m, _ in samples)
        peak_bytes = max(m.get("mlmon_edge_buffer_bytes", 0) for _, m, _ in samples)
        reasons = sorted(
            {r.split(",")[0] for _, _, h in samples for r in h["reasons"] if r.startswith("lake")}
        )
        result = {
            "outage_s": round(t_up - t_down, 1),
            "refused_s": args.refused,
            "hang_s": args.hang,
            "golden_interval_s": args.every,
            "golden_runs": rows.select("model", "checked_at").unique().height,
            "golden_runs_during_outage": len(late_out) + len(MODELS),
            "lateness_outage_max_s": round(max(late_out), 3),
            "lateness_outage_p95_s": round(float(np.percentile(late_out, 95)), 3),
            "lateness_all_max_s": round(max(late_all), 3),
            "lateness_all_p95_s": round(float(np.percentile(late_all, 95)), 3),
            "spool_peak_objects": int(peak_objects),
            "spool_peak_bytes": int(peak_bytes),
            "drain_s": round(drained_at - t_up, 1) if drained_at else None,
            "detect_s": round(back_at - t_up, 1) if back_at else None,
            "send_s": round(drained_at - back_at, 1) if back_at and drained_at else None,
            "objects_in_bucket": len(keys),
            "objects_written_distinct": len(written),
            "objects_missing": len(missing),
            "objects_left_in_spool": len(spooled),
            "golden_rows_in_bucket": rows.height,
            "golden_rows_counted_by_edge": _probes(final),
            "golden_rows_doubled": dupes,
            "sse_of_objects": sorted(str(s) for s in sse),
            "edge_exit_code": edge.returncode,
            "healthz_lake_reasons_seen": reasons[:3],
            "finished": datetime.now().astimezone().isoformat(timespec="seconds"),
        }
        print(json.dumps(result, indent=1))
        if missing:
            print("missing:", missing[:10], file=sys.stderr)
    finally:
        if edge is not None and edge.poll() is None:
            os.kill(edge.pid, signal.SIGKILL)
            edge.wait(timeout=10)
        for srv in started:
            srv.stop()
        moto.stop()


if __name__ == "__main__":
    main()
