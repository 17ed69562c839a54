"""The collector's performance tasks: predictions per window, the reference row, labels batches.

Kept out of :mod:`mlmon.edge.collector` so that file only wires it in: the
collector calls :meth:`EdgePerformance.attach` for each stream or sink state,
:meth:`window_closed` after writing a window, :meth:`publish_reference` once,
and schedules :meth:`labels_task` when a labels folder is configured.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import fsspec
import polars as pl

from mlmon.analysis.performance import calibration, estimate, metric, realized
from mlmon.edge.alerts import Condition
from mlmon.edge.checkpoint import atomic_write
from mlmon.edge.config import ModelConfig
from mlmon.edge.labels import (
    LabelBatch,
    LabelJoinConfig,
    PredictionHistograms,
    PredictionStore,
    join_labels,
    read_label_file,
    segment_columns,
)
from mlmon.errors import MlmonError
from mlmon.lake.writer import performance_row
from mlmon.profiles.frame import Reference, Window

__all__ = ["EdgePerformance", "estimate_alerts", "estimate_conditions"]

log = logging.getLogger("mlmon.edge.performance")

#: Estimated metrics that raise an alert at the edge when they fall below the reference's.
ALERT_METRICS = ("accuracy", "roc_auc")
ALERT_MIN_COUNT = 200


class EdgePerformance:
    """Performance monitoring of the models whose reference carries a performance spec."""

    def __init__(self, collector: Any) -> None:
        self.c = collector
        self.hists: dict[str, PredictionHistograms] = {}
        self.stores: dict[str, PredictionStore] = {}
        self.configs: dict[str, ModelConfig] = {}
        for m in collector.config.models:
            ref: Reference = collector.references[m.name]
            if ref.performance is None:
                continue
            self.configs[m.name] = m
            self.hists[m.name] = PredictionHistograms(
                ref.performance.spec,
                collector.config.window,
                ref.schema.timestamp,
                segments=ref.schema.segments,
            )
            if m.performance is not None and m.performance.store_predictions:
                self.stores[m.name] = PredictionStore(
                    collector.state_dir / "predictions",
                    m.performance.label_horizon,
                    clock=collector.clock,
                )

    # -- predictions -----------------------------------------------------------------
    def attach(self, model: str, state: Any) -> None:
        """Observe a stream's or sink's flat-record frames."""
        if model not in self.hists:
            return
        hist = self.hists[model]
        store = self.stores.get(model)
        ts = self.c.references[model].schema.timestamp

        spec = hist.spec
        score = spec.score_columns[0] if spec.task == "binary" and spec.score_columns else None

        segments = self.c.references[model].schema.segments

        def observe(frame: pl.DataFrame) -> None:
            # each row's allow-listed segment values, once for the histograms and the store
            seg_cols = segment_columns(frame, segments) if segments else []
            scores, decisions = hist.add(frame, seg_cols)
            if score is not None and score in frame.columns and "prediction" in frame.columns:
                # a binary model's stored prediction is its score, from the reference's column
                frame = frame.with_columns(
                    pl.coalesce(
                        pl.col("prediction").cast(pl.Float64, strict=False),
                        pl.col(score).cast(pl.Float64, strict=False),
                    ).alias("prediction")
                )
            if store is not None:
                store.add(
                    model, frame, self.c.config.window, ts, task=hist.spec.task,
                    decisions=decisions,
                    class_scores=scores if spec.task == "multiclass" else None,
                    segments=seg_cols,
                )  # fmt: skip

        state.observers.append(observe)

    def window_closed(
        self, model: str, w: Window, source: str, part: str | None, now: datetime
    ) -> int:
        """Write the window's ``predictions`` row and estimate alerts; returns objects written."""
        hist = self.hists.get(model)
        if hist is None:
            return 0
        prof = hist.pop(w.start, w.version)
        if prof is None:
            return 0
        ref = self.c.references[model]
        row = performance_row(
            prof, role="predictions", reference_id=ref.reference_id,
            collector_id=self.c.config.collector_id, start=w.start, end=w.end,
            version=w.version, batch_id=source,
        )  # fmt: skip
        label = "-".join(p for p in ("predictions", source, part) if p)
        self.c.writer.write_table(
            "performance", model, pl.DataFrame([row], infer_schema_length=None), w.start, w.end,
            part=label,
        )  # fmt: skip
        written = 1
        per_segment = hist.pop_segments(w.start, w.version)
        if per_segment:  # the same window's predictions per segment (label-free estimates)
            seg_rows = [
                {**performance_row(
                    p, role="predictions", reference_id=ref.reference_id,
                    collector_id=self.c.config.collector_id, start=w.start, end=w.end,
                    version=w.version, batch_id=source,
                ), "segment": key.partition("=")[0], "segment_value": key.partition("=")[2]}
                for key, p in sorted(per_segment.items())
            ]  # fmt: skip
            self.c.writer.write_table(
                "segment_performance", model, pl.DataFrame(seg_rows, infer_schema_length=None),
                w.start, w.end, part=label,
            )  # fmt: skip
            written += 1
        # written when an estimate starts or stops looking worse than the reference, not per window
        conditions = estimate_conditions(ref, prof, scope=source)
        if conditions:
            self.c._alert_changes(
                model, conditions, now, w.start, w.end, w.version, part=f"perf-{label}"
            )
        return written

    def publish_reference(self, model: str) -> None:
        self.c.writer.write_performance_reference(model, self.c.references[model])

    # -- labels ------------------------------------------------------------------------
    def join_file(self, model: str, path: str | Path, now: datetime | None = None) -> LabelBatch:
        """Join one labels file (``mlmon edge labels``, or the watched folder)."""
        m = self.configs.get(model)
        if m is None:
            raise MlmonError(
                f"model {model!r} has no performance spec in its reference; rebuild the "
                "reference with --task and a label column"
            )
        cfg = m.performance
        join_cfg = LabelJoinConfig(
            **{k: getattr(cfg, k) for k in LabelJoinConfig.__dataclass_fields__}
        ) if cfg is not None else LabelJoinConfig()  # fmt: skip
        unreadable: dict[str, int] = {}  # lines that could not be records, by reason
        frame, batch_id = read_label_file(path, unreadable)
        result = join_labels(
            frame, model=model, reference=self.c.references[model], secret=self.c.secret,
            writer=self.c.writer, cfg=join_cfg, window=self.c.config.window, batch_id=batch_id,
            source=Path(path).name, store=self.stores.get(model), now=now or self.c.clock(),
            unreadable=unreadable,
        )  # fmt: skip
        for outcome in ("matched", "duplicate_in_batch", "already_labelled", "unknown_id", "late",
                        "unknown_class", "missing"):  # fmt: skip
            n = getattr(result, outcome)
            if n:
                self.c.metrics.labels.labels(model, outcome).inc(n)
        if self.c.audit is not None and not result.skipped:
            self.c.audit.record(
                "labels_joined", f"{model}/{batch_id}", outcome="ok",
                records=result.records, matched=result.matched, late=result.late,
                unknown_id=result.unknown_id,
            )  # fmt: skip
        self.update_gauges()
        return result

    def update_gauges(self) -> None:
        for model, store in self.stores.items():
            self.c.metrics.prediction_store_bytes.labels(model).set(store.size_bytes())

    def labels_task(self, m: ModelConfig) -> Callable[[datetime, Any], None]:
        assert m.performance is not None
        perf = m.performance
        folder = perf.labels_folder

        def run(now: datetime, report: Any) -> None:
            store = self.stores.get(m.name)
            if store is not None:
                store.expire(now)
            if folder:
                fs, root = fsspec.core.url_to_fs(folder, **perf.labels_storage_options)
                seen_path = self.c.state_dir / "labels" / f"{m.name}-files.json"
                seen = json.loads(seen_path.read_text()) if seen_path.exists() else {}
                for entry in sorted(fs.ls(root, detail=False)):
                    name = str(entry).rsplit("/", 1)[-1]
                    if name.startswith(".") or not name.endswith((".parquet", ".csv", ".jsonl")):
                        continue
                    if name in seen:
                        continue
                    try:
                        with _local_copy(fs, entry, name) as local:
                            result = self.join_file(m.name, local, now)
                    except MlmonError as exc:
                        report.errors.append(f"{m.name}/labels {name}: {exc}")
                        log.error("labels file refused", extra={"model": m.name, "file": name,
                                                                "error": str(exc)})  # fmt: skip
                        continue
                    report.objects += len(result.objects)
                    seen[name] = result.batch_id
                    seen_path.parent.mkdir(parents=True, exist_ok=True)
                    atomic_write(seen_path, json.dumps(seen, sort_keys=True).encode())
            self.update_gauges()

        return run


def estimate_conditions(ref: Reference, prof: Any, scope: str = "") -> list[Condition]:
    """One condition per alerting metric of a closed window: is its estimate below the
    reference's? None when the window cannot be judged (no calibration, too few predictions),
    so an alert already firing neither fires again nor resolves on too little evidence."""
    if ref.performance is None:
        return []
    cal = calibration(ref.performance)
    if cal is None or prof.count_total < ALERT_MIN_COUNT:
        return []
    baseline = realized(ref.performance)
    out = []
    for name, (value, _lo, _hi) in estimate(prof, cal, draws=500).items():
        if name not in ALERT_METRICS:
            continue
        base = baseline.get(name, float("nan"))
        out.append(
            Condition(
                f"performance_estimate:{name}",
                "warning",
                bool(metric(name).alert(value, base)),
                f"estimated {name} {value:.3f} vs reference {base:.3f}",
                value=float(value),
                threshold=float(base - metric(name).tolerance),
                scope=scope,
            )
        )
    return out


def estimate_alerts(ref: Reference, prof: Any, now: datetime) -> list[dict[str, Any]]:
    """Firing rows when a closed window's estimated accuracy or ROC AUC falls below the
    reference's, without any state (the collector writes state changes instead)."""
    return [c.row(now, "firing") for c in estimate_conditions(ref, prof) if c.holds]


@contextlib.contextmanager
def _local_copy(fs: Any, entry: str, name: str) -> Iterator[str]:
    """A local path for a labels file: itself when local, else a temporary copy that is
    removed afterwards (label files carry the hospital's ids: no copy is left behind)."""
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    if "file" in protocols:
        yield str(entry)
        return
    with tempfile.TemporaryDirectory(prefix="mlmon-labels-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(fs.cat_file(entry))
        yield str(path)
