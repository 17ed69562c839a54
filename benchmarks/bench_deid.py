"""Issue 18 benchmark: the text detectors of opt-in samples.

    python -m benchmarks.bench_deid [--n 20000] [--repeat 5]

``n`` distinct text values (the corpus of ``tests/governance/deid_corpus.json``,
identifiers and benign values, each made distinct by a suffix) go through
:func:`mlmon.governance.samples.protect_text` as one batch, the way a window's
sampled rows do (one scan per distinct value). Reports values/second, and for
scale the same values through ``hmac_ids`` (the ``hmac`` rule) in the same process.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import polars as pl

from mlmon.governance.deid import hmac_ids
from mlmon.governance.samples import protect_text

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "governance" / "deid_corpus.json"


def values(n: int) -> list[str]:
    corpus = json.loads(CORPUS.read_text("utf-8"))
    base = [v for _, v, _ in corpus["identifiers"]] + corpus["benign"]
    return [f"{base[i % len(base)]} r{i // len(base)}" for i in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    texts = pl.Series("t", values(args.n))
    scan, hmac = [], []
    for _ in range(args.repeat):
        t = time.perf_counter()
        _, why = protect_text(texts, max_words=50)
        scan.append(time.perf_counter() - t)
        t = time.perf_counter()
        hmac_ids(b"k" * 32, texts.to_list())
        hmac.append(time.perf_counter() - t)
    flagged = sum(1 for w in why.to_list() if w)
    print(f"values: {args.n} distinct, {flagged} flagged")
    print(f"protect_text: best {min(scan):.3f} s = {args.n / min(scan):,.0f} values/s")
    print(f"hmac_ids:     best {min(hmac):.3f} s = {args.n / min(hmac):,.0f} values/s")
    print(f"ratio hmac/scan: {min(scan) / min(hmac):.0f}x")


if __name__ == "__main__":
    main()
