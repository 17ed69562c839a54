"""The de-identification corpus (issue 18 item 3) through the real samples path.

``deid_corpus.json`` holds 288 planted identifiers of many kinds, formats and scripts
(national ids of ten countries, phone numbers of every common length, e-mails,
addresses, postcodes, names without titles, dates of birth, MRN-like ids, IP
addresses; with unicode digits, fullwidth forms, zero-width and non-breaking spaces,
spaced-out digits) and 119 benign values (device models, version strings,
clinical fragments, eponyms, names that are also words) that a kept field must let through.

Each identifier is written to a stream log twice, alone and placed in a sentence
(12 placements in 6 languages, with punctuation around it), in three text fields: a
``redact`` field with room for 50 words (so only the detectors can catch it, not the
free-text rule), a ``keep`` field whose reference allow-list lists every value (so only
the detectors can stop it), and the record's ``model_version``. A real collector samples
every record into a ``file://`` lake. Then every samples object is decoded twice (pyarrow
and duckdb): no identifier, no digit run of one, and no word of a name or address is in
any string column, any field of the ``record`` JSON or any object path; the audit log
and the collector's log records hold no identifier either, only counts by reason.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest

from mlmon.edge.collector import Collector
from mlmon.edge.config import load_config
from mlmon.governance.deid import DETECTOR_NAMES, normalise_text
from mlmon.lake.references import save_reference
from mlmon.profiles.frame import build_reference
from mlmon.profiles.schema import FeatureSpec, Schema

CORPUS = json.loads((Path(__file__).with_name("deid_corpus.json")).read_text("utf-8"))
IDENTIFIERS: list[tuple[str, str, str]] = [tuple(r) for r in CORPUS["identifiers"]]
BENIGN: list[str] = CORPUS["benign"]
PLACEMENTS = [
    "{x}", "patient lives at {x}", "contact: {x}.", "Rappeler le patient au {x}, merci",
    "Der Patient ({x}) kommt morgen", "«{x}»", "seen today;{x};follow-up", "{x}!!",
    "note - {x} - reviewed", "患者 {x} 已复查", "ref:{x}", "Paciente {x} en sala",
]  # fmt: skip
# words of an address or name that may stay: street types, labels, and the words of benign
# values, which are written on purpose (an eponym: "Murphy's sign", "Hamilton ... Scale")
STOP = {"street", "road", "avenue", "suite", "flat", "patient", "name", "box", "apt", "ave"} | {
    w.lower() for b in BENIGN for w in re.findall(r"[^\W\d_]{4,}", b)
}
MAX_FALSE_POSITIVE_RATE = 0.05  # measured: 4 of 119 benign values (3.4%), listed in docs/samples.md
SECRET = "d" * 32
SAMPLES: dict[str, Any] = {
    "rate": 1.0,
    "max_per_window": 5000,
    "k": 2,
    "low_risk": ["device"],
    "quasi_identifiers": ["timestamp"],
    "fields": {
        "note": {"rule": "redact", "max_words": 50},
        "device": {"rule": "keep", "max_words": 8},
        "timestamp": {"rule": "generalise", "truncate": "month"},
    },
}


def _digits(text: str) -> str:
    return re.sub(r"\D", "", normalise_text(text))


def _texts() -> list[tuple[str, str | None, str]]:
    """(text planted, secret or None for benign, kind): each identifier alone and placed."""
    out: list[tuple[str, str | None, str]] = []
    for i, (kind, value, secret) in enumerate(IDENTIFIERS):
        out.append((value, secret, kind))
        out.append((PLACEMENTS[i % len(PLACEMENTS)].format(x=value), secret, kind))
    out += [(b, None, "benign") for b in BENIGN]
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("corpus")
    texts = _texts()
    vocab = tuple(dict.fromkeys(t for t, _, _ in texts))
    schema = Schema((FeatureSpec("note", "categorical", allowed=()),
                     FeatureSpec("device", "categorical", allowed=vocab),
                     FeatureSpec("prediction", "numeric")))  # fmt: skip
    base = pl.DataFrame({"note": ["x"] * 10, "device": [vocab[0]] * 10, "prediction": [0.5] * 10})
    save_reference(build_reference(base, schema, model="m"), tmp / "ref.parquet")
    (tmp / "logs").mkdir()
    records = [
        {"timestamp": "2026-10-01T10:00:00Z", "request_id": f"r{i}", "note": text, "device": text,
         # the model version is text from the records too (dates are let through there); one
         # identifier in 20 (each version is its own profile window: this keeps the test fast)
         "model_version": text if i % 20 == 0 and kind not in ("benign", "date_of_birth") else "v1",
         "prediction": 0.5}
        for i, (text, _, kind) in enumerate(texts)
    ]  # fmt: skip
    (tmp / "logs" / "a.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), "utf-8"
    )
    model = {"name": "m", "reference": str(tmp / "ref.parquet"), "samples": SAMPLES,
             "streams": [{"path": str(tmp / "logs"), "format": "jsonl", "kind": "tabular"}]}  # fmt: skip
    cfg = {"collector_id": "edge-corpus", "lake": {"uri": str(tmp / "lake")},
           "hmac_key": {"env": "MLMON_HMAC_KEY"}, "state_dir": str(tmp / "state"),
           "window": "1h", "metrics": None, "models": [model]}  # fmt: skip
    (tmp / "edge.yaml").write_text(json.dumps(cfg))
    mp = pytest.MonkeyPatch()
    mp.setenv("MLMON_HMAC_KEY", SECRET)
    handler = _Capture()
    logging.getLogger("mlmon").addHandler(handler)
    old_level = logging.getLogger("mlmon").level
    logging.getLogger("mlmon").setLevel(logging.DEBUG)
    try:
        report = Collector(load_config(tmp / "edge.yaml", env={})).run_once()
    finally:
        logging.getLogger("mlmon").removeHandler(handler)
        logging.getLogger("mlmon").setLevel(old_level)
        mp.undo()
    assert report.errors == [], report.errors
    lake = tmp / "lake"
    objects = sorted((lake / "v1" / "samples").rglob("*.parquet"))
    assert objects, "no samples object written"
    audit = "".join(p.read_text("utf-8") for p in sorted((lake / "audit").rglob("*.jsonl")))
    return {"lake": lake, "objects": objects, "texts": texts, "records": records,
            "audit": audit, "logs": handler.text()}  # fmt: skip


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.getMessage()} {record.__dict__}")

    def text(self) -> str:
        return "\n".join(self.lines)


def _decoded(run: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """Every string of every samples object (pyarrow and duckdb), the paths, and the records."""
    strings: list[str] = []
    records: list[dict[str, Any]] = []
    for path in run["objects"]:
        strings.append(path.relative_to(run["lake"]).as_posix())
        strings.append(str(path.parent.relative_to(run["lake"])))
        table = pq.read_table(path)
        for name in table.column_names:
            strings += [str(v) for v in table.column(name).to_pylist() if v is not None]
        rows = duckdb.sql(f"SELECT * FROM read_parquet('{path}')").fetchall()
        strings += [str(v) for row in rows for v in row if v is not None]
        for r in table.column("record").to_pylist():
            rec = json.loads(r)
            records.append(rec)
            strings += [str(v) for v in rec.values() if v is not None]
        strings += [str(v) for v in table.column("model_version").to_pylist() if v is not None]
    return strings, records


def _values(records: list[dict[str, Any]]) -> list[str]:
    """The text values that came from the records (the fields and the model version)."""
    return [normalise_text(str(v)) for r in records for v in r.values() if v is not None]


def test_no_planted_identifier_reaches_a_samples_object(run):
    strings, records = _decoded(run)
    assert len(records) == len(run["records"])  # every record sampled, none suppressed
    haystack = normalise_text("\n".join(strings)).lower()
    # digits of each value from the records, separators dropped ("123 - 45 - 6789" -> 123456789);
    # elsewhere (paths, window columns, hashes) a digit run must not appear as it is
    values = _values(records)
    leaks = []
    for kind, _value, secret in IDENTIFIERS:
        s = normalise_text(secret)
        if s.lower() in haystack:
            leaks.append((kind, secret, "whole"))
        d = _digits(secret)
        if len(d) >= 5 and any(d in _digits(v) for v in values):
            leaks.append((kind, secret, "digits in a field"))
        if len(d) >= 4 and d in haystack:
            leaks.append((kind, secret, "digits"))
        if kind in ("name", "address"):
            for w in re.findall(r"[^\W\d_]{4,}", s):
                if w.lower() not in STOP and re.search(
                    rf"(?<!\w){re.escape(w.lower())}(?!\w)", haystack
                ):
                    leaks.append((kind, secret, f"word {w}"))
    assert leaks == [], leaks


def test_every_identifier_is_flagged_and_counted_by_reason(run):
    _, records = _decoded(run)
    # the redacted field: every value with an identifier was changed (masked)
    notes = {r["note"] for r in records}
    assert [t for t, secret, _ in run["texts"] if secret is not None and t in notes] == []
    # the kept field: every value with an identifier was dropped (null), never masked
    kept = {r["device"] for r in records}
    assert not any(text in kept for text, secret, _ in run["texts"] if secret is not None)
    # counts by field and reason in the audit trail; every detector fired on the corpus
    (batch,) = [json.loads(line) for line in run["audit"].splitlines()
                if json.loads(line)["action"] == "samples_batch"]  # fmt: skip
    detected = batch["details"]["detected"]
    note_reasons = {k.split(":", 1)[1] for k in detected if k.startswith("note:")}
    assert set(DETECTOR_NAMES) <= note_reasons, set(DETECTOR_NAMES) - note_reasons
    n_ids = sum(1 for _, s, _ in run["texts"] if s is not None)
    assert sum(v for k, v in detected.items() if k.startswith("device:")) >= n_ids
    assert sum(v for k, v in detected.items() if k.startswith("model_version:")) > 0


def test_identifiers_are_never_logged_nor_audited(run):
    for where in ("audit", "logs"):
        text = normalise_text(run[where]).lower()
        assert text, where
        # whole tokens only: a short id such as 99812 also occurs inside a port, a duration
        # (0.99812 s) or a byte count of a DEBUG line by chance (seen once in a full run)
        leaked = [
            (s, text[max(m.start() - 40, 0) : m.end() + 40])
            for _, _, s in IDENTIFIERS
            for m in [re.search(rf"(?<![\w.]){re.escape(normalise_text(s).lower())}(?!\w)", text)]
            if m
        ]
        assert leaked == [], (where, leaked)


def test_benign_values_survive_a_kept_field(run, record_property):
    _, records = _decoded(run)
    notes = [r["note"] for r in records]
    devices = [r["device"] for r in records]
    flagged_note = [b for b in BENIGN if b not in notes]
    flagged_device = [b for b in BENIGN if b not in devices]
    rate = len(flagged_note) / len(BENIGN)
    record_property("false_positive_rate", rate)
    record_property("false_positives", flagged_note)
    # the same detectors run on both fields: the same values are flagged
    assert flagged_note == flagged_device
    assert rate <= MAX_FALSE_POSITIVE_RATE, (rate, flagged_note)
    # what survives is the value itself, not a masked form of it
    assert sum(b in notes for b in BENIGN) == len(BENIGN) - len(flagged_note)
