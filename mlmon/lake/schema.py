"""Schema v1 of the metric lake: every table and column, documented in one place.

``docs/lake.md`` is generated from this module (``python -m mlmon.lake.schema``)
and a test keeps the two in sync. Stored names are API: they change only
with :data:`SCHEMA_VERSION`.

Layout::

    {root}/v{N}/{table}/model={model}/date={YYYY-MM-DD}/{key}.parquet

``model`` and ``date`` (UTC date of ``window_start``) are hive partitions,
not columns in the files; readers add them back.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from mlmon.errors import DuplicateNameError, SchemaError, UnknownNameError
from mlmon.profiles.arrow import PROFILE_FIELDS
from mlmon.profiles.performance import PERFORMANCE_FIELDS

__all__ = [
    "LABELS_UNJOINED",
    "SCHEMA_VERSION",
    "TABLES",
    "Column",
    "Table",
    "explain_unjoined",
    "register_table",
    "table",
    "to_markdown",
]

SCHEMA_VERSION = 1
UTC_TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    doc: str
    nullable: bool = True

    @property
    def field(self) -> pa.Field:
        return pa.field(self.name, self.type, nullable=self.nullable)


@dataclass(frozen=True)
class Table:
    """A lake table: its columns and what one row means."""

    name: str
    doc: str
    columns: tuple[Column, ...]

    @property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema([c.field for c in self.columns])

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def conform(self, data: pa.Table) -> pa.Table:
        """Select and cast ``data`` to this table's schema, or say what is wrong."""
        missing = [
            c.name for c in self.columns if c.name not in data.column_names and not c.nullable
        ]
        if missing:
            raise SchemaError(
                f"table {self.name!r}: rows lack required column(s) {', '.join(missing)}"
            )
        arrays = []
        for c in self.columns:
            if c.name in data.column_names:
                col = data.column(c.name)
                try:
                    arrays.append(col.cast(c.type))
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise SchemaError(
                        f"table {self.name!r}: column {c.name!r} has type {col.type}, expected {c.type}"
                    ) from exc
            else:
                arrays.append(pa.nulls(data.num_rows, c.type))
        return pa.Table.from_arrays(arrays, schema=self.arrow_schema)


_WINDOW = (
    Column("model_version", pa.string(), "Model version the endpoint or records reported (null if none)."),
    Column("window_start", UTC_TS, "Window start, UTC, inclusive.", nullable=False),
    Column("window_end", UTC_TS, "Window end, UTC, exclusive.", nullable=False),
    Column("collector_id", pa.string(), "Id of the collector (edge instance or batch job) that wrote the row.", nullable=False),
)  # fmt: skip
_PROFILE = tuple(Column(f.name, f.type, doc, f.nullable) for f, doc in PROFILE_FIELDS)
_PERFORMANCE = tuple(Column(f.name, f.type, doc, f.nullable) for f, doc in PERFORMANCE_FIELDS)
_SEGMENT = (
    Column("segment", pa.string(), "Segment column declared in the reference schema (e.g. scanner, site, age_band).", nullable=False),
    Column("segment_value", pa.string(), "Its value: one of the reference's allow-listed segment values, or __other__ (any other or missing value).", nullable=False),
)  # fmt: skip

TABLES: dict[str, Table] = {
    "profiles": Table(
        "profiles",
        "One row per (window, feature): a mergeable profile of the feature's values.",
        (*_WINDOW, Column("reference_id", pa.string(), "Reference whose bins and vocabulary the profile uses.", nullable=False), Column("rows", pa.int64(), "Records in the window (all features)."), *_PROFILE),
    ),
    "latency": Table(
        "latency",
        "One row per (window, source): a mergeable profile of latencies in ms (uncentred sketch).",
        (*_WINDOW, Column("source", pa.string(), "Where the latencies come from: stream, probe or batch.", nullable=False), Column("errors", pa.int64(), "Requests in the window that failed."), *_PROFILE),
    ),
    "drift": Table(
        "drift",
        "One row per (window, feature, method): drift of the window against the reference, as computed at write time.",
        (
            *_WINDOW,
            Column("reference_id", pa.string(), "Reference compared with.", nullable=False),
            Column("feature", pa.string(), "Feature name.", nullable=False),
            Column("method", pa.string(), "Drift method id (see mlmon.analysis.drift.METHODS).", nullable=False),
            Column("value", pa.float64(), "Method value (NaN when the window had no values)."),
            Column("threshold", pa.float64(), "Threshold in force."),
            Column("drifted", pa.bool_(), "Whether the value crossed the threshold."),
            Column("count", pa.int64(), "Values of the feature in the window."),
            Column("statistic", pa.float64(), "Test statistic beside the value: chi-square statistic, KS D, or raw Wasserstein-1 in the feature's units; null for distances without one."),
            Column("dof", pa.int64(), "Degrees of freedom of the chi-square test; null for other methods."),
            Column("p_value", pa.float64(), "p-value of the chi-square or KS test; null for other methods."),
        ),
    ),
    "golden": Table(
        "golden",
        "One row per golden-sample check: outcome only, never the payload or the sample id.",
        (
            *_WINDOW,
            Column("checked_at", UTC_TS, "When the check ran, UTC.", nullable=False),
            Column("sample_id_hmac", pa.string(), "HMAC-SHA256 of the golden sample id.", nullable=False),
            Column("passed", pa.bool_(), "Endpoint answered and matched the expected output.", nullable=False),
            Column("error_kind", pa.string(), "null when passed; timeout, connect, tls, http_4xx, http_5xx, malformed or mismatch."),
            Column("latency_ms", pa.float64(), "Round-trip time of the request."),
            Column("status_code", pa.int32(), "HTTP status (null when no answer)."),
        ),
    ),
    "alerts": Table(
        "alerts",
        "One row per alert state change: firing when a condition starts to hold, resolved when "
        "it clears (never repeated while it keeps firing).",
        (
            *_WINDOW,
            Column("raised_at", UTC_TS, "When the rule was evaluated, UTC.", nullable=False),
            Column("rule", pa.string(), "Rule id, e.g. drift:psi, golden_pass_rate, endpoint_unreachable.", nullable=False),
            Column("severity", pa.string(), "info, warning or critical.", nullable=False),
            Column("state", pa.string(), "firing or resolved.", nullable=False),
            Column("feature", pa.string(), "Feature concerned, if any."),
            Column("value", pa.float64(), "Observed value."),
            Column("threshold", pa.float64(), "Threshold of the rule."),
            Column("message", pa.string(), "Plain-words description (no data values beyond the metric)."),
        ),
    ),
    "references": Table(
        "references",
        "One row per (reference, feature): the reference profile drift is measured against.",
        (
            Column("reference_id", pa.string(), "Content hash of the reference.", nullable=False),
            Column("created_at", UTC_TS, "When the reference was built, UTC.", nullable=False),
            Column("rows", pa.int64(), "Records in the baseline."),
            Column("schema_json", pa.string(), "The feature schema (JSON) the reference was built with."),
            Column("drift_thresholds_json", pa.string(), "Data-driven drift thresholds of the feature (JSON method -> threshold: mean + k std over the reference's chunks); null when none were computed."),
            Column("binning", pa.string(), "How the numeric feature was binned: quantiles (reference quantiles), nannyml (NannyML 0.13's rule, with its Wasserstein histogram in the fine_* columns) or fixed (edges given); null for other rows and references written before it was stored (quantiles)."),
            Column("segment", pa.string(), "Null on the overall reference rows; on a segment's rows its segment column (the profile of the reference records of that segment, on the overall bins)."),
            Column("segment_value", pa.string(), "Null on the overall rows; the segment's allow-listed value or __other__."),
            Column("multivariate_json", pa.string(), "On the `__mlmon_reconstruction_error` row only (its profile: the reference records' PCA reconstruction errors): the PCA fitted on the reference as JSON (imputation values, category frequencies of the vocabulary, standardisation, components) and the band of a period's mean error (mean +/- k std over the reference's chunks); null on feature rows and for references built without --multivariate."),
            *_PROFILE,
        ),
    ),
    "performance": Table(
        "performance",
        "One row per (prediction window, role, batch): a mergeable performance profile. Role "
        "`predictions` rows count every prediction of the window (written when it closes); "
        "`labels` rows the labelled rows of one labels batch, by window of prediction time; the "
        "`reference` row the reference's labelled rows (its calibration curve and baseline).",
        (*_WINDOW, Column("reference_id", pa.string(), "Reference whose spec (classes, bins, thresholds) the row uses.", nullable=False), Column("role", pa.string(), "predictions, labels or reference.", nullable=False), Column("batch_id", pa.string(), "Labels batch (content hash of the labels file) or the predictions source."), *_PERFORMANCE),
    ),
    "segment_profiles": Table(
        "segment_profiles",
        "One row per (window, segment column, segment value, feature): the profile of the window's "
        "records of that segment, beside the overall one in `profiles` (written only for references "
        "with segment columns). A record is counted once per segment column: never add the "
        "segments of different columns together, or to `profiles`.",
        (*_WINDOW, Column("reference_id", pa.string(), "Reference whose bins and vocabulary the profile uses.", nullable=False), *_SEGMENT, Column("rows", pa.int64(), "Records of the segment in the window (exact; suppress small ones where shown: SHOWN_MIN_COUNT)."), *_PROFILE),
    ),
    "segment_performance": Table(
        "segment_performance",
        "One row per (prediction window, role, batch, segment column, segment value): the "
        "performance profile of that segment's rows, as `performance` holds the overall one.",
        (*_WINDOW, Column("reference_id", pa.string(), "Reference whose spec the row uses.", nullable=False), Column("role", pa.string(), "predictions, labels or reference.", nullable=False), Column("batch_id", pa.string(), "Labels batch or the predictions source."), *_SEGMENT, *_PERFORMANCE),
    ),
    "label_batches": Table(
        "label_batches",
        "One row per labels batch joined at the edge: what was matched, and what was not and why "
        "(counted, never guessed). Window columns span the prediction windows it matched.",
        (*_WINDOW, Column("batch_id", pa.string(), "Content hash of the labels file.", nullable=False), Column("received_at", UTC_TS, "When the edge joined the batch, UTC.", nullable=False), Column("records", pa.int64(), "Label records read."), Column("matched", pa.int64(), "Labels joined with a stored or carried prediction."), Column("duplicate_in_batch", pa.int64(), "Repeated ids in the batch (the last one won)."), Column("already_labelled", pa.int64(), "Ids labelled by an earlier batch (the first label is kept)."), Column("unknown_id", pa.int64(), "Ids with no stored prediction: never seen by this edge (another edge or model, or before `store_predictions` was on), or the id column or HMAC key differs from the predictions'."), Column("late", pa.int64(), "Ids whose prediction had expired: the edge stored it more than `label_horizon` before the labels arrived (expired ids are remembered for one more horizon)."), Column("unknown_class", pa.int64(), "Labels not among the configured classes."), Column("missing", pa.int64(), "Records without an id or a label value.")),
    ),
    "samples": Table(
        "samples",
        "Opt-in (a model's `samples:` config): one row per sampled record, de-identified by the "
        "approved rules and k-anonymised per batch (docs/samples.md).",
        (
            *_WINDOW,
            Column("rules_sha256", pa.string(), "SHA-256 of the approved samples rules the row was written under.", nullable=False),
            Column("k", pa.int64(), "k of the k-anonymity check the batch passed.", nullable=False),
            Column("record", pa.string(), "The de-identified fields as one JSON object (keys sorted); fields without a rule are absent.", nullable=False),
        ),
    ),
    "registry_events": Table(
        "registry_events",
        "One row per change the registry watch (`mlmon registry watch`) saw in the model "
        "registry, read-only: a version registered, an alias set, moved or removed, a stage or "
        "status change. Each change is written once, whatever the number of polls (the watch "
        "keeps what it saw in its state file). Window columns: both `observed_at`; "
        "`model_version` is the version string an endpoint serving the version reports (the "
        "attribution rule), joinable with the other tables. Version names, aliases, stages and "
        "statuses are registry metadata, kept only when they are version strings (else their "
        "keyed hash, or null).",
        (
            *_WINDOW,
            Column("observed_at", UTC_TS, "When the watch saw the change, UTC (the poll, not the registry's time).", nullable=False),
            Column("event_id", pa.string(), "Content hash of (registry, model, event, version, alias, previous version, stage, status): the same change has the same id in every run.", nullable=False),
            Column("registered_model", pa.string(), "Registered model name in the registry (registry metadata; the `model=` partition is the lake's name for it)."),
            Column("event", pa.string(), "version_seen (present at the first poll), version_created, version_deleted, alias_set, alias_moved, alias_removed, stage_changed or status_changed.", nullable=False),
            Column("registered_version", pa.string(), "The registry's version the event is about (registry metadata)."),
            Column("previous_version", pa.string(), "For alias_moved and alias_removed: the version the alias pointed to before (registry metadata)."),
            Column("alias", pa.string(), "For alias events: the alias (registry metadata)."),
            Column("stage", pa.string(), "The version's stage after the change (MLflow's deprecated stages; registry metadata), if any."),
            Column("previous_stage", pa.string(), "For stage_changed: the stage before (registry metadata)."),
            Column("status", pa.string(), "The version's registration status (READY, PENDING_REGISTRATION, FAILED_REGISTRATION; registry metadata), if any."),
            Column("created_at", UTC_TS, "When the version was registered, UTC (the registry's time)."),
        ),
    ),
    "version_checks": Table(
        "version_checks",
        "One row per replication test of a candidate version (`mlmon registry test-candidate`, "
        "or the watch when a version appears or a candidate alias moves): the golden set sent to "
        "the candidate's endpoint and to the champion's on the same inputs, outputs compared "
        "case by case, pass rates, latency, and the two output distributions on the reference's "
        "bins. `outcome` fail is also written as a firing `alerts` row (rule `version_check`). "
        "Window columns: both `checked_at`; `model_version` is the candidate's endpoint version "
        "string.",
        (
            *_WINDOW,
            Column("checked_at", UTC_TS, "When the test ran, UTC.", nullable=False),
            Column("check_id", pa.string(), "Content hash of (model, candidate, champion, checked_at).", nullable=False),
            Column("registered_model", pa.string(), "Registered model name (registry metadata)."),
            Column("candidate_version", pa.string(), "The registry's version under test (registry metadata)."),
            Column("champion_version", pa.string(), "The registry's version it was compared with (registry metadata)."),
            Column("champion_alias", pa.string(), "The alias that named the champion, if any (registry metadata)."),
            Column("trigger", pa.string(), "manual (the command), version_created, alias_set or alias_moved (the watch).", nullable=False),
            Column("outcome", pa.string(), "pass, fail (the candidate is worse than the tolerance allows) or error (an endpoint did not answer: nothing was decided).", nullable=False),
            Column("cases", pa.int64(), "Golden cases sent to both endpoints."),
            Column("agreed", pa.int64(), "Cases where both answered and the outputs agree (same classes; scores within the tolerance)."),
            Column("disagreed", pa.int64(), "Cases where both answered and the outputs differ."),
            Column("candidate_errors", pa.int64(), "Cases the candidate did not answer (timeout, connect, tls, http_4xx, http_5xx, malformed)."),
            Column("champion_errors", pa.int64(), "Cases the champion did not answer."),
            Column("candidate_pass_rate", pa.float64(), "Share of golden cases the candidate passed (answer matches the expected output)."),
            Column("champion_pass_rate", pa.float64(), "Share of golden cases the champion passed."),
            Column("max_score_delta", pa.float64(), "Largest absolute difference between the two endpoints' numeric outputs; null for labels."),
            Column("candidate_latency_p50_ms", pa.float64(), "Median latency of the candidate's answered requests, ms."),
            Column("champion_latency_p50_ms", pa.float64(), "Median latency of the champion's answered requests, ms."),
            Column("latency_ratio", pa.float64(), "candidate_latency_p50_ms / champion_latency_p50_ms."),
            Column("reference_id", pa.string(), "Reference whose bins the output distributions were profiled on; null when the lake holds none with the output feature."),
            Column("output_feature", pa.string(), "The reference feature the outputs were profiled as (config)."),
            Column("output_drift_method", pa.string(), "Drift method comparing the candidate's outputs with the champion's (see mlmon.analysis.drift.METHODS)."),
            Column("output_drift", pa.float64(), "Its value: the candidate's output distribution on the golden set against the champion's."),
            Column("output_drift_threshold", pa.float64(), "The threshold in force."),
            Column("reasons", pa.string(), "Why it failed or errored, in plain words with numbers (code-written; never an input or output value)."),
        ),
    ),
}  # fmt: skip


def table(name: str) -> Table:
    try:
        return TABLES[name]
    except KeyError as exc:
        raise UnknownNameError(
            f"unknown lake table {name!r}; tables: {', '.join(sorted(TABLES))}"
        ) from exc


#: The ``label_batches`` counts of label records that joined no prediction, in report order.
LABELS_UNJOINED = (
    "late",
    "unknown_id",
    "already_labelled",
    "duplicate_in_batch",
    "unknown_class",
    "missing",
)


def explain_unjoined(counts: Mapping[str, Any]) -> list[str]:
    """``"{n} {count}: {why}"`` for every non-zero count of label records that joined nothing.

    The why is the ``label_batches`` column's documentation, so the edge, the
    demo and the report give the same reason as ``docs/lake.md``.

    Examples
    --------
    >>> explain_unjoined({"matched": 0, "late": 3, "unknown_id": 0})[0][:40]
    '3 late: Ids whose prediction had expired'
    """
    docs = {c.name: c.doc for c in TABLES["label_batches"].columns}
    return [
        f"{int(counts[name])} {name}: {docs[name]}"
        for name in LABELS_UNJOINED
        if counts.get(name) and int(counts[name]) > 0
    ]


def register_table(t: Table, *, replace: bool = False) -> None:
    """Add a table (later issues: performance, samples); refuses duplicates."""
    from mlmon.lake.layout import RESERVED  # it imports this module

    if t.name in RESERVED:
        raise SchemaError(
            f"{t.name!r} cannot be a lake table: v{SCHEMA_VERSION}/{t.name}/ holds other tables' "
            f"rollups or compactions (reserved: {', '.join(sorted(RESERVED))})"
        )
    if t.name in TABLES and not replace:
        raise DuplicateNameError(f"lake table {t.name!r} is already registered; pass replace=True")
    TABLES[t.name] = t


def to_markdown() -> str:
    """The lake reference documentation (docs/lake.md)."""
    from mlmon.lake import layout  # they import this module
    from mlmon.lake import sql as sql_docs

    out = [
        "# The mlmon metric lake, schema v1",
        "",
        "Generated from `mlmon/lake/schema.py` by `python -m mlmon.lake.schema > docs/lake.md`;",
        "a test fails when the two differ.",
        "",
        *layout.markdown(),
        *sql_docs.markdown(),
        *layout.migration_markdown(),
    ]
    for t in TABLES.values():
        out += [
            f"## `{t.name}`",
            "",
            t.doc,
            "",
            "| column | type | null | meaning |",
            "|---|---|---|---|",
        ]
        for c in t.columns:
            out.append(f"| `{c.name}` | {c.type} | {'yes' if c.nullable else 'no'} | {c.doc} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    sys.stdout.write(to_markdown())
