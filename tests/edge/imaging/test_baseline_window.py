"""The window holding exactly the reference's files shows no drift; bad inputs keep their names.

Issue 20 found ``read_status`` (PSI 0.75) and ``transfer_syntax`` (PSI 5.06)
flagged on the baseline itself, and every status of a bad-input window folded
into ``__other__``: rare categories were folded per window. Issue 19 made the
lake keep exact counts of allow-listed categories; this checks it on pydicom's
own test files through the folder source and the edge's drift table.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
from pydicom.data import get_testdata_file

from mlmon.analysis.lake import Lake
from mlmon.edge.collector import Collector
from mlmon.edge.config import load_config
from mlmon.edge.imaging.reference import build_imaging_reference
from mlmon.lake.references import save_reference
from tests.edge.imaging.synth import edge_config

T0 = datetime(2026, 10, 5, 10, 0, tzinfo=UTC)
ATTRS = ("Modality", "Manufacturer", "PhotometricInterpretation", "Rows")

#: A baseline with many syntaxes (several rare) and a few bad files, as an archive export has.
BASELINE = [
    "MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "MR_small_RLE.dcm",
    "MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm", "CT_small.dcm",
    "SC_rgb_rle.dcm", "SC_rgb_jpeg_gdcm.dcm", "JPEG2000.dcm", "rtdose.dcm", "image_dfl.dcm",
    "liver_1frame.dcm", "MR_truncated.dcm", "test-SR.dcm", "JPEG-lossy.dcm",
]  # fmt: skip
#: One of each failure, none of them in the reference's proportions.
BAD = ["MR_truncated.dcm", "rtplan_truncated.dcm", "test-SR.dcm", "waveform_ecg.dcm",
       "JPEG-lossy.dcm", "no_meta.dcm"]  # fmt: skip


def _copy(names: list[str], folder: Path, prefix: str = "") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        shutil.copyfile(get_testdata_file(n), folder / f"{prefix}{n}")


def test_the_baselines_own_files_show_no_drift_and_bad_inputs_keep_their_status(
    tmp_path: Path,
) -> None:
    _copy(BASELINE, tmp_path / "baseline")
    ref, report = build_imaging_reference(tmp_path / "baseline", attributes=ATTRS, model="m")
    assert report.status == {"ok": 13, "truncated": 1, "no_pixel_data": 1, "undecodable": 1}
    save_reference(ref, tmp_path / "ref.parquet")
    incoming = tmp_path / "incoming"
    _copy(BASELINE, incoming)  # window 1: exactly the reference's files
    imaging = {"folder": str(incoming), "settle": "0s", "partial_wait": "0s",
               "attributes": list(ATTRS)}  # fmt: skip
    clock = [T0]
    col = Collector(load_config(edge_config(tmp_path, tmp_path / "ref.parquet", imaging)),
                    clock=lambda: clock[0])  # fmt: skip
    assert col.run_once().records == len(BASELINE)
    clock[0] = T0 + timedelta(hours=1, minutes=5)
    _copy(BAD, incoming, prefix="bad-")  # window 2: only failures
    assert col.run_once().records == len(BAD)
    clock[0] = T0 + timedelta(hours=3)
    col.run_once()

    lake = Lake(str(tmp_path / "lake"))
    drift = lake.read("drift", model="chest-ct")
    first = drift.filter(pl.col("window_start") == T0)
    assert first.height > 0
    for feature in ("read_status", "transfer_syntax"):
        rows = first.filter(pl.col("feature") == feature)
        assert rows.height > 0, feature
        assert not rows["drifted"].any(), rows
        psi = rows.filter(pl.col("method") == "psi")["value"]
        assert psi.len() == 1 and abs(psi[0]) < 1e-9, (feature, psi[0])
    prof = lake.read("profiles", model="chest-ct")
    second = prof.filter((pl.col("feature") == "read_status") & (pl.col("window_start") > T0))
    assert second.height == 1
    counts = dict(zip(second["categories"][0], second["bin_counts"][0], strict=True))
    assert counts == {"ok": 0, "no_pixel_data": 2, "undecodable": 1, "truncated": 2,
                      "not_dicom": 1, "__other__": 0}  # fmt: skip
