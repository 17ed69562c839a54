"""The ``mlmon`` command.

Exit codes: 0 success; 1 drift or failed checks when ``--fail-on-drift`` is
given; 2 bad arguments or config (also a model the lake does not hold: the
message names the models it does), also an output folder or file in the way
that mlmon did not write (it replaces or deletes only what it wrote; nothing
was changed); 3 lake unreachable or unreadable, or holding no model at all;
4 bad input data (schema, timestamps, files); 5 a missing optional extra;
6 ``edge labels`` (and ``demo``): label records arrived but none joined a
prediction (the counts printed say why: late, unknown id, already labelled, ...).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from mlmon.commands._common import add_audit_args, audit_record
from mlmon.commands._common import storage_options as _storage_options
from mlmon.durations import parse_duration
from mlmon.errors import (
    ConfigError,
    LakeError,
    MissingExtraError,
    MlmonError,
    ProfileError,
    SchemaError,
    SegmentWarning,
    UnknownNameError,
)

log = logging.getLogger("mlmon")

EXIT_DRIFT, EXIT_CONFIG, EXIT_LAKE, EXIT_DATA, EXIT_EXTRA = 1, 2, 3, 4, 5
#: ``edge labels`` (and the demo): label records arrived and none joined a prediction.
EXIT_UNJOINED = 6


def _duration(text: str) -> timedelta:
    return parse_duration(text, "--window", positive=True)


def _lake_uri(args: argparse.Namespace) -> str:
    uri = args.lake or os.environ.get("MLMON_LAKE")
    if not uri:
        raise ConfigError(
            "no lake given; pass --lake URI (file:///path or s3://bucket/prefix) or set MLMON_LAKE"
        )
    return uri


def _open_lake(args: argparse.Namespace) -> Any:
    from mlmon.analysis.lake import Lake

    return Lake(_lake_uri(args), _storage_options(args))


def _emit(df: Any, args: argparse.Namespace) -> None:
    """Print or save a polars DataFrame in the requested format."""
    import polars as pl

    fmt = args.format
    out = getattr(args, "out", None)
    if fmt == "table":
        with pl.Config(
            tbl_rows=max(df.height, 1), tbl_cols=-1, tbl_width_chars=160, fmt_str_lengths=40
        ):
            text = str(df)
        _write_text(text + "\n", out)
    elif fmt == "csv":
        _write_text(df.write_csv(), out)
    elif fmt == "json":
        _write_text(json.dumps(df.to_dicts(), default=str, indent=1) + "\n", out)
    elif fmt == "parquet":
        if out is None and sys.stdout.isatty():
            raise ConfigError("--format parquet writes binary; give --out FILE or redirect stdout")
        buf = io.BytesIO()
        df.write_parquet(buf)
        if out:
            Path(out).write_bytes(buf.getvalue())
        else:
            sys.stdout.buffer.write(buf.getvalue())


def _write_text(text: str, out: str | None) -> None:
    if out:
        Path(out).write_text(text)
    else:
        sys.stdout.write(text)


def _names(values: list[str] | None) -> list[str]:
    """Repeatable, comma-separated column flags (``--ignore a,b --ignore c``)."""
    return [n.strip() for v in values or () for n in v.split(",") if n.strip()]


_ID_NAME = r"(?i)(^|[_\-. ])(id|uuid|guid|key)$|^(id|uuid|guid|index|row_?id)$|(?-i:[a-z]Id)$"


def _inferred_schema(frame: Any, args: argparse.Namespace) -> Any:
    """The schema of ``reference build`` without ``--schema``: dtypes plus the column flags.

    ``--target`` and ``--ignore`` columns are never features; identifier-like columns
    (a name like ``id``/``*_id``, or strings all distinct) are ignored with a warning
    unless named in ``--categorical``.
    """
    import re

    import polars as pl

    from mlmon.profiles.schema import Schema

    categorical, ignore = _names(args.categorical), _names(args.ignore)
    targets = _names([args.target] if args.target else None)
    named = {"--categorical": categorical, "--ignore": ignore, "--target": targets}
    if args.prediction:
        named["--prediction"] = _names([args.prediction])
    for flag, cols in named.items():
        unknown = [c for c in cols if c not in frame.columns]
        if unknown:
            raise ConfigError(
                f"{flag} {', '.join(map(repr, unknown))}: no such column in {args.data}; "
                f"columns: {', '.join(frame.columns)}"
            )
    default_ignore = Schema.ignore  # the dataclass defaults: request_id
    roles = {Schema.timestamp, Schema.latency, Schema.version, *default_ignore}
    roles |= set(ignore) | set(targets)
    segments = set(_names(getattr(args, "segment", None)))  # monitored as segments: never ignored
    for name in frame.columns:
        if name in roles or name in categorical or name in named.get("--prediction", ()):
            continue
        if name in segments:
            continue
        dtype = frame.schema[name]
        by_name = re.search(_ID_NAME, name) is not None and not dtype.is_float()
        distinct = (
            dtype == pl.String
            and frame.height >= 20
            and frame.get_column(name).n_unique() == frame.height
        )
        if by_name or distinct:
            why = "its name looks like an identifier" if by_name else "every value is distinct"
            print(
                f"warning: column {name!r} is not monitored ({why}); name it in --categorical "
                "to monitor it, or in --ignore to silence this warning",
                file=sys.stderr,
            )
            ignore.append(name)
    return Schema.infer(
        frame, ignore=(*default_ignore, *ignore, *targets), categorical=tuple(categorical)
    )


def _bin_edges(items: list[str] | None, flag: str = "--bin-edges") -> dict[str, list[float]]:
    """``--bin-edges FEATURE=E1,E2,...`` (or ``--band COL=E1,...``) items as ``{name: edges}``."""
    out: dict[str, list[float]] = {}
    for item in items or ():
        name, sep, raw = item.partition("=")
        if not sep or not name or not raw:
            raise ConfigError(f"{flag} {item!r}: expected NAME=E1,E2,..., e.g. age=0,18,65,120")
        try:
            out[name] = [float(e) for e in raw.split(",")]
        except ValueError as exc:
            raise ConfigError(f"{flag} {item!r}: the edges must be numbers") from exc
    return out


def _discrete_max(args: argparse.Namespace) -> int:
    """``discrete_max`` for build_reference from ``--discrete-max`` (absent: its default)."""
    from mlmon.profiles.kinds import DISCRETE_MAX

    n = getattr(args, "discrete_max", None)
    if n is None:
        return DISCRETE_MAX
    if n < 0:
        raise ConfigError(f"--discrete-max must be 0 or more, got {n}")
    return int(n)


# -- commands ---------------------------------------------------------------------------
def cmd_reference_build(args: argparse.Namespace) -> int:
    import polars as pl
    import yaml

    from mlmon.edge.ingest import read_records
    from mlmon.lake.references import save_reference
    from mlmon.lake.writer import LakeWriter
    from mlmon.profiles.frame import build_reference
    from mlmon.profiles.schema import Schema

    schema = None
    if args.schema:
        try:
            raw = yaml.safe_load(Path(args.schema).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{args.schema}: cannot read the schema: {exc}") from exc
        schema = Schema.from_dict(raw or {}, source=args.schema)
        flags = [f for f, v in (("--categorical", args.categorical), ("--ignore", args.ignore),
                                ("--target", args.target)) if v]  # fmt: skip
        if flags:
            raise ConfigError(
                f"{', '.join(flags)} describe the columns of an inferred schema; with --schema "
                f"{args.schema}, list the features (and ignore:) in that file instead"
            )
    frame = pl.concat(list(read_records(args.data)), how="vertical_relaxed")
    if schema is None:
        schema = _inferred_schema(frame, args)
    perf = None
    if args.target and args.label_column == "label":
        args.label_column = args.target
    if args.prediction and args.score_columns == "score":
        args.score_columns = args.prediction
    if args.task:
        from mlmon.profiles.performance import PerformanceSpec

        perf = PerformanceSpec.make(
            args.task,
            classes=args.classes.split(",") if args.classes else (),
            thresholds=[float(t) for t in args.thresholds.split(",")],
            bins=args.score_bins,
        )
    if args.decision and not args.task:
        raise ConfigError("--decision names the model's decisions for performance: add --task")
    if args.decision and args.decision not in frame.columns:
        raise ConfigError(
            f"--decision {args.decision!r}: no such column in {args.data}; "
            f"columns: {', '.join(frame.columns)}"
        )
    if perf is not None and args.decision:  # the model's decisions: build_reference reads them
        perf = perf.named(decision_column=args.decision)
    with warnings.catch_warnings(record=True) as caught:  # a segment that tells nothing
        warnings.simplefilter("always", SegmentWarning)
        ref = build_reference(
            frame, schema, model=args.model, k=args.k, performance=perf,
            label_column=args.label_column, score_columns=args.score_columns.split(","),
            binning=args.binning, bin_edges=_bin_edges(args.bin_edges),
            multivariate=args.multivariate, n_components=args.pca_components,
            multivariate_chunks=args.multivariate_chunks, multivariate_k=args.multivariate_std,
            discrete_max=_discrete_max(args), segments=_names(args.segment),
            bands=_bin_edges(args.band, "--band"),
        )  # fmt: skip
    for w in caught:
        if issubclass(w.category, SegmentWarning):
            print(f"warning: {w.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if args.data_driven_thresholds or args.nannyml_thresholds:
        from mlmon.analysis.thresholds import data_driven_thresholds

        chunk_size = args.threshold_chunk_size
        if args.nannyml_thresholds and chunk_size is None:  # NannyML's chunk_number=N
            chunk_size = max(frame.height // args.threshold_chunks, 1)
        found = data_driven_thresholds(
            frame, ref, chunks=args.threshold_chunks, k=args.threshold_std,
            chunk_size=chunk_size, leave_out=not args.nannyml_thresholds,
        )  # fmt: skip
        ref = ref.with_drift_thresholds(found)  # a new id: the thresholds are part of it
    save_reference(ref, args.out)
    print(
        f"reference {ref.reference_id}: {len(ref.profiles)} features from {ref.rows} rows -> {args.out}"
    )
    if ref.multivariate is not None:
        mv = ref.multivariate
        print(
            f"multivariate: PCA of {len(mv.features)} features, {mv.components.shape[0]} "
            f"component(s) explain {mv.explained.sum():.1%} of the variance; band of the mean "
            f"reconstruction error [{mv.lower:.4g}, {mv.upper:.4g}]"
        )
    if args.lake:
        writer = LakeWriter(
            _lake_uri(args), collector_id=args.collector_id, storage_options=_storage_options(args)
        )
        rec = writer.write_reference(args.model, ref)
        print(f"written to {writer.storage.url(rec.path)}")
        writer.write_performance_reference(args.model, ref)
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from mlmon.edge.ingest import WindowAccumulator, read_records
    from mlmon.lake.references import load_reference
    from mlmon.lake.writer import LakeWriter

    if args.k is not None:
        from mlmon.edge.config import K_ANONYMITY_DEPRECATED

        print(f"warning: {K_ANONYMITY_DEPRECATED.format(where='--k')}", file=sys.stderr)
    ref = load_reference(args.reference)
    writer = LakeWriter(
        _lake_uri(args), collector_id=args.collector_id, storage_options=_storage_options(args)
    )
    if args.chunk_rows is not None:
        return _profile_chunks(args, ref, writer)
    acc = WindowAccumulator(ref, window=_duration(args.window))
    show = not args.quiet and sys.stderr.isatty()
    with tqdm(total=None, unit="rows", disable=not show, desc="profiling") as bar:
        for path in args.files:
            for batch in read_records(path):
                bar.update(acc.add(batch))
    windows = len(acc)
    records = acc.flush(writer, args.model, source="batch", with_drift=not args.no_drift)
    print(
        f"profiled {acc.rows} records into {windows} windows; wrote {len(records)} objects to {writer.storage.url()}"
    )
    return 0


def _profile_chunks(args: argparse.Namespace, ref: Any, writer: Any) -> int:
    """``mlmon profile --chunk-rows N``: every file read, then chunks of N records in time order."""
    import polars as pl

    from mlmon.edge.ingest import chunk_windows, drift_table_many, read_records

    if args.chunk_rows < 1:
        raise ConfigError(f"--chunk-rows {args.chunk_rows}: give a whole number of records >= 1")
    batches = [b for path in args.files for b in read_records(path)]
    try:
        frame = pl.concat(batches, how="diagonal_relaxed") if batches else pl.DataFrame()
    except pl.exceptions.PolarsError as exc:
        raise SchemaError(
            f"the record files' columns do not fit together ({', '.join(args.files)}): "
            f"{type(exc).__name__}; give files with the same columns and types"
        ) from exc
    chunks = chunk_windows(frame, ref, rows=args.chunk_rows, incomplete=args.incomplete)
    drift = None if args.no_drift else drift_table_many(ref, [w.profile for w in chunks.windows])
    records = writer.write_windows(
        args.model, chunks.windows, ref, source="batch", drift_rows=drift, parts=chunks.parts
    )
    records += writer.write_rollups()
    rows = sum(w.profile.rows for w in chunks.windows)
    note = (
        f" ({chunks.dropped} records of the incomplete last chunk dropped)"
        if chunks.dropped
        else ""
    )
    print(
        f"profiled {rows} records into {chunks.chunks} chunks of {args.chunk_rows} records"
        f"{note}; wrote {len(records)} objects to {writer.storage.url()}"
    )
    return 0


def _known_model(lake: Any, model: str, table: str) -> None:
    """An unknown model is an error naming the models that do have data, not an empty table."""
    models = lake.models(table)
    if model not in models:
        raise LakeError(
            f"no {table} data for model {model!r} in {lake.uri}; models with {table}: "
            f"{', '.join(sorted(models)) or '(none)'}"
        )


def cmd_drift(args: argparse.Namespace) -> int:
    lake = _open_lake(args)
    from mlmon.analysis.thresholds import Thresholds

    methods = args.methods.split(",") if args.methods else None
    thresholds = Thresholds.from_cli(args.threshold or ())
    df = lake.drift(
        args.model, args.start, args.end, by=args.by, version=args.version, methods=methods,
        thresholds=thresholds, segment=args.segment,
    )  # fmt: skip
    if df.height == 0:
        _known_model(lake, args.model, "profiles")
    mv = lake.multivariate_drift(args.model, args.start, args.end, by=args.by, version=args.version)
    if args.segment:  # multivariate drift is kept overall only
        mv = mv.clear()
    if args.only_drifted:
        import polars as pl

        df = df.filter(pl.col("drifted"))
        mv = mv.filter(pl.col("alert"))
    if args.multivariate:
        _emit(mv, args)
    else:
        _emit(df, args)
        if mv.height and args.format == "table" and not args.out:
            print("multivariate drift (PCA reconstruction error against the reference band):")
            _emit(mv, args)
    drifted = df.get_column("drifted").any() or mv.get_column("alert").any()
    if args.fail_on_drift and drifted:
        return EXIT_DRIFT
    return 0


def cmd_percentiles(args: argparse.Namespace) -> int:
    lake = _open_lake(args)
    try:
        qs = tuple(float(x) for x in args.q.split(","))
    except ValueError as exc:
        raise ConfigError(f"--q {args.q!r}: give quantiles as numbers, e.g. 0.5,0.95,0.99") from exc
    df = lake.percentiles(
        args.metric,
        qs,
        model=args.model,
        start=args.start,
        end=args.end,
        by=args.by,
        version=args.version,
        source=args.source,
        segment=args.segment,
    )
    _emit(df, args)
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    import duckdb

    if args.macros:
        from mlmon.lake.sql import macros

        print(macros(), end="")
        return 0
    if not args.query:
        raise ConfigError("no query given; pass SQL, or --macros to print mlmon's duckdb macros")
    lake = _open_lake(args)
    try:
        df = lake.sql(args.query)
    except duckdb.Error as exc:
        raise ConfigError(f"SQL error: {exc}") from exc
    _emit(df, args)
    return 0


def cmd_lake_compact(args: argparse.Namespace) -> int:
    lake = _open_lake(args)
    total = 0
    for table in args.tables.split(","):
        done = lake.compact(table, model=args.model, start=args.start, end=args.end)
        total += len(done)
        print(f"{table}: compacted {len(done)} partition(s)")
    return 0


def cmd_lake_ddl(args: argparse.Namespace) -> int:
    from mlmon.lake.ddl import ddl

    root = _lake_uri(args)
    if "://" not in root:
        root = "file://" + os.path.abspath(root)
    print(
        ddl(
            args.engine,
            root,
            database=args.database,
            tables=args.tables.split(",") if args.tables else None,
            models=args.models.split(",") if args.models else None,
        ),
        end="",
    )
    return 0


def cmd_lake_migrate(args: argparse.Namespace) -> int:
    from mlmon.lake.migrate import plan_legacy, remove_legacy

    opts = _storage_options(args)
    plan = plan_legacy(_lake_uri(args), storage_options=opts)
    verb = "deleting" if args.apply else "would delete (pass --apply)"
    print(f"{len(plan.objects)} object(s) of the previous layout, {plan.bytes} bytes: {verb}")
    for path in plan.objects:
        print(f"  {path}")
    for path, why in plan.kept.items():
        print(f"  KEPT {path}: {why}")
    if not args.apply:
        return 0
    result = remove_legacy(_lake_uri(args), plan, storage_options=opts)
    for r in result["refused"]:
        print(f"  REFUSED {r['key']}: {r['error']}", file=sys.stderr)
    print(f"deleted {result['deleted']} object(s)")
    return 0 if result["ok"] else EXIT_LAKE


def cmd_performance(args: argparse.Namespace) -> int:
    lake = _open_lake(args)
    metrics = args.metrics.split(",") if args.metrics else None
    if args.gaps:
        if not args.segment:
            raise ConfigError("--gaps compares segments: add --segment COL (e.g. scanner)")
        _emit(
            lake.subgroup_gaps(
                args.model, args.start, args.end, segment=args.segment, version=args.version
            ),
            args,
        )
        return 0
    df = lake.performance(
        args.model, args.start, args.end, by=args.by, version=args.version, metrics=metrics,
        segment=args.segment,
    )  # fmt: skip
    if df.height == 0:
        _known_model(lake, args.model, "performance")
    _emit(df, args)
    if args.fail_on_alert and df.height and df.get_column("alert").any():
        return EXIT_DRIFT
    return 0


def cmd_edge_labels(args: argparse.Namespace) -> int:
    collector = _collector(args)
    models = [args.model] if args.model else list(collector.performance.configs)
    if not models:
        raise ConfigError(
            f"{args.config}: no model has a performance spec in its reference; build the "
            "reference with `mlmon reference build --task ... --label-column ...`"
        )
    if len(models) > 1:
        raise ConfigError(f"several models take labels ({', '.join(models)}); pass --model")
    store = collector.performance.stores.get(models[0])
    joined_nothing = []
    for path in args.file:
        result = collector.performance.join_file(models[0], path)
        if result.skipped:
            print(f"{path}: batch {result.batch_id} was already joined; nothing written")
            continue
        s = result.summary()
        print(
            f"{path}: batch {result.batch_id}: {s['records']} records, {s['matched']} matched "
            f"into {s['windows']} window(s); late {s['late']}, unknown id {s['unknown_id']}, "
            f"duplicates {s['duplicate_in_batch']}, already labelled {s['already_labelled']}, "
            f"unknown class {s['unknown_class']}, missing {s['missing']}"
        )
        for line in result.explain():
            print(f"  {line}")
        if result.joined_nothing:
            joined_nothing.append(str(path))
    collector.flush_spool()
    if joined_nothing:
        horizon = f"; label_horizon is {store.horizon.days}d" if store is not None else ""
        print(
            f"mlmon: no label record of {', '.join(joined_nothing)} joined a prediction "
            f"(counts and reasons above{horizon}); exit {EXIT_UNJOINED}",
            file=sys.stderr,
        )
        return EXIT_UNJOINED
    return 0


def _collector(args: argparse.Namespace) -> Any:
    from mlmon.edge.collector import Collector
    from mlmon.edge.config import load_config

    return Collector(load_config(args.config))


def _json_logs(verbose: bool) -> None:
    from mlmon.edge.logs import quiet_client_loggers
    from mlmon.edge.observe import JsonFormatter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    quiet_client_loggers(handler)  # no client headers, URLs or bodies at any verbosity


def cmd_edge_once(args: argparse.Namespace) -> int:
    from mlmon.edge.lifecycle import Shutdown, once_exit_code

    _json_logs(args.verbose)
    shutdown = Shutdown().install()  # before the collector exists: a SIGTERM is never lost
    collector = _collector(args)
    report = collector.run_once(shutdown.stop)
    code = once_exit_code(report, shutdown.signum)
    print(
        json.dumps(
            {
                "exit_code": code,
                "golden_checks": report.golden_checks,
                "golden_passed": report.golden_passed,
                "golden_failed": report.golden_failed,
                "records": report.records,
                "windows": report.windows,
                "batch_runs": report.batch_runs,
                "spooled_objects": report.spooled_objects,
                "errors": report.errors,
                "stopped": report.stopped,
            }
        )
    )
    return code


def cmd_edge_run(args: argparse.Namespace) -> int:
    from mlmon.edge.lifecycle import Shutdown

    _json_logs(args.verbose)
    shutdown = Shutdown().install()
    collector = _collector(args)
    collector.run(shutdown.stop)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from mlmon.reports.context import period_bounds
    from mlmon.reports.runner import run_report

    try:
        start, end = period_bounds(args.period, args.start, args.end)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
    done = run_report(
        _lake_uri(args), args.model, start, end, args.out, formats=formats, title=args.title,
        storage_options=_storage_options(args) or None,
    )  # fmt: skip
    for kind, where in done.items():
        print(f"{kind}: {where}")
    _audit_report(args, done, start, end)
    return 0


def _audit_report(args: argparse.Namespace, done: dict[str, str], start: Any, end: Any) -> None:
    """A ``report_rendered`` audit record with the sha256 of each local output."""
    import hashlib

    digests = {
        kind: hashlib.sha256(Path(where).read_bytes()).hexdigest()
        for kind, where in done.items()
        if Path(where).is_file()
    }
    audit_record(args, _lake_uri(args), "report_rendered", args.out, models=list(args.model),
                 start=str(start), end=str(end), outputs=sorted(done), sha256=digests)  # fmt: skip


def cmd_schedule_run(args: argparse.Namespace) -> int:
    import signal
    import threading
    from datetime import UTC, datetime

    from mlmon.reports.schedule import load_schedule_config, run_due, run_forever

    cfg = load_schedule_config(args.config)
    if args.once:
        for entry in run_due(cfg, datetime.now(UTC), names=args.only or None):
            print(f"{entry['schedule']} {entry['period']}: " + ", ".join(entry["files"].values()))
        return 0
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    run_forever(cfg, stop)
    return 0


def cmd_edge_audit_head(args: argparse.Namespace) -> int:
    from mlmon.commands.audit import cmd_edge_audit_head as run

    return run(args)


def cmd_retention(args: argparse.Namespace) -> int:
    from mlmon.commands._retention import cmd_retention as run

    return run(args, _lake_uri(args))


def cmd_demo(args: argparse.Namespace) -> int:
    from mlmon.demo.run import run_demo

    if not args.verbose:  # the demo prints its own summary; alerts are in the lake
        logging.getLogger("mlmon.edge").setLevel(logging.ERROR)

    return run_demo(Path(args.lake), quiet=args.quiet)


# -- help -------------------------------------------------------------------------------
#: ``--help`` text of each subcommand whose parser does not set its own: a description
#: and an example (parsed by the tests, so it stays valid).
HELP_TEXT: dict[str, tuple[str, str]] = {
    "reference build": (
        "Profile baseline records (the data the model was validated on) into a reference: "
        "one mergeable profile per feature, the bins drift is measured on. Written to --out, "
        "and into the lake's references table when --lake is given.",
        "mlmon reference build --data baseline.parquet --schema schema.yaml --model risk-model "
        "--out risk-model.reference.parquet --lake ./lake",
    ),
    "profile": (
        "Profile inference records from files (the batch path; the edge does the same for "
        "streams) into per-window profiles, latency and drift rows in the lake. With "
        "--chunk-rows N, windows are chunks of N records in timestamp order instead (NannyML's "
        "chunk_size): each from its first timestamp to just after its last; a last chunk of "
        "fewer records is kept (default), dropped or appended to the one before (--incomplete).",
        "mlmon profile logs/2026-10-01.parquet logs/2026-10-02.parquet "
        "--reference risk-model.reference.parquet --model risk-model --lake ./lake --window 1h",
    ),
    "drift": (
        "Drift of each period against the reference, recomputed from the merged window "
        "profiles (any period, no raw data). A model the lake does not hold is an error "
        "naming the models it does (exit 2).",
        "mlmon drift --lake ./lake --model risk-model --start 2026-10-01 --end 2026-11-01 "
        "--by week --only-drifted",
    ),
    "percentiles": (
        "Percentiles of latency (or of a numeric feature) per period, from merged sketches. "
        "--source keeps probe latencies (the edge's golden probes) apart from the latencies "
        "logged with inference records (stream, batch).",
        "mlmon percentiles --lake ./lake --model risk-model --source stream --by day --q 0.5,0.95",
    ),
    "performance": (
        "Realized performance (from joined labels) and estimated performance (from scores, "
        "calibrated on the reference) per period, with alerts against the reference.",
        "mlmon performance --lake ./lake --model risk-model --start 2026-10-01 --end 2026-11-01",
    ),
    "sql": (
        "Run duckdb SQL over the lake's tables as views (profiles, latency, drift, golden, "
        "alerts, ...); --macros prints the macros that give mlmon's numbers in plain duckdb.",
        'mlmon sql --lake ./lake "SELECT date, count(*) AS windows FROM profiles GROUP BY date"',
    ),
    "edge labels": (
        "",
        "mlmon edge labels --config /etc/mlmon/edge.yaml --file labels-2026-10.csv",
    ),
    "report": (
        "Render the monitoring report of a period: the report notebook runs on a real kernel "
        "(papermill), then HTML and PDF are rendered; the executed notebook and its context "
        "are kept next to them. A model the lake does not hold is an error (exit 2).",
        "mlmon report --lake ./lake --model risk-model --period 2026-10 --out reports/",
    ),
    "schedule run": (
        "Render reports on the cron schedules of reports.yaml (until SIGTERM), or with "
        "--once every schedule's last complete period now; writes an index of the reports.",
        "mlmon schedule run --config reports.yaml --once",
    ),
    "audit verify": (
        "Recompute the hash chain of the audit log under the lake's audit/ prefix, check it "
        "reaches the writers' chain heads (--head) or expected actors (--expect-actor) and "
        "name the first record that was changed, removed or rolled back; exit 1 when it "
        "does not verify.",
        "mlmon audit verify s3://hospital-mlmon/lake --public-key audit-seal.pub.pem "
        "--head head.json --max-age 26h",
    ),
    "retention plan": (
        "List the date partitions (and their objects and bytes) past each table's "
        "retention, and each actor's audit segments past the audit retention (retired "
        "behind a checkpoint); references that windows within retention still name stay "
        "(IN USE); deletes nothing. Exit 0; 2 bad --days (days a whole number >= 1, a "
        "known table); 3 the lake cannot be listed or read with this credential.",
        "mlmon retention plan --lake s3://hospital-mlmon/lake --days profiles=90",
    ),
    "retention apply": (
        "Delete what `retention plan` lists (the maintenance credential), key by key: a "
        "retention_started audit record first (a role that cannot write the audit log "
        "deletes nothing, exit 3), each actor's audit checkpoint before its segments, every "
        "refused key named on stderr before anything else, then a retention_applied record; "
        "files that are not lake objects are kept. Exit 0 done; 1 keys refused (named); 2 "
        "bad arguments; 3 the lake cannot be listed, read or audited.",
        "mlmon retention apply --lake s3://hospital-mlmon/lake --days profiles=90",
    ),
    "retention lifecycle": (
        "Print the S3 lifecycle configuration that expires the metric tables by object "
        "age, to apply with the bucket's own tools instead of `retention apply`; prefixes "
        "relative to the bucket (s3://bucket alone: the bucket root). No rule for audit/: "
        "only `retention apply` retires it, behind a checkpoint (--days audit=N is refused).",
        "mlmon retention lifecycle --lake s3://hospital-mlmon/lake --days profiles=90",
    ),
    "lake compact": (
        "Merge each day's window objects into one object plus a day rollup, kept where a "
        "plain read_parquet glob over a table does not count them twice (docs/lake.md).",
        "mlmon lake compact --lake ./lake --start 2026-10-01 --end 2026-11-01",
    ),
    "lake migrate": (
        "List the previous layout's rollup and compaction copies inside table partitions; "
        "with --apply delete them (the maintenance role).",
        "mlmon lake migrate --lake ./lake --apply",
    ),
    "lake ddl": (
        "Print the lake's tables for Spark SQL, Trino or Athena (Athena with partition "
        "projection): external Parquet tables over each table's prefix (docs/scale.md).",
        "mlmon lake ddl --engine athena --lake s3://bucket/lake --database mlmon",
    ),
    "demo": (
        "Run the end-to-end demo on the bundled fixtures: a model server, the edge, six days "
        "of records with planted drift, and a report, into a local lake folder.",
        "mlmon demo --lake ./demo-lake",
    ),
    "offboard": (
        "",
        "mlmon offboard --scope s3://vendor-bucket/hospital-a --operator 'A. Operator' "
        "--out attestations/ --signing-key offboard.pem",
    ),
    "attest verify": (
        "Check a deletion attestation against the operator's public key (--public-key, or "
        "the file named by $MLMON_ATTEST_PUBLIC_KEY; exit 2 without one): its signature, its "
        "manifest and its fields; exit 0 when valid and complete, 1 naming what is wrong or "
        "when the purge was not complete (--allow-incomplete accepts that).",
        "mlmon attest verify attestations/attestation.json --public-key operator.pub.pem",
    ),
    "imaging reference": (
        "Build an imaging reference from baseline DICOM Part-10 files: allow-listed "
        "attributes and, unless --metadata-only, image statistics.",
        "mlmon imaging reference baseline-dicom/ -o chest-ct.reference.parquet --model chest-ct",
    ),
    "imaging check": (
        "Say for each DICOM keyword whether it may be allow-listed for profiling; exit 2 "
        "when any is refused (identifying attributes never are).",
        "mlmon imaging check KVP SliceThickness PatientName",
    ),
    "versions": (
        "The registered versions of a model (read-only, MLflow registry) with what the lake "
        "saw of each: golden checks, pass rate and latency.",
        "mlmon versions --model risk --registry https://mlflow.example.org --lake ./lake",
    ),
    "registry check": (
        "Run the golden set against a candidate version's endpoint and compare with "
        "production's results in the lake; exit 1 when the candidate regresses.",
        "mlmon registry check --model risk --version 4 --endpoint https://risk-v4.models.svc:8443 "
        "--config /etc/mlmon/edge.yaml --registry https://mlflow.example.org --lake ./lake",
    ),
}


def _fill(text: str) -> str:
    import textwrap

    return "\n".join(textwrap.fill(p, 78) for p in text.split("\n"))


def _add_help_text(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> None:
    """Give every subcommand a description and an example (from :data:`HELP_TEXT`).

    A command group's ``--help`` describes the group and shows its commands' examples.
    """
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {a.dest: a.help or "" for a in action._choices_actions}
        for name, sub in action.choices.items():
            key = (*path, name)
            _add_help_text(sub, key)
            description, example = HELP_TEXT.get(" ".join(key), ("", ""))
            if key and not sub.description:
                sub.description = _fill(description or helps.get(name, "").capitalize() + ".")
            elif sub.formatter_class is argparse.HelpFormatter:
                sub.description = _fill(sub.description or "")
            examples = [example] if example else _examples(sub)
            epilog = sub.epilog or ""
            if examples and "example" not in epilog:
                if sub.formatter_class is argparse.HelpFormatter:
                    epilog = _fill(epilog)
                lines = "\n".join(f"  {e}" for e in examples)
                word = "example" if len(examples) == 1 else "examples"
                sub.epilog = f"{epilog}\n\n{word}:\n{lines}".lstrip("\n")
            sub.formatter_class = argparse.RawDescriptionHelpFormatter


def _examples(group: argparse.ArgumentParser) -> list[str]:
    """The examples of a command group's commands (from their epilogs, already complete)."""
    out = []
    for action in group._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                lines = (sub.epilog or "").splitlines()
                at = [i for i, line in enumerate(lines) if line.startswith("example")]
                out += [x.strip() for x in lines[at[-1] + 1 :] if x.strip()] if at else []
    return out


# -- parser -----------------------------------------------------------------------------
def _add_lake(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--lake", help="lake URI: file:///path, a path, or s3://bucket/prefix (env MLMON_LAKE)"
    )
    p.add_argument(
        "--storage-option",
        action="append",
        metavar="KEY=VALUE",
        help="filesystem option, e.g. endpoint_url=...",
    )


def _add_window_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model name (the lake's model= partition)")
    p.add_argument("--start", help="UTC start, ISO-8601 (2026-10-01 or 2026-10-01T06:00:00Z)")
    p.add_argument("--end", help="UTC end (exclusive)")
    p.add_argument("--by", default="day", choices=["hour", "day", "week", "month", "all"])
    p.add_argument("--version", help="only windows that reported this model version")
    p.add_argument("--format", default="table", choices=["table", "csv", "json", "parquet"])
    p.add_argument("--out", help="write the result to this file instead of stdout")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlmon",
        description="Private ML model monitoring from mergeable profiles in a Parquet metric lake.",
        epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ref = sub.add_parser("reference", help="build reference profiles").add_subparsers(
        dest="sub", required=True
    )
    rb = ref.add_parser("build", help="build a reference from baseline records")
    rb.add_argument("--data", required=True, help="baseline records (Parquet, CSV or JSONL)")
    rb.add_argument("--schema", help="feature schema YAML (default: inferred from column types)")
    rb.add_argument("--model", required=True)
    rb.add_argument("--out", required=True, help="reference file to write (Parquet)")
    rb.add_argument(
        "--k", type=int, default=5, help="minimum count for a learned category (default 5)"
    )
    rb.add_argument(
        "--discrete-max",
        type=int,
        default=None,
        metavar="N",
        help="numeric features with at most N distinct values get exact per-value counts "
        "(default 50; 0: reference-quantile bins for every numeric feature)",
    )
    rb.add_argument("--collector-id", default="reference-builder")
    rb.add_argument(
        "--task",
        choices=["binary", "multiclass", "regression"],
        help="also build a performance reference (calibration, baseline) from labels",
    )
    rb.add_argument("--label-column", default="label", help="with --task: the label column")
    rb.add_argument(
        "--score-columns",
        default="score",
        help="with --task: the score column (multiclass: one per class, comma-separated)",
    )
    rb.add_argument(
        "--classes", help="with --task: class labels, comma-separated (binary: neg,pos)"
    )
    rb.add_argument("--thresholds", default="0.5", help="binary decision thresholds")
    rb.add_argument(
        "--decision",
        help="with --task binary/multiclass: the column of the model's own logged decisions "
        "(its predicted class, e.g. NannyML's y_pred); threshold metrics use it instead of "
        "score >= the first threshold or the highest score",
    )
    rb.add_argument("--score-bins", type=int, default=100, help="uniform score bins on [0, 1]")
    rb.add_argument(
        "--segment",
        action="append",
        metavar="COL[,COL]",
        help="profile per value of this column as well as overall (scanner, site, ward, an "
        "age band; repeatable): values seen fewer than --k times, and values not in a "
        "schema's segments: allowed: list, are profiled as __other__ (docs/segments.md)",
    )
    rb.add_argument(
        "--band",
        action="append",
        metavar="COL=E1,E2,...",
        help="a banded segment COL_band of a numeric column (repeatable), e.g. "
        "--band age=0,18,40,65 gives age_band with 0-17, 18-39, 40-64, 65+ (and <0, missing); "
        "the raw value never becomes a segment (docs/segments.md)",
    )
    rb.add_argument(
        "--categorical",
        action="append",
        metavar="COL[,COL]",
        help="without --schema: profile these columns as categorical (repeatable)",
    )
    rb.add_argument(
        "--ignore",
        action="append",
        metavar="COL[,COL]",
        help="without --schema: never monitor these columns (repeatable)",
    )
    rb.add_argument(
        "--target",
        help="the label column: never a feature; with --task, the default --label-column",
    )
    rb.add_argument(
        "--prediction",
        help="the model's prediction or score column(s), still monitored as a feature; "
        "with --task, the default --score-columns",
    )
    rb.add_argument(
        "--data-driven-thresholds",
        action="store_true",
        help="store drift thresholds from the baseline: mean + k std of each method over "
        "its chunks (NannyML-style; p-value methods keep their fixed threshold)",
    )
    rb.add_argument(
        "--threshold-chunks", type=int, default=10, help="chunks of the baseline (default 10)"
    )
    rb.add_argument(
        "--threshold-std", type=float, default=3.0, help="k, standard deviations (default 3)"
    )
    rb.add_argument(
        "--threshold-chunk-size",
        type=int,
        metavar="ROWS",
        help="chunks of ROWS rows (the rest one more chunk, NannyML's chunk_size) instead of "
        "--threshold-chunks equal chunks",
    )
    rb.add_argument(
        "--nannyml-thresholds",
        action="store_true",
        help="data-driven thresholds the NannyML way: each chunk against the whole baseline, "
        "--threshold-chunks N cut as NannyML's chunk_number (NannyML 0.13's default "
        "thresholds; implies --data-driven-thresholds)",
    )
    rb.add_argument(
        "--binning",
        choices=["quantiles", "nannyml"],
        default="quantiles",
        help="numeric bins: reference quantiles (default) or NannyML 0.13's rule (its "
        "Jensen-Shannon, Hellinger and Wasserstein values; README, NannyML-compatible mode)",
    )
    rb.add_argument(
        "--bin-edges",
        action="append",
        metavar="FEATURE=E1,E2,...",
        help="fixed bin edges for a numeric feature (repeatable)",
    )
    rb.add_argument(
        "--multivariate",
        action="store_true",
        help="fit a PCA on the baseline for multivariate drift: each record's reconstruction "
        "error is profiled, and a period alerts outside the baseline's band (NannyML-style)",
    )
    rb.add_argument(
        "--pca-components",
        type=float,
        default=0.65,
        help="with --multivariate: fraction of variance kept (default 0.65) or a whole "
        "number of components",
    )
    rb.add_argument(
        "--multivariate-chunks",
        type=int,
        default=10,
        help="with --multivariate: baseline chunks of the band (default 10)",
    )
    rb.add_argument(
        "--multivariate-std",
        type=float,
        default=3.0,
        help="with --multivariate: k, standard deviations of the band (default 3)",
    )
    _add_lake(rb)
    rb.set_defaults(func=cmd_reference_build)

    pr = sub.add_parser("profile", help="profile inference records into the lake (batch path)")
    pr.add_argument("files", nargs="+", help="record files (Parquet, CSV, JSONL)")
    pr.add_argument(
        "--reference", required=True, help="reference file from `mlmon reference build`"
    )
    pr.add_argument("--model", required=True)
    pr.add_argument("--window", default="1h", help="window length, e.g. 5m, 1h (default 1h)")
    pr.add_argument("--collector-id", default="batch")
    pr.add_argument(
        "--k",
        type=int,
        default=None,
        help="deprecated and ignored: windows keep exact counts (docs/security.md section 16)",
    )
    pr.add_argument(
        "--chunk-rows",
        type=int,
        metavar="N",
        help="instead of time windows, chunks of N records in timestamp order (NannyML's "
        "chunk_size); each chunk is a window from its first timestamp to just after its last",
    )
    pr.add_argument(
        "--incomplete",
        choices=["keep", "drop", "append"],
        default="keep",
        help="with --chunk-rows, a last chunk of fewer than N records: keep it (default, as "
        "NannyML), drop its records, or append them to the chunk before it",
    )
    pr.add_argument("--no-drift", action="store_true", help="do not write per-window drift rows")
    pr.add_argument("--quiet", action="store_true")
    _add_lake(pr)
    pr.set_defaults(func=cmd_profile)

    dr = sub.add_parser("drift", help="drift per period, recomputed from merged profiles")
    _add_lake(dr)
    _add_window_args(dr)
    dr.add_argument("--methods", help="comma-separated method ids (default: all that apply)")
    dr.add_argument(
        "--threshold",
        action="append",
        metavar="[FEATURE:]METHOD=VALUE",
        help="threshold for a method (psi=0.2) or one feature's method (age:js=0.1); "
        "repeatable; overrides the reference's data-driven and the default thresholds",
    )
    dr.add_argument("--only-drifted", action="store_true", help="show only drifted rows")
    dr.add_argument(
        "--segment",
        metavar="COL[=VALUE]",
        help="drift per segment of this column (scanner) or of one segment (scanner=GE), "
        "each against the reference's profile of the same segment",
    )
    dr.add_argument(
        "--multivariate",
        action="store_true",
        help="show the multivariate drift (mean PCA reconstruction error per period against "
        "the reference band) instead of the per-feature drift; in table format it follows "
        "the per-feature table anyway when the reference has a PCA",
    )
    dr.add_argument("--fail-on-drift", action="store_true", help="exit 1 when anything drifted")
    dr.set_defaults(func=cmd_drift)

    pc = sub.add_parser("percentiles", help="percentiles of latency or a numeric feature")
    _add_lake(pc)
    _add_window_args(pc)
    pc.add_argument("--metric", default="latency_ms")
    pc.add_argument(
        "--source",
        choices=["probe", "stream", "batch"],
        help="only latencies from this source: probe (the edge's golden probes), stream "
        "(logged with the inference records), batch (`mlmon profile`); default: all merged",
    )
    pc.add_argument("--q", default="0.5,0.95,0.99", help="quantiles, comma-separated")
    pc.add_argument(
        "--segment", metavar="COL[=VALUE]", help="per segment of a numeric feature (--metric)"
    )
    pc.set_defaults(func=cmd_percentiles)

    pf = sub.add_parser("performance", help="realized and estimated model performance per period")
    _add_lake(pf)
    _add_window_args(pf)
    pf.set_defaults(by="week")
    pf.add_argument("--metrics", help="comma-separated metrics (default: the task's usual ones)")
    pf.add_argument("--fail-on-alert", action="store_true", help="exit 1 when any period alerts")
    pf.add_argument(
        "--segment",
        metavar="COL[=VALUE]",
        help="performance per segment of this column (scanner) or of one segment (scanner=GE)",
    )
    pf.add_argument(
        "--gaps",
        action="store_true",
        help="with --segment COL: the largest difference across its segments in recall, "
        "false-positive rate and precision over [start, end), with Newcombe's 95%% interval",
    )
    pf.set_defaults(func=cmd_performance)

    sq = sub.add_parser("sql", help="run duckdb SQL over the lake's tables")
    sq.add_argument("query", nargs="?", help="SQL over the views profiles, latency, alerts, ...")
    sq.add_argument(
        "--macros",
        action="store_true",
        help="print mlmon's duckdb macros (mlmon_sketch_quantile, mlmon_psi, ...) to paste into "
        "plain duckdb, and exit (docs/lake.md)",
    )
    _add_lake(sq)
    sq.add_argument("--format", default="table", choices=["table", "csv", "json", "parquet"])
    sq.add_argument("--out")
    sq.set_defaults(func=cmd_sql)

    ed = sub.add_parser("edge", help="the edge collector").add_subparsers(dest="sub", required=True)
    from mlmon.edge.lifecycle import ONCE_EXIT_CODES, SHUTDOWN_DEADLINE_S

    eo = ed.add_parser(
        "once",
        help="run every collector task once (cron, Kubernetes CronJob)",
        description="Run every collector task of edge.yaml once, flush the spool, print one\n"
        "JSON line (what ran, what failed) and exit with a code that says how it went.\n"
        "SIGTERM abandons probes in flight; the process exits within "
        f"{SHUTDOWN_DEADLINE_S:g} s.",
        epilog=ONCE_EXIT_CODES + "\nexample:\n  mlmon edge once --config /etc/mlmon/edge.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    eo.add_argument("--config", required=True, help="edge.yaml")
    eo.set_defaults(func=cmd_edge_once)
    el = ed.add_parser(
        "labels",
        help="join a labels file with the predictions (delayed labels)",
        description="Join labels files with the predictions the edge stored (or the scores the "
        "labels carry) and write their performance rows. Prints, per file, the records matched "
        "and every count that did not join, with the reason.",
        epilog="Exit codes: 0 every file joined at least one record (or was joined before); "
        "6 a file held records but none joined a prediction (late: the edge stored the "
        "prediction more than label_horizon ago; unknown id: no stored prediction with that "
        "id; ...); 2 bad config or arguments; 4 a labels file that cannot be read.",
    )
    el.add_argument("--config", required=True, help="edge.yaml")
    el.add_argument("--file", required=True, action="append", help="labels file (repeatable)")
    el.add_argument("--model", help="model (default: the one model whose reference has a task)")
    el.set_defaults(func=cmd_edge_labels)
    er = ed.add_parser(
        "run",
        help="run the collector with its schedules until SIGTERM",
        description="Run the collector's tasks on their schedules, serving /metrics and /healthz\n"
        "(ok, or degraded with the reasons: an endpoint or the bucket unreachable, a task\n"
        "failing). SIGTERM or SIGINT stops it: probes in flight are abandoned and the\n"
        f"process exits 0 within {SHUTDOWN_DEADLINE_S:g} s (work still running then is cut "
        "off: exit 128 + signal).",
        epilog="example:\n  mlmon edge run --config /etc/mlmon/edge.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    er.add_argument("--config", required=True, help="edge.yaml")
    er.set_defaults(func=cmd_edge_run)
    eh = ed.add_parser(
        "audit-head",
        help="print the edge's audit chain head (for mlmon audit verify --head)",
        description="Print, as one JSON line, the newest audit record this edge sealed and\n"
        "handed to the lake (actor, seq, hash, time), read from its state_dir. Give it to\n"
        "`mlmon audit verify --head FILE` (save it: `... > head.json`): the lake's chain\n"
        "must reach that record. Exit 2 when the edge has not sealed any record yet.",
        epilog="example:\n  mlmon edge audit-head --config /etc/mlmon/edge.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from mlmon.commands.audit import add_audit_head_args

    add_audit_head_args(eh)
    eh.set_defaults(func=cmd_edge_audit_head)

    rp = sub.add_parser(
        "report", help="render the monitoring report (PDF, HTML) through the report notebook"
    )
    _add_lake(rp)
    rp.add_argument(
        "--model", action="append", required=True, help="model name (repeat for several)"
    )
    rp.add_argument("--period", help="2026-10 (month), 2026-W43 (ISO week) or 2026-10-05 (day)")
    rp.add_argument("--start", help="UTC start (instead of --period)")
    rp.add_argument("--end", help="UTC end, exclusive")
    rp.add_argument("--format", default="pdf,html", help="pdf,html")
    rp.add_argument("--out", required=True, help="output folder or s3:// prefix")
    rp.add_argument("--title", default="Model monitoring report")
    add_audit_args(rp, "reports")
    rp.set_defaults(func=cmd_report)

    sc = sub.add_parser("schedule", help="scheduled reports").add_subparsers(
        dest="sub", required=True
    )
    sr = sc.add_parser("run", help="render reports on their cron schedules (reports.yaml)")
    sr.add_argument("--config", required=True)
    sr.add_argument(
        "--once",
        action="store_true",
        help="render every schedule's last complete period now and exit",
    )
    sr.add_argument("--only", action="append", help="with --once: only this schedule (repeatable)")
    sr.set_defaults(func=cmd_schedule_run)

    rt = sub.add_parser("retention", help="retention by date partition").add_subparsers(
        dest="sub", required=True
    )
    for name, text in (("plan", "list partitions past retention"), ("apply", "delete them (maintenance credential)"),
                       ("lifecycle", "print the equivalent S3 lifecycle configuration")):  # fmt: skip
        r = rt.add_parser(name, help=text)
        _add_lake(r)
        r.add_argument(
            "--days", action="append", metavar="TABLE=DAYS", help="override, e.g. profiles=30"
        )
        r.add_argument(
            "--state-dir", default=".mlmon-maintenance", help="audit chain head of this actor"
        )
        r.add_argument("--actor", default="maintenance")
        r.add_argument(
            "--audit-signing-key",
            metavar="FILE",
            help="Ed25519 private key (PEM) sealing this actor's audit segments, so "
            "`audit verify --public-key` checks them too",
        )
        r.set_defaults(func=cmd_retention)

    lk = sub.add_parser("lake", help="lake maintenance").add_subparsers(dest="sub", required=True)
    lc = lk.add_parser(
        "compact",
        help="merge each day's window objects into one object plus a day rollup (needs read+write)",
    )
    _add_lake(lc)
    lc.add_argument("--model", help="only this model (default: all)")
    lc.add_argument("--start", help="first UTC day to compact")
    lc.add_argument(
        "--end", help="end (exclusive); leave today's partition alone while edges still write"
    )
    lc.add_argument("--tables", default="profiles,latency,drift,golden,alerts")
    lc.set_defaults(func=cmd_lake_compact)
    lm = lk.add_parser(
        "migrate",
        help="list (and with --apply delete) the previous layout's rollup and compaction copies "
        "inside table partitions (docs/lake.md)",
    )
    _add_lake(lm)
    lm.add_argument("--apply", action="store_true", help="delete them (the maintenance role)")
    lm.set_defaults(func=cmd_lake_migrate)
    ld = lk.add_parser(
        "ddl",
        help="print the lake's table definitions for Spark SQL, Trino or Athena (docs/scale.md)",
    )
    ld.add_argument("--engine", required=True, choices=("spark", "trino", "athena"))
    ld.add_argument(
        "--lake", help="lake URI the tables point at (s3://bucket/prefix); default $MLMON_LAKE"
    )
    ld.add_argument("--database", default="mlmon", help="database (schema) of the tables")
    ld.add_argument("--tables", help="comma-separated tables (default: all)")
    ld.add_argument(
        "--models",
        help="Athena: the models to enumerate in partition projection (default: injected, "
        "so every query names its model)",
    )
    ld.set_defaults(func=cmd_lake_ddl)

    de = sub.add_parser("demo", help="run the end-to-end demo on the bundled fixtures")
    de.add_argument(
        "--lake",
        default="./lake",
        help="local folder for the demo lake (default ./lake): new, empty, or the demo's own "
        "from an earlier run; a folder holding anything else is refused (exit 2)",
    )
    de.add_argument("--quiet", action="store_true")
    de.set_defaults(func=cmd_demo)

    from mlmon.commands import add_all

    add_all(sub)
    _add_help_text(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    from mlmon.edge.logs import quiet_client_loggers

    quiet_client_loggers(*logging.getLogger().handlers)
    try:
        return int(args.func(args) or 0)
    except (ConfigError, UnknownNameError) as exc:
        print(f"mlmon: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except MissingExtraError as exc:
        print(f"mlmon: error: {exc}", file=sys.stderr)
        return EXIT_EXTRA
    except LakeError as exc:
        print(f"mlmon: lake error: {exc}", file=sys.stderr)
        return EXIT_LAKE
    except (SchemaError, ProfileError) as exc:
        print(f"mlmon: data error: {exc}", file=sys.stderr)
        return EXIT_DATA
    except FileNotFoundError as exc:
        print(f"mlmon: error: no such file: {exc.filename or exc}", file=sys.stderr)
        return EXIT_DATA
    except MlmonError as exc:
        print(f"mlmon: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
