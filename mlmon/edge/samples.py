"""Opt-in de-identified samples at the edge: sample, de-identify, batch per window, write.

A model with a ``samples:`` section (:class:`~mlmon.governance.samples.SamplesConfig`)
gets one :class:`WindowSampler` per record source (each stream, the sink). It observes
every flat-record frame its :class:`~mlmon.edge.checkpoint.StreamState` profiles,
keeps the records whose ``HMAC(secret, request id)`` falls under the rate, and
de-identifies them at once (every text value written, the model version included, is
scanned by the detectors of :mod:`mlmon.governance.deid`; what they flag is masked or
dropped and counted by ``field:reason``, never logged): only de-identified rows wait in memory, at most
``max_per_window`` per window (the rows with the lowest sample keys, so the batch
does not depend on arrival order). When the collector writes a closed window it
calls :meth:`WindowSampler.write`: the k-anonymity check suppresses the rows of
classes smaller than ``k``, and the rest is one object of the ``samples`` table,
key ``...-samples-{source}[-lateN].parquet``. A model without ``samples:`` gets no
sampler, so nothing is ever written under ``samples/``.

Limits: the buffer is in memory, so a crash loses the samples of windows still open
(their profiles survive in the checkpoint; samples are never duplicated). A late
part of a window is its own batch, with its own cap and its own k-anonymity check.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from mlmon.governance.samples import (
    SamplesConfig,
    deidentify_with_reasons,
    encode_records,
    k_anonymise,
    protect_text,
    sample_keys,
)
from mlmon.lake.writer import LakeWriter
from mlmon.profiles.frame import Reference, Window
from mlmon.profiles.kinds import CategoricalProfile, NumericProfile

__all__ = ["SampleStats", "WindowSampler", "attach_sampler", "check_samples", "field_kinds"]

log = logging.getLogger("mlmon.edge")


def field_kinds(reference: Reference) -> dict[str, str]:
    """The fields a model's flat records have, by kind (``numeric``, ``categorical``, ``timestamp``)."""
    kinds = {
        name: "numeric" if isinstance(p, NumericProfile) else "categorical"
        for name, p in reference.profiles.items()
    }
    kinds.setdefault("prediction", "numeric")
    kinds.setdefault("timestamp", "timestamp")
    kinds.setdefault("latency_ms", "numeric")
    return kinds


def check_samples(config: SamplesConfig | None, reference: Reference, where: str) -> None:
    """Check a model's ``samples:`` rules against its reference (at collector start).

    Raises
    ------
    ConfigError
        A field the reference does not know, or a rule that does not fit the field.
    """
    if config is not None:
        config.check_fields(field_kinds(reference), where)


@dataclass
class SampleStats:
    """Counts since the sampler started (for logs, tests and metrics)."""

    sampled: int = 0
    capped: int = 0
    suppressed: int = 0
    written: int = 0
    batches: int = 0
    #: text values masked or dropped, by ``field:reason`` (``note:us_ssn``); never the values
    detected: Counter[str] = field(default_factory=Counter)


class WindowSampler:
    """Sampled, de-identified rows of one record source, per window, until the window is written.

    Parameters
    ----------
    model
        Model name (the lake partition).
    config
        The model's approved samples rules.
    reference
        The model's reference (categorical allow-lists for ``keep``).
    secret
        HMAC key (request ids, ``hmac`` fields, sampling).
    window
        Window length (aligned to the UNIX epoch, as the profiles' windows).
    source
        Label of the record source in object keys (``stream0``, ``sink``).
    """

    def __init__(
        self,
        model: str,
        config: SamplesConfig,
        reference: Reference,
        secret: bytes,
        window: timedelta,
        source: str,
    ) -> None:
        self.model = model
        self.config = config
        self.secret = secret
        self.source = source
        self.step_us = int(window / timedelta(microseconds=1))
        self.vocabularies = {
            name: p.categories
            for name, p in reference.profiles.items()
            if isinstance(p, CategoricalProfile) and name in config.fields
        }
        self.stats = SampleStats()
        self._rules_sha256 = config.sha256
        self._buffers: dict[datetime, pl.DataFrame] = {}
        self._capped: Counter[datetime] = Counter()
        self._detected: dict[datetime, Counter[str]] = {}
        self._lock = threading.Lock()

    def add(self, frame: pl.DataFrame) -> int:
        """Sample and de-identify flat records (a StreamState observer); returns rows sampled."""
        if frame.height == 0 or "timestamp" not in frame.columns:
            return 0
        keys = sample_keys(frame, self.secret)
        mask = (keys < self.config.rate) & frame.get_column("timestamp").is_not_null()
        picked = frame.filter(mask)
        if picked.height == 0:
            return 0
        fields, reasons = deidentify_with_reasons(
            picked, self.config, self.secret, vocabularies=self.vocabularies
        )
        version = (
            picked.get_column("model_version").cast(pl.String)
            if "model_version" in picked.columns
            else pl.repeat(None, picked.height, dtype=pl.String, eager=True)
        )
        # the model version is text from the records too: scanned, and null when flagged
        # (dates are allowed: "2026-10-01" is a common version name)
        version, why = protect_text(version, max_words=None, drop=True, skip=("date",))
        reasons = pl.select(
            pl.concat_list(reasons, why.list.eval(pl.lit("model_version:") + pl.element()))
        ).to_series()
        start_us = (picked.get_column("timestamp").dt.epoch("us") // self.step_us) * self.step_us
        rows = fields.with_columns(
            encode_records(fields),
            version.alias("model_version"),
            keys.filter(mask).alias("_key"),
            start_us.cast(pl.Datetime("us", "UTC")).alias("_window"),
            reasons.alias("_reasons"),
        )
        with self._lock:
            self.stats.sampled += rows.height
            for (start,), part in rows.partition_by("_window", as_dict=True).items():
                found = Counter(part.get_column("_reasons").explode().drop_nulls().to_list())
                self.stats.detected.update(found)
                self._detected.setdefault(start, Counter()).update(found)
                part = part.drop("_reasons")
                buf = self._buffers.get(start)
                buf = part if buf is None else pl.concat([buf, part], how="vertical_relaxed")
                cap = self.config.max_per_window
                if buf.height > cap:
                    self._capped[start] += buf.height - cap
                    self.stats.capped += buf.height - cap
                    buf = buf.sort("_key", "record").head(cap)
                self._buffers[start] = buf
        return rows.height

    def pending(self) -> dict[datetime, int]:
        """Rows waiting per window start."""
        with self._lock:
            return {start: buf.height for start, buf in self._buffers.items()}

    def write(
        self,
        writer: LakeWriter,
        windows: list[tuple[Window, str | None]],
        audit: Any = None,
        metrics: Any = None,
    ) -> int:
        """Write one k-anonymised batch per closed window that has sampled rows.

        Parameters
        ----------
        writer
            The collector's lake writer (its ``object_written`` hook audits the PUT).
        windows
            The closed windows just written, with their late-part labels.
        audit
            The collector's :class:`~mlmon.governance.audit.AuditLog`, or None: a
            ``samples_batch`` record with the counts (sampled, capped, suppressed, written).
        metrics
            The collector's :class:`~mlmon.edge.observe.EdgeMetrics`, or None: the
            ``mlmon_edge_samples_rows`` counter by outcome.

        Returns
        -------
        int
            Objects written.
        """
        objects = 0
        for w, part in windows:
            with self._lock:
                buf = self._buffers.pop(w.start, None)
                capped = self._capped.pop(w.start, 0)
                detected = dict(sorted(self._detected.pop(w.start, Counter()).items()))
            if buf is None:
                continue
            kept, suppressed = k_anonymise(buf, self.config.qi, self.config.k)
            self.stats.suppressed += suppressed
            target = f"{self.model}/{w.start.isoformat()}/{self.source}"
            path = None
            if kept.height:
                rows = kept.sort("_key", "record").select(
                    pl.col("model_version"),
                    pl.lit(w.start).cast(pl.Datetime("us", "UTC")).alias("window_start"),
                    pl.lit(w.end).cast(pl.Datetime("us", "UTC")).alias("window_end"),
                    pl.lit(writer.collector_id).alias("collector_id"),
                    pl.lit(self._rules_sha256).alias("rules_sha256"),
                    pl.lit(self.config.k, pl.Int64).alias("k"),
                    pl.col("record"),
                )
                key = "-".join(p for p in ("samples", self.source, part) if p)
                rec = writer.write_table("samples", self.model, rows, w.start, w.end, part=key)
                path = target = rec.path
                objects += 1
                self.stats.written += kept.height
                self.stats.batches += 1
            counts = {"sampled": buf.height + capped, "capped": capped, "suppressed": suppressed,
                      "written": kept.height, "k": self.config.k, "detected": detected}  # fmt: skip
            log.info("samples batch", extra={"model": self.model, "source": self.source,
                                              "object": path, **counts})  # fmt: skip
            if metrics is not None:
                for outcome, n in (("written", kept.height), ("suppressed", suppressed),
                                   ("capped", capped)):  # fmt: skip
                    metrics.samples_rows.labels(self.model, outcome).inc(n)
            if audit is not None:
                audit.record("samples_batch", target, "ok" if path else "suppressed",
                             rules_sha256=self._rules_sha256, **counts)  # fmt: skip
        return objects


def attach_sampler(
    model: Any, state: Any, secret: bytes, window: timedelta, source: str
) -> WindowSampler | None:
    """A sampler observing ``state`` (a StreamState) when ``model`` has ``samples:``; else None."""
    config: SamplesConfig | None = getattr(model, "samples", None)
    if config is None:
        return None
    sampler = WindowSampler(model.name, config, state.reference, secret, window, source)
    state.observers.append(sampler.add)
    return sampler
