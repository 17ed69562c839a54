"""A folder of DICOM files through the collector: features in the lake, each file once, bad files counted."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
from pydicom.uid import JPEGLSLossless

from mlmon.analysis.lake import Lake
from mlmon.edge.collector import Collector
from mlmon.edge.config import load_config
from mlmon.edge.imaging.reference import build_imaging_reference
from mlmon.lake.references import save_reference
from tests.edge.imaging.synth import Acquisition, edge_config, instance_bytes, write_study

T0 = datetime(2026, 10, 5, 10, 0, tzinfo=UTC)


def _reference(tmp_path: Path) -> Path:
    base = tmp_path / "baseline"
    for s in range(4):
        write_study(base, Acquisition(mean=1040 + 10 * s), instances=3, seed=s, name=f"b{s}")
    ref, report = build_imaging_reference(base, model="chest-ct", k=2)
    assert report.files == 12 and report.status == {"ok": 12}
    assert report.dropped == ["NumberOfFrames"]  # single-frame baseline: no such attribute
    save_reference(ref, tmp_path / "ref.parquet")
    return tmp_path / "ref.parquet"


def _collector(tmp_path: Path, folder: Path, clock: list[datetime]) -> Collector:
    cfg = load_config(edge_config(tmp_path, _reference(tmp_path) if not (tmp_path / "ref.parquet").exists()
                                  else tmp_path / "ref.parquet",
                                  {"folder": str(folder), "settle": "0s", "partial_wait": "0s",
                                   "schedule": "every 1m"}))  # fmt: skip
    return Collector(cfg, clock=lambda: clock[0])


def test_folder_profiles_each_file_once_and_counts_bad_files(tmp_path: Path) -> None:
    incoming = tmp_path / "incoming"
    write_study(incoming, instances=4, seed=10, name="s1")
    write_study(incoming, instances=2, seed=11, name="s2")
    good = instance_bytes(seed=3)
    (incoming / "cut.dcm").write_bytes(good[: len(good) - 700])
    (incoming / "notes.txt").write_text("not an image at all")
    (incoming / "report.dcm").write_bytes(instance_bytes(pixels=False))
    (incoming / "jpegls.dcm").write_bytes(instance_bytes(syntax=JPEGLSLossless))
    clock = [T0]
    col = _collector(tmp_path, incoming, clock)
    first = col.run_once()
    assert first.records == 10 and not first.errors
    assert col.tasks[0].kind == "imaging"
    clock[0] = T0 + timedelta(hours=2)
    again = col.run_once()  # nothing new: every file was read once
    assert again.records == 0 and again.windows == 1

    lake = Lake(str(tmp_path / "lake"))
    prof = lake.read("profiles", model="chest-ct")
    counts = dict(zip(prof["feature"], prof["count"], strict=True))
    assert counts["Manufacturer"] == 9  # 6 good + cut + report + jpeg-ls: metadata profiled
    assert counts["image_mean"] == 6  # pixels only where decodable and whole
    assert counts["read_status"] == 10
    status = prof.filter(pl.col("feature") == "read_status").row(0, named=True)
    by_status = dict(zip(status["categories"], status["bin_counts"], strict=True))
    # exact counts in the lake (issue 19: small counts are folded where shown, not per window)
    assert by_status == {
        "ok": 6, "no_pixel_data": 1, "undecodable": 1, "truncated": 1, "not_dicom": 1,
        "__other__": 0,
    }  # fmt: skip
    study_first = prof.filter(pl.col("feature") == "study_first_instance")
    assert study_first["sum"][0] == 5  # s1, s2, and the cut, report and JPEG-LS files' studies
    assert study_first["count"][0] == 9  # the text file has no study

    # a restart reads nothing twice
    clock[0] = T0 + timedelta(hours=3)
    col2 = _collector(tmp_path, incoming, clock)
    assert col2.run_once().records == 0
    write_study(incoming, instances=1, seed=12, name="s3")
    assert col2.run_once().records == 1


def test_bad_files_are_counted_by_reason_without_content(tmp_path: Path, caplog) -> None:
    incoming = tmp_path / "incoming"
    good = instance_bytes(seed=3)
    (incoming).mkdir()
    (incoming / "CANARY^ZELDA.dcm").write_bytes(good[:900])
    (incoming / "x.bin").write_bytes(b"\x00" * 4000)
    (incoming / "j.dcm").write_bytes(instance_bytes(syntax=JPEGLSLossless))
    clock = [T0]
    col = _collector(tmp_path, incoming, clock)
    caplog.set_level("WARNING")
    col.run_once()
    src_bad = col.metrics.bad_records
    samples = {
        s.labels["reason"]: s.value
        for m in src_bad.collect()
        for s in m.samples
        if s.name.endswith("_total")
    }
    assert samples == {"truncated": 1.0, "not_dicom": 1.0, "undecodable": 1.0}
    text = caplog.text
    assert "ZELDA" not in text and "CANARY" not in text
    assert "JPEG-LS Lossless" in "".join(
        str(getattr(r, "transfer_syntax", "")) for r in caplog.records
    )


def test_a_read_only_s3_prefix_is_read_like_a_folder(tmp_path: Path, s3_server) -> None:
    """`folder: s3://bucket/prefix` with the reader role (list + get): each object once."""
    from tests.s3server import BUCKET

    incoming = tmp_path / "incoming"
    write_study(incoming, instances=3, seed=20, name="p1")
    (incoming / "notes.txt").write_text("not an image at all")
    prefix = s3_server.unique_prefix()
    admin = s3_server.boto3_client("admin")
    for f in sorted(incoming.rglob("*")):
        if f.is_file():
            rel = f.relative_to(incoming).as_posix()
            admin.put_object(Bucket=BUCKET, Key=f"{prefix}/{rel}", Body=f.read_bytes())
    imaging = {"folder": f"s3://{BUCKET}/{prefix}", "settle": "0s", "schedule": "every 1m",
               "storage_options": s3_server.storage_options("reader", prefix=prefix)}  # fmt: skip
    cfg = load_config(edge_config(tmp_path, _reference(tmp_path), imaging))
    clock = [T0]
    col = Collector(cfg, clock=lambda: clock[0])
    first = col.run_once()
    assert first.records == 4 and not first.errors
    clock[0] = T0 + timedelta(hours=2)
    assert col.run_once().records == 0  # each object once
    prof = Lake(str(tmp_path / "lake")).read("profiles", model="chest-ct")
    counts = dict(zip(prof["feature"], prof["count"], strict=True))
    assert counts["image_mean"] == 3 and counts["read_status"] == 4


def test_a_file_written_in_pieces_is_read_once_complete_and_never_counted_twice(
    tmp_path: Path,
) -> None:
    """Read when complete: a file cut short while young waits; a rewrite of it is not counted again."""
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    ref = _reference(tmp_path)
    imaging = {"folder": str(incoming), "settle": "0s", "partial_wait": "1h"}
    cfg = load_config(edge_config(tmp_path, ref, imaging))
    clock = [T0]
    col = Collector(cfg, clock=lambda: clock[0])
    whole = instance_bytes(seed=5)
    path = incoming / "CANARY^ZELDA_1.dcm"
    with path.open("wb") as f:  # a copy in progress: the first pieces are on disk
        f.write(whole[:1000])
        f.flush()
        assert col.run_once().records == 0  # cut short while young: not counted, not marked
        f.write(whole[1000:5000])
        f.flush()
        assert col.run_once().records == 0
        f.write(whole[5000:])
    assert col.run_once().records == 1  # complete: read once, as ok
    assert col.run_once().records == 0  # unchanged
    path.write_bytes(whole)  # rewritten (new mtime), the same instance: not counted again
    os.utime(path, ns=(time.time_ns(), time.time_ns() - 100 * 10**9))  # a distinct mtime
    assert col.run_once().records == 0
    path.write_bytes(instance_bytes(seed=6))  # another instance under the same name: counted
    os.utime(path, ns=(time.time_ns(), time.time_ns() - 50 * 10**9))
    assert col.run_once().records == 1
    # a restart keeps the content keys: nothing twice
    col2 = Collector(cfg, clock=lambda: clock[0])
    assert col2.run_once().records == 0
    clock[0] = T0 + timedelta(hours=2)
    col2.run_once()  # the window closes
    prof = Lake(str(tmp_path / "lake")).read("profiles", model="chest-ct")
    status = prof.filter(pl.col("feature") == "read_status")
    assert status["count"].sum() == 2  # two instances, both ok; the partial reads left no trace
    state = "".join(
        p.read_text(errors="replace") for p in (tmp_path / "state").rglob("*") if p.is_file()
    )
    assert "CANARY" not in state and "ZELDA" not in state  # the state keeps tokens, not names


def test_a_file_that_stays_cut_short_is_counted_once_it_is_old(tmp_path: Path) -> None:
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    good = instance_bytes(seed=3)
    (incoming / "cut.dcm").write_bytes(good[: len(good) - 700])
    old = time.time() - 7200
    os.utime(incoming / "cut.dcm", (old, old))  # written two hours ago and never finished
    imaging = {"folder": str(incoming), "settle": "0s", "partial_wait": "1h"}
    col = Collector(load_config(edge_config(tmp_path, _reference(tmp_path), imaging)),
                    clock=lambda: T0)  # fmt: skip
    assert col.run_once().records == 1
    assert col.run_once().records == 0


def test_series_level_features_count_each_series_once(tmp_path: Path) -> None:
    """A 10-slice CT series and five one-image series: per instance 10 to 5, per series 1 to 5."""
    base = tmp_path / "baseline"
    write_study(base, Acquisition(kvp=120.0), instances=4, seed=1, name="b0")
    for s in range(4):
        write_study(base, Acquisition(kvp=80.0), instances=1, seed=10 + s, name=f"b{s + 1}")
    ref, _ = build_imaging_reference(base, model="chest-ct", k=1, series=True)
    assert {"KVP", "series_KVP", "series_image_mean", "series_Manufacturer"} <= set(
        ref.schema.names
    )
    save_reference(ref, tmp_path / "ref.parquet")
    incoming = tmp_path / "incoming"
    write_study(incoming, Acquisition(kvp=120.0), instances=10, seed=2, name="ct")
    for s in range(5):
        write_study(incoming, Acquisition(kvp=80.0), instances=1, seed=20 + s, name=f"cr{s}")
    imaging = {"folder": str(incoming), "settle": "0s", "partial_wait": "0s"}
    clock = [T0]
    col = Collector(load_config(edge_config(tmp_path, tmp_path / "ref.parquet", imaging)),
                    clock=lambda: clock[0])  # fmt: skip
    assert col.run_once().records == 15
    clock[0] = T0 + timedelta(hours=2)
    col.run_once()
    prof = Lake(str(tmp_path / "lake")).read("profiles", model="chest-ct")
    kvp = prof.filter(pl.col("feature") == "KVP").row(0, named=True)
    per_series = prof.filter(pl.col("feature") == "series_KVP").row(0, named=True)
    assert (kvp["count"], kvp["sum"]) == (15, 10 * 120.0 + 5 * 80.0)
    assert (per_series["count"], per_series["nulls"], per_series["sum"]) == (6, 9, 120.0 + 5 * 80.0)
