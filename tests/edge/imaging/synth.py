"""Synthetic DICOM studies written with pydicom: acquisition settings, PHI canaries, bad files.

``write_instance(path, ...)`` writes one single-frame 16-bit CT-like Part-10
file whose pixels are a seeded noise field around ``mean``; every identifying
attribute, a private block and (optionally) burned-in text in the pixels carry
the strings of :data:`CANARIES` so that the privacy test can look for them.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    JPEGLSLossless,
    generate_uid,
)

#: PHI planted in every identifying attribute (and burned into pixels as text).
CANARIES = {
    "PatientName": "CANARY^ZELDA^QUIXOTE",
    "PatientID": "MRN-CANARY-884422",
    "PatientBirthDate": "19340817",
    "AccessionNumber": "ACC-CANARY-5561",
    "InstitutionName": "Canary Memorial Hospital",
    "InstitutionAddress": "17 Canary Lane Springfield",
    "ReferringPhysicianName": "DR^CANARY^HOUSE",
    "StudyDescription": "CANARY STUDY DESC lung nodule follow-up",
    "SeriesDescription": "CANARY SERIES DESC",
    "StationName": "CANARYSTATION7",
    "OperatorsName": "OPERATOR^CANARY",
    "DeviceSerialNumber": "SN-CANARY-0042",
    "StudyID": "STUDYCANARY9",
    "ImageComments": "canary free text: patient fell at home",
}
PRIVATE_CANARY = "PRIVATE-CANARY-TAG-VALUE"
BURNED_IN_TEXT = "ZELDA QUIXOTE"
UID_ROOT = "1.2.826.0.1.3680043.8.498."


@dataclass(frozen=True)
class Acquisition:
    manufacturer: str = "GE MEDICAL SYSTEMS"
    model: str = "Revolution CT"
    software: str = "rev-1.2"
    kernel: str = "STANDARD"
    kvp: float = 120.0
    exposure: int = 200
    slice_thickness: float = 1.25
    mean: float = 1040.0  # stored value; with intercept -1024 about 16 HU
    std: float = 80.0


def _dataset(acq: Acquisition, rows: int, cols: int, study: str, series: str) -> Dataset:
    ds = Dataset()
    for k, v in CANARIES.items():
        setattr(ds, k, v)
    ds.ContentDate = "20261003"
    ds.ContentTime = "101112"
    ds.StudyDate = "20261003"
    ds.PatientSex = "F"
    ds.PatientAge = "092Y"
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid(prefix=UID_ROOT)
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.FrameOfReferenceUID = generate_uid(prefix=UID_ROOT)
    ds.Modality = "CT"
    ds.Manufacturer = acq.manufacturer
    ds.ManufacturerModelName = acq.model
    ds.SoftwareVersions = acq.software
    ds.BodyPartExamined = "CHEST"
    ds.KVP = f"{acq.kvp:g}"
    ds.Exposure = str(acq.exposure)
    ds.XRayTubeCurrent = "300"
    ds.ExposureTime = "500"
    ds.SliceThickness = f"{acq.slice_thickness:g}"
    ds.PixelSpacing = ["0.7", "0.7"]
    ds.ConvolutionKernel = acq.kernel
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 0
    ds.RescaleSlope, ds.RescaleIntercept = "1", "-1024"
    block = ds.private_block(0x0009, "CANARY PRIVATE", create=True)
    block.add_new(0x10, "LO", PRIVATE_CANARY)
    return ds


def burn_text(img: np.ndarray, text: str, value: int) -> None:
    """Draw ``text`` as crude 5x7 block glyphs (the burned-in annotation of a real scanner)."""
    y, x = 4, 4
    for ch in text:
        code = ord(ch)
        for r in range(7):
            for c in range(5):
                if (code >> ((r * 5 + c) % 8)) & 1:
                    img[y + r * 2 : y + r * 2 + 2, x + c * 2 : x + c * 2 + 2] = value
        x += 12
        if x + 12 > img.shape[1]:
            break


def instance_bytes(
    acq: Acquisition = Acquisition(),
    *,
    rows: int = 64,
    cols: int = 64,
    seed: int = 0,
    study: str | None = None,
    series: str | None = None,
    burned_in: bool = True,
    pixels: bool = True,
    syntax: str = ExplicitVRLittleEndian,
) -> bytes:
    """One Part-10 instance as bytes."""
    ds = _dataset(acq, rows, cols, study or generate_uid(prefix=UID_ROOT),
                  series or generate_uid(prefix=UID_ROOT))  # fmt: skip
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = syntax
    ds.file_meta = meta
    if pixels:
        rng = np.random.default_rng(seed)
        img = np.clip(rng.normal(acq.mean, acq.std, (rows, cols)), 0, 4095).astype(np.uint16)
        if burned_in:
            burn_text(img, BURNED_IN_TEXT, 4095)
        if syntax == JPEGLSLossless:  # encapsulated, but no JPEG-LS codec here: fake fragments
            from pydicom.encaps import encapsulate

            ds.PixelData = encapsulate([img.tobytes()[: rows * cols]])
            ds["PixelData"].VR = "OB"
        else:
            ds.PixelData = img.tobytes()
    else:  # an object without pixels (a report, a presentation state) has no image module
        for k in ("Rows", "Columns", "SamplesPerPixel", "PhotometricInterpretation",
                  "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation"):  # fmt: skip
            delattr(ds, k)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def write_study(
    folder: Path,
    acq: Acquisition = Acquisition(),
    *,
    instances: int = 3,
    rows: int = 64,
    cols: int = 64,
    seed: int = 0,
    name: str = "study",
    burned_in: bool = True,
) -> list[Path]:
    """Write one study of ``instances`` single-frame images into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    study, series = generate_uid(prefix=UID_ROOT), generate_uid(prefix=UID_ROOT)
    out = []
    for i in range(instances):
        p = folder / f"{name}-{i:03d}.dcm"
        p.write_bytes(
            instance_bytes(
                acq,
                rows=rows,
                cols=cols,
                seed=seed * 1000 + i,
                study=study,
                series=series,
                burned_in=burned_in,
            )
        )
        out.append(p)
    return out


def edge_config(tmp_path: Path, reference: Path, imaging: dict, *, window: str = "1h") -> Path:
    """An edge.yaml (JSON is YAML) with one imaging model writing to ``tmp_path/lake``."""
    import json

    cfg = {
        "collector_id": "edge-imaging",
        "lake": {"uri": str(tmp_path / "lake")},
        "hmac_key": {"env": "MLMON_HMAC_KEY"},
        "state_dir": str(tmp_path / "state"),
        "window": window,
        "lateness": "0s",
        "allow_http": True,
        "metrics": None,
        "models": [{"name": "chest-ct", "reference": str(reference), "imaging": imaging}],
    }
    p = tmp_path / "edge.yaml"
    p.write_text(json.dumps(cfg))
    return p


# -- the drift fixture: a scanner change and a dose shift planted on known days ----------------
SCANNER_B = {"manufacturer": "SIEMENS", "model": "SOMATOM Force", "software": "syngo CT VA50",
             "kernel": "Br40"}  # fmt: skip
SCANNER_FEATURES = {
    "Manufacturer",
    "ManufacturerModelName",
    "SoftwareVersions",
    "ConvolutionKernel",
}
DOSE_FEATURES = {"KVP", "image_mean", "image_p01", "image_p50", "image_p99"}
DAYS = [f"2026-10-0{d}" for d in range(1, 7)]
SCANNER_FROM, DOSE_FROM = "2026-10-03", "2026-10-05"
_MEANS = [1000.0 + 10 * i for i in range(12)]  # per-study intensity, cycled


def drift_study_set(folder: Path, studies: int, *, scanner_b: bool, dose: bool, tag: str) -> None:
    """``studies`` studies of 5 32x32 images; per-image statistics cycle over a fixed set.

    Undrifted features of every day have exactly the baseline's distribution
    (the same 12 study means x 5 noise seeds), so any flag outside the planted
    changes is the pipeline's fault, not chance.
    """
    for s in range(studies):
        acq = Acquisition(mean=_MEANS[s % 12] + (60.0 if dose else 0.0), std=40.0,
                          kvp=100.0 if dose else 120.0,
                          **(SCANNER_B if scanner_b else {}))  # fmt: skip
        study, series = generate_uid(prefix=UID_ROOT), generate_uid(prefix=UID_ROOT)
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(5):
            blob = instance_bytes(acq, rows=32, cols=32, seed=i, study=study, series=series,
                                  burned_in=False)  # fmt: skip
            (folder / f"{tag}-{s:03d}-{i}.dcm").write_bytes(blob)


def build_drift_lake(root: Path) -> Path:
    """Baseline reference, then six days through the collector; returns the lake folder."""
    from datetime import UTC, datetime

    from mlmon.edge.collector import Collector
    from mlmon.edge.config import load_config
    from mlmon.edge.imaging.reference import build_imaging_reference
    from mlmon.lake.references import save_reference

    drift_study_set(root / "baseline", 48, scanner_b=False, dose=False, tag="base")
    ref, _ = build_imaging_reference(root / "baseline", model="chest-ct")
    save_reference(ref, root / "ref.parquet")
    incoming = root / "incoming"
    incoming.mkdir()
    cfg = load_config(edge_config(root, root / "ref.parquet",
                                  {"folder": str(incoming), "settle": "0s"}, window="1h"))  # fmt: skip
    clock = [datetime(2026, 10, 1, 12, tzinfo=UTC)]
    col = Collector(cfg, clock=lambda: clock[0])
    for day in DAYS:
        drift_study_set(incoming, 12, scanner_b=day >= SCANNER_FROM, dose=day >= DOSE_FROM, tag=day)
        clock[0] = datetime.fromisoformat(day).replace(hour=12, tzinfo=UTC)
        report = col.run_once()
        assert report.records == 60 and not report.errors, report
    clock[0] = datetime(2026, 10, 7, 12, tzinfo=UTC)
    col.run_once()
    return root / "lake"
