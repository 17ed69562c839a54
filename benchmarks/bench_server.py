"""Issue 21 item 5: the server under load, cold and warm.

    python -m benchmarks.bench_server [--lake benchmarks/data/server-lake] [--users 20] [--requests 200]
        [--processes N]

Builds (once, under ``benchmarks/data/``, gitignored) a local lake of 20 models x 30 days of
5-minute windows x 25 features (20 numeric, 5 categorical) plus latency: 172,800 windows,
each a ``profiles`` and a ``latency`` object, and the writers' day rollups, written by
:class:`~mlmon.lake.writer.LakeWriter` directly from synthetic window profiles (one day of
288 windows profiled per model, written for every day).

Then starts a real ``mlmon server`` on 127.0.0.1 (stopped by its pid) and runs a bounded load
generator: ``--users`` concurrent users (threads, each its own HTTP connection) that together
send ``--requests`` GETs over the overview (``/``) and the model pages (``/models/{m}``), range
7 d by day (the default page). Cold: a fresh server, its first round of requests; warm: the
same round again. Reported: p50/p95/max latency per page kind and round, the CPU seconds of
the server and of its compute workers in each round, their peak RSS (``VmHWM`` of each
process, summed), the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from benchmarks.common import make_frame

START = datetime(2026, 11, 1, tzinfo=UTC)
DAYS = 30
MODELS = 20
WINDOW = timedelta(minutes=5)
PER_WINDOW = 20  # records per 5-minute window
DATA = Path(__file__).parent / "data"


def model_name(i: int) -> str:
    return f"model-{i:02d}"


def _shift_name(name: str, days: int) -> str:
    """An object name ``{start}-{end}-{rest}`` with both stamps ``days`` later."""
    a, b, rest = name.split("-", 2)
    fmt = "%Y%m%dT%H%M%SZ"

    def later(stamp: str) -> str:
        return (datetime.strptime(stamp, fmt) + timedelta(days=days)).strftime(fmt)

    return f"{later(a)}-{later(b)}-{rest}"


def _shifted(data: pa.Table, days: int) -> pa.Table:
    for col in ("window_start", "window_end"):
        i = data.schema.get_field_index(col)
        moved = pc.add(data.column(col), pa.scalar(timedelta(days=days), pa.duration("us")))
        data = data.set_column(i, col, moved.cast(data.schema.field(col).type))
    return data


def _build_models(lake: Path, models: list[int]) -> None:
    """Day 1 of each model through :class:`LakeWriter` (windows and day rollups); every later
    day is a copy of it moved in time (same bytes but the window times, the names and the
    rollup's ``mlmon.covers`` list), which is what writing the same windows again would give."""
    from mlmon.lake.rollup import COVERS_KEY
    from mlmon.lake.writer import LakeWriter, parquet_bytes
    from mlmon.profiles.frame import build_reference, profile_windows

    for i in models:
        name = model_name(i)
        writer = LakeWriter(str(lake), collector_id="bench")
        ref = build_reference(make_frame(20_000, seed=i), model=name)
        writer.write_reference(name, ref)
        per_day = int(timedelta(days=1) / WINDOW)
        df = make_frame(per_day * PER_WINDOW, seed=1000 + i, shift=0.1 * (i % 4))
        offsets = np.repeat(np.arange(per_day), PER_WINDOW) * int(WINDOW.total_seconds() * 1e6)
        ts = pl.Series("timestamp", offsets + int(START.timestamp() * 1e6)).cast(
            pl.Datetime("us", "UTC")
        )
        for w in profile_windows(df.with_columns(ts), ref, window=WINDOW):
            writer.write_window(name, w, ref)
        writer.write_rollups()
        day0 = START.date().isoformat()
        for table in ("profiles", "latency"):
            for kind in (table, f"rollups/{table}"):
                folder = lake / "v1" / kind / f"model={name}" / f"date={day0}"
                objects = [(p.name, pq.read_table(p)) for p in sorted(folder.glob("*.parquet"))]
                for day in range(1, DAYS):
                    out = (
                        lake
                        / "v1"
                        / kind
                        / f"model={name}"
                        / f"date={(START + timedelta(days=day)).date()}"
                    )
                    out.mkdir(parents=True, exist_ok=True)
                    for obj_name, data in objects:
                        moved = _shifted(data, day)
                        meta = dict(data.schema.metadata or {})
                        if COVERS_KEY in meta:
                            covers = json.loads(meta[COVERS_KEY])
                            meta[COVERS_KEY] = json.dumps(
                                [_shift_name(c, day) for c in covers]
                            ).encode()
                            moved = moved.replace_schema_metadata(meta)
                            target = out / obj_name
                        else:
                            target = out / _shift_name(obj_name, day)
                        target.write_bytes(parquet_bytes(moved))
        print(f"built {name}", flush=True)


def build(lake: Path, distinct: int = 2) -> None:
    """The benchmark lake, once (``_complete`` marks a finished build).

    ``distinct`` models are written (by two processes); the others are byte copies of them
    under their own ``model=`` folders (writing 20 distinct models took over an hour on the
    shared 2-core machine). The server computes every model on its own all the same.
    """
    if (lake / "_complete").exists():
        return
    shutil.rmtree(lake, ignore_errors=True)
    lake.mkdir(parents=True)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.bench_server",
                "--build-part",
                str(i),
                "--lake",
                str(lake),
            ]
        )
        for i in range(distinct)
    ]
    for p in procs:
        if p.wait() != 0:
            raise SystemExit(f"building the lake failed (exit {p.returncode})")
    for i in range(distinct, MODELS):
        src = model_name(i % distinct)
        for folder in sorted((lake / "v1").glob(f"**/model={src}")):
            shutil.copytree(folder, folder.parent / f"model={model_name(i)}")
    (lake / "_complete").write_text("ok")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_peak_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    """The server's child processes (its compute workers)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


class Server:
    """A real ``mlmon server`` process on 127.0.0.1, stopped by its pid."""

    def __init__(
        self, lake: Path, work: Path, index_every: str = "10s", processes: int | None = None
    ) -> None:
        work.mkdir(parents=True, exist_ok=True)
        config: dict[str, object] = {
            "lake": str(lake.resolve()),
            "range_anchor": "data",
            "stale_after": "100000d",
            "index": {"every": index_every},
            "rate_limit": {"requests": 1_000_000, "per": "60s"},
            "audit": {"state_dir": str(work / "state"), "uri": str(work / "audit")},
        }
        if processes is not None:  # else the server's default (2 workers on 2+ cores)
            config["compute"] = {"processes": processes}
        (work / "server.yaml").write_text(json.dumps(config))
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlmon.cli",
                "server",
                "--config",
                str(work / "server.yaml"),
                "--port",
                str(self.port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(work / "server.log", "ab"),  # noqa: SIM115
        )
        self.started = time.perf_counter()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(
                    f"the server exited ({self.proc.returncode}); see {work}/server.log"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                time.sleep(0.2)
        self.ready_s = time.perf_counter() - self.started

    def peak_rss_mib(self) -> float:
        """Peak RSS of the server process and its workers, summed (each its own ``VmHWM``)."""
        return sum(_rss_peak_mib(p) for p in [self.proc.pid, *_children(self.proc.pid)])

    def cpu_s(self) -> dict[str, float]:
        """CPU seconds so far of the server process and of its workers (summed)."""
        workers = 0.0
        for p in _children(self.proc.pid):
            try:
                workers += _cpu_s(p)
            except OSError:
                continue
        return {"server": _cpu_s(self.proc.pid), "workers": workers}

    def stop(self) -> None:
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def load(url: str, paths: list[str], users: int) -> dict[str, list[float]]:
    """``users`` threads, each with its own connection, share ``paths`` (each GET once)."""
    import httpx

    todo = list(enumerate(paths))
    lock = threading.Lock()
    times: dict[str, list[float]] = {}
    failures: list[str] = []

    def user() -> None:
        with httpx.Client(base_url=url, timeout=600) as client:
            while True:
                with lock:
                    if not todo:
                        return
                    _, path = todo.pop(0)
                t = time.perf_counter()
                r = client.get(path)
                dt = time.perf_counter() - t
                kind = "overview" if path.split("?")[0] == "/" else "model"
                with lock:
                    if r.status_code != 200:
                        failures.append(f"{path}: {r.status_code}")
                    times.setdefault(kind, []).append(dt)

    threads = [threading.Thread(target=user) for _ in range(users)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if failures:
        raise SystemExit(f"{len(failures)} requests failed, e.g. {failures[:3]}")
    return times


def summary(times: list[float]) -> dict[str, float]:
    xs = sorted(times)

    def pct(p: float) -> float:
        return xs[min(len(xs) - 1, max(0, round(p * len(xs) + 0.5) - 1))]

    return {
        "n": len(xs),
        "p50_ms": round(1000 * statistics.median(xs), 1),
        "p95_ms": round(1000 * pct(0.95), 1),
        "max_ms": round(1000 * xs[-1], 1),
    }


def round_paths(requests: int) -> list[str]:
    """The overview and every model page in turn (7 days by day, the pages' default)."""
    pages = ["/"] + [f"/models/{model_name(i)}" for i in range(MODELS)]
    return [pages[i % len(pages)] if i % 2 else "/" for i in range(requests)]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lake", type=Path, default=DATA / "server-lake")
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--index-every", default="10s", help="index.every of the server (0s: no index)")
    ap.add_argument(
        "--processes", type=int, default=None,
        help="compute.processes of the server (default: the server's own default)",
    )  # fmt: skip
    args = ap.parse_args(argv)
    build(args.lake)
    work = DATA / "server-bench-run"
    shutil.rmtree(work, ignore_errors=True)
    out: dict[str, object] = {
        "lake": f"{MODELS} models x {DAYS} days x 5-minute windows x 25 features",
        "objects": sum(1 for _ in (args.lake / "v1").rglob("*.parquet")),
        "users": args.users,
        "requests_per_round": args.requests,
        "index_every": args.index_every,
        "processes": args.processes,
    }
    server = Server(args.lake, work, args.index_every, args.processes)
    try:
        out["server_ready_s"] = round(server.ready_s, 2)
        paths = round_paths(args.requests)
        for name in ("cold", "warm"):
            la = os.getloadavg()
            t = time.perf_counter()
            cpu = server.cpu_s()
            times = load(server.url, paths, args.users)
            after = server.cpu_s()
            out[name] = {
                "wall_s": round(time.perf_counter() - t, 2),
                # the server's CPU time in the round (both cores; the warm-up's share in it):
                # comparable across runs when the machine's load differs; its compute
                # workers' apart and in the total
                "server_cpu_s": round(after["server"] - cpu["server"], 2),
                "workers_cpu_s": round(after["workers"] - cpu["workers"], 2),
                "total_cpu_s": round(sum(after.values()) - sum(cpu.values()), 2),
                "load_avg_1m": round(la[0], 2),
                **{kind: summary(v) for kind, v in sorted(times.items())},
            }
            print(name, json.dumps(out[name]), flush=True)
        out["server_peak_rss_mib"] = round(server.peak_rss_mib(), 1)
    finally:
        server.stop()
    print(json.dumps(out, indent=1))


if __name__ == "__main__" and "--build-part" in sys.argv:
    _args = dict(zip(sys.argv[1::2], sys.argv[2::2], strict=False))
    _build_models(Path(_args["--lake"]), [int(x) for x in _args["--build-part"].split(",")])
    raise SystemExit(0)
if __name__ == "__main__":
    main()
