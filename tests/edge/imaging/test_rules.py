"""The attribute allow-list rules, pixel statistics against numpy, tensors, and config errors."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mlmon.edge.config import load_config
from mlmon.edge.imaging.attributes import DEFAULT_ATTRIBUTES, check_attributes, refusal
from mlmon.edge.imaging.pixels import image_stats
from mlmon.edge.imaging.tensors import image_rows
from mlmon.errors import ConfigError
from tests.edge.imaging.synth import CANARIES

IDENTIFYING = [*CANARIES, "StudyInstanceUID", "SOPInstanceUID", "PatientSex", "PatientAge",
               "AcquisitionDate", "ContentTime", "OtherPatientIDs", "ProtocolName", "StationAETitle"]  # fmt: skip


def test_default_allow_list_passes_its_own_rules() -> None:
    specs = check_attributes(DEFAULT_ATTRIBUTES)
    assert [s.keyword for s in specs] == list(DEFAULT_ATTRIBUTES)
    assert {s.kind for s in specs if s.keyword in ("KVP", "Rows")} == {"numeric"}
    assert {s.kind for s in specs if s.keyword in ("Manufacturer", "Modality")} == {"categorical"}


@pytest.mark.parametrize("keyword", IDENTIFYING)
def test_identifying_attributes_are_refused(keyword: str) -> None:
    why = refusal(keyword)
    assert why is not None and why.startswith(keyword)


@pytest.mark.parametrize("tag", ["(0009,1010)", "0x00291008", "00191001"])
def test_private_tags_are_refused(tag: str) -> None:
    assert "private tag" in (refusal(tag) or "")


def test_config_with_identifying_attribute_fails_at_start_naming_it(tmp_path: Path) -> None:
    cfg = {
        "collector_id": "c", "lake": {"uri": str(tmp_path / "lake")},
        "hmac_key": {"env": "MLMON_HMAC_KEY"}, "state_dir": str(tmp_path / "s"),
        "models": [{"name": "m", "reference": str(tmp_path / "r.parquet"), "imaging": {
            "folder": str(tmp_path), "attributes": ["KVP", "PatientName", "InstitutionName",
                                                    "(0009,1010)", "NoSuchKeyword"]}}],
    }  # fmt: skip
    p = tmp_path / "edge.yaml"
    p.write_text(json.dumps(cfg))
    with pytest.raises(ConfigError) as err:
        load_config(p)
    text = str(err.value)
    assert f"{p}: models[0].imaging.attributes" in text
    for bad in ("attributes[1]: PatientName has VR PN", "attributes[2]: InstitutionName",
                "attributes[3]: (0009,1010) is a private tag", "attributes[4]: NoSuchKeyword"):  # fmt: skip
        assert bad in text
    assert "KVP" not in text.replace("(got", "")  # the allowed one is not blamed
    cfg["models"][0]["imaging"] = {"folder": str(tmp_path), "dicomweb": {"url": "https://x"}}
    p.write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="exactly one of folder"):
        load_config(p)


@pytest.mark.parametrize("slope,intercept", [(1.0, 0.0), (2.5, -1024.0), (-1.0, 100.0)])
def test_pixel_stats_equal_numpy_on_rescaled_values(slope: float, intercept: float) -> None:
    rng = np.random.default_rng(4)
    px = rng.integers(0, 4096, size=(3, 40, 50)).astype(np.uint16)
    px[0, :5, :] = 4095
    got = image_stats(px, slope=slope, intercept=intercept)
    hu = px.astype(np.float64) * slope + intercept
    assert got["image_mean"] == pytest.approx(hu.mean(), rel=1e-12)
    assert got["image_std"] == pytest.approx(hu.std(), rel=1e-12)
    for q, k in ((1, "image_p01"), (50, "image_p50"), (99, "image_p99")):
        assert got[k] == pytest.approx(np.percentile(hu, q), rel=1e-9, abs=1e-9)
    assert got["image_frac_max"] == pytest.approx(np.mean(hu == hu.max()))
    assert got["image_frac_min"] == pytest.approx(np.mean(hu == hu.min()))
    assert (got["image_rows"], got["image_columns"], got["image_frames"]) == (40.0, 50.0, 3.0)


def _png(arr: np.ndarray, fmt: str = "PNG") -> str:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return base64.b64encode(buf.getvalue()).decode()


def test_tensors_fp32_uint8_uint16_and_bytes() -> None:
    feats = ["image_mean", "image_rows", "image_columns", "read_status", "age"]
    rng = np.random.default_rng(1)
    a = rng.random((2, 16, 12)).astype(np.float32)
    rows = image_rows([{"name": "x", "datatype": "FP32", "shape": [2, 16, 12],
                        "data": a.reshape(-1).tolist()},
                       {"name": "age", "datatype": "FP32", "shape": [2], "data": [40, 50]}], feats)  # fmt: skip
    assert rows is not None and len(rows) == 2
    assert rows[1]["image_mean"] == pytest.approx(float(a[1].mean()), rel=1e-6)
    assert (rows[0]["image_rows"], rows[0]["image_columns"], rows[1]["age"]) == (16.0, 12.0, 50)
    u16 = (rng.random((20, 30)) * 60000).astype(np.uint16)
    u8 = (rng.random((20, 30, 3)) * 255).astype(np.uint8)
    rows = image_rows([{"name": "p", "datatype": "BYTES", "shape": [3],
                        "data": [_png(u16), _png(u8, "JPEG"), "bm90IGFuIGltYWdl"]}], feats)  # fmt: skip
    assert rows is not None
    assert rows[0]["image_mean"] == pytest.approx(float(u16.mean()), rel=1e-9)  # 16 bits kept
    assert rows[1]["read_status"] == "ok" and rows[1]["image_rows"] == 20.0
    assert rows[2]["read_status"] == "undecodable" and rows[2]["image_mean"] is None
    bad = image_rows(
        [{"name": "x", "datatype": "UINT8", "shape": [2, 16, 16], "data": [1, 2]}], feats
    )
    assert bad is not None and [r["read_status"] for r in bad] == ["undecodable"] * 2
    # a tabular request has no image tensor: the ordinary parser takes it
    assert (
        image_rows([{"name": "age", "datatype": "FP32", "shape": [1], "data": [3]}], feats) is None
    )
    assert (
        image_rows([{"name": "x", "datatype": "FP32", "shape": [4, 5], "data": [0] * 20}], feats)
        is None
    )


def test_read_status_of_each_bad_input_and_metadata_only() -> None:
    from pydicom.uid import JPEGLSLossless

    from mlmon.edge.imaging.dicom import read_instance
    from tests.edge.imaging.synth import instance_bytes

    specs = check_attributes(DEFAULT_ATTRIBUTES)
    key = b"k" * 32
    good = instance_bytes(seed=1)
    assert read_instance(good, specs, key).status == "ok"
    meta = read_instance(good, specs, key, pixels=False)
    assert meta.status == "ok" and "image_mean" not in meta.row and meta.row["KVP"] == 120.0
    assert read_instance(good[:100], specs, key).status == "not_dicom"  # cut inside the preamble
    assert read_instance(good[:300], specs, key).status == "truncated"  # file meta only
    cut = read_instance(good[:-500], specs, key)  # cut inside the pixel data
    assert cut.status == "truncated" and cut.row["Manufacturer"] == "GE MEDICAL SYSTEMS"
    assert cut.row["image_mean"] is None
    assert read_instance(b"%PDF-1.7 not dicom" * 20, specs, key).status == "not_dicom"
    sr = read_instance(instance_bytes(pixels=False), specs, key)
    assert sr.status == "no_pixel_data" and sr.row["Modality"] == "CT"
    jls = read_instance(instance_bytes(syntax=JPEGLSLossless), specs, key)
    assert jls.status == "undecodable"
    assert jls.row["transfer_syntax"] == "JPEG-LS Lossless Image Compression"
    assert jls.row["KVP"] == 120.0 and jls.study is not None and len(jls.study) == 64


def test_relative_imaging_folder_is_resolved_against_the_config_file(tmp_path: Path) -> None:
    cfg = {"collector_id": "c", "lake": {"uri": "lake"}, "hmac_key": {"env": "MLMON_HMAC_KEY"},
           "state_dir": "state", "models": [{"name": "m", "reference": "r.parquet",
                                             "imaging": {"folder": "incoming"}}]}  # fmt: skip
    (tmp_path / "edge.yaml").write_text(json.dumps(cfg))
    loaded = load_config(tmp_path / "edge.yaml")
    assert loaded.models[0].imaging.folder == str(tmp_path / "incoming")
