"""Bad ``samples:`` sections fail at start, naming the file, the model, the field and the fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from mlmon.edge.collector import Collector
from mlmon.edge.config import load_config
from mlmon.errors import ConfigError
from mlmon.lake.references import save_reference
from mlmon.profiles.frame import build_reference
from mlmon.profiles.schema import FeatureSpec, Schema

GOOD_SAMPLES: dict[str, Any] = {
    "rate": 0.5,
    "max_per_window": 100,
    "k": 3,
    "low_risk": ["ward"],
    "quasi_identifiers": ["age", "ward"],
    "fields": {
        "age": {"rule": "generalise", "width": 10, "top": 90},
        "ward": "keep",
        "note": {"rule": "redact", "max_words": 2},
        "clinician": "hmac",
        "timestamp": {"rule": "generalise", "truncate": "month"},
        "bmi": "drop",
    },
}


@pytest.fixture
def reference(tmp_path: Path) -> Path:
    schema = Schema((FeatureSpec("age", "numeric"), FeatureSpec("bmi", "numeric"),
                     FeatureSpec("ward", "categorical", allowed=("ED", "ICU")),
                     FeatureSpec("note", "categorical", allowed=()),
                     FeatureSpec("clinician", "categorical", allowed=())))  # fmt: skip
    base = pl.DataFrame({"age": [50.0, 60, 70] * 5, "bmi": [25.0, 27, 30] * 5,
                         "ward": ["ED", "ICU", "ED"] * 5, "note": ["x"] * 15, "clinician": ["c"] * 15})  # fmt: skip
    path = tmp_path / "ref.parquet"
    save_reference(build_reference(base, schema, model="risk-model"), path)
    return path


def write_config(tmp_path: Path, reference: Path, samples: Any) -> Path:
    (tmp_path / "logs").mkdir(exist_ok=True)
    model: dict[str, Any] = {"name": "risk-model", "reference": str(reference),
                             "streams": [{"path": str(tmp_path / "logs"), "format": "jsonl"}]}  # fmt: skip
    if samples is not None:
        model["samples"] = samples
    cfg = {"collector_id": "edge-s", "lake": {"uri": str(tmp_path / "lake")},
           "hmac_key": {"env": "MLMON_HMAC_KEY"}, "state_dir": str(tmp_path / "state"),
           "metrics": None, "audit": False, "models": [model]}  # fmt: skip
    path = tmp_path / "edge.yaml"
    path.write_text(json.dumps(cfg))
    return path


def start(tmp_path: Path, reference: Path, samples: Any, monkeypatch) -> Collector:
    monkeypatch.setenv("MLMON_HMAC_KEY", "k" * 32)
    return Collector(load_config(write_config(tmp_path, reference, samples), env={}))


def with_fields(**fields: Any) -> dict[str, Any]:
    return {**GOOD_SAMPLES, "fields": {**GOOD_SAMPLES["fields"], **fields}}


def test_a_good_samples_section_starts(tmp_path, reference, monkeypatch):
    c = start(tmp_path, reference, GOOD_SAMPLES, monkeypatch)
    samples = c.config.models[0].samples
    assert samples is not None and samples.k == 3 and samples.qi == ("age", "ward")
    assert samples.written == ("age", "clinician", "note", "timestamp", "ward")


# Structural errors: found by load_config (pydantic), the message names file and field.
@pytest.mark.parametrize(
    ("samples", "message"),
    [
        (with_fields(age="mask"),
         r"edge.yaml: models\[0\].samples.fields.age.rule: unknown rule 'mask'; use one of drop, hmac, generalise, redact, keep"),
        (with_fields(clinician="keep"),
         r"models\[0\].samples: fields.clinician: keep is allowed only for fields listed in low_risk; use redact \(free text\)"),
        (with_fields(note="keep"), r"fields.note: keep is allowed only for fields listed in low_risk"),
        (with_fields(age="generalise"), r"samples.fields.age: generalise needs exactly one of width"),
        (with_fields(age={"rule": "generalise", "width": -5}), r"samples.fields.age.width: Input should be greater than 0"),
        (with_fields(note={"rule": "redact", "patterns": ["email"]}), r"samples.fields.note.patterns: .*patterns: is no longer accepted: every kept text field is scanned by every detector"),
        ({**GOOD_SAMPLES, "rate": 0}, r"samples.rate: Input should be greater than 0"),
        ({**GOOD_SAMPLES, "rate": 1.5}, r"samples.rate: Input should be less than or equal to 1"),
        ({**GOOD_SAMPLES, "k": 1}, r"samples.k: Input should be greater than or equal to 2"),
        ({**GOOD_SAMPLES, "quasi_identifiers": ["bmi"]}, r"quasi_identifiers: 'bmi' is not written \(no rule or drop\)"),
        ({**GOOD_SAMPLES, "feilds": {}}, r"samples.feilds: Extra inputs are not permitted"),
        ({**GOOD_SAMPLES, "fields": {}}, r"samples.fields: .*at least 1 item"),
    ],
)  # fmt: skip
def test_structural_errors_fail_at_load(tmp_path, reference, samples, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write_config(tmp_path, reference, samples), env={})


# Errors against the model's reference: found when the collector starts, before any read.
@pytest.mark.parametrize(
    ("samples", "message"),
    [
        (with_fields(patient_name="redact"),
         r"edge.yaml: models\[0\].samples.fields: 'patient_name' is not a field of the model's reference "
         r"\(fields: age, bmi, clinician, latency_ms, note, prediction, timestamp, ward\); fix the name or remove it"),
        ({**GOOD_SAMPLES, "low_risk": ["ward", "wardd"]}, r"models\[0\].samples.low_risk: 'wardd' is not a field"),
        (with_fields(bmi="redact"), r"samples.fields.bmi: redact does not fit a numeric field; use generalise or drop"),
        (with_fields(ward={"rule": "generalise", "width": 2}),
         r"samples.fields.ward: generalise does not fit a categorical field; width buckets numbers only"),
        (with_fields(age={"rule": "generalise", "truncate": "year"}),
         r"samples.fields.age: generalise does not fit a numeric field; truncate applies to dates"),
        (with_fields(timestamp="redact"), r"samples.fields.timestamp: redact does not fit a timestamp field"),
    ],
)  # fmt: skip
def test_errors_against_the_reference_fail_at_start(
    tmp_path, reference, samples, message, monkeypatch
):
    with pytest.raises(ConfigError, match=message):
        start(tmp_path, reference, samples, monkeypatch)
    assert not (tmp_path / "lake").exists() or not list((tmp_path / "lake").rglob("*.parquet"))
