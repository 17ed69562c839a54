"""Label joining under bad input, through ``mlmon edge labels``: no traceback, bad rows counted.

A text prediction among numeric ones, a prediction store whose files disagree
on the prediction's type (written before the store fixed it), an id column
named ``id``, and label rows with values of the wrong type: the join goes on
for every good row, the bad ones are counted by reason, and the command never
prints a polars traceback.
"""

from __future__ import annotations

import json
import traceback
from pathlib import Path

import polars as pl
import pytest

from mlmon.cli import main
from mlmon.edge.collector import Collector
from mlmon.edge.config import load_config
from tests.edge.test_labels import KEY, _labelled, _setup


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLMON_HMAC_KEY", KEY)


def _labels(cli_args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        rc = main(["edge", "labels", *cli_args])
    except Exception:  # the test fails with the traceback the CLI would have printed
        pytest.fail("mlmon edge labels raised:\n" + traceback.format_exc())
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "polars" not in (out + err).lower()
    return rc, out, err


def test_a_text_prediction_and_a_mixed_store_do_not_break_joining(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg_path, records = _setup(tmp_path)
    day = records.head(400)
    # a later log file whose predictions are all text (a label, not a score): one batch of it
    texts = records.slice(400, 3).with_columns(
        pl.lit("high").alias("score"), pl.col("request_id") + "-text"
    )
    texts.with_columns(pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ")).write_ndjson(
        tmp_path / "stream" / "2026-10-04.jsonl"
    )
    Collector(load_config(cfg_path)).run_once()
    store = tmp_path / "state" / "predictions" / "risk" / "predictions"
    # a store file as an older edge wrote it: the prediction as text
    legacy = pl.read_parquet(next(store.glob("date=2026-10-01/*.parquet"))).head(5)
    legacy = legacy.with_columns(pl.col("prediction").cast(pl.String))
    legacy.write_parquet(store / "date=2026-10-01" / "00000000T000000000000-1-1.parquet")
    assert {pl.read_parquet(f).schema["prediction"] for f in store.rglob("*.parquet")} == {
        pl.Float64,
        pl.String,
    }
    lab = _labelled(day, 2).select("request_id", "label")
    lab = pl.concat([lab, _labelled(texts.with_columns(pl.lit(0.5).alias("score")), 3)
                     .select("request_id", "label")])  # fmt: skip
    lab.write_csv(tmp_path / "labels.csv")
    rc, out, _ = _labels(
        ["--config", str(cfg_path), "--file", str(tmp_path / "labels.csv")], capsys
    )
    assert rc == 0
    assert "400 matched" in out  # every numeric prediction joined; the 3 text ones were not stored
    assert "unknown id 3" in out


def test_an_id_column_named_id_and_bad_label_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg_path, records = _setup(tmp_path)
    cfg = json.loads(cfg_path.read_text())
    cfg["models"][0]["streams"][0]["request_id_column"] = "id"
    cfg["models"][0]["performance"]["id_column"] = "id"
    cfg_path.write_text(json.dumps(cfg))
    for f in (tmp_path / "stream").glob("*.jsonl"):
        pl.read_ndjson(f).rename({"request_id": "id"}).write_ndjson(f)
    Collector(load_config(cfg_path)).run_once()
    good = _labelled(records.head(300), 4).select(
        pl.col("request_id").alias("id"),
        pl.col("label"),
        pl.col("timestamp")
        .dt.offset_by("20d")
        .dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        .alias("event_time"),
    )
    ids = records.slice(300, 4).get_column("request_id").to_list()
    bad = [
        {"id": ids[0], "label": 1, "event_time": "2026-10-21T00:00:00"},  # naive
        {"id": ids[1], "label": 1, "event_time": "9999-12-31T23:59:59Z"},  # out of range
        {"id": ids[2], "label": 1, "event_time": "soon+01:00"},  # unreadable
        {"id": None, "label": 1, "event_time": "2026-10-21T00:00:00Z"},  # no id
    ]
    pl.concat([good, pl.DataFrame(bad)]).write_parquet(tmp_path / "labels.parquet")
    rc, out, _ = _labels(["--config", str(cfg_path), "--file", str(tmp_path / "labels.parquet")],
                         capsys)  # fmt: skip
    assert rc == 0
    assert "300 matched" in out and "missing 4" in out
    assert "3 of missing: a time_column value without a UTC offset" in out
    # a labels file that is all bad: counted, exit 6 (nothing joined), still no traceback
    pl.DataFrame(bad).write_parquet(tmp_path / "all-bad.parquet")
    rc, out, err = _labels(
        ["--config", str(cfg_path), "--file", str(tmp_path / "all-bad.parquet")], capsys
    )
    assert rc == 6 and "0 matched" in out and "no label record" in err


def test_labels_of_the_wrong_type_are_counted_not_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg_path, records = _setup(tmp_path, store=False)
    cfg = json.loads(cfg_path.read_text())
    cfg["models"][0]["performance"].update(
        score_column="score", prediction_time_column="predicted_at", time_column=None
    )
    cfg_path.write_text(json.dumps(cfg))
    rows = _labelled(records.head(200), 5).select(
        "request_id",
        pl.col("label").cast(pl.String),
        pl.col("score").cast(pl.String),
        pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%SZ").alias("predicted_at"),
    )
    bad = pl.DataFrame(
        {"request_id": ["x1", "x2", "x3"], "label": ["1", "0", "1"],
         "score": ["0.4", "very high", "0.2"],
         "predicted_at": ["2026-10-01T00:00:00Z", "2026-10-01T00:00:00Z", "2026-10-01T00:00:00"]}
    )  # fmt: skip
    pl.concat([rows, bad]).write_csv(tmp_path / "scored.csv")
    rc, out, err = _labels(
        ["--config", str(cfg_path), "--file", str(tmp_path / "scored.csv")], capsys
    )
    assert rc == 0, err
    assert "201 matched" in out and "missing 2" in out
    assert "1 of missing: a score_column value that is not a number" in out
    assert "1 of missing: a prediction_time_column value" in out


def test_a_jsonl_labels_file_with_broken_lines_and_mixed_types(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg_path, records = _setup(tmp_path)
    Collector(load_config(cfg_path)).run_once()
    good = _labelled(records.head(100), 6).select(
        "request_id",
        "label",
        pl.col("timestamp")
        .dt.offset_by("20d")
        .dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        .alias("event_time"),
    )
    ids = records.slice(100, 3).get_column("request_id").to_list()
    lines = [json.dumps(r) for r in good.to_dicts()]
    lines += [
        json.dumps(
            {"request_id": ids[0], "label": float("nan"), "event_time": "2026-10-21T00:00:00Z"}
        ),
        '["not", "an", "object"]',
        json.dumps({"request_id": ids[1], "label": {"v": 1}, "event_time": "2026-10-21T00:00:00Z"}),
        json.dumps({"request_id": [ids[2]], "label": 1, "event_time": "2026-10-21T00:00:00Z"}),
        '{"request_id": "x", "label": 1',
    ]
    (tmp_path / "labels.jsonl").write_text("\n".join(lines) + "\n")
    rc, out, err = _labels(
        ["--config", str(cfg_path), "--file", str(tmp_path / "labels.jsonl")], capsys
    )
    assert rc == 0, err
    assert "105 records, 100 matched" in out and "missing 5" in out
    for why in ("1 of missing: a JSONL line with a NaN", "1 of missing: a JSONL line that is not an object",
                "1 of missing: a JSONL line that is not JSON", "1 of missing: a label of the wrong type",
                "1 of missing: an id that is neither text nor a number"):  # fmt: skip
        assert why in out, (why, out)
