"""Opt-in de-identified samples: per-field rules, text detectors, k-anonymity, sampling.

Pure functions over polars DataFrames (no I/O). The edge applies them in
:mod:`mlmon.edge.samples`; the rules come from an approved ``samples:`` section of
a model in ``edge.yaml`` (:class:`SamplesConfig`). Every field not listed is
dropped. The rules, in :data:`RULES`:

``drop``
    The field is not written (the default for every field not listed).
``hmac``
    ``HMAC-SHA256(secret, value)`` with the same customer-held secret as request
    ids (:mod:`mlmon.governance.deid`): equal values stay equal, nothing is readable.
``generalise``
    Numbers into buckets of ``width`` (``"[40, 45)"``), optionally top-coded
    (``top: 90`` turns every value >= 90 into ``"90+"``, the HIPAA Safe Harbor
    rule for ages over 89); dates and timestamps truncated to ``month``
    (``"2026-10"``) or ``year`` (``"2026"``).
``redact``
    Text with every span a detector of :data:`mlmon.governance.deid.DETECTORS`
    flags replaced by its token (``[NAME]``, ``[ID]``, ``[PHONE]``, ``[ADDRESS]``...),
    and a value of more than ``max_words`` words replaced by ``[TEXT]`` as a whole
    (``on_detect: drop`` writes null instead). Heuristics: see the limits in
    ``docs/samples.md``.
``keep``
    The value as it is, only for fields the approver listed in ``low_risk``; a
    categorical field's values outside the reference's allow-list still become
    ``__other__``. A text value is still scanned: one that a detector flags, or
    with more than ``max_words`` words, is written as null (``on_detect: mask``
    writes it masked instead).

Text fails closed: a text field is written only when ``fields`` gives it a rule, and
every text value written (``redact``, ``keep``, and the ``model_version`` column) is
normalised and scanned by every detector; no detector can be turned off. Values
flagged are counted by reason (:func:`deidentify_with_reasons`), never logged.

A k-anonymity check (:func:`k_anonymise`) over the declared quasi-identifiers
removes the rows of every equivalence class smaller than ``k`` before a batch is
written. Sampling (:func:`sample_keys`) is deterministic: a record is sampled when
``HMAC(secret, request id)`` read as a number in [0, 1) is below the rate, so a
retried window samples the same records.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mlmon.errors import ConfigError
from mlmon.governance.deid import DETECTOR_NAMES, hmac_ids, mask

__all__ = [
    "FREE_TEXT",
    "RULES",
    "FieldRule",
    "SamplesConfig",
    "count_words",
    "deidentify",
    "deidentify_with_reasons",
    "encode_records",
    "generalise",
    "k_anonymise",
    "protect_text",
    "redact",
    "sample_keys",
    "select_sample",
]

OTHER = "__other__"

RULES: dict[str, str] = {
    "drop": "not written (the default for every field not listed)",
    "hmac": "HMAC-SHA256 with the request-id secret",
    "generalise": "numeric buckets of `width` (optionally top-coded at `top`), or dates truncated to `truncate: month|year`",
    "redact": "identifiers (names, national ids, addresses, phones...) masked by tokens; more than max_words words -> [TEXT]",
    "keep": "written as is; only for fields listed in low_risk; text still scanned (flagged -> null)",
}  # fmt: skip

#: The token of a value with more than ``max_words`` words (the free-text rule).
FREE_TEXT = "[TEXT]"
_WORD_SPLIT = re.compile(r"[\s,;:_|/\\&+]+")


def count_words(text: str) -> int:
    """Words of ``text`` for the free-text rule: anything between spaces or ``, ; : _ | / \\ & +``.

    Numbers and tokens count as words, so a number between words does not split a sentence.

    Examples
    --------
    >>> count_words("patient lives at 12 Elm Street Springfield")
    7
    >>> count_words("patient,lives,at,12")
    4
    """
    return sum(1 for w in _WORD_SPLIT.split(text) if w)


# -- configuration ------------------------------------------------------------------------
class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FieldRule(_Frozen):
    """One field's approved rule and its parameters (``{rule: generalise, width: 5}``)."""

    rule: str
    width: float | None = Field(default=None, gt=0)
    top: float | None = None
    truncate: Literal["month", "year"] | None = None
    patterns: tuple[str, ...] | None = None
    max_words: int = Field(default=3, ge=0, le=50)
    on_detect: Literal["mask", "drop"] | None = None

    @field_validator("rule")
    @classmethod
    def _known_rule(cls, v: str) -> str:
        if v not in RULES:
            raise ValueError(f"unknown rule {v!r}; use one of {', '.join(RULES)}")
        return v

    @field_validator("patterns")
    @classmethod
    def _no_patterns(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if v is not None:
            raise ValueError(
                "patterns: is no longer accepted: every kept text field is scanned by every "
                f"detector ({', '.join(DETECTOR_NAMES)}) and the free-text rule, none can be "
                "turned off (fail closed); remove patterns:"
            )
        return v

    @model_validator(mode="after")
    def _params(self) -> FieldRule:
        if self.rule == "generalise":
            if (self.width is None) == (self.truncate is None):
                raise ValueError(
                    "generalise needs exactly one of width: <bucket width> (numbers) or "
                    "truncate: month|year (dates)"
                )
            if self.top is not None and self.width is None:
                raise ValueError("top: only applies to numeric buckets; add width:")
        elif self.width is not None or self.top is not None or self.truncate is not None:
            raise ValueError(f"width, top and truncate belong to generalise, not {self.rule}")
        if self.on_detect is not None and self.rule not in ("redact", "keep"):
            raise ValueError(f"on_detect belongs to redact and keep, not {self.rule}")
        return self

    @property
    def drop_detected(self) -> bool:
        """Whether a flagged text value is written as null (else masked): keep drops, redact masks."""
        return (self.on_detect or ("mask" if self.rule == "redact" else "drop")) == "drop"


class SamplesConfig(_Frozen):
    """The approved ``samples:`` section of one model.

    Parameters
    ----------
    fields
        Field name -> rule (a rule name, or a mapping with ``rule`` and its parameters).
    low_risk
        Fields the approver marked low-risk: the only ones that may use ``keep``.
    quasi_identifiers
        Fields whose combination could single a person out; default: every field
        written with ``keep`` or ``generalise``.
    k
        Rows of equivalence classes (over the quasi-identifiers) smaller than ``k`` are
        suppressed before a batch is written.
    rate
        Fraction of records sampled, by ``HMAC(secret, request id)``.
    max_per_window
        At most this many sampled rows per window batch (those with the lowest sample keys).
    """

    fields: dict[str, FieldRule] = Field(min_length=1)
    low_risk: tuple[str, ...] = ()
    quasi_identifiers: tuple[str, ...] | None = None
    k: int = Field(default=5, ge=2)
    rate: float = Field(default=0.01, gt=0, le=1)
    max_per_window: int = Field(default=1000, ge=1)

    @field_validator("fields", mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        if isinstance(v, Mapping):
            return {k: {"rule": r} if isinstance(r, str) else r for k, r in v.items()}
        return v

    @model_validator(mode="after")
    def _consistent(self) -> SamplesConfig:
        for name, r in self.fields.items():
            if r.rule == "keep" and name not in self.low_risk:
                raise ValueError(
                    f"fields.{name}: keep is allowed only for fields listed in low_risk; use redact "
                    "(free text), hmac or generalise, or after review add it to low_risk"
                )
        for name in self.quasi_identifiers or ():
            rule = self.fields.get(name)
            if rule is None or rule.rule == "drop":
                raise ValueError(
                    f"quasi_identifiers: {name!r} is not written (no rule or drop); remove it "
                    "from quasi_identifiers or give it a rule under fields"
                )
        return self

    @property
    def written(self) -> tuple[str, ...]:
        """The fields written, sorted."""
        return tuple(sorted(n for n, r in self.fields.items() if r.rule != "drop"))

    @property
    def qi(self) -> tuple[str, ...]:
        """The quasi-identifiers in force (declared, or every keep/generalise field)."""
        if self.quasi_identifiers is not None:
            return tuple(self.quasi_identifiers)
        return tuple(n for n in self.written if self.fields[n].rule in ("keep", "generalise"))

    @property
    def sha256(self) -> str:
        """Hash of the approved rules (written with every batch, so a batch names its approval)."""
        return hashlib.sha256(
            json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        ).hexdigest()

    def check_fields(self, kinds: Mapping[str, str], where: str = "samples") -> None:
        """Check the rules against the fields a model's records have.

        Parameters
        ----------
        kinds
            Field name -> ``"numeric"``, ``"categorical"`` (text) or ``"timestamp"``.
        where
            Prefix for messages, e.g. ``"edge.yaml: models[0].samples"``.

        Raises
        ------
        ConfigError
            Naming the field and the fix: an unknown field (in ``fields``, ``low_risk``
            or ``quasi_identifiers``), or a rule that does not fit the field's kind.
        """
        known = ", ".join(sorted(kinds))
        for part, names in (("fields", self.fields), ("low_risk", self.low_risk),
                            ("quasi_identifiers", self.quasi_identifiers or ())):  # fmt: skip
            for name in names:
                if name not in kinds:
                    raise ConfigError(
                        f"{where}.{part}: {name!r} is not a field of the model's reference "
                        f"(fields: {known}); fix the name or remove it"
                    )
        for name, r in self.fields.items():
            kind = kinds[name]
            fix = None
            if r.rule == "generalise" and r.width is not None and kind != "numeric":
                fix = (
                    "width buckets numbers only; use truncate: month|year for dates, or hmac/redact"
                )
            elif r.rule == "generalise" and r.truncate is not None and kind == "numeric":
                fix = "truncate applies to dates; use width: <bucket width> for numbers"
            elif r.rule == "redact" and kind != "categorical":
                fix = "use generalise or drop (redact is for text)"
            if fix:
                raise ConfigError(
                    f"{where}.fields.{name}: {r.rule} does not fit a {kind} field; {fix}"
                )


# -- the rules as polars expressions ------------------------------------------------------
def protect_text(
    values: pl.Series,
    *,
    max_words: int | None = 3,
    drop: bool = False,
    skip: Collection[str] = (),
) -> tuple[pl.Series, pl.Series]:
    """Scan text values with every detector; mask (or drop) what they flag; apply the free-text rule.

    Parameters
    ----------
    values
        Text (other types are cast to text); nulls stay null.
    max_words
        A value with more words than this (:func:`count_words`, after masking) becomes
        ``[TEXT]``, reason ``free_text``; None: no word limit.
    drop
        A flagged value becomes null instead of masked.
    skip
        Detectors not run (only the ``model_version`` column skips ``date``).

    Returns
    -------
    (values, reasons)
        The protected values (String), and per value the list of reasons (detector
        names, ``free_text``), empty when nothing was flagged.

    Examples
    --------
    >>> out, why = protect_text(pl.Series(["SSN 123-45-6789", "Pixel 8"]))
    >>> out.to_list(), why.to_list()
    (['SSN [ID]', 'Pixel 8'], [['us_ssn'], []])
    """
    cache: dict[str, tuple[str | None, list[str]]] = {}
    out: list[str | None] = []
    reasons: list[list[str]] = []
    for v in values.cast(pl.String).to_list():
        if v is None:
            out.append(None)
            reasons.append([])
            continue
        hit = cache.get(v)
        if hit is None:
            text, why = mask(v, skip)
            if max_words is not None and count_words(text) > max_words:
                text, why = FREE_TEXT, [*why, "free_text"]
            hit = cache[v] = (None if why and drop else text), why
        out.append(hit[0])
        reasons.append(hit[1])
    return (
        pl.Series(values.name, out, dtype=pl.String),
        pl.Series(values.name, reasons, dtype=pl.List(pl.String)),
    )


def redact(expr: pl.Expr, *, max_words: int | None = 3) -> pl.Expr:
    """The ``redact`` rule as an expression: detected spans masked, long values ``[TEXT]``.

    Examples
    --------
    >>> s = pl.Series(["mail jane.doe@example.org or call +1-555-013-3370"])
    >>> s.to_frame("t").select(redact(pl.col("t"), max_words=10)).item()
    'mail [EMAIL] or call [PHONE]'
    """
    return expr.map_batches(
        lambda s: protect_text(s, max_words=max_words)[0], return_dtype=pl.String
    )


def _number(expr: pl.Expr, integral: bool) -> pl.Expr:
    return expr.cast(pl.Int64).cast(pl.String) if integral else expr.cast(pl.String)


def generalise(expr: pl.Expr, rule: FieldRule, dtype: pl.DataType) -> pl.Expr:
    """The ``generalise`` rule: a bucket label, ``"<top>+"``, or a truncated date (String)."""
    if rule.truncate is not None:
        if dtype == pl.String:  # ISO 8601 text: its date part; anything else becomes null
            expr = expr.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
        fmt = "%Y-%m" if rule.truncate == "month" else "%Y"
        return expr.dt.strftime(fmt)
    assert rule.width is not None  # FieldRule's validator guarantees one of the two
    width = rule.width
    integral = float(width).is_integer() and (rule.top is None or float(rule.top).is_integer())
    x = expr.cast(pl.Float64, strict=False)
    x = pl.when(x.is_finite()).then(x)
    lower = (x / width).floor() * width
    label = pl.concat_str(
        pl.lit("["), _number(lower, integral), pl.lit(", "), _number(lower + width, integral),
        pl.lit(")"),
    )  # fmt: skip
    if rule.top is None:
        return label
    top = _number(pl.lit(rule.top), integral)
    return pl.when(x >= rule.top).then(pl.concat_str(top, pl.lit("+"))).otherwise(label)


def _is_text(dtype: pl.DataType) -> bool:
    """Text, or anything else that is neither a number, a boolean nor a date (scanned as text)."""
    return not (
        dtype.is_numeric() or dtype == pl.Boolean or dtype.is_temporal() or dtype == pl.Null
    )


def _hmac_column(series: pl.Series, secret: bytes) -> pl.Series:
    """HMAC each distinct value once (C-speed HMAC per distinct value, then a vectorised map)."""
    text = series.cast(pl.String)
    distinct = text.drop_nulls().unique()
    tokens = pl.Series(hmac_ids(secret, distinct.to_list()), dtype=pl.String)
    return text.replace_strict(distinct, tokens, default=None, return_dtype=pl.String)


def deidentify(
    frame: pl.DataFrame,
    config: SamplesConfig,
    secret: bytes,
    *,
    vocabularies: Mapping[str, Sequence[str]] | None = None,
) -> pl.DataFrame:
    """Apply the rules: only the written fields (sorted), each de-identified.

    Parameters
    ----------
    frame
        Records; a written field missing from ``frame`` is written as null.
    config
        The approved rules.
    secret
        HMAC key (the request-id secret).
    vocabularies
        Allow-lists of categorical fields: values of a ``keep`` field outside its
        allow-list become ``__other__``.

    Examples
    --------
    >>> cfg = SamplesConfig(fields={"age": {"rule": "generalise", "width": 10, "top": 90}})
    >>> deidentify(pl.DataFrame({"age": [42.0, 93.0], "name": ["x", "y"]}), cfg, b"k" * 16)["age"].to_list()
    ['[40, 50)', '90+']
    """
    return deidentify_with_reasons(frame, config, secret, vocabularies=vocabularies)[0]


def deidentify_with_reasons(
    frame: pl.DataFrame,
    config: SamplesConfig,
    secret: bytes,
    *,
    vocabularies: Mapping[str, Sequence[str]] | None = None,
) -> tuple[pl.DataFrame, pl.Series]:
    """:func:`deidentify`, and per row the reasons its text values were masked or dropped.

    Returns
    -------
    (frame, reasons)
        The de-identified fields, and a ``List[String]`` Series with, per row, one
        entry per field and reason (``"note:us_ssn"``): what to count, never the value.
    """
    vocab = vocabularies or {}
    cols: list[pl.Expr | pl.Series] = []
    reasons: list[pl.Series] = []
    for name in config.written:
        rule = config.fields[name]
        dtype = frame.schema.get(name)
        if dtype is None:
            cols.append(pl.lit(None, pl.String).alias(name))
            continue
        col = pl.col(name)
        if rule.rule == "hmac":
            cols.append(_hmac_column(frame.get_column(name), secret).alias(name))
        elif rule.rule == "generalise":
            cols.append(generalise(col, rule, dtype).alias(name))
        elif rule.rule == "redact" or (rule.rule == "keep" and _is_text(dtype)):
            text = frame.get_column(name).cast(pl.String)
            if rule.rule == "keep" and name in vocab:  # the reference's allow-list first
                allowed = pl.Series(list(vocab[name]), dtype=pl.String)
                text = pl.select(
                    pl.when(text.is_null() | text.is_in(allowed.implode()))
                    .then(text)
                    .otherwise(pl.lit(OTHER))
                ).to_series()
            out, why = protect_text(
                text.alias(name), max_words=rule.max_words, drop=rule.drop_detected
            )
            cols.append(out)
            reasons.append(why.list.eval(pl.lit(f"{name}:") + pl.element()))
        else:
            cols.append(col)
    result = frame.select(cols) if cols else pl.DataFrame()
    if reasons:
        why = pl.DataFrame(reasons).select(pl.concat_list(pl.all())).to_series()
    else:
        why = pl.Series([[] for _ in range(frame.height)], dtype=pl.List(pl.String))
    return result, why.alias("reasons")


# -- sampling and k-anonymity -------------------------------------------------------------
def sample_keys(
    frame: pl.DataFrame, secret: bytes, id_column: str = "request_id_hmac"
) -> pl.Series:
    """A deterministic number in [0, 1) per record, from ``HMAC(secret, request id)``.

    ``frame[id_column]`` already holds the HMAC of the request id (the stream and sink
    parsers compute it); its first 52 bits are the key. A record without a request
    id is keyed by the HMAC of its whole content (canonical JSON), so identical
    records share a key and a retry keys them the same.
    """
    n = frame.height
    ids = (
        frame.get_column(id_column)
        if id_column in frame.columns
        else pl.repeat(None, n, dtype=pl.String, eager=True)
    )
    missing = ids.is_null()
    if missing.any():
        rest = frame.filter(missing).select(pl.exclude(id_column))
        content = (
            rest.select(pl.struct(pl.all()).struct.json_encode()).to_series()
            if rest.width
            else pl.repeat("", rest.height, eager=True)
        )
        filled = pl.Series(hmac_ids(secret, content.to_list()), dtype=pl.String)
        ids = ids.cast(pl.String).scatter(missing.arg_true(), filled)
    return (ids.str.slice(0, 13).str.to_integer(base=16).cast(pl.Float64) / float(16**13)).alias("sample_key")  # fmt: skip


def select_sample(keys: pl.Series, rate: float) -> pl.Series:
    """Boolean mask of the records sampled at ``rate`` (``key < rate``)."""
    return keys < rate


def k_anonymise(
    frame: pl.DataFrame, quasi_identifiers: Sequence[str], k: int
) -> tuple[pl.DataFrame, int]:
    """Suppress the rows of equivalence classes smaller than ``k``.

    Classes are the distinct combinations of the quasi-identifiers (null is a value).
    With no quasi-identifiers the whole batch is one class: it is kept only if it
    has at least ``k`` rows.

    Returns
    -------
    (frame, suppressed)
        The rows kept, and how many rows were suppressed.

    Examples
    --------
    >>> df = pl.DataFrame({"age": ["[40, 50)"] * 3 + ["90+"], "x": [1, 2, 3, 4]})
    >>> kept, n = k_anonymise(df, ["age"], 2)
    >>> kept.height, n
    (3, 1)
    """
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    if frame.height == 0:
        return frame, 0
    size = pl.len().over(list(quasi_identifiers)) if quasi_identifiers else pl.len()
    kept = frame.filter(size >= k)
    return kept, frame.height - kept.height


def encode_records(frame: pl.DataFrame) -> pl.Series:
    """One JSON object per row, keys sorted (the ``record`` column of the ``samples`` table)."""
    cols = sorted(frame.columns)
    return frame.select(pl.struct(cols).struct.json_encode().alias("record")).to_series()
