"""Inference log streams: formats, bad records, privacy of logs, exactly-once across restarts."""

from __future__ import annotations

import base64
import json
import logging
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from mlmon.edge.records import BadRecords, ParseContext, parse_records
from mlmon.edge.streams import FileStream, StreamState
from mlmon.profiles.frame import build_reference, profile_frame

SECRET = b"k" * 32
FEATURES = ["age", "ward"]
T0 = datetime(2026, 10, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def reference():
    rng = np.random.default_rng(0)
    return build_reference(
        pl.DataFrame({"age": rng.normal(60, 10, 2000), "ward": rng.choice(["ED", "ICU"], 2000)}),
        k=1,
    )


def ctx(**kw) -> ParseContext:
    return ParseContext(FEATURES, SECRET, **kw)


def test_tabular_records_hmac_ids_and_count_naive_timestamps():
    c = ctx()
    recs = [
        {
            "timestamp": "2026-10-01T10:00:00Z",
            "age": 50,
            "ward": "ED",
            "request_id": "MRN-0042",
            "latency_ms": 12,
        },
        {"timestamp": "2026-10-01T10:00:00", "age": 51, "ward": "ED"},
        {"age": 52, "ward": "ED"},
    ]
    df = parse_records("tabular", recs, c)
    assert df.height == 1 and df["age"][0] == 50 and df["latency_ms"][0] == 12.0
    assert "MRN-0042" not in df.write_csv() and len(df["request_id_hmac"][0]) == 64
    assert c.bad == {"naive_timestamp": 1, "missing_timestamp": 1}


def _ce(eid: str, kind: str, t: datetime, data: dict) -> dict:
    return {"specversion": "1.0", "id": eid, "type": f"org.kubeflow.serving.inference.{kind}",
            "source": "http://localhost:9081/", "time": t.isoformat().replace("+00:00", "Z"), "data": data}  # fmt: skip


def test_kserve_cloudevents_join_v1_and_v2_and_count_unmatched():
    c = ctx()
    events = [
        _ce(
            "a",
            "request",
            T0,
            {"instances": [{"age": 40, "ward": "ICU"}, {"age": 41, "ward": "ED"}]},
        ),
        _ce("a", "response", T0 + timedelta(milliseconds=30), {"predictions": [0.1, 0.2]}),
        _ce(
            "b",
            "request",
            T0,
            {
                "inputs": [
                    {"name": "age", "shape": [1], "datatype": "FP64", "data": [70]},
                    {"name": "ward", "shape": [1], "datatype": "BYTES", "data": ["ICU"]},
                ]
            },
        ),
        _ce(
            "b",
            "response",
            T0 + timedelta(milliseconds=5),
            {
                "model_name": "m",
                "model_version": "3",
                "outputs": [{"name": "p", "shape": [1], "datatype": "FP64", "data": [0.9]}],
            },
        ),
        _ce("c", "request", T0, {"instances": [[1, "ED"]]}),
        _ce("d", "response", T0, {"predictions": [1]}),
        _ce("e", "request", T0, {"instances": [{"age": 1, "ward": "ED"}]}),
        _ce("e", "response", T0, {"predictions": [1, 2]}),
    ]
    df = parse_records("kserve_cloudevents", events, c)
    assert df.sort("age")["age"].to_list() == [40, 41, 70]
    assert df.filter(pl.col("age") == 70)["model_version"][0] == "3"
    assert df.filter(pl.col("age") == 40)["latency_ms"][0] == pytest.approx(30.0)
    assert c.bad == {"unmatched": 2, "bad_tensor": 1}


def test_sagemaker_capture_csv_json_and_base64():
    c = ctx()

    def line(inp, out, enc="CSV", ctype="text/csv", t="2026-10-01T10:00:00Z"):
        return {
            "captureData": {
                "endpointInput": {
                    "observedContentType": ctype,
                    "mode": "INPUT",
                    "data": inp,
                    "encoding": enc,
                },
                "endpointOutput": {
                    "observedContentType": ctype,
                    "mode": "OUTPUT",
                    "data": out,
                    "encoding": enc,
                },
            },
            "eventMetadata": {"eventId": "ev-1", "inferenceTime": t},
            "eventVersion": "0",
        }

    b64 = base64.b64encode(
        json.dumps({"instances": [{"age": 30, "ward": "ICU"}]}).encode()
    ).decode()
    out64 = base64.b64encode(json.dumps({"predictions": [0.3]}).encode()).decode()
    recs = [
        line("55,ED\n56,ICU", "0.5\n0.6"),
        line(
            json.dumps({"instances": [[57, "ED"]]}),
            json.dumps({"predictions": [0.7]}),
            "JSON",
            "application/json",
        ),
        line(b64, out64, "BASE64", "application/json"),
        line("58,ED", "0.8", t="2026-10-01T10:00:00"),
        {"captureData": {}},
    ]
    df = parse_records("sagemaker_capture", recs, c)
    assert sorted(df["age"].cast(pl.Float64).to_list()) == [30.0, 55.0, 56.0, 57.0]
    assert sorted(df["prediction"].to_list()) == [0.3, 0.5, 0.6, 0.7]
    assert c.bad == {"naive_timestamp": 1, "missing_field": 1}


def test_malformed_records_are_logged_by_reason_never_content(tmp_path, reference, caplog):
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "a.jsonl").write_text(
        json.dumps({"timestamp": "2026-10-01T00:00:01Z", "age": 50, "ward": "ED", "request_id": "MRN-0042"}) + "\n"
        + '{"timestamp": "2026-10-01T00:00:02Z", "age": "jane.doe@example.org\n'
        + json.dumps({"timestamp": "2026-10-01T00:00:03", "age": 51, "ward": "ED", "request_id": "555-0100"}) + "\n"
    )  # fmt: skip
    stream = FileStream(folder, "jsonl", "tabular", StreamState(reference, tmp_path / "s"), SECRET)
    with caplog.at_level(logging.DEBUG):
        assert stream.read() == 1
    assert stream.bad_records == {"bad_json": 1, "naive_timestamp": 1}
    logged = caplog.text + " ".join(str(vars(r)) for r in caplog.records)
    for canary in ("MRN-0042", "jane.doe@example.org", "555-0100"):
        assert canary not in logged


def _write_logs(folder, rng, files: int, per_file: int, start: datetime):
    frames = []
    for i in range(files):
        secs = np.sort(rng.uniform(0, 3600, per_file)) + i * 3600
        df = pl.DataFrame(
            {
                "timestamp": [
                    (start + timedelta(seconds=float(s))).isoformat().replace("+00:00", "Z")
                    for s in secs
                ],
                "request_id": [f"r{i}-{j}" for j in range(per_file)],
                "age": rng.normal(62, 10, per_file).round(1),
                "ward": rng.choice(["ED", "ICU"], per_file),
                "latency_ms": rng.lognormal(3, 0.3, per_file),
            }
        )
        df.write_ndjson(folder / f"{i:03d}.jsonl")
        frames.append(df)
    return pl.concat(frames)


def test_exactly_once_across_a_restart(tmp_path, reference):
    folder = tmp_path / "logs"
    folder.mkdir()
    rng = np.random.default_rng(3)
    first = _write_logs(folder, rng, 3, 400, T0)
    s1 = FileStream(
        folder,
        "jsonl",
        "tabular",
        StreamState(reference, tmp_path / "st", window=timedelta(hours=2)),
        SECRET,
    )
    assert s1.read() == 1200
    closed = [w for w, _ in s1.closed_windows(T0 + timedelta(hours=2, minutes=30))]
    s1.commit()  # windows after 02:00 stay open, persisted as profiles

    # a new process: more files arrive, state comes back from disk
    more = folder / "more"
    more.mkdir()
    second = _write_logs(more, rng, 2, 400, T0 + timedelta(hours=3))
    for f in more.iterdir():
        f.rename(folder / f"1{f.name}")
    s2 = FileStream(
        folder,
        "jsonl",
        "tabular",
        StreamState(reference, tmp_path / "st", window=timedelta(hours=2)),
        SECRET,
    )
    assert len(s2.state.acc) == 1  # the open 02:00-04:00 window was restored
    assert s2.read() == 800  # only the new files
    closed += [w for w, _ in s2.closed_windows(T0 + timedelta(days=1))]
    merged = closed[0].profile
    for w in closed[1:]:
        merged = merged.merge(w.profile)
    everything = pl.concat([first, second]).with_columns(
        pl.col("timestamp").str.to_datetime(time_zone="UTC")
    )
    expected = profile_frame(everything, reference)
    assert merged.rows == 2000
    assert merged.features["age"] == expected.features["age"]
    assert merged.features["ward"] == expected.features["ward"]
    assert merged.latency == expected.latency
    assert sorted({w.start for w in closed}) == [T0 + timedelta(hours=2 * i) for i in range(3)]


def test_partial_last_line_is_read_once_complete(tmp_path, reference):
    folder = tmp_path / "logs"
    folder.mkdir()
    rec = {"timestamp": "2026-10-01T00:00:01Z", "age": 50, "ward": "ED"}
    f = folder / "a.jsonl"
    f.write_text(json.dumps(rec) + "\n" + json.dumps(rec)[:20])
    s = FileStream(folder, "jsonl", "tabular", StreamState(reference, tmp_path / "s"), SECRET)
    assert s.read() == 1
    f.write_text(json.dumps(rec) + "\n" + json.dumps(rec) + "\n")
    assert s.read() == 1
    assert s.bad_records == BadRecords()
