"""The README's two commands on a fresh clone: how long a newcomer waits.

    python -m benchmarks.bench_fresh_clone [--cold] [--test]

Clones the repository's HEAD into a new temporary folder and times, each as a
whole process: ``make setup-demo`` (system packages already present, the
locked environment installed by uv), ``make demo`` (installs nothing more,
then the whole job) and, with ``--test``, ``make test`` (the test extras, then
lint and the whole suite). ``--cold`` gives uv an empty cache, so every wheel
is downloaded from the package registry as on a new machine; without it the
machine's uv cache is used. The clone is removed at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, int]:
    t0 = time.monotonic()
    r = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if r.returncode != 0:
        print(r.stderr.decode(errors="replace")[-2000:])
    return time.monotonic() - t0, r.returncode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cold", action="store_true", help="an empty uv cache (download everything)")
    ap.add_argument("--test", action="store_true", help="also time `make test` on the clone")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mlmon-fresh-"))
    try:
        clone = tmp / "fresh"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        env = dict(os.environ)
        if args.cold:
            env["UV_CACHE_DIR"] = str(tmp / "uv-cache")
        steps = [["make", "setup-demo"], ["make", "demo"]] + (
            [["make", "test"]] if args.test else []
        )
        total = 0.0
        for cmd in steps:
            seconds, rc = _timed(cmd, clone, env)
            total += seconds
            print(f"{' '.join(cmd):<16} {seconds:7.1f} s  exit {rc}")
        print(f"{'total':<16} {total:7.1f} s  ({'cold' if args.cold else 'warm'} uv cache)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
