"""Delayed labels joined at the edge into mergeable performance profiles.

Ground truth arrives weeks after the prediction, keyed by the hospital's own
request or accession id. The edge HMACs that id with the streams' secret and
joins it with the prediction, which comes either from the label record itself
(``score_column`` with ``prediction_time_column``) or, opt-in, from a bounded
:class:`PredictionStore` on the edge's own volume: (HMAC id, window, version,
prediction) for ``label_horizon``, never in the bucket, expired on schedule.
The horizon is a retention limit on the edge's volume: it counts from when
the edge *stored* a prediction (its clock), not from the prediction's own
time, so a backfill of last quarter's predictions and outcomes joins like
live data, and nothing is kept longer than the horizon.

Per window of *prediction* time the joined labels become a ``labels`` row of
the ``performance`` table, one object per (labels batch, prediction date)
with a deterministic key: labels that arrive in pieces merge by adding counts.
What could not be joined is counted in ``label_batches`` and never guessed:

- ``duplicate_in_batch``: repeated ids in one batch; the last record wins
  (by ``time_column`` when given, else file order);
- ``already_labelled``: ids an earlier batch labelled; the first label is kept;
- ``unknown_id``: no stored prediction (never seen, or not in the store);
- ``late``: the prediction had expired from the store (stored more than the
  horizon ago): expired ids are remembered in a Bloom filter (1% false
  positives) for another horizon;
- ``unknown_class``, ``missing``: labels outside the classes, or records
  without an id or a label.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import json
import logging
import math
import os
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from mlmon.edge.checkpoint import atomic_write
from mlmon.edge.ingest import read_records
from mlmon.errors import ConfigError, SchemaError
from mlmon.governance.deid import hmac_ids
from mlmon.lake.schema import explain_unjoined
from mlmon.lake.writer import LakeWriter, WriteRecord, performance_row
from mlmon.profiles.frame import Reference, utc_timestamps
from mlmon.profiles.performance import PerformanceProfile, PerformanceSpec

__all__ = [
    "LabelBatch",
    "LabelJoinConfig",
    "PredictionHistograms",
    "PredictionStore",
    "join_labels",
    "labels_batch_id",
    "read_label_file",
]

log = logging.getLogger("mlmon.edge.labels")

_ID_HEX = 32  # the store keeps 128 bits of the 256-bit HMAC: collisions need ~2^64 ids
_US = 1_000_000


def _window_start_us(ts: pl.Expr, window: timedelta) -> pl.Expr:
    step = int(window.total_seconds() * _US)
    return (ts.dt.epoch("us") // step) * step


def _id16(hex_ids: pl.Expr | pl.Series) -> Any:
    return hex_ids.str.slice(0, _ID_HEX).str.decode("hex")


# -- Bloom filter of expired ids ------------------------------------------------------
def _bloom_positions(ids: pl.Series, m: int, k: int = 7) -> np.ndarray:
    raw = np.frombuffer(b"".join(ids.to_list()), dtype=np.uint64).reshape(-1, 2)
    h1, h2 = raw[:, 0], raw[:, 1] | np.uint64(1)
    i = np.arange(k, dtype=np.uint64)
    with np.errstate(over="ignore"):
        return ((h1[:, None] + i[None, :] * h2[:, None]) % np.uint64(m)).astype(np.int64)


def _bloom_build(ids: pl.Series, fpr: float = 0.01) -> np.ndarray:
    n = max(len(ids), 1)
    m = max(1024, math.ceil(-n * math.log(fpr) / math.log(2) ** 2))
    m += -m % 8  # whole bytes: the reader takes the size from the file
    bits = np.zeros(m, dtype=bool)
    if len(ids):
        bits[_bloom_positions(ids, m).ravel()] = True
    return np.packbits(bits)


def _bloom_contains(packed: np.ndarray, ids: pl.Series) -> np.ndarray:
    bits = np.unpackbits(packed).astype(bool)
    m = bits.size
    if not len(ids):
        return np.zeros(0, dtype=bool)
    return bits[_bloom_positions(ids, m)].all(axis=1)


# -- the prediction store -------------------------------------------------------------
#: File names in the store start with the time the edge stored them (its clock, UTC).
_STAMP = "%Y%m%dT%H%M%S%f"
_STAMP_LEN = 21  # len("20261005T000000000000")


def _stored_at(path: Path) -> datetime:
    """When the edge stored ``path``: the stamp its name starts with.

    Files named before stamps were part of every name (``labelled/.../{batch}.parquet``
    written by mlmon before the horizon counted from storage) fall back to their
    modification time, which is when they were written.
    """
    try:
        return datetime.strptime(path.name[:_STAMP_LEN], _STAMP).replace(tzinfo=UTC)
    except ValueError:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)


class PredictionStore:
    """Bounded local store of (HMAC id, window, version, prediction) on the edge's volume.

    Layout: ``{root}/{model}/predictions/date=YYYY-MM-DD/{stored}-{pid}-{n}.parquet``
    (one file per add, partitioned by prediction date, named by when it was stored),
    ``labelled/date=.../{stored}-{batch}.parquet`` (ids already labelled),
    ``expired/{expired on}_{stamp}.bloom`` and ``batches.json`` (batches joined). Files
    are written to a temporary name and renamed, so a crash never leaves half a file.

    The horizon is a retention limit: a file stored at ``t`` is expired by the first
    :meth:`expire` at ``now > t + horizon``, whatever the predictions' own times, and
    its ids are remembered as expired (``late``) for one more horizon.

    Parameters
    ----------
    root : path
        The store's folder on the edge's own volume (``state_dir/predictions``).
    horizon : timedelta
        ``label_horizon``: how long a stored prediction waits for its label.
    clock : callable, optional
        Returns the current UTC time (default: the wall clock); the collector passes
        its own, tests a fixed one.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        horizon: timedelta,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if horizon <= timedelta(0):
            raise ConfigError(f"label_horizon must be positive, got {horizon}")
        self.root = Path(root)
        self.horizon = horizon
        self.clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._seq = 0

    def _dir(self, model: str, kind: str) -> Path:
        return self.root / model / kind

    def _stamp(self, now: datetime) -> str:
        with self._lock:
            self._seq += 1
            seq = self._seq
        return f"{now.astimezone(UTC):{_STAMP}}-{os.getpid()}-{seq}"

    @staticmethod
    def _write(path: Path, frame: pl.DataFrame) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        frame.write_parquet(buf, compression="zstd", statistics=False)
        atomic_write(path, buf.getvalue())

    def add(self, model: str, frame: pl.DataFrame, window: timedelta, ts_column: str) -> int:
        """Keep the predictions of flat records (rows without a request id are skipped)."""
        if "request_id_hmac" not in frame.columns or "prediction" not in frame.columns:
            return 0
        version = (
            pl.col("model_version").cast(pl.String)
            if "model_version" in frame.columns
            else pl.lit(None, pl.String)
        )
        rows = frame.filter(
            pl.col("request_id_hmac").is_not_null() & pl.col("prediction").is_not_null()
        ).select(
            _id16(pl.col("request_id_hmac")).alias("id"),
            _window_start_us(pl.col(ts_column), window).alias("window_us"),
            version.alias("model_version"),
            pl.col("prediction"),
        )
        if rows.height == 0:
            return 0
        stamp = self._stamp(self.clock())
        day = pl.from_epoch(pl.col("window_us"), time_unit="us").dt.date().alias("day")
        for (d,), part in rows.with_columns(day).partition_by("day", as_dict=True).items():
            self._write(
                self._dir(model, "predictions") / f"date={d}" / f"{stamp}.parquet",
                part.drop("day"),
            )
        return rows.height

    def _scan(self, model: str, kind: str) -> pl.LazyFrame | None:
        files = sorted(self._dir(model, kind).glob("date=*/*.parquet"))
        return pl.scan_parquet(files) if files else None

    def lookup(self, model: str, ids: pl.DataFrame) -> pl.DataFrame:
        """Stored predictions for ``ids`` (column ``id``); the latest one wins on a repeat."""
        lf = self._scan(model, "predictions")
        if lf is None:
            return pl.DataFrame(
                schema={"id": pl.Binary, "window_us": pl.Int64, "model_version": pl.String}
            )
        return (
            lf.join(ids.lazy().select("id"), on="id", how="semi")
            .unique(subset="id", keep="last")
            .collect()
        )

    def already_labelled(self, model: str, ids: pl.Series) -> np.ndarray:
        lf = self._scan(model, "labelled")
        if lf is None or not len(ids):
            return np.zeros(len(ids), dtype=bool)
        seen = lf.select("id").collect().get_column("id")
        return ids.is_in(seen.implode()).to_numpy()

    def mark_labelled(
        self, model: str, batch_id: str, ids: pl.DataFrame, now: datetime | None = None
    ) -> None:
        """Remember ids labelled by ``batch_id`` (``id``, ``window_us``), by prediction date.

        The marks are stored at ``now`` (default: the store's clock), after the
        predictions they refer to, so they outlive them: an id is ``already_labelled``
        while its prediction is in the store, and ``late`` after.
        """
        stamp = self._stamp(now or self.clock())
        day = pl.from_epoch(pl.col("window_us"), time_unit="us").dt.date().alias("day")
        for (d,), part in ids.with_columns(day).partition_by("day", as_dict=True).items():
            self._write(
                self._dir(model, "labelled") / f"date={d}" / f"{stamp}-{batch_id}.parquet",
                part.select("id"),
            )

    def was_expired(self, model: str, ids: pl.Series) -> np.ndarray:
        out = np.zeros(len(ids), dtype=bool)
        for f in sorted(self._dir(model, "expired").glob("*.bloom")):
            out |= _bloom_contains(np.fromfile(f, dtype=np.uint8), ids)
        return out

    # batches already joined (so a re-run of the same file writes nothing twice)
    def _batches_path(self, model: str) -> Path:
        return self.root / model / "batches.json"

    def joined_batches(self, model: str) -> dict[str, Any]:
        p = self._batches_path(model)
        return json.loads(p.read_text()) if p.exists() else {}

    def record_batch(self, model: str, batch_id: str, summary: dict[str, Any]) -> None:
        p = self._batches_path(model)
        done = self.joined_batches(model)
        done[batch_id] = summary
        p.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(p, json.dumps(done, sort_keys=True, default=str).encode())

    def expire(self, now: datetime | None = None) -> int:
        """Drop what was stored more than the horizon before ``now``; returns files removed.

        ``now`` defaults to the store's clock. A file stored at ``t`` goes when
        ``t + horizon < now``; the ids of expired predictions are remembered in a Bloom
        filter named by the day they expired, kept for one more horizon (labels for
        them are then counted ``late``, not ``unknown_id``). The filter is written
        before the files are removed, so a crash in between loses nothing.
        """
        now = (now or self.clock()).astimezone(UTC)
        cutoff = now - self.horizon
        forget = cutoff.date()  # expired ids are remembered one more horizon
        removed = 0
        if not self.root.exists():
            return 0
        for model_dir in sorted(self.root.iterdir()):
            if not model_dir.is_dir():
                continue
            doomed = {
                kind: [
                    f
                    for f in sorted((model_dir / kind).glob("date=*/*.parquet"))
                    if _stored_at(f) < cutoff
                ]
                for kind in ("predictions", "labelled")
            }
            if doomed["predictions"]:
                ids = pl.concat([pl.read_parquet(f, columns=["id"]) for f in doomed["predictions"]])
                bloom = model_dir / "expired" / f"{now:%Y-%m-%d}_{self._stamp(now)}.bloom"
                bloom.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(bloom, _bloom_build(ids.get_column("id")).tobytes())
            for f in doomed["predictions"] + doomed["labelled"]:
                f.unlink()
                removed += 1
                with contextlib.suppress(OSError):  # not empty: other files remain
                    f.parent.rmdir()
            for bloom in (model_dir / "expired").glob("*.bloom"):
                expired_on = datetime.strptime(bloom.stem[:10], "%Y-%m-%d").date()
                if expired_on < forget:
                    bloom.unlink()
        return removed

    def size_bytes(self) -> int:
        if not self.root.exists():
            return 0
        return sum(f.stat().st_size for f in self.root.rglob("*") if f.is_file())


# -- predictions per window ------------------------------------------------------------
@dataclass
class PredictionHistograms:
    """Per (window, version): every prediction's score histogram, until the window is written."""

    spec: PerformanceSpec
    window: timedelta
    ts_column: str
    _open: dict[tuple[datetime, str | None], PerformanceProfile] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, frame: pl.DataFrame) -> None:
        if "prediction" not in frame.columns or frame.height == 0:
            return
        pred = frame.get_column("prediction")
        if self.spec.task == "multiclass" or not pred.dtype.is_numeric():
            scores = None
        else:
            scores = pred.cast(pl.Float64)
        version = (
            frame.get_column("model_version").cast(pl.String)
            if "model_version" in frame.columns
            else pl.Series([None] * frame.height, dtype=pl.String)
        )
        keyed = pl.DataFrame(
            {
                "w": frame.select(
                    _window_start_us(pl.col(self.ts_column), self.window)
                ).to_series(),
                "v": version,
                "s": scores
                if scores is not None
                else pl.Series([None] * frame.height, dtype=pl.Float64),
            }
        )
        for (w, v), part in keyed.partition_by(["w", "v"], as_dict=True).items():
            start = datetime.fromtimestamp(w / _US, UTC)
            if scores is None or self.spec.task == "regression":
                prof = PerformanceProfile(self.spec, count_total=part.height)
            else:
                prof = PerformanceProfile.from_predictions(
                    self.spec, part.get_column("s").fill_null(float("nan")).to_numpy()
                )
            with self._lock:
                key = (start, v)
                self._open[key] = self._open[key].merge(prof) if key in self._open else prof

    def pop(self, start: datetime, version: str | None) -> PerformanceProfile | None:
        with self._lock:
            return self._open.pop((start, version), None)


# -- the join ----------------------------------------------------------------------
@dataclass(frozen=True)
class LabelJoinConfig:
    """How label records look (see ``models[].performance`` in the edge config)."""

    id_column: str = "request_id"
    label_column: str = "label"
    time_column: str | None = None
    score_column: str | None = None
    prediction_time_column: str | None = None
    version_column: str | None = None


@dataclass
class LabelBatch:
    """What one labels batch did: counts for ``label_batches``, logs and metrics."""

    batch_id: str
    source: str
    records: int = 0
    matched: int = 0
    duplicate_in_batch: int = 0
    already_labelled: int = 0
    unknown_id: int = 0
    late: int = 0
    unknown_class: int = 0
    missing: int = 0
    windows: int = 0
    skipped: bool = False
    objects: list[WriteRecord] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("objects")
        return d

    @property
    def joined_nothing(self) -> bool:
        """Records arrived and none joined a prediction (``mlmon edge labels`` exits 6)."""
        return not self.skipped and self.records > 0 and self.matched == 0

    def explain(self) -> list[str]:
        """One line per non-zero count of records that did not join, with the reason."""
        return explain_unjoined(self.summary())


def labels_batch_id(data: bytes) -> str:
    """Deterministic id of a labels batch: a content hash of the file."""
    return hashlib.sha256(data).hexdigest()[:16]


def _check_columns(frame: pl.DataFrame, cfg: LabelJoinConfig, source: str) -> None:
    needed = [("id_column", cfg.id_column), ("label_column", cfg.label_column)]
    if cfg.score_column:
        needed.append(("score_column", cfg.score_column))
        if not cfg.prediction_time_column:
            raise ConfigError(
                "labels that carry the score also need the prediction time: set "
                "models[].performance.prediction_time_column"
            )
        needed.append(("prediction_time_column", cfg.prediction_time_column))
    for key, col in needed:
        if col not in frame.columns:
            raise SchemaError(
                f"labels file {source}: no {key.replace('_column', '')} column {col!r}; columns: "
                f"{', '.join(frame.columns)}; set models[].performance.{key} in the edge config"
            )


def join_labels(
    frame: pl.DataFrame,
    *,
    model: str,
    reference: Reference,
    secret: bytes,
    writer: LakeWriter,
    cfg: LabelJoinConfig,
    window: timedelta,
    batch_id: str,
    source: str,
    store: PredictionStore | None = None,
    now: datetime | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> LabelBatch:
    """Join one batch of label records and write its performance rows and summary.

    Raises
    ------
    SchemaError
        The id, label or score column is missing (names the file and the columns),
        or a time column holds naive timestamps (names the row).
    ConfigError
        The model has no performance spec in its reference, or the labels carry no
        score and there is no prediction store.
    """
    spec = reference.performance.spec if reference.performance is not None else None
    if spec is None:
        raise ConfigError(
            f"model {model!r}: its reference has no performance spec; rebuild it with "
            "`mlmon reference build --task binary --label-column ...`"
        )
    if now is None:
        now = store.clock() if store is not None else datetime.now(UTC)
    result = LabelBatch(batch_id, source, records=frame.height)
    if store is not None and batch_id in store.joined_batches(model):
        result.skipped = True
        log.info("labels batch already joined", extra={"model": model, "batch": batch_id})
        return result
    _check_columns(frame, cfg, source)
    if store is not None:
        store.expire(now)  # nothing past the horizon joins, even between scheduled expiries
    if not cfg.score_column and store is None:
        raise ConfigError(
            f"model {model!r}: labels in {source} carry no score and no prediction store is "
            "kept; set models[].performance.store_predictions: true or score_column"
        )
    df = frame.with_row_index("_row")
    if cfg.time_column and cfg.time_column in df.columns:
        df = df.with_columns(utc_timestamps(df, cfg.time_column, what=f"labels file {source}"))
        df = df.sort(cfg.time_column, "_row", nulls_last=False)
    ok = pl.col(cfg.id_column).is_not_null() & pl.col(cfg.label_column).is_not_null()
    result.missing = df.height - df.filter(ok).height
    df = df.filter(ok)
    ids = df.get_column(cfg.id_column).cast(pl.String).to_list()
    df = df.with_columns(
        _id16(pl.Series("h", hmac_ids(secret, ids), dtype=pl.String)).alias("id")
    ).drop(cfg.id_column)
    before = df.height
    df = df.unique(subset="id", keep="last", maintain_order=True)
    result.duplicate_in_batch = before - df.height
    if spec.task != "regression":
        idx, unknown = spec.class_index(df.get_column(cfg.label_column).cast(pl.String).to_numpy())
        result.unknown_class = int(unknown.sum())
        df = df.with_columns(pl.Series("y", idx)).filter(~pl.Series(unknown))
    else:
        df = df.with_columns(pl.col(cfg.label_column).cast(pl.Float64).alias("y"))
    if cfg.score_column:
        pt = utc_timestamps(df, cfg.prediction_time_column or "", what=f"labels file {source}")
        version = (
            pl.col(cfg.version_column).cast(pl.String)
            if cfg.version_column and cfg.version_column in df.columns
            else pl.lit(None, pl.String)
        )
        joined = df.with_columns(pt).select(
            "id",
            "y",
            _window_start_us(pl.col(cfg.prediction_time_column or ""), window).alias("window_us"),
            version.alias("model_version"),
            pl.col(cfg.score_column).alias("prediction"),
        )
    else:
        assert store is not None
        stored = store.lookup(model, df.select("id"))
        joined = df.select("id", "y").join(stored, on="id", how="inner")
        unmatched = df.select("id").join(stored, on="id", how="anti").get_column("id")
        late = store.was_expired(model, unmatched)
        result.late = int(late.sum())
        result.unknown_id = int(len(unmatched) - late.sum())
    if store is not None and joined.height:
        seen = store.already_labelled(model, joined.get_column("id"))
        result.already_labelled = int(seen.sum())
        joined = joined.filter(~pl.Series(seen))
    result.matched = joined.height
    rows = _performance_rows(joined, spec, reference.reference_id, batch_id, window, writer)
    result.windows = len(rows)
    result.objects = _write_by_date(writer, model, rows, "performance", f"labels-{batch_id}")
    starts = [r["window_start"] for r in rows] or [now]
    ends = [r["window_end"] for r in rows] or [now]
    summary = {
        "model_version": None,
        "window_start": min(starts),
        "window_end": max(ends),
        "collector_id": writer.collector_id,
        "received_at": now,
        **{k: v for k, v in result.summary().items() if k not in ("source", "windows", "skipped")},
    }
    result.objects.append(
        writer.write_table(
            "label_batches",
            model,
            pl.DataFrame([summary]),
            min(starts),
            max(ends),
            part=f"batch-{batch_id}",
        )
    )
    if store is not None:
        if joined.height:
            store.mark_labelled(model, batch_id, joined.select("id", "window_us"), now)
        store.record_batch(model, batch_id, result.summary())
    if result.joined_nothing:
        log.warning(
            "labels batch joined no prediction",
            extra={"model": model, "why": "; ".join(result.explain()), **result.summary()},
        )
    else:
        log.info("labels batch joined", extra={"model": model, **result.summary()})
    if on_row is not None:
        on_row(summary)
    return result


def _performance_rows(
    joined: pl.DataFrame,
    spec: PerformanceSpec,
    reference_id: str,
    batch_id: str,
    window: timedelta,
    writer: LakeWriter,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if joined.height == 0:
        return rows
    # one sort, then numpy slices per (window, version): no per-group polars query
    df = joined.with_columns(pl.col("model_version").fill_null("")).sort(
        "window_us", "model_version"
    )
    w_arr = df.get_column("window_us").to_numpy()
    v_arr = df.get_column("model_version").to_numpy()
    y_all = df.get_column("y").to_numpy()
    pred = df.get_column("prediction")
    if spec.task == "multiclass":
        p_all, bad_all = spec.class_index(pred.cast(pl.String).to_numpy())
    else:
        p_all, bad_all = pred.cast(pl.Float64).to_numpy(), None
    change = np.flatnonzero((w_arr[1:] != w_arr[:-1]) | (v_arr[1:] != v_arr[:-1])) + 1
    bounds = np.concatenate([[0], change, [len(w_arr)]])
    for lo, hi in itertools.pairwise(bounds.tolist()):
        w, version = int(w_arr[lo]), (str(v_arr[lo]) or None)
        y, p = y_all[lo:hi], p_all[lo:hi]
        if spec.task == "regression":
            prof = PerformanceProfile.from_labels(spec, y, predicted=p)
        elif spec.task == "binary":
            prof = PerformanceProfile.from_labels(spec, y, p)
        else:
            assert bad_all is not None
            ok = ~bad_all[lo:hi]
            prof = PerformanceProfile.from_labels(spec, y[ok], predicted=p[ok])
        start = datetime.fromtimestamp(w / _US, UTC)
        row = performance_row(
            prof, role="labels", reference_id=reference_id, collector_id=writer.collector_id,
            start=start, end=start + window, version=version, batch_id=batch_id,
        )  # fmt: skip
        rows.append(row)
    return rows


def _write_by_date(
    writer: LakeWriter, model: str, rows: list[dict[str, Any]], table: str, part: str
) -> list[WriteRecord]:
    out: list[WriteRecord] = []
    by_day: dict[Any, list[dict[str, Any]]] = {}
    for r in rows:
        by_day.setdefault(r["window_start"].date(), []).append(r)
    for day, items in sorted(by_day.items()):
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        columns = {k: [r.get(k) for r in items] for k in items[0]}
        out.append(
            writer.write_table(
                table,
                model,
                pa.Table.from_pydict(columns, schema=_arrow_schema(table, columns)),
                start,
                start + timedelta(days=1),
                part=part,
            )
        )
    return out


def _arrow_schema(table_name: str, columns: dict[str, Any]) -> pa.Schema:
    from mlmon.lake.schema import table

    fields = {f.name: f for f in table(table_name).arrow_schema}
    return pa.schema([fields[k] for k in columns])


def read_label_file(path: str | os.PathLike[str]) -> tuple[pl.DataFrame, str]:
    """A labels file (Parquet, CSV, JSONL) and its batch id (content hash)."""
    data = Path(path).read_bytes()
    parts = list(read_records(path))
    frame = pl.concat(parts, how="diagonal_relaxed") if parts else pl.DataFrame()
    return frame, labels_batch_id(data)
