"""What this machine's file system charges for a local lake's PUTs, without mlmon.

    python -m benchmarks.bench_folders DIR [DIR ...] [--objects 1200] [--repeat 3]

Each object as ``put_object`` writes one into a new ``date=`` folder: ``mkdir``, a temporary
file in that folder, ``rename``; 10 kB each, under a fresh folder inside each DIR. CPU (user +
system of this process) and wall seconds per run. A slow figure here is the machine's (its
file system), not mlmon's: compare DIR on disk with a tmpfs such as ``/dev/shm``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time


def run(where: str, objects: int) -> dict[str, object]:
    base = tempfile.mkdtemp(dir=where, prefix="mlmon-bench-folders-")
    data = b"x" * 10_000
    try:
        cpu, wall = time.process_time(), time.perf_counter()
        for i in range(objects):
            folder = os.path.join(base, "v1", "profiles", "model=m", f"date={i:05d}")
            os.makedirs(folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".part")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, os.path.join(folder, "object.parquet"))
        return {"dir": where, "objects": objects,
                "cpu_s": round(time.process_time() - cpu, 3),
                "wall_s": round(time.perf_counter() - wall, 3)}  # fmt: skip
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dirs", nargs="+")
    ap.add_argument("--objects", type=int, default=1200)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    for _ in range(args.repeat):
        for d in args.dirs:
            print(json.dumps(run(d, args.objects)))


if __name__ == "__main__":
    main()
