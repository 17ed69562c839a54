"""Inference log streams on real files: formats, bad records, log privacy, checkpoints, exactly once."""

from __future__ import annotations

import base64
import json
import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from mlmon.edge.checkpoint import Checkpoint, CheckpointState, StreamState
from mlmon.edge.streams import (
    STREAM_FORMATS,
    FileStream,
    TabularFormat,
    flat_schema,
    register_stream_format,
    stream_format,
)
from mlmon.errors import ConfigError, DuplicateNameError, EdgeError, UnknownNameError
from mlmon.governance.deid import hmac_id
from mlmon.profiles.frame import build_reference, profile_frame
from mlmon.profiles.schema import FeatureSpec, Schema

SECRET = b"k" * 32
T0 = datetime(2026, 10, 1, tzinfo=UTC)
CANARIES = ["MRN-0042", "jane.doe@example.org", "Jane Doe", "555-0142"]


@pytest.fixture(scope="module")
def reference():
    rng = np.random.default_rng(0)
    base = pl.DataFrame({"age": rng.normal(60, 10, 2000), "ward": rng.choice(["ED", "ICU"], 2000)})
    schema = Schema([FeatureSpec("age", "numeric"), FeatureSpec("ward", "categorical")])
    return build_reference(base, schema, k=1)


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def _jsonl(path: Path, records: list) -> None:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))


def _stream(folder, reference, state_dir, fmt="tabular", **kw) -> FileStream:
    window = kw.pop("window", timedelta(hours=1))
    lateness = kw.pop("lateness", timedelta(0))
    state = StreamState(reference, state_dir, window=window, lateness=lateness)
    return FileStream(folder, fmt, state, SECRET, **kw)


def _rows(stream: FileStream) -> pl.DataFrame:
    frames = list(stream.batches())
    return (
        pl.concat(frames, how="vertical")
        if frames
        else pl.DataFrame(schema=flat_schema(stream.ctx))
    )


def _scan_logs(caplog) -> None:
    text = "\n".join(
        f"{r.getMessage()} {r.__dict__}" for r in caplog.records
    )  # messages and every extra field
    for canary in CANARIES:
        assert canary not in text, f"{canary!r} leaked into the logs"


# -- the registry ---------------------------------------------------------------------------
def test_registry_refuses_duplicates_and_lists_names_on_a_miss():
    assert set(STREAM_FORMATS) >= {"tabular", "kserve_cloudevents", "sagemaker_capture"}
    with pytest.raises(DuplicateNameError, match="tabular"):
        register_stream_format("tabular", TabularFormat)
    with pytest.raises(UnknownNameError) as err:
        stream_format("fluentd")
    for name in STREAM_FORMATS:
        assert name in str(err.value)
    register_stream_format("my_tabular", TabularFormat)
    try:
        assert stream_format("my_tabular") is TabularFormat
        register_stream_format("my_tabular", TabularFormat, replace=True)
    finally:
        del STREAM_FORMATS["my_tabular"]


# -- tabular --------------------------------------------------------------------------------
def test_tabular_jsonl_values_ids_and_bad_records(tmp_path, reference, caplog):
    logs = tmp_path / "logs"
    logs.mkdir()
    _jsonl(
        logs / "a.jsonl",
        [
            {"timestamp": "2026-10-01T10:00:00Z", "age": 50, "ward": "ED", "request_id": "MRN-0042",
             "latency_ms": 12, "prediction": 0.25, "model_version": 3, "email": "jane.doe@example.org"},
            {"timestamp": "2026-10-01T12:00:00+02:00", "age": "61.5", "ward": "ICU", "request_id": "r-2",
             "score": 0.5},
            {"timestamp": "2026-10-01T10:00:00", "age": 51, "ward": "ED", "request_id": "Jane Doe"},
            {"age": 52, "ward": "ED", "request_id": "555-0142"},
            {"timestamp": "yesterday+01:00", "age": 53, "ward": "ED"},
            '{"timestamp": "2026-10-01T10:00:00Z", "age": 54, "ward": "MRN-0042"',
        ],
    )  # fmt: skip
    s = _stream(logs, reference, tmp_path / "st")
    with caplog.at_level(logging.DEBUG):
        df = _rows(s)
    assert df.schema == pl.Schema(flat_schema(s.ctx))
    assert df["age"].to_list() == [50.0, 61.5]
    assert df["ward"].to_list() == ["ED", "ICU"]
    assert df["timestamp"].to_list() == [T0 + timedelta(hours=10)] * 2
    assert df["latency_ms"].to_list() == [12.0, None]
    assert df["prediction"].to_list() == [0.25, 0.5]
    assert df["model_version"].to_list() == ["3", None]
    assert df["request_id_hmac"].to_list() == [hmac_id(SECRET, "MRN-0042"), hmac_id(SECRET, "r-2")]
    assert "email" not in df.columns and "request_id" not in df.columns
    assert dict(s.bad_records) == {
        "naive_timestamp": 1,
        "missing_field": 1,
        "bad_timestamp": 1,
        "bad_json": 1,
    }
    assert {r.__dict__.get("reason") for r in caplog.records} >= {"naive_timestamp", "bad_json"}
    _scan_logs(caplog)


def test_tabular_csv_appended_and_parquet(tmp_path, reference):
    logs = tmp_path / "logs"
    logs.mkdir()
    csv = logs / "a.csv"
    csv.write_text("timestamp,age,ward,request_id\n2026-10-01T00:00:01Z,40,ED,r1\n")
    pq_frame = pl.DataFrame(
        {
            "timestamp": [T0, T0 + timedelta(minutes=1), None],
            "age": [70.0, 71.0, 72.0],
            "ward": ["ICU", "ICU", "ED"],
            "prediction": ["admit", "home", "home"],
        }
    ).with_columns(pl.col("timestamp").dt.replace_time_zone("UTC"))
    pq_frame.write_parquet(logs / "b.parquet")
    pq_frame.with_columns(pl.col("timestamp").dt.replace_time_zone(None)).write_parquet(
        logs / "c.parquet"
    )
    s = _stream(logs, reference, tmp_path / "st", batch_rows=2)
    got = [f for f in s.batches() if f.height]
    assert [f.height for f in got] == [1, 2]
    assert got[0]["age"].to_list() == [40.0] and got[0]["request_id_hmac"][0] == hmac_id(
        SECRET, "r1"
    )
    assert got[1]["prediction"].dtype == pl.String and got[1]["prediction"].to_list() == [
        "admit",
        "home",
    ]
    assert dict(s.bad_records) == {"missing_field": 2, "naive_timestamp": 2}
    # the CSV grows: only the new line is read, with the header of the file's first line
    with open(csv, "a") as fh:
        fh.write("2026-10-01T00:00:02Z,41,ICU,r2\n")
    again = _rows(s)
    assert again["age"].to_list() == [41.0] and again["ward"].to_list() == ["ICU"]
    assert _rows(s).height == 0


def test_partial_last_line_and_truncated_file(tmp_path, reference, caplog):
    logs = tmp_path / "logs"
    logs.mkdir()
    rec = json.dumps({"timestamp": "2026-10-01T00:00:01Z", "age": 50, "ward": "ED"})
    f = logs / "a.jsonl"
    f.write_text(rec + "\n" + rec[:20])
    s = _stream(logs, reference, tmp_path / "st")
    assert s.read() == 1
    f.write_text(rec + "\n" + rec + "\n")  # the second line is complete now
    assert s.read() == 1
    assert not s.bad_records
    f.write_text(rec + "\n")  # copy-truncate rotation: shorter than the offset
    with caplog.at_level(logging.WARNING):
        assert s.read() == 1
    assert any("shrank" in r.getMessage() for r in caplog.records)


# -- KServe CloudEvents ---------------------------------------------------------------------
def _ce(eid, kind, t, data, **extra) -> dict:
    return {"specversion": "1.0", "id": eid, "type": f"org.kubeflow.serving.inference.{kind}",
            "source": "http://localhost:9081/", "time": _iso(t), "data": data,
            "inferenceservicename": "risk", **extra}  # fmt: skip


def test_kserve_cloudevents_v1_v2_join_latency_and_bad_records(tmp_path, reference, caplog):
    logs = tmp_path / "logs"
    logs.mkdir()
    t = T0 + timedelta(hours=9)
    v2_in = {"inputs": [{"name": "age", "shape": [2], "datatype": "FP64", "data": [30, 31]},
                        {"name": "ward", "shape": [2], "datatype": "BYTES", "data": ["ED", "ICU"]}]}  # fmt: skip
    v2_out = {"model_name": "risk", "model_version": "7", "id": "MRN-0042",
              "outputs": [{"name": "p", "shape": [2, 2], "datatype": "FP32", "data": [0.9, 0.1, 0.2, 0.8]},
                          {"name": "label", "shape": [2], "datatype": "INT64", "data": [0, 1]}]}  # fmt: skip
    _jsonl(
        logs / "001.jsonl",
        [
            _ce("MRN-0042", "request", t, {"instances": [{"age": 70, "ward": "ICU", "name": "Jane Doe"}]}),
            _ce("ev-2", "request", t, v2_in),
            _ce("MRN-0042", "response", t + timedelta(milliseconds=40), {"predictions": [0.7]}),
            # binary-mode headers as a log shipper records them, body as a string
            {"headers": {"Ce-Id": "ev-3", "Ce-Type": "org.kubeflow.serving.inference.request",
                         "Ce-Time": _iso(t)}, "body": json.dumps({"instances": [[45, "ED"]]})},
            "not json jane.doe@example.org",
            _ce("ev-4", "request", t, {"instances": [[1, 2, 3]]}),  # wrong width
            _ce("ev-5", "request", t, {"instances": [[80, "ED"]]}),  # never answered
            _ce("ev-6", "ping", t, {}),
            {"id": "ev-7", "data": {}},
        ],
    )  # fmt: skip
    _jsonl(
        logs / "002.jsonl",
        [
            _ce("ev-2", "response", t + timedelta(milliseconds=5), v2_out),
            {"ce_id": "ev-3", "ce_type": "org.kubeflow.serving.inference.response",
             "ce_time": _iso(t + timedelta(seconds=1)),
             "data_base64": base64.b64encode(b'{"predictions": [[0.3, 0.7]]}').decode()},
            _ce("ev-4", "response", t, {"predictions": [1]}),
            _ce("late", "request", t + timedelta(minutes=10), {"instances": [[20, "ED"]]}),
            _ce("late", "response", t + timedelta(minutes=10), {"predictions": [0.1]}),
        ],
    )  # fmt: skip
    s = _stream(logs, reference, tmp_path / "st", fmt="kserve_cloudevents")
    with caplog.at_level(logging.DEBUG):
        df = _rows(s).sort("age")
    assert df["age"].to_list() == [20.0, 30.0, 31.0, 45.0, 70.0]
    assert df["ward"].to_list() == ["ED", "ED", "ICU", "ED", "ICU"]
    assert df["prediction"].to_list() == pytest.approx([0.1, 0.9, 0.2, 0.3, 0.7])
    assert df["model_version"].to_list() == [None, "7", "7", None, None]
    assert df["latency_ms"].to_list() == pytest.approx([0.0, 5.0, 5.0, 1000.0, 40.0])
    assert df.filter(pl.col("age") == 70)["request_id_hmac"][0] == hmac_id(SECRET, "MRN-0042")
    assert df["timestamp"].min() == t
    assert dict(s.bad_records) == {
        "bad_json": 1,
        "bad_tensor": 1,
        "unmatched": 1,  # ev-5: the newest event is 10 minutes later, past the 5-minute timeout
        "unknown_event_type": 1,
        "missing_field": 1,
    }
    _scan_logs(caplog)


def test_kserve_pending_request_survives_a_restart_exactly_once(tmp_path, reference):
    """A request whose response is in a later file holds the committed offset back; the pairs
    read after it are re-read on restart but not counted again."""
    logs = tmp_path / "logs"
    logs.mkdir()
    t = T0 + timedelta(hours=1)
    req = lambda i: _ce(f"e{i}", "request", t, {"instances": [[float(i), "ED"]]})  # noqa: E731
    resp = lambda i: _ce(f"e{i}", "response", t, {"predictions": [i / 100]})  # noqa: E731
    _jsonl(logs / "001.jsonl", [req(0), req(1), resp(1), req(2), resp(2)])
    _jsonl(logs / "002.jsonl", [resp(0), req(3), resp(3)])
    s1 = _stream(logs, reference, tmp_path / "st", fmt="kserve_cloudevents")
    assert s1.read(max_batches=1) == 2  # e1, e2 joined; e0 waits
    s1.commit()
    saved = json.loads((tmp_path / "st" / "checkpoint.json").read_text())
    assert saved["positions"][str(logs)]["offsets"]["001.jsonl"] == 0  # held back to e0
    assert "e1" not in json.dumps(saved)  # only HMACs of the ids
    s2 = _stream(logs, reference, tmp_path / "st", fmt="kserve_cloudevents")
    assert s2.read() == 2  # e0 and e3, not e1 or e2 again
    assert not s2.bad_records
    windows = [w for w, _ in s2.closed_windows(T0 + timedelta(days=1))]
    assert sum(w.profile.rows for w in windows) == 4
    assert windows[0].profile.features["age"].sum == pytest.approx(0 + 1 + 2 + 3)


# -- SageMaker Data Capture -----------------------------------------------------------------
def _capture(eid, inp, out, t="2026-10-01T08:00:00Z", **meta) -> dict:
    return {"captureData": {"endpointInput": inp, "endpointOutput": out},
            "eventMetadata": {"eventId": eid, "inferenceTime": t, **meta}, "eventVersion": "0"}  # fmt: skip


def test_sagemaker_capture_csv_json_base64(tmp_path, reference, caplog):
    logs = tmp_path / "logs"
    logs.mkdir()
    csv_in = {
        "observedContentType": "text/csv",
        "mode": "INPUT",
        "data": "40,ED\n41,ICU",
        "encoding": "CSV",
    }
    csv_out = {
        "observedContentType": "text/csv; charset=utf-8",
        "mode": "OUTPUT",
        "data": "0.1\n0.2",
        "encoding": "CSV",
    }
    js_in = {
        "observedContentType": "application/json",
        "mode": "INPUT",
        "data": json.dumps({"instances": [{"age": 50, "ward": "ED", "mrn": "MRN-0042"}]}),
        "encoding": "JSON",
    }
    js_out = {
        "observedContentType": "application/json",
        "mode": "OUTPUT",
        "data": json.dumps({"predictions": [{"score": 0.9}]}),
        "encoding": "JSON",
    }
    b64_in = {
        "observedContentType": "text/csv",
        "mode": "INPUT",
        "data": base64.b64encode(b"60,ICU").decode(),
        "encoding": "BASE64",
    }
    b64_out = {
        "observedContentType": "application/json",
        "mode": "OUTPUT",
        "data": base64.b64encode(b"[0.3]").decode(),
        "encoding": "BASE64",
    }
    _jsonl(
        logs / "capture.jsonl",
        [
            _capture("ev-1", csv_in, csv_out),
            _capture("ev-2", js_in, js_out, inferenceId="MRN-0042"),
            _capture("ev-3", b64_in, b64_out, t="2026-10-01T09:00:00.5+00:00"),
            _capture("ev-4", csv_in, {**csv_out, "data": "0.1"}),  # 2 rows in, 1 out
            _capture("ev-5", csv_in, csv_out, t="2026-10-01T08:00:00"),
            {"captureData": {"endpointInput": csv_in}, "eventVersion": "0"},
            _capture("ev-6", {**b64_in, "data": "%%%jane.doe@example.org"}, b64_out),
        ],
    )  # fmt: skip
    s = _stream(logs, reference, tmp_path / "st", fmt="sagemaker_capture")
    with caplog.at_level(logging.DEBUG):
        df = _rows(s)
    assert df["age"].to_list() == [40.0, 41.0, 50.0, 60.0]
    assert df["ward"].to_list() == ["ED", "ICU", "ED", "ICU"]
    assert df["prediction"].to_list() == pytest.approx([0.1, 0.2, 0.9, 0.3])
    assert df["request_id_hmac"].to_list() == [hmac_id(SECRET, "ev-1")] * 2 + [
        hmac_id(SECRET, "MRN-0042"),
        hmac_id(SECRET, "ev-3"),
    ]
    assert df["timestamp"][3] == datetime(2026, 10, 1, 9, 0, 0, 500000, tzinfo=UTC)
    assert df["latency_ms"].null_count() == 4
    assert dict(s.bad_records) == {"bad_tensor": 2, "naive_timestamp": 1, "missing_field": 1}
    _scan_logs(caplog)


# -- checkpoints and exactly once -----------------------------------------------------------
def _write_logs(
    folder: Path, rng, files: int, rows: int, start: datetime, prefix: str
) -> pl.DataFrame:
    frames = []
    for i in range(files):
        ts = [start + timedelta(seconds=int(s)) for s in np.sort(rng.integers(0, 3 * 3600, rows))]
        df = pl.DataFrame(
            {
                "timestamp": [_iso(t) for t in ts],
                "age": rng.normal(62, 11, rows).round(2),
                "ward": rng.choice(["ED", "ICU", "Ward 3"], rows),
                "latency_ms": rng.gamma(2.0, 20.0, rows).round(3),
                "request_id": [f"{prefix}{i}-{j}" for j in range(rows)],
            }
        )
        df.write_ndjson(folder / f"{prefix}{i:03d}.jsonl")
        frames.append(df)
    return pl.concat(frames)


def _merged(windows):
    merged = windows[0].profile
    for w in windows[1:]:
        merged = merged.merge(w.profile)
    return merged


def test_exactly_once_across_a_restart_with_a_window_spanning_both_reads(tmp_path, reference):
    logs = tmp_path / "logs"
    logs.mkdir()
    rng = np.random.default_rng(3)
    first = _write_logs(logs, rng, 3, 400, T0, "a")
    s1 = _stream(logs, reference, tmp_path / "st", window=timedelta(hours=2))
    assert s1.read() == 1200
    closed = [w for w, _ in s1.closed_windows()]  # watermark ~02:59: 00:00-02:00 closes
    assert [w.start for w in closed] == [T0]
    s1.commit()  # 02:00-04:00 stays open, persisted as profiles
    assert len(list((tmp_path / "st").glob("open-*.parquet"))) == 1

    # a new process; more records for the open window and later ones arrive
    second = _write_logs(logs, rng, 2, 400, T0 + timedelta(hours=2, minutes=30), "b")
    s2 = _stream(logs, reference, tmp_path / "st", window=timedelta(hours=2))
    assert [w.start for w in s2.state.open_windows] == [T0 + timedelta(hours=2)]
    assert s2.read() == 800  # only the new files
    closed += [w for w, _ in s2.closed_windows(T0 + timedelta(days=1))]
    everything = pl.concat([first, second]).with_columns(
        pl.col("timestamp").str.to_datetime(time_zone="UTC")
    )
    expected = profile_frame(everything, reference)
    merged = _merged(closed)
    assert merged.rows == 2000
    assert merged.features == expected.features
    assert merged.latency == expected.latency
    # the window fed by both processes equals profiling its records at once
    mid = everything.filter(
        (pl.col("timestamp") >= T0 + timedelta(hours=2))
        & (pl.col("timestamp") < T0 + timedelta(hours=4))
    )
    spanning = next(w for w in closed if w.start == T0 + timedelta(hours=2))
    assert spanning.profile.features == profile_frame(mid, reference).features


def test_crash_between_write_and_commit_replays_the_same_windows(tmp_path, reference):
    logs = tmp_path / "logs"
    logs.mkdir()
    rng = np.random.default_rng(4)
    _write_logs(logs, rng, 2, 300, T0, "a")
    s0 = _stream(logs, reference, tmp_path / "st")
    s0.read(max_batches=0)
    s0.commit()
    s1 = _stream(logs, reference, tmp_path / "st")
    s1.read()
    written = s1.closed_windows()  # ... written to the lake, then the process dies: no commit
    s2 = _stream(logs, reference, tmp_path / "st")
    s2.read()
    again = s2.closed_windows()
    assert [(w.start, w.version, part) for w, part in again] == [
        (w.start, w.version, part) for w, part in written
    ]
    for (a, _), (b, _) in zip(written, again, strict=True):
        assert a.profile.rows == b.profile.rows and a.profile.features == b.profile.features


def test_late_records_become_a_numbered_part_never_an_overwrite(tmp_path, reference):
    st = StreamState(reference, tmp_path / "st", window=timedelta(hours=1), lateness=timedelta(0))
    rec = lambda t, age: {"timestamp": t, "age": age, "ward": "ED"}  # noqa: E731
    st.add(
        pl.DataFrame(
            [rec(T0 + timedelta(minutes=5), 50.0), rec(T0 + timedelta(hours=1, minutes=1), 51.0)]
        )
    )
    assert [(w.start, p) for w, p in st.closed_windows()] == [(T0, None)]
    st.commit()
    st = StreamState(reference, tmp_path / "st", window=timedelta(hours=1), lateness=timedelta(0))
    st.add(pl.DataFrame([rec(T0 + timedelta(minutes=7), 52.0), rec(T0 + timedelta(hours=3), 1.0)]))
    parts = [(w.start, p, w.profile.rows) for w, p in st.closed_windows()]
    assert parts == [(T0, "late1", 1), (T0 + timedelta(hours=1), None, 1)]


def test_checkpoint_files_are_atomic_and_errors_name_the_fix(tmp_path, reference):
    cp = Checkpoint(tmp_path / "st")
    assert cp.load() == CheckpointState()
    st = StreamState(reference, tmp_path / "st")
    st.add(pl.DataFrame({"timestamp": [T0], "age": [50.0], "ward": ["ED"]}))
    st.positions["src"] = {"offsets": {"a.jsonl": 120}}
    st.commit()
    st.commit()
    names = sorted(p.name for p in (tmp_path / "st").iterdir())
    assert names == ["checkpoint.json", "open-0000000002.parquet"]  # no temp file, no old state
    loaded = cp.load()
    assert loaded.generation == 2 and loaded.positions["src"]["offsets"]["a.jsonl"] == 120
    assert loaded.windows[0].profile.features == st.open_windows[0].profile.features
    other = build_reference(pl.DataFrame({"age": [1.0, 2.0, 3.0], "ward": ["x"] * 3}), k=1)
    with pytest.raises(ConfigError, match=r"open-\*\.parquet"):
        StreamState(other, tmp_path / "st")
    (tmp_path / "st" / "checkpoint.json").write_text("{not json")
    with pytest.raises(EdgeError, match=r"checkpoint\.json"):
        StreamState(reference, tmp_path / "st")


def test_missing_folder_is_a_config_error(tmp_path, reference):
    s = _stream(tmp_path / "nope", reference, tmp_path / "st")
    with pytest.raises(ConfigError, match="read-only"):
        s.read()


def test_consumed_files_are_marked_done_after_they_settle(tmp_path, reference):
    logs = tmp_path / "logs"
    logs.mkdir()
    _jsonl(logs / "old.jsonl", [{"timestamp": "2026-10-01T00:00:01Z", "age": 1, "ward": "ED"}])
    now = [1000.0]
    s = _stream(logs, reference, tmp_path / "st", clock=lambda: now[0])
    assert s.read() == 1
    s.commit()

    def done() -> list[str]:
        return json.loads((tmp_path / "st" / "checkpoint.json").read_text())["positions"][
            str(logs)
        ]["done"]

    assert done() == []  # read to its end, but just seen: it may still grow
    now[0] += 3599
    assert s.read() == 0
    s.commit()
    assert done() == []
    now[0] += 2  # unchanged for more than the settle time (1 h)
    assert s.read() == 0
    s.commit()
    pos = json.loads((tmp_path / "st" / "checkpoint.json").read_text())["positions"][str(logs)]
    assert pos["done"] == ["old.jsonl"] and pos["offsets"] == {}


def test_an_old_file_time_does_not_settle_a_growing_file(tmp_path, reference):
    """The file's time is compared with itself only: a log whose time says 1970 (another host's
    clock, an object store, a moved system clock) is still followed while it grows."""
    logs = tmp_path / "logs"
    logs.mkdir()
    rec = {"timestamp": "2026-10-01T00:00:01Z", "age": 1, "ward": "ED"}
    f = logs / "a.jsonl"
    _jsonl(f, [rec])
    os.utime(f, (0, 0))
    now = [0.0]
    s = _stream(logs, reference, tmp_path / "st", clock=lambda: now[0])
    assert s.read() == 1
    now[0] += 10
    with open(f, "a") as fh:
        fh.write(json.dumps(rec) + "\n")
    os.utime(f, (1, 1))
    assert s.read() == 1  # the appended line is read: the file was not marked done
    now[0] += 7200
    assert s.read() == 0 and "a.jsonl" in s._consumed


def test_a_reference_that_profiles_the_prediction_keeps_it_as_a_feature(tmp_path):
    base = pl.DataFrame({"age": [50.0, 60.0, 70.0], "prediction": [0.1, 0.5, 0.9]})
    ref = build_reference(
        base, Schema([FeatureSpec("age", "numeric"), FeatureSpec("prediction", "numeric")])
    )
    logs = tmp_path / "logs"
    logs.mkdir()
    _jsonl(logs / "a.jsonl", [{"timestamp": "2026-10-01T00:00:01Z", "age": 55, "prediction": 0.4}])
    s = _stream(logs, ref, tmp_path / "st")
    df = _rows(s)
    assert df.columns.count("prediction") == 1 and df["prediction"].to_list() == [0.4]
    assert s.read() == 0 and _stream(logs, ref, tmp_path / "st2").read() == 1
