"""What the pages and the API show, computed through :class:`mlmon.analysis.lake.Lake` and
:mod:`mlmon.reports.context` (the report's per-model sections), cached briefly.

Every figure is recomputed from the lake's profiles, as the CLI does; the server adds
only the time range, the period size and the version filter of a request
(:class:`Query`), and a short cache keyed by them (``cache_seconds``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

import polars as pl

from mlmon.analysis.lake import Lake
from mlmon.errors import ConfigError, LakeError
from mlmon.reports.charts import drift_method
from mlmon.reports.context import (
    DETAIL_PARTS,
    REPORT_METHODS,
    Distribution,
    ModelSection,
    Status,
    _distribution,  # the report's own view of a feature
    _drifted,  # the report's ranking of drifted features
    _status,  # the report's status rules
    collect,
    methods_from_registry,
    p_value_methods,
    rule_name,
)
from mlmon.server.compute import ComputePool
from mlmon.server.config import ServerConfig
from mlmon.server.counts import rollup_counts
from mlmon.server.index import IndexedLake, LakeIndex

__all__ = ["RANGES", "Data", "ModelPage", "OverviewRow", "Query", "parse_query"]

#: The preset ranges: length and default period size.
RANGES: dict[str, tuple[timedelta, str]] = {
    "24h": (timedelta(hours=24), "hour"),
    "7d": (timedelta(days=7), "day"),
    "30d": (timedelta(days=30), "day"),
}
PERIODS = ("hour", "day", "week")
_MAX_PERIODS = 800  # an hourly view of a year would draw 8,760 columns: refused, say why
_VERSION_CHARS = 128
T = TypeVar("T")
log = logging.getLogger("mlmon.server")


@dataclass(frozen=True)
class Query:
    """One request's time range [start, end), period size and model version (None: all)."""

    start: datetime
    end: datetime
    by: str
    version: str | None = None
    range: str = "7d"

    @property
    def last_day(self) -> date:
        """The last day in the range (``end`` is exclusive): what a date picker shows as "to"."""
        return (self.end - timedelta(microseconds=1)).date()

    def params(self, **override: str | None) -> dict[str, str]:
        """Query parameters that give this query back (for links between pages)."""
        p: dict[str, str | None] = {"range": self.range, "by": self.by, "version": self.version}
        if self.range == "custom":
            p["start"], p["end"] = self.start.isoformat(), self.end.isoformat()
        p.update(override)
        return {k: v for k, v in p.items() if v}


def _time(text: str, name: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(
            f"{name} {text[:40]!r} is not a date or time; use e.g. 2026-10-01 or 2026-10-01T06:00Z"
        ) from exc
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_query(params: Mapping[str, str], now: datetime) -> Query:
    """The :class:`Query` of request parameters ``range``, ``start``, ``end``, ``by``, ``version``.

    ``range`` is ``24h``, ``7d`` (default), ``30d`` or ``custom`` (then ``start`` and
    ``end``, dates or UTC times, ``end`` exclusive; a date ``end`` includes that day).
    ``start`` and ``end`` without ``range`` mean ``custom``.

    Raises
    ------
    ConfigError
        A parameter is not valid; the message names it (the server answers 400).
    """
    name = params.get("range") or ("custom" if params.get("start") else "7d")
    if name == "custom":
        if not (params.get("start") and params.get("end")):
            raise ConfigError(
                "range=custom needs start and end (e.g. start=2026-10-01&end=2026-10-07)"
            )
        start, end = _time(params["start"], "start"), _time(params["end"], "end")
        if len(params["end"].strip()) == 10:  # a date: that whole day is in the range
            end += timedelta(days=1)
        if end <= start:
            raise ConfigError("end is not after start; swap them")
        default_by = "day" if end - start <= timedelta(days=31) else "week"
        if end - start <= timedelta(days=2):
            default_by = "hour"
    elif name in RANGES:
        length, default_by = RANGES[name]
        end = now
        start = end - length
    else:
        raise ConfigError(f"range {name[:20]!r} is not one of {', '.join([*RANGES, 'custom'])}")
    by = params.get("by") or default_by
    if by not in PERIODS:
        raise ConfigError(f"by {by[:20]!r} is not one of {', '.join(PERIODS)}")
    step = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(days=7)}[by]
    if (end - start) / step > _MAX_PERIODS:
        raise ConfigError(
            f"by={by} over this range gives more than {_MAX_PERIODS} periods; "
            "choose a longer period (day or week)"
        )
    version = params.get("version") or None
    if version is not None and (len(version) > _VERSION_CHARS or not version.isprintable()):
        raise ConfigError(f"version is longer than {_VERSION_CHARS} characters or not printable")
    return Query(start, end, by, version, name)


@dataclass(frozen=True)
class OpenAlert:
    """An alert firing at the end of a range: its plain name, when it started firing, and
    whether that was before the range (still open from then)."""

    name: str
    since: datetime
    before_range: bool


@dataclass(frozen=True)
class OverviewRow:
    """One model's line on the overview page (plain values, ready for the template)."""

    model: str
    status: str
    reasons: tuple[str, ...]
    last_data: datetime | None
    stale: bool
    records: int
    drifted: tuple[str, ...]
    golden_checks: int
    golden_rate: float | None
    latency_p95: float | None
    latency_objective: float | None
    performance: dict[str, Any] | None
    firing: tuple[str, ...]


@dataclass(frozen=True)
class ModelPage:
    """The model page's figures (:meth:`Data.model_page`): the section, with drift over time
    for the ``chosen`` measure only; the measures drift has (``methods``, for the picker); the
    features drift covers."""

    section: ModelSection
    methods: list[str]
    chosen: str | None
    features: list[str]


def _finite(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and math.isfinite(v) else None


def _frozen(v: Any) -> Any:
    if isinstance(v, list | tuple):
        return tuple(_frozen(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _frozen(x)) for k, x in v.items()))
    return v


#: Keyword arguments whose "nothing" values mean the same (left out of a cache key).
_NOTHING: dict[str, tuple[Any, ...]] = {
    "version": (None,),
    "features": (None,),
    "segment": (None,),
    "thresholds": (None, {}),
}


class _CachingLake:
    """This thread's lake with its figure methods cached by :class:`Data` (per model and
    generation), so the overview's status, the model page and the API compute each
    ``Lake`` call once. Everything else is the lake's own."""

    CACHED = frozenset(
        {
            "drift",
            "multivariate_drift",
            "merged_profiles",
            "data_quality",
            "percentiles",
            "performance",
            "calibration_curve",
            "segments",
            "subgroup_gaps",
            "read",
        }
    )

    def __init__(self, data: Data) -> None:
        self._data = data

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._data.lake, name)
        if name not in self.CACHED:
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            model = kwargs.get("model") if name in ("percentiles", "read") else (
                args[0] if args else kwargs.get("model")
            )  # fmt: skip
            kw = {k: v for k, v in kwargs.items() if v not in _NOTHING.get(k, ())}
            key = ("lake", model, name, _frozen(args), _frozen(kw))
            return self._data._cached(key, lambda: target(*args, **kwargs))

        return call


class Data:
    """The server's reader of one lake: figures per (kind, model, query), cached.

    With an index (``config.index_every > 0``, the default) the lake is listed in the
    background by a :class:`~mlmon.server.index.LakeIndex` (:meth:`start`, :meth:`stop`),
    each worker thread reads through its own :class:`~mlmon.server.index.IndexedLake`, and a
    figure stays cached until the index sees new (or removed) objects of its model: every
    cache key carries the model's generation. Without one (or before :meth:`start`), figures
    are cached for ``config.cache_seconds``. Concurrent requests for the same figure compute
    it once; the others wait for it.
    """

    #: Cached figures kept at most (least recently used dropped first).
    MAX_ENTRIES = 4096

    def __init__(
        self, config: ServerConfig, lake: Lake | None = None, *, index: LakeIndex | None = None
    ) -> None:
        self.config = config
        self._given = lake
        self._options = dict(config.storage_options) or None
        self._local = threading.local()
        self._shared: dict[Any, Any] = {}  # the readers' caches of immutable reads
        self._cache: OrderedDict[tuple[Any, ...], tuple[float, Any]] = OrderedDict()
        self._inflight: dict[tuple[Any, ...], threading.Event] = {}
        self._lock = threading.Lock()
        self.index: LakeIndex | None = index
        self._warming: threading.Thread | None = None
        if lake is None and index is None and config.index_every > 0:
            self.index = LakeIndex(
                Lake(config.lake, self._options).storage,
                every=config.index_every,
                full_every=config.index_full_every,
                on_change=self._changed,
            )
        #: Worker processes computing per-model figures, from :meth:`start` to :meth:`stop`
        #: (with an index only: they read through its listing); None: computed in this process.
        self.pool: ComputePool | None = None
        self._worker = index is not None  # a compute worker's own Data: never starts workers
        self._fetch: ThreadPoolExecutor | None = None

    @property
    def lake(self) -> Lake:
        """This thread's reader of the lake (each worker thread has its own)."""
        if self._given is not None:
            return self._given
        lake: Lake | None = getattr(self._local, "lake", None)
        if lake is None:
            if self.index is not None:
                lake = IndexedLake(self.config.lake, self._options, self.index, self._shared)
            else:
                lake = Lake(self.config.lake, self._options)
            self._local.lake = lake
        return lake

    # -- the index ---------------------------------------------------------------------
    @property
    def indexed(self) -> bool:
        """Whether figures are cached until new objects arrive (the index has a listing)."""
        return self.index is not None and self.index.snapshot.taken_at is not None

    def start(self) -> None:
        """List the lake once now, then in the background (no-op without an index)."""
        if self.index is None:
            return
        self.start_workers()  # the workers import while the lake is listed
        try:
            self.index.refresh()
        except (LakeError, OSError) as exc:  # served by plain listings until a refresh succeeds
            log.warning("lake not listed at start (%s); retrying in the background", exc)
        self.index.start()
        self._warming = threading.Thread(target=self.warm, name="mlmon-warm", daemon=True)
        self._warming.start()

    def start_workers(self) -> None:
        """Start the compute workers (``compute.processes``; with an index only), once."""
        if self.index is None or self._worker or self.config.compute_processes < 1:
            return
        with self._lock:
            if self.pool is None:
                pool = ComputePool(self.config, self.index, self.config.compute_processes)
                pool.start()
                self.pool = pool

    def warm(self, models: set[str] | None = None) -> None:
        """Compute the default view (``range=7d``) of ``models`` (default: all) ahead of requests.

        Runs in the background after :meth:`start` and after a refresh that changed models;
        a request for the same figures meanwhile waits for them instead of computing them again.
        """
        try:
            names = [m for m in self.models() if models is None or m in models]
            q = parse_query({}, self.now(self.models()))
            # every model's status first (the overview needs them all), then the model pages;
            # one thread: the requests of a cold server compute figures too, and a second
            # warm-up thread only added contention for the GIL (benchmark lake, paired runs:
            # 10-20% less server CPU per cold round, model-page p95 lower in 3 of 4 pairs)
            # with worker processes, every model's task is queued at once (the workers take
            # the statuses first, then the pages' figures); the threads only wait
            threads = self.WARM_THREADS if self.pool is None else max(1, len(names))
            with ThreadPoolExecutor(threads, thread_name_prefix="mlmon-warm") as pool:
                for figure in (self.section, self.model_page, self.data_quality, self.versions):

                    def one(m: str, figure: Callable[[str, Query], Any] = figure) -> None:
                        if not (self.index is not None and self.index.stopping):
                            figure(m, q)

                    list(pool.map(one, names))
        except Exception as exc:  # a request will meet (and report) the same error
            if not (self.index is not None and self.index.stopping):
                log.warning("default views not computed ahead (%s)", exc)

    #: Threads that compute the default views ahead of requests.
    WARM_THREADS = 1

    def _changed(self, models: set[str]) -> None:
        self.invalidate(models)
        self.warm(models)

    def stop(self) -> None:
        """Stop the background listing and wait for the warm-up to end (it checks between models)."""
        if self.index is not None:
            self.index.stop()
        if self.pool is not None:  # by their pids; tasks waiting for them fail
            self.pool.stop()
            self.pool = None
        if self._warming is not None:
            self._warming.join(timeout=60)
            self._warming = None
        if self._fetch is not None:
            self._fetch.shutdown(wait=False)

    def invalidate(self, models: set[str]) -> None:
        """Drop the cached figures of ``models`` (and the lake-wide ones): their objects changed."""
        with self._lock:
            for key in [k for k in self._cache if k[1] in models or k[1] is None]:
                del self._cache[key]
            if len(self._shared) > 4 * self.MAX_ENTRIES:
                self._shared.clear()

    @property
    def note(self) -> str | None:
        """Why the figures may be old (the lake could not be listed lately), or None."""
        return self.index.note if self.index is not None else None

    def _generation(self, model: str | None) -> int:
        if not self.indexed or self.index is None:
            return 0
        if model is None:
            return self.index.refreshes_changed
        return self.index.generation(model)

    def _cached(self, key: tuple[Any, ...], fn: Callable[[], T]) -> T:
        """``fn()``, cached under ``key`` (``(kind, model or None, ...)``), computed once at a time."""
        indexed = self.indexed
        full = (*key, self._generation(key[1] if len(key) > 1 else None))
        ttl = self.config.cache_seconds
        while True:
            now = time.monotonic()
            with self._lock:
                hit = self._cache.get(full)
                if hit is not None and (indexed or now - hit[0] < ttl):
                    self._cache.move_to_end(full)
                    return hit[1]
                waiting = self._inflight.get(full)
                if waiting is None:
                    mine = self._inflight[full] = threading.Event()
                    break
            waiting.wait()  # another request computes it; then take it from the cache
            with self._lock:
                hit = self._cache.get(full)
            if hit is not None:
                return hit[1]
            # it failed, or was not kept: compute it here
        try:
            value = fn()
            if indexed or ttl > 0:
                with self._lock:
                    self._cache[full] = (now, value)
                    while len(self._cache) > self.MAX_ENTRIES:
                        self._cache.popitem(last=False)
            return value
        finally:
            with self._lock:
                self._inflight.pop(full, None)
            mine.set()

    def cached(self, key: tuple[Any, ...], fn: Callable[[], T]) -> T:
        """``fn()`` cached under ``key`` = ``(kind, model or None, ...)`` like every figure here
        (a rendered page, say): kept until the model's objects change (``None``: any model's)."""
        return self._cached(key, fn)

    def _compute(
        self,
        figure: str,
        model: str,
        q: Query,
        local: Callable[[], T],
        priority: int = 1,
        **kwargs: Any,
    ) -> T:
        """``local()``, or the same figure from the model's worker process when there are
        workers (:mod:`mlmon.server.compute`; statuses with ``priority`` 0 go first)."""
        pool = self.pool
        if pool is None:
            return local()
        result: T = pool.call(figure, model, q, priority=priority, **kwargs)
        return result

    def _each(self, fn: Callable[[str], Any], models: list[str]) -> None:
        """``fn(model)`` for every model at once (threads that wait for the workers)."""
        with self._lock:
            if self._fetch is None:
                self._fetch = ThreadPoolExecutor(64, thread_name_prefix="mlmon-fetch")
            ex = self._fetch
        for f in [ex.submit(fn, m) for m in models]:
            f.result()

    # -- models and time -------------------------------------------------------------
    def models(self) -> list[str]:
        """Every model with data in the lake."""
        return self._cached(("models", None), self.lake.known_models)

    def last_data(self, model: str) -> datetime | None:
        """The newest window end (or golden check) of a model, over all time, at most now."""

        def newest() -> datetime | None:
            lake = self.lake
            found: list[datetime] = []
            for table, col in (
                ("profiles", "window_end"),
                ("latency", "window_end"),
                ("golden", "checked_at"),
            ):
                if model not in lake.models(table):
                    continue
                if self.indexed and self.index is not None and col == "window_end":
                    try:  # from the object names: no object is read
                        v = self.index.newest_window_end(table, model)
                    except ValueError:
                        pass
                    else:
                        found += [v] if v is not None else []
                        continue
                v = lake.scan(table, model=model).select(pl.col(col).max()).collect().item()
                if v is not None:
                    found.append(v)
            # an open window's end lies ahead of the clock (the edge names windows by their
            # bounds): no data can be newer than now
            return min(max(found), datetime.now(UTC)) if found else None

        return self._cached(("last", model), newest)

    def now(self, models: list[str]) -> datetime:
        """Where preset ranges end: the clock (next full hour) or the newest data of ``models``."""
        clock = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        if self.config.range_anchor == "clock":
            return clock
        times = [t for t in (self.last_data(m) for m in models) if t is not None]
        if not times:
            return clock
        newest = max(times)
        return newest.replace(minute=0, second=0, microsecond=0) + timedelta(
            hours=0 if newest == newest.replace(minute=0, second=0, microsecond=0) else 1
        )

    # -- the report's per-model section ----------------------------------------------
    @property
    def cached_lake(self) -> Any:
        """A reader with the ``Lake`` figure methods, each call cached like every figure."""
        return _CachingLake(self)

    def counts(self, model: str, start: datetime, end: datetime) -> pl.DataFrame:
        """Records per (day, version) in [start, end): ``reports.context.window_counts``,
        from day rollups where they hold one version (:mod:`mlmon.server.counts`)."""
        return self._cached(
            ("counts", model, start, end), lambda: rollup_counts(self.lake, model, start, end)
        )

    def _section(self, model: str, q: Query, skip: frozenset[str]) -> ModelSection:
        return collect(
            self.cached_lake,
            [model],
            q.start,
            q.end,
            skip=skip,
            counts=lambda _lake, m, s, e: self.counts(m, s, e),
        ).models[0]

    def section(self, model: str, q: Query) -> ModelSection:
        """The report's section of ``model`` over the query's range (every version), without
        the parts an overview does not show (``DETAIL_PARTS``): its status and figures."""
        key = ("section", model, q.start, q.end)
        return self._cached(
            key,
            lambda: self._compute(
                "section", model, q, lambda: self._section(model, q, DETAIL_PARTS), priority=0
            ),
        )

    def page_section(self, model: str, q: Query) -> ModelSection:
        """The report's whole section but its drift by day (the page draws it by ``q.by``) and
        drift's p-values (the page shows none; the API and the feature page have them)."""
        key = ("page_section", model, q.start, q.end)
        skip = frozenset({"drift_over_time", "drift_details"})
        return self._cached(key, lambda: self._section(model, q, skip))

    def overview(self, models: list[str], q: Query) -> list[OverviewRow]:
        """One :class:`OverviewRow` per model, worst status first."""
        if self.pool is not None and len(models) > 1:  # every model's worker at once

            def both(m: str) -> None:
                self.versions(m, dataclasses.replace(q, version=None))
                _ = self.section(m, q) if q.version is None else self.version_section(m, q)

            self._each(both, models)
        rows = [self._overview_row(m, q) for m in models]
        order = {"red": 0, "amber": 1, "green": 2, "grey": 3}
        return sorted(rows, key=lambda r: (order.get(r.status, 4), r.model))

    def version_section(self, model: str, q: Query) -> ModelSection:
        """The overview's figures of ``model`` for version ``q.version`` only: records, drift
        over the whole range, golden checks and response times of that version, with the
        report's status rules applied to them (its per-period parts are not computed)."""

        def compute() -> ModelSection:
            lake = self.cached_lake
            counts = (
                self.counts(model, q.start, q.end) if model in lake.models("profiles") else None
            )
            records = (
                int(counts.filter(pl.col("version") == q.version)["count"].sum())
                if counts is not None
                else 0
            )
            drift = pl.DataFrame()
            if records:
                try:
                    drift = lake.drift(model, q.start, q.end, by="all", version=q.version,
                                       methods=list(REPORT_METHODS), details=False)  # fmt: skip
                except LakeError:
                    drift = pl.DataFrame()
            golden = self.golden(model, q)
            passed = int(golden["passed"].sum()) if golden.height else 0
            golden_overall: dict[str, Any] = (
                {"checks": golden.height, "passed": passed, "pass_rate": passed / golden.height}
                if golden.height
                else {}
            )
            latency: dict[str, float | None] = {}
            try:
                lat = lake.percentiles("latency_ms", (0.5, 0.95, 0.99), model=model,
                                       start=q.start, end=q.end, by="all", version=q.version,
                                       source="stream")  # fmt: skip
            except LakeError:
                lat = pl.DataFrame()
            if lat.height:
                latency = dict(zip(["p50", "p95", "p99"], lat["value"].to_list(), strict=True))
            if not records and not golden.height:
                status, reasons = "grey", [f"version {q.version} has no data in this range"]
            else:
                status, reasons = _status(
                    records, golden_overall, _drifted(drift) if drift.height else [],
                    self.alerts(model, q),
                )  # fmt: skip
                perf = self._performance_summary(model, q)
                if perf is not None and perf["alert"]:
                    why = f"performance below the reference ({perf['metric']})"
                    reasons = [why] if status == "green" else [*reasons, why]
                    status = "amber" if status == "green" else status
            volume = pl.DataFrame(
                {"period": [q.start], "count": [records]},
                schema={"period": pl.Datetime("us", "UTC"), "count": pl.Int64},
            )
            return ModelSection(
                model,
                status=status,  # type: ignore[arg-type]
                status_reasons=reasons,
                volume=volume,
                drift=drift,
                golden_overall=golden_overall,
                latency_overall=latency,
            )

        return self._cached(
            ("version_section", model, q.start, q.end, q.version),
            lambda: self._compute("version_section", model, q, compute, priority=0),
        )

    def _overview_row(self, model: str, q: Query) -> OverviewRow:
        s = self.section(model, q) if q.version is None else self.version_section(model, q)
        last = self.last_data(model)
        stale = last is None or datetime.now(UTC) - last > self.config.stale_after
        pvals = p_value_methods()
        drifted = (
            s.drift.filter(
                pl.col("drifted").fill_null(False) & ~pl.col("method").is_in(list(pvals))
            )
            .get_column("feature")
            .unique(maintain_order=True)
            .to_list()
            if s.drift.height
            else []
        )
        status, reasons = self.status(s, q)
        return OverviewRow(
            model=model,
            status=status,
            reasons=tuple(reasons),
            last_data=last,
            stale=stale,
            records=s.records,
            drifted=tuple(sorted(drifted)),
            golden_checks=int(s.golden_overall.get("checks") or 0),
            golden_rate=_finite(s.golden_overall.get("pass_rate")),
            latency_p95=_finite(s.latency_overall.get("p95")),
            latency_objective=self.config.objectives.get(model, {}).get("latency_p95_ms"),
            performance=self._performance_summary(model, q),
            firing=tuple(self.firing(model, q)),
        )

    def _performance_summary(self, model: str, q: Query) -> dict[str, Any] | None:
        if model not in self.lake.models("performance"):
            return None
        perf = self._cached(
            ("perf_all", model, q.start, q.end, q.version),
            lambda: self.lake.performance(model, q.start, q.end, by="all", version=q.version),
        )
        for name in ("roc_auc", "accuracy", "mae"):
            row = perf.filter(pl.col("metric") == name)
            if row.height:
                r = row.row(0, named=True)
                realized = _finite(r["realized"])
                total = r["count_total"] or 0
                return {
                    "metric": name,
                    "value": realized if realized is not None else _finite(r["estimated"]),
                    "kind": "measured" if realized is not None else "estimated",
                    "lower": _finite(r["lower"]),
                    "upper": _finite(r["upper"]),
                    "estimated": _finite(r["estimated"]),
                    "labelled": r["count_labelled"] or 0,
                    "total": total,
                    "coverage": (r["count_labelled"] or 0) / total if total else None,
                    "alert": bool(r["alert"]),
                }
        return None

    def open_alerts(self, model: str, q: Query) -> list[OpenAlert]:
        """The alerts firing at the end of the range (latest state per rule and feature), each
        with the start of the window whose condition raised it; those whose window began before
        the range (absent from the range's alerts) are still open from then."""
        rows = self.alerts(model, Query(datetime(1970, 1, 1, tzinfo=UTC), q.end, q.by, q.version))
        if not rows.height:
            return []
        latest = (
            rows.sort("raised_at")
            .group_by("rule", "feature", maintain_order=True)
            .agg(
                pl.col("state").last(),
                pl.coalesce("window_start", "raised_at").last().alias("since"),
            )
            .filter(pl.col("state") == "firing")
        )
        return [
            OpenAlert(rule_name(r) + (f" ({f})" if f else ""), since, since < q.start)
            for r, f, since in latest.select("rule", "feature", "since").iter_rows()
        ]

    def firing(self, model: str, q: Query) -> list[str]:
        """Plain names of the alerts firing at the end of the range (latest state per rule)."""
        return [a.name for a in self.open_alerts(model, q)]

    def status(self, s: ModelSection, q: Query) -> tuple[Status, list[str]]:
        """The section's status and reasons, and the alerts still open at the end of the range.

        The report's status looks at the range only; an alert raised before it that nothing
        has resolved is still open. Such alerts are named with the day they were raised, and
        a model whose range alone is OK is "Watch" while any alert is open (an open alert
        needs a person to look, or a rule to resolve it).
        """
        status, reasons = s.status, list(s.status_reasons)
        open_ = self.open_alerts(s.model, q)
        if not open_:
            return status, reasons
        before = [a for a in open_ if a.before_range]
        inside = [a for a in open_ if not a.before_range]
        said: list[str] = []
        if before:
            since = min(a.since for a in before)
            n = len(before)
            said.append(
                f"{n} alert{'s' if n > 1 else ''} still open from {since:%Y-%m-%d} (raised "
                f"before this range; nothing has resolved {'them' if n > 1 else 'it'}): "
                + ", ".join(a.name for a in before)
            )
        if inside and status == "green":
            n = len(inside)
            said.append(
                f"{n} alert{'s' if n > 1 else ''} firing: " + ", ".join(a.name for a in inside)
            )
        if status == "green":  # "no drift, all golden checks passed" holds for the range only
            return "amber", [f"{r} in this range" for r in reasons] + said
        return status, reasons + said

    # -- the figures of the API (each the Lake method of the same name) ----------------
    def drift(
        self,
        model: str,
        q: Query,
        methods: list[str] | None = None,
        features: list[str] | None = None,
    ) -> pl.DataFrame:
        return self.cached_lake.drift(
            model,
            q.start,
            q.end,
            by=q.by,
            version=q.version,
            methods=methods,
            features=features,
        )

    def percentiles(
        self,
        model: str,
        q: Query,
        metric: str = "latency_ms",
        quantiles: tuple[float, ...] = (0.5, 0.95, 0.99),
        source: str | None = None,
    ) -> pl.DataFrame:
        return self.cached_lake.percentiles(
            metric,
            quantiles,
            model=model,
            start=q.start,
            end=q.end,
            by=q.by,
            version=q.version,
            source=source,
        )

    def performance(self, model: str, q: Query) -> pl.DataFrame:
        return self.cached_lake.performance(model, q.start, q.end, by=q.by, version=q.version)

    def data_quality(self, model: str, q: Query) -> pl.DataFrame:
        def local() -> pl.DataFrame:
            return self.cached_lake.data_quality(model, q.start, q.end, version=q.version)

        if self.pool is None:
            return local()
        return self._cached(
            ("data_quality", model, q.start, q.end, q.version),
            lambda: self._compute("data_quality", model, q, local),
        )

    def _table(self, table: str, model: str, q: Query) -> pl.DataFrame:
        rows = self.lake.read(table, model=model, start=q.start, end=q.end)
        if q.version is not None and "model_version" in rows.columns:
            rows = rows.filter(pl.col("model_version") == q.version)
        return rows

    def alerts(self, model: str, q: Query) -> pl.DataFrame:
        """Alert state changes in the range (``Lake.read("alerts")``)."""
        return self._cached(("alerts", model, q), lambda: self._table("alerts", model, q))

    def golden(self, model: str, q: Query) -> pl.DataFrame:
        """Golden-check outcomes in the range (``Lake.read("golden")``)."""
        return self._cached(("golden", model, q), lambda: self._table("golden", model, q))

    def versions(self, model: str, q: Query) -> pl.DataFrame:
        """Model versions seen in the range: version, first_seen, last_seen, records."""

        def compute() -> pl.DataFrame:
            if model not in self.lake.models("profiles"):
                return pl.DataFrame(
                    schema={
                        "version": pl.String,
                        "first_seen": pl.Datetime("us", "UTC"),
                        "last_seen": pl.Datetime("us", "UTC"),
                        "records": pl.Int64,
                    }
                )
            return (
                self.counts(model, q.start, q.end)
                .group_by("version")
                .agg(
                    pl.col("first_seen").min(),
                    pl.col("last_seen").max(),
                    pl.col("count").sum().cast(pl.Int64).alias("records"),
                )
                .sort("first_seen")
            )

        return self._cached(
            ("versions", model, q.start, q.end),
            lambda: self._compute("versions", model, q, compute, priority=0),
        )

    # -- page frames (the report's frame shapes, for its chart builders) ---------------
    def model_page(self, model: str, q: Query, method: str | None = None) -> ModelPage:
        """The model page's figures: the report's section with its period frames recomputed for
        ``q.by`` and ``q.version``, drift over time for one drift measure only (``method``, by
        default the report's choice: the one that flags the most features), the measures that
        can be chosen and the features drift covers.

        Raises
        ------
        ConfigError
            ``method`` is not one of the measures drift has in this range (the server answers 400).
        """
        if self.pool is None:
            return self._model_page(model, q, method)
        return self._cached(
            ("model_page", model, q, method),
            lambda: self._compute(
                "model_page", model, q, lambda: self._model_page(model, q, method), method=method
            ),
        )

    def _model_page(self, model: str, q: Query, method: str | None) -> ModelPage:
        s = self.page_section(model, q)
        # which measures and features drift has in the range (the same as in each period:
        # every period is compared with the same reference, by the same methods); the page
        # draws one measure over time, so only that one is computed by period, and without
        # p-values (the page shows none; the KS p-value alone costs more than every method's
        # value together)
        whole = self.cached_lake.drift(
            model, q.start, q.end, by="all", version=q.version, methods=list(REPORT_METHODS),
            details=False,
        )  # fmt: skip
        methods = methods_from_registry()
        present = [
            m.name
            for m in methods
            if m.direction == "above" and whole.height and m.name in whole["method"].to_list()
        ]
        chosen = method or drift_method(dataclasses.replace(s, drift_over_time=whole), methods)
        if chosen is None and present:
            chosen = present[0]
        if chosen is not None and chosen not in present and present:
            raise ConfigError(f"method must be one of {', '.join(present)}")
        over_time = (
            self.cached_lake.drift(
                model,
                q.start,
                q.end,
                by=q.by,
                version=q.version,
                methods=[chosen],
                details=False,
            )
            if chosen is not None and present
            else pl.DataFrame()
        )
        golden = self.golden(model, q)
        g = (
            golden.with_columns(pl.col("checked_at").dt.truncate(_EVERY[q.by]).alias("period"))
            .group_by("period")
            .agg(
                pl.len().cast(pl.Int64).alias("checks"),
                pl.col("passed").sum().cast(pl.Int64).alias("passed"),
            )
            .with_columns((pl.col("passed") / pl.col("checks")).alias("pass_rate"))
            .sort("period")
            if golden.height
            else None
        )
        # the status covers every version (the page says so), its open alerts too
        status, reasons = self.status(s, dataclasses.replace(q, version=None))
        section = dataclasses.replace(
            s,
            status=status,
            status_reasons=reasons,
            # None: the section's empty frame with the documented columns
            drift_over_time=over_time.drop("reference_id", "statistic", "dof", "p_value")
            if over_time.height
            else None,  # type: ignore[arg-type]
            latency=self.latency_frame(model, q),  # type: ignore[arg-type]
            golden=g,  # type: ignore[arg-type]
            performance=(
                self.performance(model, q).select(
                    "period",
                    "metric",
                    "realized",
                    "estimated",
                    "lower",
                    "upper",
                    "count_labelled",
                    "count_total",
                )
                if model in self.lake.models("performance")
                else None
            ),
            notes=[*s.notes]
            + (
                [f"Figures are for version {q.version} only; the status covers every version."]
                if q.version
                else []
            ),
        )
        features = sorted(set(whole["feature"].to_list())) if whole.height else []
        return ModelPage(section, present, chosen, features)

    def drift_whole(self, model: str, q: Query, feature: str) -> pl.DataFrame:
        """Every method's value for one feature over the whole range."""
        return self.cached_lake.drift(
            model, q.start, q.end, by="all", version=q.version, features=[feature]
        )

    def distribution(self, model: str, q: Query, feature: str) -> Distribution | None:
        """Reference versus current shares of one feature over the range (the report's view)."""
        merged = self.lake.merged_profiles(
            model, q.start, q.end, by="all", version=q.version, features=[feature]
        )
        if not merged:
            return None
        _, ref_id, _, current = merged[0]
        ref = self.lake.reference(ref_id, model=model).profiles.get(feature)
        return None if ref is None else _distribution(feature, ref, current)

    def latency_frame(self, model: str, q: Query) -> pl.DataFrame | None:
        """p50/p95/p99 per period from logged requests (or the golden probes when none);
        ``source`` says which (the page says when the figures are the probes')."""
        for source in ("stream", "probe"):
            try:
                lat = self.percentiles(model, q, source=source)
            except LakeError:
                return None
            if lat.height:
                wide = lat.pivot("quantile", index="period", values="value").sort("period")
                wide.columns = ["period", "p50", "p95", "p99"]
                wide = wide.join(lat.group_by("period").agg(pl.col("count").max()), on="period")
                return wide.with_columns(pl.lit(source).alias("source"))
        return None


_EVERY = {"hour": "1h", "day": "1d", "week": "1w"}


def jsonable(df: pl.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON values: times in ISO 8601 (UTC), NaN and infinities as null."""
    out = []
    for row in df.to_dicts():
        clean: dict[str, Any] = {}
        for k, v in row.items():
            if isinstance(v, datetime | date):
                v = v.isoformat()
            elif isinstance(v, float) and not math.isfinite(v):
                v = None
            clean[k] = v
        out.append(clean)
    return out
