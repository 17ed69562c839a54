"""mlmon's label-free estimates against NannyML's CBPE, with the model's logged decisions.

    python -m benchmarks.bench_cbpe_multiclass [--chunk-size 6000] [--binary-chunk-size 5000]

Multiclass: NannyML's synthetic multiclass dataset (three cards). mlmon builds its reference
from NannyML's reference period (scores y_pred_proba_*, decisions y_pred, labels y_true), then
profiles each chunk of the analysis period from its records alone (scores and decisions, no
labels) and estimates every metric; NannyML 0.13.1's CBPE runs on the same chunks in its own
environment (benchmarks/nannyml/cbpe.py, NML_DISABLE_USAGE_LOGGING=1). The realized values
are scikit-learn's on the raw records with y_true (analysis_targets joined on id). Printed and
recorded: per metric, mean |mlmon - NannyML| and each one's mean |estimate - realized|.

Binary: NannyML's binary dataset with its y_pred. Realized metrics of mlmon's profiles with
the decisions equal scikit-learn on the raw records (max difference printed), how many rows'
decision differs from score >= 0.5, and the same estimate comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sklearn import metrics as skm

from mlmon.analysis.performance import calibration, estimate, realized
from mlmon.profiles.frame import build_reference
from mlmon.profiles.performance import PerformanceProfile, PerformanceSpec, decision_index
from tests import nannyml_data

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("roc_auc", "f1", "precision", "recall", "specificity", "accuracy")
MC_CLASSES = ("prepaid_card", "highstreet_card", "upmarket_card")


def nannyml_cbpe(name: str, chunk_size: int) -> dict[str, Any]:
    env = dict(os.environ, NML_DISABLE_USAGE_LOGGING="1")
    out = subprocess.run(
        [str(nannyml_data.nannyml_python()), str(ROOT / "benchmarks" / "nannyml" / "cbpe.py"),
         str(nannyml_data.export()), name, str(chunk_size)],
        check=True, env=env, capture_output=True, text=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def sklearn_metrics(
    y: np.ndarray, pred: np.ndarray, scores: np.ndarray, k: int
) -> dict[str, float]:
    """Realized metrics on raw records (macro for multiclass), NannyML's definitions."""
    labels = np.arange(k)
    cm = skm.confusion_matrix(y, pred, labels=labels).astype(np.float64)
    tp = np.diag(cm)
    tn = cm.sum() - cm.sum(axis=0) - cm.sum(axis=1) + tp
    spec = tn / (cm.sum() - cm.sum(axis=1))
    if k == 2:
        return {
            "roc_auc": skm.roc_auc_score(y, scores),
            "f1": skm.f1_score(y, pred),
            "precision": skm.precision_score(y, pred),
            "recall": skm.recall_score(y, pred),
            "specificity": float(spec[1]),  # one-vs-rest of the positive class: TN / (TN + FP)
            "accuracy": skm.accuracy_score(y, pred),
        }
    return {
        "roc_auc": skm.roc_auc_score(y, scores, multi_class="ovr", average="macro", labels=labels),
        "f1": skm.f1_score(y, pred, average="macro"),
        "precision": skm.precision_score(y, pred, average="macro"),
        "recall": skm.recall_score(y, pred, average="macro"),
        "specificity": float(spec.mean()),
        "accuracy": skm.accuracy_score(y, pred),
    }


def compare(name: str, chunk_size: int) -> dict[str, Any]:
    reference, analysis, targets = nannyml_data.load(name)
    if name == "multiclass":
        label, classes = "y_true", MC_CLASSES
        score_cols = [f"y_pred_proba_{c}" for c in classes]
        spec = PerformanceSpec.make("multiclass", classes=classes)
    else:
        label, classes = "work_home_actual", ("0", "1")
        score_cols = ["y_pred_proba"]
        spec = PerformanceSpec.make("binary", classes=classes)
    features = [c for c in reference.columns if c not in
                ("id", "timestamp", "period", label, "y_pred", *score_cols)]  # fmt: skip
    from mlmon.profiles.schema import Schema

    ref = build_reference(
        reference, Schema.infer(reference.select(features)), model=name, performance=spec,
        label_column=label, score_columns=score_cols, decision_column="y_pred",
    )  # fmt: skip
    assert ref.performance is not None
    cal = calibration(ref.performance)
    assert cal is not None
    frame = analysis.join(targets, on="id", how="left")
    nml = nannyml_cbpe(name, chunk_size)
    rows: list[dict[str, Any]] = []
    max_realized_diff = 0.0
    half = len(nml["chunks"]) // 2
    for i, ch in enumerate(nml["chunks"]):
        part = frame.slice(ch["start"], ch["end"] - ch["start"])
        scores = part.select(score_cols).to_numpy().astype(np.float64)
        dec, _ = decision_index(spec, part.get_column("y_pred"), "y_pred")
        y, _ = spec.class_index(part.get_column(label).cast(pl.String).to_numpy())
        s = scores if spec.task == "multiclass" else scores[:, 0]
        est = estimate(PerformanceProfile.from_predictions(spec, s, dec), cal)
        real_prof = PerformanceProfile.from_labels(spec, y, s, decisions=dec)
        ours_real = realized(real_prof)
        sk = sklearn_metrics(y, dec, scores if spec.task == "multiclass" else s, spec.k)
        for m in METRICS:
            if m != "roc_auc":  # threshold metrics are exact; AUC is on binned scores
                max_realized_diff = max(max_realized_diff, abs(ours_real[m] - sk[m]))
            rows.append({"chunk": ch["start"], "first_half": i < half, "metric": m, "mlmon": est[m][0],
                         "lower": est[m][1], "upper": est[m][2],
                         "nannyml": ch["estimated"][m], "realized": sk[m],
                         "nannyml_realized": ch["realized"][m]})  # fmt: skip
    table = pl.DataFrame(rows)
    summary = table.group_by("metric", maintain_order=True).agg(
        (pl.col("mlmon") - pl.col("nannyml")).abs().mean().alias("mlmon_vs_nannyml"),
        (pl.col("mlmon") - pl.col("realized")).abs().mean().alias("mlmon_mae"),
        (pl.col("nannyml") - pl.col("realized")).abs().mean().alias("nannyml_mae"),
        (pl.col("mlmon") - pl.col("realized")).abs().filter("first_half").mean().alias("mae_1"),
        (pl.col("mlmon") - pl.col("realized"))
        .abs()
        .filter(~pl.col("first_half"))
        .mean()
        .alias("mae_2"),
        ((pl.col("lower") <= pl.col("realized")) & (pl.col("realized") <= pl.col("upper")))
        .mean()
        .alias("band_covers"),
    )
    dec_all, _ = decision_index(spec, frame.get_column("y_pred"), "y_pred")
    s_all = frame.select(score_cols).to_numpy()
    rule = (s_all[:, 0] >= 0.5) if spec.task == "binary" else np.argmax(s_all, axis=1)
    return {
        "name": name,
        "chunks": len(nml["chunks"]),
        "summary": summary,
        "max_realized_vs_sklearn": max_realized_diff,
        "decision_differs": int(np.count_nonzero(dec_all != rule)),
        "rows": frame.height,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chunk-size", type=int, default=6000)
    ap.add_argument("--binary-chunk-size", type=int, default=5000)
    args = ap.parse_args()
    for name, size in (("multiclass", args.chunk_size), ("binary", args.binary_chunk_size)):
        r = compare(name, size)
        print(f"\n{name}: {r['chunks']} chunks of {size} rows; decision differs from the rule on "
              f"{r['decision_differs']} of {r['rows']} analysis rows; realized threshold metrics "
              f"from profiles vs scikit-learn on the raw rows: max |diff| "
              f"{r['max_realized_vs_sklearn']:.2e}")  # fmt: skip
        print("| metric | mean abs mlmon - NannyML | mlmon MAE vs realized | NannyML MAE vs realized"
              " | mlmon MAE, first / second half of the chunks | mlmon 95% band covers realized |")  # fmt: skip
        print("|---|---|---|---|---|---|")
        for row in r["summary"].iter_rows(named=True):
            print(f"| {row['metric']} | {row['mlmon_vs_nannyml']:.4f} | {row['mlmon_mae']:.4f} | "
                  f"{row['nannyml_mae']:.4f} | {row['mae_1']:.4f} / {row['mae_2']:.4f} | "
                  f"{row['band_covers']:.0%} |")  # fmt: skip


if __name__ == "__main__":
    main()
