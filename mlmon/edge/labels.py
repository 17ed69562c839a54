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
from mlmon.edge.ingest import read_records, record_format
from mlmon.errors import ConfigError, SchemaError
from mlmon.governance.deid import hmac_ids
from mlmon.lake.schema import explain_unjoined
from mlmon.lake.writer import LakeWriter, WriteRecord, performance_row
from mlmon.profiles.frame import Reference, segment_codes
from mlmon.profiles.performance import PerformanceProfile, PerformanceSpec, decision_index
from mlmon.profiles.schema import SegmentSpec

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


#: Prefix of the prediction store's and the join's per-segment columns: ``segment:ward``
#: holds each row's allow-listed segment value (never a value outside the list).
SEG_PREFIX = "segment:"


def segment_columns(frame: pl.DataFrame, segments: tuple[SegmentSpec, ...]) -> list[pl.Series]:
    """``segment:{name}`` columns of ``frame``'s allow-listed segment values (or band labels),
    one per segment whose column ``frame`` has; a value outside the list is ``__other__``."""
    return [
        segment_codes(frame, spec).alias(SEG_PREFIX + spec.name)
        for spec in segments
        if spec.source in frame.columns
    ]


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


def _prediction(dtype: pl.DataType, task: str | None) -> pl.Expr:
    """``prediction`` in the type the task needs: numbers, or text for ``multiclass``.

    Values that cannot take the type (text that is no number, lists) become null.
    """
    col = pl.col("prediction")
    if task is None:
        return col
    if task == "multiclass":
        return (
            pl.lit(None, pl.String)
            if dtype.is_nested() or dtype in (pl.Binary, pl.Object)
            else col.cast(pl.String, strict=False)
        ).alias("prediction")
    if dtype.is_numeric() or dtype == pl.Boolean:
        return col.cast(pl.Float64).alias("prediction")
    if dtype == pl.String:
        return col.str.strip_chars().cast(pl.Float64, strict=False).alias("prediction")
    return pl.lit(None, pl.Float64).alias("prediction")


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

    def add(
        self,
        model: str,
        frame: pl.DataFrame,
        window: timedelta,
        ts_column: str,
        *,
        task: str | None = None,
        decisions: np.ndarray | None = None,
        class_scores: np.ndarray | None = None,
        segments: list[pl.Series] | None = None,
    ) -> int:
        """Keep the predictions of flat records (rows without a request id are skipped).

        ``task`` (the reference's performance task) fixes the stored type of
        ``prediction``: numbers for ``binary`` and ``regression`` (a text that
        is no number is not stored), text for ``multiclass``; every file of a
        model's store then has the same schema, whatever one batch held.
        ``decisions``: the model's logged decision of each row as a class index
        (-1 where none), stored as ``decision`` (null where none). ``class_scores``
        (multiclass, (n, K)): each row's class probabilities, stored as ``score_0`` ...
        ``score_{K-1}`` (null where missing), so joined labels give ROC AUC, Brier and log loss.
        ``segments`` (:func:`segment_columns`): each row's allow-listed segment values, stored
        so that joined labels give performance per segment too.
        """
        if "request_id_hmac" not in frame.columns or "prediction" not in frame.columns:
            return 0
        if decisions is not None:
            frame = frame.with_columns(
                pl.Series("_mlmon_decision", decisions, pl.Int64).replace(-1, None)
            )
        score_names = []
        if class_scores is not None:
            score_names = [f"score_{i}" for i in range(class_scores.shape[1])]
            frame = frame.with_columns(
                pl.Series(f"_mlmon_{n}", class_scores[:, i], pl.Float64).fill_nan(None)
                for i, n in enumerate(score_names)
            )
        seg_names = [str(c.name) for c in segments or ()]
        if segments:
            frame = frame.with_columns(segments)
        version = (
            pl.col("model_version").cast(pl.String)
            if "model_version" in frame.columns
            else pl.lit(None, pl.String)
        )
        prediction = _prediction(frame.schema["prediction"], task)
        rows = frame.select(
            _id16(pl.col("request_id_hmac")).alias("id"),
            _window_start_us(pl.col(ts_column), window).alias("window_us"),
            version.alias("model_version"),
            prediction.alias("prediction"),
            *([pl.col("_mlmon_decision").alias("decision")] if decisions is not None else []),
            *(pl.col(f"_mlmon_{n}").alias(n) for n in score_names),
            *(pl.col(n) for n in seg_names),
        )
        known = pl.col("prediction").is_not_null()
        if decisions is not None and task == "multiclass":
            # the decision is its prediction; a row whose decision was missing or not a class
            # is kept too, so its label is counted as bad_prediction, not as an unknown id
            known = pl.lit(True)
        rows = rows.filter(pl.col("id").is_not_null() & known)
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

    def lookup(self, model: str, ids: pl.DataFrame, task: str | None = None) -> pl.DataFrame:
        """Stored predictions for ``ids`` (column ``id``); the latest one wins on a repeat.

        Files whose ``prediction`` types differ (written before the store fixed
        the type per ``task``) are read one by one and cast to the task's type.
        """
        files = sorted(self._dir(model, "predictions").glob("date=*/*.parquet"))
        if not files:
            return pl.DataFrame(
                schema={"id": pl.Binary, "window_us": pl.Int64, "model_version": pl.String}
            )
        want = ids.lazy().select("id")
        try:
            return (
                pl.scan_parquet(files)
                .join(want, on="id", how="semi")
                .unique(subset="id", keep="last")
                .collect()
            )
        except pl.exceptions.PolarsError:  # mixed schemas: one file at a time, one type
            parts = []
            for f in files:
                part = pl.scan_parquet(f).join(want, on="id", how="semi").collect()
                parts.append(
                    part.with_columns(_prediction(part.schema["prediction"], task or "multiclass"))
                )
            # files with and without logged decisions: the missing ``decision`` is null
            return pl.concat(parts, how="diagonal_relaxed").unique(subset="id", keep="last")

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
    """Per (window, version): every prediction's score histogram, until the window is written.

    With ``segments`` (the reference's), per (window, version, segment) as well:
    :meth:`pop_segments` gives them (``"ward=ICU"`` -> profile) when the window closes.
    """

    spec: PerformanceSpec
    window: timedelta
    ts_column: str
    segments: tuple[SegmentSpec, ...] = ()
    _open: dict[tuple[datetime, str | None], PerformanceProfile] = field(default_factory=dict)
    _seg_open: dict[tuple[datetime, str | None], dict[str, PerformanceProfile]] = field(
        default_factory=dict
    )
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(
        self, frame: pl.DataFrame, segments: list[pl.Series] | None = None
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Count a flat frame's predictions into their windows; returns the rows' scores
        (see :meth:`_outputs`) and the model's logged decision of each row as a class index
        (-1 where none), each None when the frame has none. ``segments``: the frame's
        :func:`segment_columns` (computed here when None and the reference has segments)."""
        if frame.height == 0:
            return None, None
        scores, decisions = self._outputs(frame)
        if scores is None and "prediction" not in frame.columns:
            return scores, decisions
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
                "i": pl.Series(np.arange(frame.height)),
            }
        )

        def profile(rows: np.ndarray) -> PerformanceProfile:
            if scores is None or self.spec.task == "regression":
                return PerformanceProfile(self.spec, count_total=len(rows))
            return PerformanceProfile.from_predictions(
                self.spec, scores[rows], decisions[rows] if decisions is not None else None
            )

        groups = []
        for (w, v), part in keyed.partition_by(["w", "v"], as_dict=True).items():
            start = datetime.fromtimestamp(w / _US, UTC)
            rows = part.get_column("i").to_numpy()
            groups.append((start, v, rows))
            prof = profile(rows)
            with self._lock:
                key = (start, v)
                self._open[key] = self._open[key].merge(prof) if key in self._open else prof
        if segments is None and self.segments:
            segments = segment_columns(frame, self.segments)
        for col in segments or ():
            name = str(col.name).removeprefix(SEG_PREFIX)
            codes = col.to_numpy()
            for start, v, rows in groups:  # each window's rows split by segment value
                values, which = np.unique(codes[rows], return_inverse=True)
                if scores is None or self.spec.task == "regression":
                    profs = [profile(rows[which == j]) for j in range(len(values))]
                else:  # one pass over the window's rows for all its segment values
                    profs = PerformanceProfile.from_predictions_grouped(
                        self.spec, scores[rows], which, len(values),
                        decisions[rows] if decisions is not None else None,
                    )  # fmt: skip
                for value, prof in zip(values.tolist(), profs, strict=True):
                    seg = f"{name}={value}"
                    with self._lock:
                        open_ = self._seg_open.setdefault((start, v), {})
                        open_[seg] = open_[seg].merge(prof) if seg in open_ else prof
        return scores, decisions

    def _outputs(self, frame: pl.DataFrame) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The scores ((n,) binary, (n, K) multiclass; NaN where missing) and the logged
        decisions as class indices (-1 where missing or not a class) of a flat frame."""
        spec = self.spec
        if spec.task == "regression":
            return (np.zeros(frame.height) if "prediction" in frame.columns else None), None
        cols = [c for c in spec.score_columns if c in frame.columns]
        scores: np.ndarray | None = None
        if cols and len(cols) == len(spec.score_columns) == spec.score_classes:
            scores = frame.select(
                pl.col(c).cast(pl.Float64, strict=False).fill_null(float("nan")) for c in cols
            ).to_numpy()
            if spec.task == "binary":
                scores = scores[:, 0]
        elif spec.task == "binary" and "prediction" in frame.columns:
            pred = frame.get_column("prediction")
            if pred.dtype.is_numeric():
                scores = pred.cast(pl.Float64).fill_null(float("nan")).to_numpy()
        name = spec.decision_column
        if name is None and spec.task == "multiclass" and "prediction" in frame.columns:
            name = "prediction"  # a multiclass model's prediction is its predicted class
        if name is None or name not in frame.columns:
            return scores, None
        column = frame.get_column(name)
        try:
            idx, unknown = decision_index(spec, column, name, strict=False)
        except SchemaError as exc:  # a whole batch of the wrong type: the rule decides
            log.warning("decisions not used", extra={"column": name, "error": str(exc)})
            return scores, None
        if unknown:
            log.warning(
                "decisions not among the classes: the rule decides for those rows",
                extra={"column": name, "count": unknown},
            )
        return scores, idx

    def pop(self, start: datetime, version: str | None) -> PerformanceProfile | None:
        with self._lock:
            return self._open.pop((start, version), None)

    def pop_segments(self, start: datetime, version: str | None) -> dict[str, PerformanceProfile]:
        """The window's profiles per segment (``"ward=ICU"`` -> profile), removed."""
        with self._lock:
            return self._seg_open.pop((start, version), {})


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
    #: Rows skipped for a value of the wrong type, by reason (:data:`BAD_LABEL_ROWS`);
    #: they are part of ``missing`` in the lake.
    bad: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("objects")
        d.pop("bad")
        return d

    @property
    def joined_nothing(self) -> bool:
        """Records arrived and none joined a prediction (``mlmon edge labels`` exits 6)."""
        return not self.skipped and self.records > 0 and self.matched == 0

    def explain(self) -> list[str]:
        """One line per non-zero count of records that did not join, with the reason."""
        lines = explain_unjoined(self.summary())
        for reason, n in sorted(self.bad.items()):
            lines.append(f"{n} of missing: {BAD_LABEL_ROWS[reason]}")
        return lines


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
                f"labels file {source}: no {key.replace('_column', '')} column {col!r} among its "
                f"{len(frame.columns)} columns (their names are not shown: a file without a header "
                f"line would show data); check the header, or set models[].performance.{key} in "
                "the edge config"
            )


#: Label rows skipped for a value of the wrong type (counted in ``missing``), and why.
BAD_LABEL_ROWS = {
    "bad_json": "a JSONL line that is not JSON (or a NaN literal, a repeated key, too deep)",
    "non_finite": "a JSONL line with a NaN or Infinity literal",
    "duplicate_key": "a JSONL line with the same key twice",
    "too_deep": "a JSONL line nested too deep",
    "not_an_object": "a JSONL line that is not an object",
    "bad_encoding": "a line that is not UTF-8",
    "ragged_row": "a CSV row with more or fewer fields than the header",
    "bad_csv": "a CSV line that cannot be parsed",
    "bad_id": "an id that is neither text nor a number (a list, an object)",
    "bad_label": "a label of the wrong type (a list or an object; for regression, not a number)",
    "bad_time": "a time_column value without a UTC offset, unreadable, or out of range",
    "bad_score": "a score_column value that is not a number",
    "bad_prediction_time": "a prediction_time_column value missing, without a UTC offset, or "
    "unreadable",
    "bad_prediction": "a stored prediction of the wrong type for the task, or a logged decision "
    "that is missing or not among the classes",
}


def _text_col(df: pl.DataFrame, name: str) -> tuple[pl.Expr, pl.Expr]:
    """A column as text, and which non-null rows could not be."""
    dtype = df.schema[name]
    c = pl.col(name)
    if dtype.is_nested() or dtype in (pl.Binary, pl.Object):
        return pl.lit(None, pl.String), c.is_not_null()
    return c.cast(pl.String, strict=False), pl.lit(False)


def _number_col(df: pl.DataFrame, name: str) -> tuple[pl.Expr, pl.Expr]:
    """A column as Float64, and which non-null rows are not numbers."""
    dtype = df.schema[name]
    c = pl.col(name)
    if dtype.is_numeric() or dtype == pl.Boolean:
        return c.cast(pl.Float64), pl.lit(False)
    if dtype == pl.String:
        num = c.str.strip_chars().cast(pl.Float64, strict=False)
        return num, c.is_not_null() & (c.str.strip_chars() != "") & num.is_null()
    if dtype == pl.Null:
        return pl.lit(None, pl.Float64), pl.lit(False)
    return pl.lit(None, pl.Float64), c.is_not_null()


def _typed_labels(
    frame: pl.DataFrame, cfg: LabelJoinConfig, task: str, result: LabelBatch
) -> pl.DataFrame:
    """The columns the join reads, under internal names and types; bad rows counted, dropped.

    Internal names (``_id``, ``_label``, ``_time``, ``_score``, ``_ptime``,
    ``_version``) so that a labels file may name its columns anything, ``id``
    included. Rows without an id or a label are ``missing``; rows with a value
    of the wrong type are ``missing`` too, and counted by reason in ``result.bad``.
    """
    from mlmon.edge.streams import parse_timestamps  # the streams' per-row parser

    src = {"_id": cfg.id_column, "_label": cfg.label_column}
    if cfg.time_column and cfg.time_column in frame.columns:
        src["_time"] = cfg.time_column
    if cfg.score_column:
        src["_score"] = cfg.score_column
        src["_ptime"] = cfg.prediction_time_column or ""
    if cfg.version_column and cfg.version_column in frame.columns:
        src["_version"] = cfg.version_column
    marker = [pl.col(NESTED)] if NESTED in frame.columns else []
    segs = [c for c in frame.columns if c.startswith(SEG_PREFIX)]  # join_labels' codes
    df = frame.select(
        [pl.col(c).alias(k) for k, c in src.items()] + marker + [pl.col(c) for c in segs]
    ).with_row_index("_row")

    def held_nested(key: str) -> pl.Expr:  # a list or object in a column of mixed types
        if NESTED not in df.columns:
            return pl.lit(False)
        return pl.col(NESTED).list.contains(pl.lit(src[key])).fill_null(False)

    checks: list[tuple[str, pl.Expr]] = []
    cols: list[pl.Expr] = []
    ident, bad = _text_col(df, "_id")
    cols.append(ident.alias("_id"))
    checks.append(("bad_id", bad | held_nested("_id")))
    if task == "regression":
        label, bad = _number_col(df, "_label")
    else:
        label, bad = _text_col(df, "_label")
    cols.append(label.alias("_label"))
    checks.append(("bad_label", bad | held_nested("_label")))
    if "_score" in df.columns:
        score, bad = _text_col(df, "_score") if task == "multiclass" else _number_col(df, "_score")
        cols.append(score.alias("_score"))
        checks.append(("bad_score", bad | held_nested("_score")))
    if "_version" in df.columns:
        cols.append(_text_col(df, "_version")[0].alias("_version"))
    typed = df.select("_row", *cols, *segs)
    reason = pl.lit(None, pl.String)
    for name, expr in reversed(checks):
        reason = pl.when(expr).then(pl.lit(name)).otherwise(reason)
    reasons = df.select("_row", reason.alias("r")).get_column("r")
    for col, why, missing_ok in (
        ("_time", "bad_time", True),
        ("_ptime", "bad_prediction_time", False),
    ):
        if col not in df.columns:
            continue
        parsed, r = parse_timestamps(df.get_column(col))
        if missing_ok:
            r = pl.Series(r).replace("missing_field", None)
        typed = typed.with_columns(parsed.alias(col))
        wrong = r.is_not_null() | df.select("_row", held_nested(col).alias("n")).get_column("n")
        reasons = (
            pl.DataFrame({"a": reasons, "b": wrong})
            .select(pl.when(pl.col("a").is_not_null()).then("a").when("b").then(pl.lit(why)))
            .to_series()
        )
    bad_rows = reasons.is_not_null()
    for why, n in reasons.drop_nulls().value_counts().iter_rows():
        result.bad[str(why)] = result.bad.get(str(why), 0) + int(n)
    absent = ~bad_rows & (typed.get_column("_id").is_null() | typed.get_column("_label").is_null())
    result.missing += int(bad_rows.sum()) + int(absent.sum())
    if result.bad:
        log.warning("label rows skipped", extra={"source": result.source, "reasons": result.bad})
    return typed.filter(~bad_rows & ~absent)


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
    unreadable: dict[str, int] | None = None,
) -> LabelBatch:
    """Join one batch of label records and write its performance rows and summary.

    ``unreadable``: lines of the file that could not be records, by reason
    (from :func:`read_label_file`); they count as records and as ``missing``.
    A row with a value of the wrong type (a naive or unreadable time, a score
    that is no number, an id that is a list...) is skipped and counted by
    reason in the result's ``bad`` (and in ``missing``), never a failure.

    Raises
    ------
    SchemaError
        The id, label or score column is missing (names the file and the columns).
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
    if unreadable:  # lines of the file that could not be records (read_label_file's counts)
        result.bad.update(unreadable)
        result.records += sum(unreadable.values())
        result.missing += sum(unreadable.values())
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
    segments = reference.schema.segments
    if cfg.score_column and segments:  # the segment columns the labels carry, allow-listed here
        frame = frame.drop([c for c in frame.columns if c.startswith(SEG_PREFIX)])
        frame = frame.with_columns(segment_columns(frame, segments))
    df = _typed_labels(frame, cfg, spec.task, result)
    if "_time" in df.columns:
        df = df.sort("_time", "_row", nulls_last=False)
    ids = df.get_column("_id").to_list()
    df = df.with_columns(_id16(pl.Series("h", hmac_ids(secret, ids), dtype=pl.String)).alias("id"))
    before = df.height
    df = df.unique(subset="id", keep="last", maintain_order=True)
    result.duplicate_in_batch = before - df.height
    if spec.task != "regression":
        idx, unknown = spec.class_index(df.get_column("_label").to_numpy())
        result.unknown_class = int(unknown.sum())
        df = df.with_columns(pl.Series("y", idx)).filter(~pl.Series(unknown))
    else:
        df = df.with_columns(pl.col("_label").alias("y"))
    if cfg.score_column:
        joined = df.select(
            "id",
            "y",
            _window_start_us(pl.col("_ptime"), window).alias("window_us"),
            (pl.col("_version") if "_version" in df.columns else pl.lit(None, pl.String)).alias(
                "model_version"
            ),
            pl.col("_score").alias("prediction"),
            *(pl.col(c) for c in df.columns if c.startswith(SEG_PREFIX)),
        )
    else:
        assert store is not None
        stored = store.lookup(model, df.select("id"), task=spec.task)
        stored = stored.drop(
            [
                c
                for c in stored.columns
                if c.startswith(SEG_PREFIX)
                and c.removeprefix(SEG_PREFIX) not in {g.name for g in segments}
            ]
        )
        joined = df.select("id", "y").join(stored, on="id", how="inner")
        unmatched = df.select("id").join(stored, on="id", how="anti").get_column("id")
        late = store.was_expired(model, unmatched)
        result.late = int(late.sum())
        result.unknown_id = int(len(unmatched) - late.sum())
        unusable = (
            joined.get_column("prediction").is_null()
            if "prediction" in joined.columns
            else pl.Series([False] * joined.height, dtype=pl.Boolean)
        )
        if "decision" in joined.columns and spec.task == "multiclass":
            unusable = unusable & joined.get_column("decision").is_null()  # its class is known
        if unusable.any():  # a stored prediction of the wrong type (an old store)
            result.bad["bad_prediction"] = result.bad.get("bad_prediction", 0) + int(unusable.sum())
            result.missing += int(unusable.sum())
            joined = joined.filter(~unusable)
    if store is not None and joined.height:
        seen = store.already_labelled(model, joined.get_column("id"))
        result.already_labelled = int(seen.sum())
        joined = joined.filter(~pl.Series(seen))
    result.matched = joined.height
    rows = _performance_rows(joined, spec, reference.reference_id, batch_id, window, writer)
    result.windows = len(rows)
    result.objects = _write_by_date(writer, model, rows, "performance", f"labels-{batch_id}")
    seg_rows = [
        r
        for g in segments
        if SEG_PREFIX + g.name in joined.columns
        for r in _performance_rows(
            joined, spec, reference.reference_id, batch_id, window, writer, segment=g.name
        )
    ]
    if seg_rows:  # per segment as well: Lake.performance(segment=...) and subgroup_gaps
        result.objects += _write_by_date(
            writer, model, seg_rows, "segment_performance", f"labels-{batch_id}"
        )
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
    segment: str | None = None,
) -> list[dict[str, Any]]:
    """``performance`` rows per (window, version) of the joined labels; with ``segment``,
    ``segment_performance`` rows per (window, version, value of that segment)."""
    rows: list[dict[str, Any]] = []
    if joined.height == 0:
        return rows
    # one sort, then numpy slices per (window, version): no per-group polars query
    seg = None if segment is None else SEG_PREFIX + segment
    df = joined.with_columns(pl.col("model_version").fill_null(""))
    if seg is not None:  # a row whose segment is unknown (stored before segments) is left out
        df = df.filter(pl.col(seg).is_not_null())
        if df.height == 0:
            return rows
    df = df.sort("window_us", "model_version", *([seg] if seg else []))
    w_arr = df.get_column("window_us").to_numpy()
    v_arr = df.get_column("model_version").to_numpy()
    g_arr = df.get_column(seg).to_numpy() if seg is not None else None
    y_all = df.get_column("y").to_numpy()
    pred = df.get_column("prediction")
    dec_all = (
        df.get_column("decision").cast(pl.Int64).fill_null(-1).to_numpy()
        if "decision" in df.columns and spec.task != "regression"
        else None
    )
    if spec.task == "multiclass":
        p_all, bad_all = spec.class_index(pred.cast(pl.String).to_numpy())
        if dec_all is not None:  # the logged decision where there is one
            p_all = np.where(dec_all >= 0, dec_all, p_all)
            bad_all = bad_all & (dec_all < 0)
    else:
        p_all, bad_all = pred.cast(pl.Float64).to_numpy(), None
    names = [f"score_{i}" for i in range(spec.k)]
    s_all = (
        df.select(pl.col(n).cast(pl.Float64) for n in names).to_numpy()
        if spec.task == "multiclass" and all(n in df.columns for n in names)
        else None
    )
    new_group = (w_arr[1:] != w_arr[:-1]) | (v_arr[1:] != v_arr[:-1])
    if g_arr is not None:
        new_group |= g_arr[1:] != g_arr[:-1]
    change = np.flatnonzero(new_group) + 1
    bounds = np.concatenate([[0], change, [len(w_arr)]])
    for lo, hi in itertools.pairwise(bounds.tolist()):
        w, version = int(w_arr[lo]), (str(v_arr[lo]) or None)
        y, p = y_all[lo:hi], p_all[lo:hi]
        if spec.task == "regression":
            prof = PerformanceProfile.from_labels(spec, y, predicted=p)
        elif spec.task == "binary":
            dec = dec_all[lo:hi] if dec_all is not None else None
            prof = PerformanceProfile.from_labels(spec, y, p, decisions=dec)
        else:
            assert bad_all is not None
            ok = ~bad_all[lo:hi]
            scored = np.zeros(hi - lo, dtype=bool)
            if s_all is not None:  # stored class scores: ROC AUC, Brier, log loss too
                scored = ok & np.isfinite(s_all[lo:hi]).all(axis=1)
            prof = PerformanceProfile.from_labels(spec, y[ok & ~scored], predicted=p[ok & ~scored])
            if s_all is not None and scored.any():
                prof = prof.merge(
                    PerformanceProfile.from_labels(
                        spec, y[scored], s_all[lo:hi][scored], decisions=p[scored]
                    )
                )
        start = datetime.fromtimestamp(w / _US, UTC)
        row = performance_row(
            prof, role="labels", reference_id=reference_id, collector_id=writer.collector_id,
            start=start, end=start + window, version=version, batch_id=batch_id,
        )  # fmt: skip
        if g_arr is not None:
            row = {**row, "segment": segment, "segment_value": str(g_arr[lo])}
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


def read_label_file(
    path: str | os.PathLike[str], bad: dict[str, int] | None = None
) -> tuple[pl.DataFrame, str]:
    """A labels file (Parquet, CSV, JSONL) and its batch id (content hash).

    CSV and JSONL lines are read one by one, as the streams read them: a line
    that cannot be a record (not UTF-8, ragged, not JSON, not an object...) is
    skipped and counted by reason in ``bad``; columns are read as text (CSV)
    or as written (JSONL; a column of mixed types as text), and the join then
    checks every value on its own.
    """
    data = Path(path).read_bytes()
    fmt = record_format(path)
    if fmt == "parquet":
        parts = list(read_records(path))
        frame = pl.concat(parts, how="diagonal_relaxed") if parts else pl.DataFrame()
    else:
        frame = _text_records(data, fmt, bad if bad is not None else {})
    return frame, labels_batch_id(data)


#: Column of :func:`read_label_file`'s frame naming, per row, the columns of mixed types
#: that held a list or an object there (the value is null; the join counts the row bad).
NESTED = "__mlmon_nested"


def _text_records(data: bytes, fmt: str, bad: dict[str, int]) -> pl.DataFrame:
    import csv

    from mlmon.edge.streams import decode_json_line

    lines = data.removeprefix(b"\xef\xbb\xbf").split(b"\n")
    if lines and not lines[-1].strip():
        lines.pop()
    rows: list[dict[str, Any]] = []

    def skip(reason: str) -> None:
        bad[reason] = bad.get(reason, 0) + 1

    if fmt == "csv":
        header: list[str] = []
        for raw in lines:
            line = raw.rstrip(b"\r")
            if not line.strip():
                continue
            try:
                row = next(csv.reader([line.decode("utf-8")], strict=True))
            except UnicodeDecodeError:
                skip("bad_encoding")
                continue
            except csv.Error:
                skip("bad_csv")
                continue
            if not header:
                header = row
                continue
            if len(row) != len(header):
                skip("ragged_row")
                continue
            rows.append({k: (v or None) for k, v in zip(header, row, strict=True)})
        names = header
    else:
        for raw in lines:
            value, reason = decode_json_line(raw)
            if reason == "empty_line":
                continue
            if reason is None and not isinstance(value, dict):
                reason = "not_an_object"
            if reason is not None:
                skip(reason)
                continue
            rows.append(value)
        names = list(dict.fromkeys(k for r in rows for k in r))
    cols = {}
    nested: list[list[str]] = [[] for _ in rows]  # per row: mixed columns holding a list/object
    for name in names:
        values = [r.get(name) for r in rows]
        kinds = {type(v) for v in values} - {type(None)}
        if (
            kinds <= {int, float}
            or kinds <= {str}
            or kinds <= {bool}
            or kinds <= {list}
            or (kinds <= {dict})
        ):
            try:
                cols[name] = pl.Series(name, values, strict=False)
                continue
            except (TypeError, ValueError, OverflowError, pl.exceptions.PolarsError):
                pass
        # mixed types: scalars as text; a list or an object is null, and marked for the join
        text: list[str | None] = []
        for i, v in enumerate(values):
            if isinstance(v, list | dict):
                nested[i].append(name)
                text.append(None)
            else:
                text.append(None if v is None else v if isinstance(v, str) else json.dumps(v))
        cols[name] = pl.Series(name, text, pl.String)
    if any(nested):
        cols[NESTED] = pl.Series(NESTED, nested, pl.List(pl.String))
    return pl.DataFrame(cols) if cols else pl.DataFrame()
