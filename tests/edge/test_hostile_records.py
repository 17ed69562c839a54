"""Poison records cost only themselves: a corpus of hostile files through a real collector.

Every file of :mod:`tests.edge.hostile` holds good records around a poison one
(or is a poison file itself). One ``edge once`` cycle of a real
:class:`~mlmon.edge.collector.Collector` (the code of ``mlmon edge once``)
reads six streams (tabular JSONL, CSV, Parquet, epoch-ms JSONL, SageMaker
capture, KServe CloudEvents) into a ``file://`` lake. Then: every good record
is in the lake's profiles (exact counts), every poison record is counted by
reason in the metrics and named by file and line in the log (never its
content), no task failed, and the good file that sorts after the poison in
every folder landed in its own window.
"""

from __future__ import annotations

import functools
import json
import logging
import tempfile
from collections import Counter
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlmon.analysis.lake import Lake
from mlmon.edge.checkpoint import StreamState
from mlmon.edge.collector import Collector
from mlmon.edge.config import load_config
from mlmon.edge.streams import REASONS, FileStream, decode_json_line
from mlmon.lake.references import save_reference
from mlmon.profiles.frame import build_reference
from mlmon.profiles.schema import FeatureSpec, Schema
from tests.edge.hostile import CANARY, LATER, MAX_LINE, T, write_corpus

MODEL = "poison"
KEY = "p" * 32


@functools.cache
def _reference():
    rng = np.random.default_rng(3)
    base = pl.DataFrame(
        {"age": rng.normal(55, 15, 500), "ward": rng.choice(["ED", "ICU", "W3"], 500)}
    )
    schema = Schema([FeatureSpec("age", "numeric"), FeatureSpec("ward", "categorical")])
    return build_reference(base, schema, model=MODEL, k=1)


def _config(tmp_path: Path, logs: Path) -> Path:
    save_reference(_reference(), tmp_path / "ref.parquet")
    common = {"settle": "0s", "max_line_bytes": MAX_LINE}
    streams = [
        {"path": str(logs / "jsonl"), "format": "jsonl", **common},
        {"path": str(logs / "csv"), "format": "csv", **common},
        {"path": str(logs / "parquet"), "format": "parquet", **common},
        {"path": str(logs / "epoch"), "format": "jsonl", "timestamp_format": "epoch_ms", **common},
        {"path": str(logs / "sagemaker"), "format": "jsonl", "kind": "sagemaker_capture", **common},
        {"path": str(logs / "kserve"), "format": "jsonl", "kind": "kserve_cloudevents", **common},
    ]
    cfg = {
        "collector_id": "poison-edge",
        "lake": {"uri": (tmp_path / "lake").as_uri()},
        "hmac_key": {"env": "MLMON_HMAC_KEY"},
        "state_dir": str(tmp_path / "state"),
        "window": "1h",
        "lateness": "0s",
        "metrics": None,
        "models": [{"name": MODEL, "reference": str(tmp_path / "ref.parquet"), "streams": streams}],
    }
    path = tmp_path / "edge.yaml"
    path.write_text(json.dumps(cfg))
    return path


def _skips(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == "skipped records"]


def test_every_good_record_around_fifty_poison_files_lands_and_each_poison_is_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MLMON_HMAC_KEY", KEY)
    cases = write_corpus(tmp_path / "logs")
    poison = [c for c in cases if c.bad]
    assert len(poison) >= 50  # the corpus: at least 50 hostile files
    collector = Collector(load_config(_config(tmp_path, tmp_path / "logs")))
    with caplog.at_level(logging.INFO):
        report = collector.run_once()
    assert report.errors == []

    # every good record landed, exactly: count + nulls of a feature = rows profiled
    profiles = Lake((tmp_path / "lake").as_uri()).read("profiles", model=MODEL)
    age = profiles.filter(pl.col("feature") == "age")
    expected_good = sum(c.good for c in cases)
    assert int((age["count"] + age["nulls"]).sum()) == expected_good
    assert report.records == expected_good
    # no stream blocked: the good file after the poison in each of the six folders landed
    later = age.filter(pl.col("window_start") == LATER)
    assert int((later["count"] + later["nulls"]).sum()) == 5 * 6
    assert age.filter(pl.col("window_start") < T).height == 0  # nothing from a bad time

    # every poison record counted by reason, in the metrics and in the log
    expected: Counter[str] = Counter()
    for c in cases:
        expected.update(c.bad)
    assert set(expected) <= set(REASONS)
    assert "parse_error" not in expected
    metric = {r: collector.metrics.bad_records.labels(MODEL, r)._value.get() for r in REASONS}
    assert {r: int(v) for r, v in metric.items() if v} == dict(expected)
    logged: Counter[str] = Counter()
    places: set[tuple[str, str, int | None]] = set()
    for r in _skips(caplog):
        logged[r.__dict__["reason"]] += r.__dict__["count"]
        for line in r.__dict__.get("lines") or [None]:
            places.add((r.__dict__["where"], r.__dict__["reason"], line))
    assert logged == expected
    for c in poison:  # by file and line
        for reason, line in c.lines:
            assert (c.name, reason, line) in places, (c.name, reason, line)
    # never the content
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert CANARY not in text

    # a second cycle reads nothing again and counts nothing again
    caplog.clear()
    again = collector.run_once()
    assert again.errors == [] and again.records == 0 and _skips(caplog) == []


def test_a_line_longer_than_a_batch_is_skipped_without_being_read_whole(tmp_path: Path) -> None:
    """The reader's own skip path: the line does not fit a batch nor max_line_bytes."""
    logs = tmp_path / "logs"
    logs.mkdir()
    good = [json.dumps({"timestamp": f"2026-10-01T08:00:0{i}Z", "age": 40 + i, "ward": "ED"})
            for i in range(4)]  # fmt: skip
    huge = '{"pad": "' + "z" * 300_000 + '"}'
    (logs / "a.jsonl").write_text("\n".join([good[0], good[1], huge, good[2], good[3]]) + "\n")
    (logs / "b.jsonl").write_text(good[0] + "\n")
    state = StreamState(
        _reference(), tmp_path / "st", window=timedelta(hours=1), lateness=timedelta(0)
    )
    s = FileStream(logs, "tabular", state, KEY.encode(), batch_bytes=4096, max_line_bytes=8192,
                   settle=timedelta(0))  # fmt: skip
    assert s.read() == 5
    assert dict(s.bad_records) == {"line_too_long": 1}
    assert s.bad_records.places == [("line_too_long", "a.jsonl", 3)]


def test_steps_of_a_backlog_are_bounded_and_add_up(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    for f in range(5):
        lines = [json.dumps({"timestamp": f"2026-10-01T0{f}:00:{i:02d}Z", "age": i, "ward": "ED"})
                 for i in range(30)]  # fmt: skip
        (logs / f"{f}.jsonl").write_text("\n".join(lines) + "\n")
    state = StreamState(
        _reference(), tmp_path / "st", window=timedelta(hours=1), lateness=timedelta(0)
    )
    s = FileStream(logs, "tabular", state, KEY.encode(), settle=timedelta(0), batch_bytes=1024)
    steps = []
    while True:
        added, more = s.read_step(max_records=40, max_files=10)
        steps.append(added)
        s.commit()
        if not more:
            break
    assert sum(steps) == 150 and max(steps) < 40 + 30  # at most one batch past the bound
    assert len([n for n in steps if n]) >= 4
    state2 = StreamState(
        _reference(), tmp_path / "st2", window=timedelta(hours=1), lateness=timedelta(0)
    )
    s2 = FileStream(logs, "tabular", state2, KEY.encode(), settle=timedelta(0))
    assert [s2.read_step(max_records=10**6, max_files=2)[0] for _ in range(4)] == [60, 60, 30, 0]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"a": NaN}', "non_finite"),
        (b'{"a": 1, "a": 1}', "duplicate_key"),
        (b"[" * 100_000 + b"]" * 100_000, "too_deep"),
        (b'{"a": "\xff"}', "bad_encoding"),
        (b'{"a": "\\udfff"}', "bad_encoding"),
        (b"   ", "empty_line"),
        (b'{"a": 1', "bad_json"),
    ],
)
def test_one_strict_json_parser_names_the_reason(line: bytes, reason: str) -> None:
    assert decode_json_line(line) == (None, reason)
    assert decode_json_line(b'{"a": "\\ud83d\\ude00", "b": [1.5e3]}') == (
        {"a": "\U0001f600", "b": [1500.0]},
        None,
    )


# -- the polars fast path and the strict parser agree ---------------------------------------
_TS = st.sampled_from(
    ["2026-10-01T08:00:00Z", "2026-10-01T09:30:00.5+02:00", "2026-10-01 08:00:00+00:00",
     "2026-10-01T08:00:00", "9999-12-31T23:59:59Z", "yesterday", "", "1969-07-20T20:17:00Z"]
) | st.integers(-(2**40), 2**40) | st.booleans() | st.none()  # fmt: skip
_NUM = st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(
    ["41", " 7.5 ", "", "abc", "1e3"]
) | st.none()  # fmt: skip
_TEXT = st.sampled_from(["ED", "ICU", "W3", "é", ""]) | st.integers(0, 9) | st.none()
_POISON = st.sampled_from([True, [1], {"v": 1}, float("nan")])


@st.composite
def _records(draw: st.DrawFn) -> list[dict]:
    out = []
    for _ in range(draw(st.integers(1, 12))):
        rec = {"timestamp": draw(_TS), "age": draw(_NUM), "ward": draw(_TEXT),
               "prediction": draw(_NUM), "latency_ms": draw(_NUM), "request_id": draw(_TEXT)}  # fmt: skip
        if draw(st.integers(0, 9)) == 0:  # now and then a poison value in some field
            rec[draw(st.sampled_from(sorted(rec)))] = draw(_POISON)
        out.append({k: v for k, v in rec.items() if draw(st.integers(0, 7)) or k == "timestamp"})
    return out


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(records=_records())
def test_the_polars_fast_path_and_the_strict_parser_give_the_same_records(
    tmp_path: Path, records: list[dict]
) -> None:
    """Whatever a batch holds, reading it with or without the fast path gives the same
    rows and the same bad-record counts (the fast path is taken only when it cannot differ)."""
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    (folder / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    got = []
    for fast in (True, False):
        state = StreamState(_reference(), folder / f"st-{fast}", window=timedelta(hours=1),
                            lateness=timedelta(0))  # fmt: skip
        s = FileStream(folder, "tabular", state, KEY.encode(), settle=timedelta(0))
        if not fast:
            s._nested_re = None  # the strict parser for every batch
        frames = [f for f in s.batches() if f.height]
        rows = pl.concat(frames) if frames else None
        got.append((rows, dict(s.bad_records)))
    (a, bad_a), (b, bad_b) = got
    assert bad_a == bad_b
    assert (a is None) == (b is None)
    if a is not None and b is not None:
        assert a.equals(b, null_equal=True), (a, b)


def test_the_fast_path_is_taken_for_clean_batches_only(tmp_path: Path) -> None:
    state = StreamState(
        _reference(), tmp_path / "st", window=timedelta(hours=1), lateness=timedelta(0)
    )
    s = FileStream(tmp_path, "tabular", state, KEY.encode())
    clean = [json.dumps({"timestamp": "2026-10-01T08:00:00Z", "age": 40 + i, "ward": "ED",
                         "request_id": i, "prediction": 0.5, "extra": {"x": [1]}}).encode()
             for i in range(3)]  # fmt: skip
    assert s._fast_ndjson(clean) is not None
    for poison in (b'{"age": true}', b'{"age": NaN}', b'{"age": 1, "age": 2}', b'[1]', b"",
                   b'{"ward": "\\ud800"}', b'{"ward": "a\x01"}', b'{"ward": 1.5}', b'{"ward": ["x"]}',
                   b'{"prediction": "ICU"}', b'{"age": "41"}', b'{"a": "\xff"}'):  # fmt: skip
        assert s._fast_ndjson([*clean, poison]) is None, poison


def test_timestamps_are_parsed_row_by_row_in_the_declared_format() -> None:
    from datetime import UTC, datetime

    from mlmon.edge.streams import parse_timestamps

    t = datetime(2026, 10, 1, 8, tzinfo=UTC)
    iso = pl.Series(["2026-10-01T08:00:00", "2026-10-01T08:00:00Z", "2026-10-01T10:00:00+02:00",
                     "2026-10-01 08:00:00+00:00", "2026-10-01T10:00+02:00", "2026-10-01T03:00:00-0500",
                     "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "1790000000", None, ""])  # fmt: skip
    parsed, why = parse_timestamps(iso)
    assert parsed.to_list() == [None, t, t, t, t, t, None, None, None, None, None]
    assert why.to_list() == ["naive_timestamp", None, None, None, None, None, "bad_timestamp",
                             "bad_timestamp", "bad_timestamp", "missing_field", "missing_field"]  # fmt: skip
    secs = int(t.timestamp())
    for fmt, scale in (("epoch_s", 1), ("epoch_ms", 1000)):
        values = pl.Series([secs * scale, str(secs * scale), -1, 10**20, None], strict=False)
        parsed, why = parse_timestamps(values.cast(pl.String), fmt)
        assert parsed.to_list() == [t, t, None, None, None]
        assert why.to_list() == [None, None, "bad_timestamp", "bad_timestamp", "missing_field"]
        parsed, _ = parse_timestamps(
            pl.Series([secs * scale, secs * scale + scale / 2], dtype=pl.Float64), fmt
        )
        assert parsed.to_list() == [t, t.replace(microsecond=500_000)]


_CELL = st.sampled_from(["2026-10-01T08:00:00Z", "2026-10-01T08:00:00", "41", " 7.5", "", "abc",
                         "true", "ED", "ICU", "é", '"ED"', '"E,D"', "x\x01", "1e3", "-0"])  # fmt: skip


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(st.lists(_CELL, min_size=2, max_size=5), min_size=1, max_size=10))
def test_the_csv_fast_path_and_the_line_parser_give_the_same_records(
    tmp_path: Path, rows: list[list[str]]
) -> None:
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    header = "timestamp,age,ward,prediction"
    body = "\n".join(",".join(r) for r in rows)
    (folder / "a.csv").write_bytes(f"{header}\n{body}\n".encode())
    got = []
    for fast in (True, False):
        state = StreamState(_reference(), folder / f"st-{fast}", window=timedelta(hours=1),
                            lateness=timedelta(0))  # fmt: skip
        s = FileStream(folder, "tabular", state, KEY.encode(), settle=timedelta(0))
        if not fast:
            s._fast_csv = lambda *a: None  # type: ignore[method-assign]
        frames = [f for f in s.batches() if f.height]
        got.append((pl.concat(frames) if frames else None, dict(s.bad_records)))
    (a, bad_a), (b, bad_b) = got
    assert bad_a == bad_b
    assert (a is None) == (b is None)
    if a is not None and b is not None:
        assert a.equals(b, null_equal=True), (a, b)
