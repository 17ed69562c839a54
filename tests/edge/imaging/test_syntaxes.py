"""Complete decoding and pixel-correct statistics on pydicom's own test files (issue 20, items 2, 4).

Every transfer syntax among the files pydicom ships decodes with the ``imaging``
extra (pylibjpeg's libjpeg and openjpeg codecs for JPEG Lossless, JPEG-LS and
JPEG 2000); the same image stored in different lossless syntaxes gives
identical statistics; MONOCHROME1 is inverted, palette colour images are
measured on their looked-up colours, and RGB channels are not mixed.
"""

from __future__ import annotations

import copy
import io
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pydicom.data
import pytest
from pydicom.data import get_testdata_file

from mlmon.edge.imaging.attributes import DEFAULT_ATTRIBUTES, check_attributes
from mlmon.edge.imaging.dicom import Instance, read_instance
from mlmon.edge.imaging.pixels import IMAGE_FEATURES

KEY = b"k" * 32
SPECS = check_attributes(DEFAULT_ATTRIBUTES)
TEST_FILES = Path(pydicom.data.__file__).parent / "test_files"  # the files bundled in the wheel

#: The syntaxes the pylibjpeg codecs add (before them: ``undecodable``).
CODEC_SYNTAXES = {
    "1.2.840.10008.1.2.4.57": "JPEG Lossless",
    "1.2.840.10008.1.2.4.70": "JPEG Lossless, Selection Value 1",
    "1.2.840.10008.1.2.4.80": "JPEG-LS Lossless",
    "1.2.840.10008.1.2.4.81": "JPEG-LS Near-Lossless",
    "1.2.840.10008.1.2.4.90": "JPEG 2000 Lossless",
    "1.2.840.10008.1.2.4.91": "JPEG 2000",
}

#: The same image in several lossless syntaxes, as pydicom ships them.
SAME_IMAGE = [
    ["MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "MR_small_expb.dcm",
     "MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm",
     "MR_small_padded.dcm"],
    ["SC_rgb_rle.dcm", "SC_rgb_jpeg_gdcm.dcm", "SC_rgb_gdcm_KY.dcm"],
    ["SC_rgb_small_odd.dcm", "SC_rgb_small_odd_big_endian.dcm"],
    ["rtdose.dcm", "rtdose_expb.dcm", "rtdose_rle.dcm"],
    ["rtdose_1frame.dcm", "rtdose_expb_1frame.dcm", "rtdose_rle_1frame.dcm"],
    ["liver_1frame.dcm", "liver_expb_1frame.dcm"],
]  # fmt: skip


def _read(source: Any) -> Instance:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about its deliberately odd test files
        return read_instance(source, SPECS, KEY)


def _stats(inst: Instance) -> dict[str, Any]:
    """The image statistics that are set (a grey image has no channel means)."""
    return {k: inst.row[k] for k in IMAGE_FEATURES if inst.row[k] is not None}


def _syntax(path: Path) -> str | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:
        return None
    uid = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    return None if uid is None else str(uid)


def _bytes(ds: pydicom.Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def test_every_transfer_syntax_of_pydicoms_test_files_decodes() -> None:
    by_syntax: dict[str, list[str]] = defaultdict(list)
    for path in sorted(TEST_FILES.rglob("*")):
        uid = _syntax(path) if path.is_file() else None
        if uid is None:
            continue
        inst = _read(path)
        by_syntax[uid].append(inst.status)
        if uid in CODEC_SYNTAXES:  # the codecs decode every file of these syntaxes
            assert inst.status in {"ok", "no_pixel_data", "truncated"}, (path.name, inst.status)
    assert set(CODEC_SYNTAXES) - {"1.2.840.10008.1.2.4.57"} <= set(by_syntax)
    for uid, statuses in by_syntax.items():  # every syntax shipped has an image read whole
        assert "ok" in statuses, (uid, statuses)
    assert len(by_syntax) >= 10


@pytest.mark.parametrize("names", SAME_IMAGE, ids=lambda n: n[0])
def test_the_same_image_in_each_lossless_syntax_has_identical_statistics(names: list[str]) -> None:
    got = [_read(get_testdata_file(n)) for n in names]
    syntaxes = {i.row["transfer_syntax"] for i in got}
    assert len(syntaxes) >= 2 and all(i.status == "ok" for i in got), [i.status for i in got]
    first = _stats(got[0])
    assert "image_mean" in first
    for name, inst in zip(names[1:], got[1:], strict=True):
        assert _stats(inst) == pytest.approx(first, rel=1e-12), name


def test_monochrome1_is_inverted_before_it_is_measured() -> None:
    path = TEST_FILES / "dicomdirtests" / "77654033" / "CR1" / "6154"
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    top = (1 << int(ds.BitsStored)) - 1
    stored = ds.pixel_array.copy()
    flipped = copy.deepcopy(ds)
    flipped.PhotometricInterpretation = "MONOCHROME2"  # the same picture, low values dark
    flipped.PixelData = (top - stored.astype(np.int64)).astype(stored.dtype).tobytes()
    i1, i2 = _read(path), _read(_bytes(flipped))
    m1 = i1.row
    assert _stats(i1) == pytest.approx(_stats(i2), rel=1e-12)
    hu = stored * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
    assert m1["image_mean"] != pytest.approx(float(hu.mean()))  # not the stored values' mean


def test_palette_colour_is_measured_on_the_looked_up_colours() -> None:
    from pydicom.pixels import apply_color_lut

    ds = pydicom.dcmread(get_testdata_file("examples_palette.dcm"))
    rgb = apply_color_lut(ds.pixel_array, ds)
    got = _read(get_testdata_file("examples_palette.dcm")).row
    assert got["image_red_mean"] == pytest.approx(float(rgb[..., 0].mean()), rel=1e-12)
    assert got["image_blue_mean"] == pytest.approx(float(rgb[..., 2].mean()), rel=1e-12)
    luma = rgb.reshape(-1, 3).astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    assert got["image_mean"] == pytest.approx(float(luma.mean()), rel=1e-12)
    assert got["image_mean"] != pytest.approx(float(ds.pixel_array.mean()), rel=1e-3)  # not indices


def test_rgb_channels_are_kept_apart() -> None:
    ds = pydicom.dcmread(get_testdata_file("SC_rgb_small_odd.dcm"))
    px = ds.pixel_array.astype(np.float64)
    got = _read(get_testdata_file("SC_rgb_small_odd.dcm")).row
    for j, c in enumerate(("red", "green", "blue")):
        assert got[f"image_{c}_mean"] == pytest.approx(float(px[..., j].mean()), rel=1e-12)
    luma = px.reshape(-1, 3) @ np.array([0.299, 0.587, 0.114])
    assert got["image_p50"] == pytest.approx(float(np.percentile(luma, 50)), rel=1e-12)
    grey = _read(get_testdata_file("CT_small.dcm")).row
    assert grey["image_red_mean"] is None and grey["image_mean"] is not None


def test_a_ct_whose_pixel_data_was_removed_is_no_pixel_data_not_truncated() -> None:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    del ds.PixelData
    got = _read(_bytes(ds))
    assert got.status == "no_pixel_data", got.status
    assert got.row["Manufacturer"] == "GE MEDICAL SYSTEMS" and got.row["image_mean"] is None
    whole = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    assert _read(_bytes(whole)[:-300]).status == "truncated"  # a cut inside the pixel data


def test_an_alpha_channel_is_not_mixed_into_the_intensity() -> None:
    from mlmon.edge.imaging.pixels import image_stats

    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3], rgba[..., 3] = (10, 20, 30), 255
    got = image_stats(rgba, samples=4)
    assert got["image_mean"] == pytest.approx(0.299 * 10 + 0.587 * 20 + 0.114 * 30)
    assert (got["image_red_mean"], got["image_blue_mean"]) == (10.0, 30.0)
    grey_alpha = np.stack(
        [np.arange(16, dtype=np.uint8).reshape(4, 4), np.full((4, 4), 255, np.uint8)], -1
    )
    got = image_stats(grey_alpha, samples=2)
    assert got["image_mean"] == 7.5 and got["image_red_mean"] is None


def test_rgb_channel_statistics_equal_numpy_on_pydicoms_colour_files() -> None:
    """Each channel's mean, std and 1st/50th/99th percentiles, on every RGB and YBR file
    pydicom ships (8, 16 and 32 bits; raw, RLE, JPEG, JPEG-LS, JPEG 2000; multi-frame),
    equal numpy's on the decoded RGB pixels (numpy's linear percentiles)."""
    names = sorted(
        {p.name for p in TEST_FILES.glob("SC_rgb*.dcm")}
        | {"examples_rgb_color.dcm", "SC_ybr_full_422_uncompressed.dcm", "examples_ybr_color.dcm"}
    )
    assert len(names) >= 25
    stats = ("mean", "std", "p01", "p50", "p99")
    for name in names:
        path = TEST_FILES / name
        got = _read(path)
        assert got.status == "ok", (name, got.status)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            px = pydicom.dcmread(path).pixel_array  # YBR converted to RGB, as the reader does
        flat = px.reshape(-1, px.shape[-1]).astype(np.float64)
        for j, colour in enumerate(("red", "green", "blue")):
            c = flat[:, j]
            want = [c.mean(), c.std(), *np.percentile(c, [1.0, 50.0, 99.0])]
            for stat, value in zip(stats, want, strict=True):
                key = f"image_{colour}_{stat}"
                assert got.row[key] == pytest.approx(float(value), rel=1e-9, abs=1e-9), (name, key)
        # the channels differ (not one distribution copied three times) on a colour picture
        if name == "SC_rgb.dcm":
            assert got.row["image_red_p50"] != got.row["image_blue_p50"]
    grey = _read(get_testdata_file("CT_small.dcm")).row
    assert all(grey[f"image_{c}_{s}"] is None for c in ("red", "green", "blue") for s in stats)
