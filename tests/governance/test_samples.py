"""De-identification rules, redaction patterns, k-anonymity and deterministic sampling."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from mlmon.errors import ConfigError
from mlmon.governance.deid import DETECTORS, hmac_id
from mlmon.governance.samples import (
    SamplesConfig,
    deidentify,
    deidentify_with_reasons,
    encode_records,
    k_anonymise,
    redact,
    sample_keys,
)

SECRET = b"s" * 32


def _redact(texts, max_words=3):
    df = pl.DataFrame({"t": texts}, schema={"t": pl.String})
    return df.select(redact(pl.col("t"), max_words=max_words))["t"].to_list()


# -- rules ---------------------------------------------------------------------------------
def test_fields_not_listed_are_dropped_and_drop_is_explicit_too():
    cfg = SamplesConfig(fields={"age": {"rule": "generalise", "width": 10}, "bmi": "drop"})
    df = pl.DataFrame({"age": [41.0], "bmi": [27.0], "name": ["Jane Canary"]})
    out = deidentify(df, cfg, SECRET)
    assert out.columns == ["age"]


def test_hmac_uses_the_request_id_secret_and_keeps_equality():
    cfg = SamplesConfig(fields={"clinician": "hmac"})
    df = pl.DataFrame({"clinician": ["dr-7", "dr-9", "dr-7", None]})
    out = deidentify(df, cfg, SECRET)["clinician"].to_list()
    assert out[0] == out[2] == hmac_id(SECRET, "dr-7")
    assert out[1] == hmac_id(SECRET, "dr-9") and out[1] != out[0]
    assert out[3] is None


def test_hmac_of_numbers_hashes_their_text():
    cfg = SamplesConfig(fields={"bed": "hmac"})
    out = deidentify(pl.DataFrame({"bed": [12, 12]}), cfg, SECRET)["bed"].to_list()
    assert out == [hmac_id(SECRET, "12")] * 2


def test_generalise_numeric_buckets_top_code_and_non_finite():
    cfg = SamplesConfig(fields={"age": {"rule": "generalise", "width": 5, "top": 90}})
    df = pl.DataFrame(
        {"age": [0.0, 44.9, 45.0, 89.9, 90.0, 104.0, None, float("nan"), float("inf")]}
    )
    out = deidentify(df, cfg, SECRET)["age"].to_list()
    assert out == ["[0, 5)", "[40, 45)", "[45, 50)", "[85, 90)", "90+", "90+", None, None, None]


def test_generalise_fractional_width_and_negative_values():
    cfg = SamplesConfig(fields={"x": {"rule": "generalise", "width": 0.5}})
    out = deidentify(pl.DataFrame({"x": [1.2, -0.1, 2.5]}), cfg, SECRET)["x"].to_list()
    assert out == ["[1.0, 1.5)", "[-0.5, 0.0)", "[2.5, 3.0)"]


def test_generalise_dates_to_month_or_year_from_datetimes_dates_and_strings():
    ts = [datetime(2026, 10, 3, 23, 59, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)]
    month = SamplesConfig(fields={"t": {"rule": "generalise", "truncate": "month"}})
    year = SamplesConfig(fields={"t": {"rule": "generalise", "truncate": "year"}})
    assert deidentify(pl.DataFrame({"t": ts}), month, SECRET)["t"].to_list() == [
        "2026-10",
        "2025-01",
    ]
    assert deidentify(pl.DataFrame({"t": ts}), year, SECRET)["t"].to_list() == ["2026", "2025"]
    days = pl.DataFrame({"t": [date(2026, 2, 28)]})
    assert deidentify(days, month, SECRET)["t"].to_list() == ["2026-02"]
    text = pl.DataFrame({"t": ["2026-10-03", "2026-10-03T10:00:00Z", "not a date"]})
    assert deidentify(text, year, SECRET)["t"].to_list() == ["2026", "2026", None]


def test_keep_folds_categorical_values_outside_the_allow_list():
    cfg = SamplesConfig(fields={"ward": "keep", "n": "keep"}, low_risk=("ward", "n"))
    df = pl.DataFrame({"ward": ["ICU", "Jane Canary", None], "n": [1.5, 2.0, 3.0]})
    out = deidentify(df, cfg, SECRET, vocabularies={"ward": ("ED", "ICU")})
    assert out["ward"].to_list() == ["ICU", "__other__", None]
    assert out["n"].to_list() == [1.5, 2.0, 3.0]


def test_a_written_field_missing_from_the_records_is_null():
    cfg = SamplesConfig(fields={"note": "redact"})
    assert deidentify(pl.DataFrame({"x": [1]}), cfg, SECRET)["note"].to_list() == [None]


# -- redaction patterns: positives and negatives --------------------------------------------
@pytest.mark.parametrize(
    ("text", "token"),
    [
        ("mail jane.canary@example.org today", "[EMAIL]"),
        ("a.b-c+tag@mail.hospital.co.uk", "[EMAIL]"),
        ("MRN-00733291", "[MRN]"),
        ("mrn: 4471902", "[MRN]"),
        ("Medical record number 77-1234", "[MRN]"),
        ("ACC-9982171", "[MRN]"),
        ("accession no. A77812", "[MRN]"),
        ("+1-555-013-3370", "[PHONE]"),
        ("(555) 013-3370", "[PHONE]"),
        ("07700 900123", "[ID]"),  # 11 digits 5-6: the German tax id's detector runs first
        ("555.013.3370", "[ID]"),  # 3-3-4: NHS number and phone alike; the id detector runs first
        ("NHS number 943 476 5919", "[MRN]"),
        ("SSN 123-45-6789", "[ID]"),
        ("lives at 12 Elm Street", "[ADDRESS]"),
        ("seen 2026-10-01", "[DATE]"),
        ("seen 2026-10-01T10:04:00Z", "[DATE]"),
        ("12/03/2025", "[DATE]"),
        ("3 March 2026", "[DATE]"),
        ("Oct 3rd, 2026", "[DATE]"),
        ("since May 2026", "[DATE]"),
        ("Jane Q. Canary", "[NAME]"),
        ("Canary, Jane", "[NAME]"),
        ("seen by Dr. Okafor", "[NAME]"),
        ("Mrs Quux", "[NAME]"),
        ("name: Zed Quux", "[NAME]"),
        ("id 12345678", "[PHONE]"),
        ("patient reports chest pain since tuesday", "[TEXT]"),
    ],
)
def test_redaction_positive(text, token):
    (out,) = _redact([text])
    assert token in out, out


@pytest.mark.parametrize(
    "text",
    ["ICU", "chest pain", "ward 5B", "value 120", "HR 88 bpm", "Mark the chart",
     "grade II", "pH 7.41", "BP 120/80", "score 0.93"],
)  # fmt: skip
def test_redaction_negative_short_clinical_fragments_pass(text):
    assert _redact([text]) == [text]


def test_free_text_counts_every_word_numbers_included():
    assert _redact([None]) == [None]
    # the finding: a number between words used to split a sentence into short runs that passed
    assert _redact(["patient lives at 12 Elm Grove Springfield"]) == ["[TEXT]"]
    assert _redact(["dose 1.25 2.5 mg"]) == ["[TEXT]"]  # 4 words
    assert _redact(["dose 1.25 2.5 mg"], max_words=4) == ["dose 1.25 2.5 mg"]
    assert _redact(["one two three four five"], max_words=5) == ["one two three four five"]
    assert _redact(["one two three four five six"], max_words=5) == ["[TEXT]"]
    # commas, underscores and slashes separate words as spaces do
    assert _redact(["patient,lives,at,the,old,mill"]) == ["[TEXT]"]
    assert _redact(["patient_lives_at_the_old_mill"]) == ["[TEXT]"]
    # the whole value goes, not a run inside it: nothing of the sentence is left
    assert _redact(["a b c d e f g h"], max_words=7) == ["[TEXT]"]


def test_every_detector_has_a_token_and_a_description():
    for d in DETECTORS:
        assert d.token.startswith("[") and d.token.endswith("]"), d.name
        assert d.what and d.name.isidentifier(), d.name


def test_names_outside_the_lists_without_title_or_label_are_a_known_limit():
    # documented in docs/samples.md: a name needs a list entry, a title or a label
    assert _redact(["Zed Quux"]) == ["Zed Quux"]
    assert _redact(["Lerato Molefe"]) == ["Lerato Molefe"]  # of the held-out names missed
    assert _redact(["Walker"]) == ["Walker"]  # a name that is also a word, alone
    assert _redact(["Grant Walker"]) == ["[NAME]"]  # in a pair it is caught
    # held-out misses written down in docs/samples.md
    assert _redact(["Am Markt 3"]) == ["Am Markt 3"]  # a street with no street word
    assert _redact(["MBI 1EG4-TE5-MK73"]) == ["MBI 1EG4-TE5-MK73"]  # no long digit run
    assert _redact(["one two three"]) == ["one two three"]  # digits spelled out are words
    assert _redact(["4.3.61"]) == ["4.3.61"]  # dotted dates need a 4-digit year
    assert _redact(["l23-4S-6789"]) == ["l23-4S-6789"]  # letters for digits


@pytest.mark.parametrize(
    "text",
    ["Pixel 8 Pro", "SM-S918B", "iPhone 15 Pro", "Python 3.12.10", "v2.0.1", "Android 14",
     "torch 2.2.1+cu121", "ward 5B", "Max", "Grace", "Ward 5"],
)  # fmt: skip
def test_device_and_version_strings_pass(text):
    assert _redact([text]) == [text]


def test_keep_scans_text_and_drops_what_a_detector_flags_counting_reasons():
    cfg = SamplesConfig(
        fields={"device": "keep", "ward": {"rule": "keep", "on_detect": "mask"},
                "note": {"rule": "redact", "on_detect": "drop", "max_words": 10}},
        low_risk=("device", "ward"),
    )  # fmt: skip
    df = pl.DataFrame({
        "device": ["Pixel 8", "123-45-6789", "Galaxy Tab S9 FE Plus 5G", None],
        "ward": ["ICU", "call 555-0133", "ICU", "ICU"],
        "note": ["ok", "seen by Chidi Okafor", "SSN１２３-４５-６７８９", "lives at 12 Elm Street"],
    })  # fmt: skip
    out, reasons = deidentify_with_reasons(
        df,
        cfg,
        SECRET,
        vocabularies={"device": ("Pixel 8", "123-45-6789", "Galaxy Tab S9 FE Plus 5G")},
    )  # the reference's allow-list itself holds an SSN: still dropped
    assert out["device"].to_list() == ["Pixel 8", None, None, None]
    assert out["ward"].to_list() == ["ICU", "call [PHONE]", "ICU", "ICU"]
    assert out["note"].to_list() == ["ok", None, None, None]
    assert reasons.to_list() == [
        [],
        ["device:us_ssn", "note:name", "ward:phone"],
        ["device:free_text", "note:us_ssn"],
        ["note:address"],
    ]


# -- configuration -------------------------------------------------------------------------
def test_config_errors_name_the_field_and_the_fix():
    with pytest.raises(ValidationError, match=r"unknown rule 'mask'; use one of drop, hmac"):
        SamplesConfig(fields={"age": "mask"})
    with pytest.raises(
        ValidationError, match=r"fields.ward: keep is allowed only for fields listed in low_risk"
    ):
        SamplesConfig(fields={"ward": "keep"})
    with pytest.raises(ValidationError, match="generalise needs exactly one of width"):
        SamplesConfig(fields={"age": "generalise"})
    with pytest.raises(ValidationError, match="top: only applies to numeric buckets"):
        SamplesConfig(fields={"t": {"rule": "generalise", "truncate": "month", "top": 3}})
    with pytest.raises(ValidationError, match="patterns: is no longer accepted: every kept text"):
        SamplesConfig(fields={"t": {"rule": "redact", "patterns": ["email"]}})
    with pytest.raises(ValidationError, match="on_detect belongs to redact and keep, not hmac"):
        SamplesConfig(fields={"t": {"rule": "hmac", "on_detect": "drop"}})
    with pytest.raises(ValidationError, match="quasi_identifiers: 'bmi' is not written"):
        SamplesConfig(fields={"age": {"rule": "generalise", "width": 5}}, quasi_identifiers=["bmi"])
    with pytest.raises(ValidationError, match="greater than or equal to 2"):
        SamplesConfig(fields={"age": "hmac"}, k=1)


def test_check_fields_against_the_reference_kinds():
    kinds = {"age": "numeric", "note": "categorical", "timestamp": "timestamp"}
    SamplesConfig(fields={"age": {"rule": "generalise", "width": 5}}).check_fields(kinds)
    with pytest.raises(ConfigError, match=r"m\.fields: 'agee' is not a field .* fix the name"):
        SamplesConfig(fields={"agee": "hmac"}).check_fields(kinds, "m")
    with pytest.raises(ConfigError, match=r"low_risk: 'ward'"):
        SamplesConfig(fields={"age": "hmac"}, low_risk=("ward",)).check_fields(kinds)
    with pytest.raises(ConfigError, match=r"fields.note: generalise does not fit a categorical"):
        SamplesConfig(fields={"note": {"rule": "generalise", "width": 5}}).check_fields(kinds)
    with pytest.raises(ConfigError, match=r"fields.age: redact does not fit a numeric field"):
        SamplesConfig(fields={"age": "redact"}).check_fields(kinds)
    with pytest.raises(ConfigError, match=r"fields.age: generalise does not fit a numeric"):
        SamplesConfig(fields={"age": {"rule": "generalise", "truncate": "year"}}).check_fields(
            kinds
        )


def test_default_quasi_identifiers_are_the_kept_and_generalised_fields():
    cfg = SamplesConfig(
        fields={
            "age": {"rule": "generalise", "width": 5},
            "ward": "keep",
            "note": "redact",
            "c": "hmac",
        },
        low_risk=("ward",),
    )
    assert cfg.qi == ("age", "ward")
    assert SamplesConfig(fields={"c": "hmac"}, quasi_identifiers=["c"]).qi == ("c",)


def test_rules_hash_changes_with_the_rules():
    a = SamplesConfig(fields={"age": {"rule": "generalise", "width": 5}})
    b = SamplesConfig(fields={"age": {"rule": "generalise", "width": 10}})
    assert a.sha256 == SamplesConfig(fields={"age": {"rule": "generalise", "width": 5}}).sha256
    assert a.sha256 != b.sha256


# -- sampling ------------------------------------------------------------------------------
def _records(n: int, seed: int = 0) -> pl.DataFrame:
    ids = [f"req-{seed}-{i}" for i in range(n)]
    return pl.DataFrame({
        "request_id_hmac": [hmac_id(SECRET, i) for i in ids],
        "age": [float(20 + i % 70) for i in range(n)],
    })  # fmt: skip


def test_sample_keys_are_deterministic_uniform_and_order_free():
    df = _records(20_000)
    keys = sample_keys(df, SECRET)
    assert keys.equals(sample_keys(df, SECRET))
    assert keys.min() >= 0 and keys.max() < 1
    rate = float((keys < 0.1).mean())
    assert abs(rate - 0.1) < 0.01, rate
    shuffled = df.with_row_index().sample(fraction=1.0, shuffle=True, seed=3)
    again = sample_keys(shuffled.drop("index"), SECRET)
    assert dict(zip(shuffled["index"], again, strict=True)) == dict(enumerate(keys))


def test_sample_keys_follow_the_request_id_hmac_and_the_secret():
    df = _records(100)
    other = _records(100).with_columns(
        pl.Series("request_id_hmac", [hmac_id(b"t" * 32, f"req-0-{i}") for i in range(100)])
    )
    assert not sample_keys(df, SECRET).equals(sample_keys(other, SECRET))


def test_records_without_request_id_are_keyed_by_their_content():
    df = pl.DataFrame({"request_id_hmac": [None, None, None], "age": [1.0, 1.0, 2.0]},
                      schema={"request_id_hmac": pl.String, "age": pl.Float64})  # fmt: skip
    keys = sample_keys(df, SECRET).to_list()
    assert keys[0] == keys[1] != keys[2]
    assert keys == sample_keys(df.reverse(), SECRET).reverse().to_list()
    assert sample_keys(df.drop("request_id_hmac"), SECRET).to_list() == keys


# -- k-anonymity ---------------------------------------------------------------------------
def test_k_anonymise_counts_suppressed_rows():
    df = pl.DataFrame(
        {"age": ["a", "a", "b", "c", "c", "c"], "ward": ["x", "x", "x", "y", "y", None]}
    )
    kept, n = k_anonymise(df, ["age"], 2)
    assert kept["age"].to_list() == ["a", "a", "c", "c", "c"] and n == 1
    kept, n = k_anonymise(df, ["age", "ward"], 2)
    assert kept["age"].to_list() == ["a", "a", "c", "c"] and n == 2
    kept, n = k_anonymise(df, [], 7)
    assert kept.height == 0 and n == 6
    kept, n = k_anonymise(df, [], 6)
    assert kept.height == 6 and n == 0


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.sampled_from(["a", "b", "c", None]), st.integers(0, 3), st.integers(0, 100)),
        max_size=60,
    ),
    k=st.integers(2, 6),
    two=st.booleans(),
)
def test_k_anonymity_property_every_class_of_a_batch_has_k_rows(rows, k, two):
    df = pl.DataFrame(
        rows, schema={"ward": pl.String, "band": pl.Int64, "x": pl.Int64}, orient="row"
    )
    qis = ["ward", "band"] if two else ["ward"]
    kept, suppressed = k_anonymise(df, qis, k)
    assert kept.height + suppressed == df.height
    if kept.height:
        sizes = kept.group_by(qis).len()["len"]
        assert sizes.min() >= k
    # maximal: no suppressed class had k rows
    full = df.group_by(qis).len()
    assert int(full.filter(pl.col("len") < k)["len"].sum()) == suppressed


def test_encode_records_sorted_keys_and_nulls():
    df = pl.DataFrame({"b": ["x", None], "a": [1.5, 2.0]})
    out = [json.loads(r) for r in encode_records(df).to_list()]
    assert out == [{"a": 1.5, "b": "x"}, {"a": 2.0, "b": None}]
    assert encode_records(df).to_list()[0].startswith('{"a"')


# -- numbers in any script and spacing ------------------------------------------------------
_SCRIPTS = [
    "0123456789",
    "０１２３４５６７８９",
    "٠١٢٣٤٥٦٧٨٩",
    "०१२३४५६७८९",
    "০১২৩৪৫৬৭৮৯",
    "๐๑๒๓๔๕๖๗๘๙",
]
_SEPS = [
    " ",
    "-",
    ".",
    "/",
    "_",
    ",",
    " - ",
    "\u00a0",
    "\u2009",
    "\u202f",
    "\u3000",
    "\u2013",
    "-\u200b",
]


@settings(max_examples=300, deadline=None)
@given(
    groups=st.lists(st.text("0123456789", min_size=1, max_size=5), min_size=1, max_size=6).filter(
        lambda g: sum(map(len, g)) >= 6
    ),
    seps=st.lists(st.sampled_from(_SEPS), min_size=6, max_size=6),
    script=st.sampled_from(_SCRIPTS),
    before=st.sampled_from(["", "call ", "SSN ", "patient id: ", "ref:", "(", "«"]),
    after=st.sampled_from(["", " today", ".", ")", "!!", " »", ";follow-up"]),
)
def test_any_number_of_6_digits_in_any_script_and_spacing_is_masked_whole(
    groups, seps, script, before, after
):
    number = "".join(g + (seps[i] if i < len(groups) - 1 else "") for i, g in enumerate(groups))
    number = number.translate(str.maketrans("0123456789", script))
    (out,) = _redact([f"{before}{number}{after}"], max_words=None)
    assert not any(c.isdigit() for c in out), (number, out)  # not one digit left behind
