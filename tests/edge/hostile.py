"""A corpus of hostile log files, each a few good records around one poison record.

:func:`write_corpus` writes one folder per stream (tabular JSONL, CSV, Parquet,
epoch-millisecond JSONL, SageMaker capture, KServe CloudEvents) and returns
the :class:`Case` of every file: how many of its records are good and which
(reason, line) pairs the bad-record log must name. Good records carry the
time ``T`` plus their serial number in seconds, so they all fall in the
windows of 2026-10-01 08:00-09:00 UTC; the last file of each folder is good
and sorts last (``zzz-...``), so a stream that blocked would never land it.
The poison values carry a canary (:data:`CANARY`) that must never reach a log.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

T = datetime(2026, 10, 1, 8, tzinfo=UTC)
LATER = datetime(2026, 10, 1, 20, tzinfo=UTC)  # the good file after the poison: its own window
CANARY = "MRN-CANARY-4711"
DEEP = 100_000
MAX_LINE = 1 << 20  # the streams' max_line_bytes in the test config
_serial = itertools.count()


@dataclass
class Case:
    folder: str
    name: str
    good: int
    bad: Counter[str] = field(default_factory=Counter)
    lines: list[tuple[str, int | None]] = field(default_factory=list)  # (reason, line)


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def good(at: datetime | None = None) -> dict[str, Any]:
    i = next(_serial)
    return {
        "timestamp": _iso(at or T + timedelta(seconds=i)),
        "age": 30 + i % 50,
        "ward": ["ED", "ICU", "W3"][i % 3],
        "request_id": f"req-{i}",
        "prediction": (i % 10) / 10,
        "latency_ms": 5 + i % 7,
    }


def _line(rec: dict[str, Any]) -> bytes:
    return json.dumps(rec).encode()


def _poison(**fields: Any) -> bytes:
    """A good record with some fields replaced (None: removed); JSON text as Python writes it."""
    rec = good()
    rec["note"] = CANARY
    for k, v in fields.items():
        if v is None:
            rec.pop(k, None)
        else:
            rec[k] = v
    return json.dumps(rec).encode()


def _raw(*pairs: str) -> bytes:
    """A record written by hand (raw JSON members) around a good timestamp."""
    body = ", ".join(pairs)
    return ("{" + body + f', "note": "{CANARY}"' + "}").encode()


def _ts() -> str:
    return json.dumps(_iso(T + timedelta(seconds=next(_serial))))


def _jsonl_line_cases() -> dict[str, tuple[bytes, str]]:
    deep_list = '{"timestamp": ' + _ts() + ', "age": ' + "[" * DEEP + "]" * DEEP + "}"
    deep_obj = '{"ward": ' + '{"a": ' * DEEP + "1" + "}" * DEEP + "}"
    return {
        "bool-in-numeric": (_poison(age=True), "bad_value"),
        "false-in-numeric": (_poison(age=False), "bad_value"),
        "list-in-numeric": (_poison(age=[1, 2, 3]), "bad_value"),
        "object-in-numeric": (_poison(age={"v": 1}), "bad_value"),
        "text-in-numeric": (_poison(age="forty " + CANARY), "bad_value"),
        "huge-int-in-numeric": (_raw(f'"timestamp": {_ts()}', '"age": 1' + "0" * 400), "bad_value"),
        "list-in-categorical": (_poison(ward=["ED", CANARY]), "bad_value"),
        "object-in-categorical": (_poison(ward={"name": CANARY}), "bad_value"),
        "text-in-latency": (_poison(latency_ms="slow"), "bad_value"),
        "object-request-id": (_poison(request_id={"mrn": CANARY}), "bad_value"),
        "nan-literal": (_poison(age=float("nan")), "non_finite"),
        "infinity-literal": (_poison(age=float("inf")), "non_finite"),
        "minus-infinity-literal": (_poison(latency_ms=float("-inf")), "non_finite"),
        "nan-in-an-extra-field": (_poison(extra={"x": [float("nan")]}), "non_finite"),
        "nested-100000-lists": (deep_list.encode(), "too_deep"),
        "nested-100000-objects": (deep_obj.encode(), "too_deep"),
        "year-9999": (_poison(timestamp="9999-12-31T23:59:59Z"), "bad_timestamp"),
        "year-1": (_poison(timestamp="0001-01-01T00:00:00Z"), "bad_timestamp"),
        "year-1969": (_poison(timestamp="1969-12-31T23:59:59Z"), "bad_timestamp"),
        "year-2262": (_poison(timestamp="2262-04-12T00:00:00+00:00"), "bad_timestamp"),
        "month-13": (_poison(timestamp="2026-13-01T08:00:00Z"), "bad_timestamp"),
        "words-with-offset": (_poison(timestamp="yesterday+01:00"), "bad_timestamp"),
        "naive-timestamp": (_poison(timestamp="2026-10-01T08:00:00"), "naive_timestamp"),
        "number-timestamp": (_poison(timestamp=1790000000), "bad_timestamp"),
        "bool-timestamp": (_poison(timestamp=True), "bad_timestamp"),
        "list-timestamp": (_poison(timestamp=["2026-10-01T08:00:00Z"]), "bad_timestamp"),
        "object-timestamp": (_poison(timestamp={"t": "2026-10-01T08:00:00Z"}), "bad_timestamp"),
        "empty-timestamp": (_poison(timestamp=""), "missing_field"),
        "no-timestamp": (_poison(timestamp=None), "missing_field"),
        "invalid-utf8": (_poison(ward="ED").replace(b'"ED"', b'"\xff\xfe\xc3"'), "bad_encoding"),
        "latin1": (
            _poison(ward="Zürich").replace(b"\\u00fc", "ü".encode("latin-1")),
            "bad_encoding",
        ),
        "lone-surrogate": (_poison(ward="x").replace(b'"x"', b'"\\ud800"'), "bad_encoding"),
        "utf16-line": (_poison().decode().encode("utf-16"), "bad_encoding"),
        "empty-line": (b"", "empty_line"),
        "blank-line": (b"  \t ", "empty_line"),
        "array-value": (json.dumps([good(), CANARY]).encode(), "not_an_object"),
        "number-value": (b"42", "not_an_object"),
        "null-value": (b"null", "not_an_object"),
        "string-value": (json.dumps(CANARY).encode(), "not_an_object"),
        "duplicate-key": (_raw(f'"timestamp": {_ts()}', '"age": 40', '"age": 41'), "duplicate_key"),
        "duplicate-key-types": (
            _raw(f'"timestamp": {_ts()}', '"ward": "ED"', '"ward": 7'),
            "duplicate_key",
        ),
        "unterminated-object": (_poison()[:-5], "bad_json"),
        "trailing-garbage": (_poison() + b" }}", "bad_json"),
        "nul-byte": (_poison(ward="ED").replace(b'"ED"', b'"E\x00D"'), "bad_json"),
        "single-quotes": (b"{'timestamp': '2026-10-01T08:00:00Z'}", "bad_json"),
        "huge-line": (b'{"pad": "' + b"x" * (3 * MAX_LINE) + b'"}', "line_too_long"),
    }


def _jsonl(folder: Path, name: str, lines: list[bytes], *, end: bytes = b"\n") -> None:
    (folder / name).write_bytes(b"\n".join(lines) + end)


def _csv_text(rows: list[dict[str, Any]]) -> list[bytes]:
    cols = ["timestamp", "age", "ward", "request_id", "prediction", "latency_ms"]
    return [",".join(cols).encode()] + [",".join(str(r[c]) for c in cols).encode() for r in rows]


def write_corpus(root: Path) -> list[Case]:
    """Write the corpus under ``root`` (one folder per stream); returns every file's case."""
    cases: list[Case] = []
    folders = {k: root / k for k in ("jsonl", "csv", "parquet", "epoch", "sagemaker", "kserve")}
    for f in folders.values():
        f.mkdir(parents=True)

    # -- tabular JSONL: two good records, the poison line, two good records -----------------
    d = folders["jsonl"]
    for i, (name, (line, reason)) in enumerate(_jsonl_line_cases().items()):
        _jsonl(
            d,
            f"{i:03d}-{name}.jsonl",
            [_line(good()), _line(good()), line, _line(good()), _line(good())],
        )
        cases.append(Case("jsonl", f"{i:03d}-{name}.jsonl", 4, Counter({reason: 1}), [(reason, 3)]))
    n = len(cases)
    # a naive timestamp at the head costs only itself: the ten good records after it land
    _jsonl(
        d,
        f"{n:03d}-naive-head.jsonl",
        [_poison(timestamp="2026-10-01T08:00:00")] + [_line(good()) for _ in range(10)],
    )
    cases.append(
        Case(
            "jsonl",
            f"{n:03d}-naive-head.jsonl",
            10,
            Counter(naive_timestamp=1),
            [("naive_timestamp", 1)],
        )
    )
    # a UTF-8 byte order mark: the first record still lands
    (d / f"{n + 1:03d}-bom.jsonl").write_bytes(
        b"\xef\xbb\xbf" + b"\n".join(_line(good()) for _ in range(3)) + b"\n"
    )
    cases.append(Case("jsonl", f"{n + 1:03d}-bom.jsonl", 3))
    # Windows line ends and a BOM
    (d / f"{n + 2:03d}-bom-crlf.jsonl").write_bytes(
        b"\xef\xbb\xbf" + b"\r\n".join(_line(good()) for _ in range(3)) + b"\r\n"
    )
    cases.append(Case("jsonl", f"{n + 2:03d}-bom-crlf.jsonl", 3))
    # the last line cut short (no newline, not JSON): counted once the file has settled
    _jsonl(
        d,
        f"{n + 3:03d}-truncated-tail.jsonl",
        [_line(good()), _line(good()), _poison()[:40]],
        end=b"",
    )
    cases.append(
        Case(
            "jsonl",
            f"{n + 3:03d}-truncated-tail.jsonl",
            2,
            Counter(truncated_line=1),
            [("truncated_line", 3)],
        )
    )
    # a complete last record without its newline lands
    _jsonl(d, f"{n + 4:03d}-no-final-newline.jsonl", [_line(good()), _line(good())], end=b"")
    cases.append(Case("jsonl", f"{n + 4:03d}-no-final-newline.jsonl", 2))
    # an over-long last line without its newline: never read whole
    _jsonl(
        d,
        f"{n + 5:03d}-huge-tail.jsonl",
        [_line(good()), b'{"pad": "' + b"y" * (2 * MAX_LINE)],
        end=b"",
    )
    cases.append(
        Case(
            "jsonl",
            f"{n + 5:03d}-huge-tail.jsonl",
            1,
            Counter(line_too_long=1),
            [("line_too_long", 2)],
        )
    )
    # an empty file and a file of blank lines
    (d / f"{n + 6:03d}-empty.jsonl").write_bytes(b"")
    cases.append(Case("jsonl", f"{n + 6:03d}-empty.jsonl", 0))
    (d / f"{n + 7:03d}-only-newlines.jsonl").write_bytes(b"\n\n")
    cases.append(
        Case(
            "jsonl",
            f"{n + 7:03d}-only-newlines.jsonl",
            0,
            Counter(empty_line=2),
            [("empty_line", 1), ("empty_line", 2)],
        )
    )
    # mixed numeric and text predictions: the text one that is no number costs only itself
    mixed = [
        good(),
        good(),
        {**good(), "prediction": "ICU " + CANARY},
        {**good(), "prediction": "0.25"},
    ]
    _jsonl(d, f"{n + 8:03d}-text-prediction.jsonl", [_line(r) for r in mixed])
    cases.append(
        Case(
            "jsonl",
            f"{n + 8:03d}-text-prediction.jsonl",
            3,
            Counter(bad_value=1),
            [("bad_value", 3)],
        )
    )

    # -- CSV ------------------------------------------------------------------------------
    d = folders["csv"]
    csv_cases: dict[str, tuple[bytes, str]] = {
        "ragged-short": (f"{_iso(T)},40".encode(), "ragged_row"),
        "ragged-long": (f"{_iso(T)},40,ED,r,0.1,3,{CANARY}".encode(), "ragged_row"),
        "unclosed-quote": (f'{_iso(T)},40,"ED,r,0.1,3'.encode(), "bad_csv"),
        "text-after-quote": (f'{_iso(T)},40,"ED"x,r,0.1,3'.encode(), "bad_csv"),
        "bool-in-numeric": (f"{_iso(T)},true,ED,r,0.1,3".encode(), "bad_value"),
        "text-in-numeric": (f"{_iso(T)},{CANARY},ED,r,0.1,3".encode(), "bad_value"),
        "invalid-utf8": (f"{_iso(T)},40,".encode() + b"\xff\xfe,r,0.1,3", "bad_encoding"),
        "year-9999": (b"9999-12-31T23:59:59Z,40,ED,r,0.1,3", "bad_timestamp"),
        "naive": (b"2026-10-01T08:00:00,40,ED,r,0.1,3", "naive_timestamp"),
        "blank": (b"", "empty_line"),
    }
    for i, (name, (line, reason)) in enumerate(csv_cases.items()):
        text = _csv_text([good(), good()])
        text.insert(2, line)
        text.extend(_csv_text([good(), good()])[1:])
        _jsonl(d, f"{i:03d}-{name}.csv", text)
        cases.append(Case("csv", f"{i:03d}-{name}.csv", 4, Counter({reason: 1}), [(reason, 3)]))
    n = len(csv_cases)
    text = _csv_text([good() for _ in range(3)])
    (d / f"{n:03d}-bom.csv").write_bytes(b"\xef\xbb\xbf" + b"\n".join(text) + b"\n")
    cases.append(Case("csv", f"{n:03d}-bom.csv", 3))
    text = _csv_text([good() for _ in range(3)])
    text.insert(1, b"2026-10-01T08:00:00,40,ED,r,0.1,3")  # naive, at the head
    _jsonl(d, f"{n + 1:03d}-naive-head.csv", text)
    cases.append(
        Case(
            "csv",
            f"{n + 1:03d}-naive-head.csv",
            3,
            Counter(naive_timestamp=1),
            [("naive_timestamp", 2)],
        )
    )
    text = _csv_text([good() for _ in range(2)])
    text[0] += b",age"  # a repeated column name: the first is read
    text[1:] = [t + b",99" for t in text[1:]]
    _jsonl(d, f"{n + 2:03d}-repeated-column.csv", text)
    cases.append(Case("csv", f"{n + 2:03d}-repeated-column.csv", 2))

    # -- Parquet ----------------------------------------------------------------------------
    d = folders["parquet"]

    def frame(k: int) -> pl.DataFrame:
        rows = [good() for _ in range(k)]
        return pl.DataFrame(rows).with_columns(
            pl.col("timestamp").str.to_datetime(time_zone="UTC", time_unit="us")
        )

    def parquet(df: pl.DataFrame) -> bytes:
        buf = io.BytesIO()
        df.write_parquet(buf)
        return buf.getvalue()

    ok = parquet(frame(3))
    (d / "000-corrupt-footer.parquet").write_bytes(ok[:-12] + b"\x00" * 12)
    cases.append(
        Case(
            "parquet",
            "000-corrupt-footer.parquet",
            0,
            Counter(unreadable_file=1),
            [("unreadable_file", None)],
        )
    )
    (d / "001-not-parquet.parquet").write_bytes(b"PAR1" + CANARY.encode() * 10)
    cases.append(
        Case(
            "parquet",
            "001-not-parquet.parquet",
            0,
            Counter(unreadable_file=1),
            [("unreadable_file", None)],
        )
    )
    (d / "002-cut-short.parquet").write_bytes(ok[: len(ok) // 2])
    cases.append(
        Case(
            "parquet",
            "002-cut-short.parquet",
            0,
            Counter(unreadable_file=1),
            [("unreadable_file", None)],
        )
    )
    (d / "003-bool-age.parquet").write_bytes(
        parquet(frame(3).with_columns(pl.lit(True).alias("age")))
    )
    cases.append(
        Case(
            "parquet",
            "003-bool-age.parquet",
            0,
            Counter(bad_value=3),
            [("bad_value", 1), ("bad_value", 2), ("bad_value", 3)],
        )
    )
    (d / "004-list-age.parquet").write_bytes(
        parquet(frame(2).with_columns(pl.concat_list("age", "age").alias("age")))
    )
    cases.append(
        Case(
            "parquet",
            "004-list-age.parquet",
            0,
            Counter(bad_value=2),
            [("bad_value", 1), ("bad_value", 2)],
        )
    )
    (d / "005-text-age.parquet").write_bytes(
        parquet(frame(2).with_columns(pl.Series("age", ["41", CANARY])))
    )
    cases.append(
        Case("parquet", "005-text-age.parquet", 1, Counter(bad_value=1), [("bad_value", 2)])
    )
    (d / "006-int-timestamp.parquet").write_bytes(
        parquet(frame(2).with_columns(pl.col("timestamp").dt.epoch("s")))
    )
    cases.append(
        Case(
            "parquet",
            "006-int-timestamp.parquet",
            0,
            Counter(bad_timestamp=2),
            [("bad_timestamp", 1), ("bad_timestamp", 2)],
        )
    )
    (d / "007-naive-timestamp.parquet").write_bytes(
        parquet(frame(2).with_columns(pl.col("timestamp").dt.replace_time_zone(None)))
    )
    cases.append(
        Case(
            "parquet",
            "007-naive-timestamp.parquet",
            0,
            Counter(naive_timestamp=2),
            [("naive_timestamp", 1), ("naive_timestamp", 2)],
        )
    )
    far = frame(3).with_columns(
        pl.Series("timestamp", [T, datetime(9999, 12, 31, tzinfo=UTC), T]).dt.cast_time_unit("us")
    )
    (d / "008-year-9999.parquet").write_bytes(parquet(far))
    cases.append(
        Case(
            "parquet", "008-year-9999.parquet", 2, Counter(bad_timestamp=1), [("bad_timestamp", 2)]
        )
    )
    (d / "009-empty.parquet").write_bytes(parquet(frame(1).head(0)))
    cases.append(Case("parquet", "009-empty.parquet", 0))

    # -- epoch milliseconds (timestamp_format: epoch_ms) ------------------------------------
    d = folders["epoch"]

    def epoch_good() -> dict[str, Any]:
        rec = good()
        rec["timestamp"] = int(datetime.fromisoformat(rec["timestamp"]).timestamp() * 1000)
        return rec

    epoch_cases: dict[str, tuple[Any, str]] = {
        "iso-text": ("2026-10-01T08:00:00Z", "bad_timestamp"),
        "bool": (True, "bad_timestamp"),
        "huge": (1e30, "bad_timestamp"),
        "negative": (-5_000, "bad_timestamp"),
        "list": ([1790000000000], "bad_timestamp"),
    }
    for i, (name, (value, reason)) in enumerate(epoch_cases.items()):
        lines = [
            _line(epoch_good()),
            _line({**epoch_good(), "timestamp": value}),
            _line(epoch_good()),
        ]
        _jsonl(d, f"ep{i:03d}-{name}.jsonl", lines)
        cases.append(
            Case("epoch", f"ep{i:03d}-{name}.jsonl", 2, Counter({reason: 1}), [(reason, 2)])
        )
    text = {**epoch_good()}
    text["timestamp"] = str(text["timestamp"])  # a number written as text is a number
    _jsonl(d, "ep005-text-number.jsonl", [_line(text)])
    cases.append(Case("epoch", "ep005-text-number.jsonl", 1))

    # -- SageMaker Data Capture -------------------------------------------------------------
    d = folders["sagemaker"]

    def capture(inp: Any, out: Any = None, t: str | None = None, enc: str = "JSON") -> bytes:
        g = good()
        data_in = inp if isinstance(inp, str) else json.dumps(inp)
        data_out = json.dumps({"predictions": [0.4]}) if out is None else out
        return json.dumps(
            {
                "captureData": {
                    "endpointInput": {
                        "observedContentType": "application/json",
                        "mode": "INPUT",
                        "data": data_in,
                        "encoding": enc,
                    },
                    "endpointOutput": {
                        "observedContentType": "application/json",
                        "mode": "OUTPUT",
                        "data": data_out,
                        "encoding": "JSON",
                    },
                },
                "eventMetadata": {"eventId": g["request_id"], "inferenceTime": t or g["timestamp"]},
                "eventVersion": "0",
            }
        ).encode()

    def capture_good() -> bytes:
        return capture({"instances": [{"age": 50, "ward": "ED"}]})

    sm_cases: dict[str, tuple[bytes, str]] = {
        "nan-in-data": (capture('{"instances": [{"age": NaN, "ward": "ED"}]}'), "non_finite"),
        "deep-data": (capture('{"instances": ' + "[" * DEEP + "]" * DEEP + "}"), "too_deep"),
        "duplicate-key-in-data": (
            capture('{"instances": [{"age": 1, "age": 2}]}'),
            "duplicate_key",
        ),
        "bool-feature": (capture({"instances": [{"age": True, "ward": "ED"}]}), "bad_value"),
        "year-9999": (
            capture({"instances": [{"age": 5, "ward": "ED"}]}, t="9999-12-31T23:59:59Z"),
            "bad_timestamp",
        ),
        "bad-base64": (capture("!!not base64!!", enc="BASE64"), "bad_tensor"),
        "huge-csv-field": (capture("1," + "9" * 200_000, enc="CSV"), "bad_tensor"),
        "no-capture-data": (json.dumps({"eventMetadata": {}}).encode(), "missing_field"),
        "not-json": (b'{"captureData": ', "bad_json"),
    }
    for i, (name, (line, reason)) in enumerate(sm_cases.items()):
        _jsonl(d, f"sm{i:03d}-{name}.jsonl", [capture_good(), line, capture_good()])
        cases.append(
            Case("sagemaker", f"sm{i:03d}-{name}.jsonl", 2, Counter({reason: 1}), [(reason, 2)])
        )

    # -- KServe CloudEvents -------------------------------------------------------------------
    d = folders["kserve"]
    ids = itertools.count()

    def event(kind: str, data: Any, t: str | None = None, eid: Any = None) -> dict[str, Any]:
        return {
            "specversion": "1.0",
            "id": eid if eid is not None else f"ev-{next(ids)}",
            "type": f"org.kubeflow.serving.inference.{kind}",
            "source": "test",
            "time": t or _iso(T + timedelta(seconds=next(_serial))),
            "data": data,
        }

    def pair(req: Any = None, resp: Any = None) -> list[bytes]:
        eid = f"pair-{next(ids)}"
        a = event("request", req or {"instances": [{"age": 44, "ward": "ICU"}]}, eid=eid)
        b = event("response", resp or {"predictions": [0.7]}, eid=eid)
        return [json.dumps(a).encode(), json.dumps(b).encode()]

    ks_cases: dict[str, tuple[bytes, str]] = {
        "deep-data": (
            (
                "{"
                + f'"id": "x1", "type": "a.request", "time": "{_iso(T)}", "data": '
                + "[" * DEEP
                + "]" * DEEP
                + "}"
            ).encode(),
            "too_deep",
        ),
        "nan-data": (
            json.dumps(event("request", {"instances": [[float("nan"), "ED"]]}, eid="x2")).encode(),
            "non_finite",
        ),
        "base64-not-json": (
            json.dumps(
                {
                    "id": "x3",
                    "type": "a.request",
                    "time": _iso(T),
                    "data_base64": base64.b64encode(b"\xff" + CANARY.encode()).decode(),
                }
            ).encode(),
            "bad_json",
        ),
        "unknown-type": (json.dumps(event("explain", {})).encode(), "unknown_event_type"),
        "year-9999": (
            json.dumps(event("request", {}, t="9999-12-31T23:59:59Z")).encode(),
            "bad_timestamp",
        ),
        "array-value": (b"[1, 2]", "not_an_object"),
    }
    for i, (name, (line, reason)) in enumerate(ks_cases.items()):
        _jsonl(d, f"ks{i:03d}-{name}.jsonl", [*pair(), line, *pair()])
        cases.append(
            Case("kserve", f"ks{i:03d}-{name}.jsonl", 2, Counter({reason: 1}), [(reason, 3)])
        )
    n = len(ks_cases)
    bool_pair = pair(req={"instances": [{"age": False, "ward": "ED"}]})
    _jsonl(d, f"ks{n:03d}-bool-feature.jsonl", [*pair(), *bool_pair, *pair()])
    cases.append(
        Case("kserve", f"ks{n:03d}-bool-feature.jsonl", 2, Counter(bad_value=1), [("bad_value", 4)])
    )

    # -- a good file after the poison, in every folder: its own window ----------------------
    for key, d in folders.items():
        if key == "parquet":
            df = pl.DataFrame([good(LATER) for _ in range(5)]).with_columns(
                pl.col("timestamp").str.to_datetime(time_zone="UTC", time_unit="us")
            )
            df.write_parquet(d / "zzz-later.parquet")
            cases.append(Case(key, "zzz-later.parquet", 5))
            continue
        if key == "csv":
            _jsonl(d, "zzz-later.csv", _csv_text([good(LATER) for _ in range(5)]))
            cases.append(Case(key, "zzz-later.csv", 5))
            continue
        if key == "epoch":
            rows = [{**good(LATER), "timestamp": int(LATER.timestamp() * 1000)} for _ in range(5)]
            _jsonl(d, "zzz-later.jsonl", [_line(r) for r in rows])
        elif key == "sagemaker":
            lines = [
                capture({"instances": [{"age": 60, "ward": "ED"}]}, t=_iso(LATER)) for _ in range(5)
            ]
            _jsonl(d, "zzz-later.jsonl", lines)
        elif key == "kserve":
            lines = []
            for _ in range(5):
                eid = f"later-{next(ids)}"
                lines += [
                    json.dumps(
                        event("request", {"instances": [[61, "ED"]]}, _iso(LATER), eid)
                    ).encode(),
                    json.dumps(
                        event("response", {"predictions": [0.2]}, _iso(LATER), eid)
                    ).encode(),
                ]
            _jsonl(d, "zzz-later.jsonl", lines)
        else:
            _jsonl(d, "zzz-later.jsonl", [_line(good(LATER)) for _ in range(5)])
        cases.append(Case(key, "zzz-later.jsonl", 5))
    return cases
