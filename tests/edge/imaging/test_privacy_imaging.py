"""Privacy proof for imaging (issue 8, section 3): PHI planted everywhere, found nowhere.

PHI is planted in every identifying DICOM attribute (names, ids, birth date,
accession number, institution and its address, physicians, descriptions,
station, serial number, free-text comments), in a private tag block and as
burned-in text in the pixels; the same images go through the folder source,
the DICOMweb source (a real Orthanc) and the HTTP sink as OIP tensors (UINT16
and base64 PNG) with PHI in the CloudEvent ids and request parameters. Then
every object in the lake and every file in the edge's state folder is scanned,
raw and decoded, for each planted string and for any UID, and so is every log
line the run wrote at DEBUG (with the HTTP client libraries set to DEBUG too).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pyarrow.parquet as pq
import pydicom
import pytest
from PIL import Image

from mlmon.edge.collector import Collector
from mlmon.edge.config import load_config
from mlmon.edge.imaging.reference import build_imaging_reference
from mlmon.edge.logs import CLIENT_LOGGERS
from mlmon.edge.observe import JsonFormatter
from mlmon.lake.references import save_reference
from tests.edge.imaging.orthanc import Orthanc
from tests.edge.imaging.synth import (
    BURNED_IN_TEXT,
    CANARIES,
    PRIVATE_CANARY,
    UID_ROOT,
    Acquisition,
    instance_bytes,
    write_study,
)

T0 = datetime(2026, 10, 5, 10, 0, tzinfo=UTC)
UID_LIKE = re.compile(rb"\d+(?:\.\d+){4,}")


def _planted(blobs: list[bytes]) -> list[str]:
    """Every planted string and every UID of the planted instances."""
    out = [*CANARIES.values(), PRIVATE_CANARY, BURNED_IN_TEXT, UID_ROOT.rstrip(".")]
    out += [v.split("^")[0] for v in CANARIES.values() if "^" in v]  # name components too
    for b in blobs:
        ds = pydicom.dcmread(io.BytesIO(b), stop_before_pixels=True)
        out += [str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)]
    return out


def _tensor_events(blobs: list[bytes]) -> list[tuple[dict[str, str], bytes]]:
    events = []
    for i, b in enumerate(blobs):
        ds = pydicom.dcmread(io.BytesIO(b))
        px = ds.pixel_array
        png = io.BytesIO()
        Image.fromarray(px.astype(np.uint16)).save(png, format="PNG")
        body = {
            "id": f"{CANARIES['PatientID']}-{i}",
            "parameters": {"patient": CANARIES["PatientName"], "study": str(ds.StudyInstanceUID)},
            "inputs": [
                {"name": "ct", "datatype": "UINT16", "shape": [1, *px.shape],
                 "data": px.reshape(-1).tolist()},
                {"name": "png", "datatype": "BYTES", "shape": [1],
                 "data": [base64.b64encode(png.getvalue()).decode()]},
            ],
        }  # fmt: skip
        resp = {"model_name": "chest-ct-api", "outputs": [
            {"name": "score", "datatype": "FP32", "shape": [2, 1], "data": [0.3, 0.3]}]}  # fmt: skip
        for kind, payload in (("request", body), ("response", resp)):
            headers = {"ce-id": f"{CANARIES['AccessionNumber']}-{i}",
                       "ce-type": f"org.kubeflow.serving.inference.{kind}",
                       "ce-time": "2026-10-05T09:30:00Z", "ce-source": CANARIES["InstitutionName"],
                       "content-type": "application/json"}  # fmt: skip
            events.append((headers, json.dumps(payload).encode()))
    return events


def test_no_phi_pixel_or_uid_in_any_object(tmp_path: Path, orthanc: Callable[..., Orthanc]) -> None:
    base = tmp_path / "baseline"
    for s in range(3):
        write_study(base, Acquisition(mean=1040 + 10 * s), instances=2, seed=s, name=f"b{s}")
    ref, _ = build_imaging_reference(base, model="chest-ct", k=2)
    save_reference(ref, tmp_path / "ref.parquet")

    blobs = [instance_bytes(seed=i, rows=48, cols=96) for i in range(4)]
    blobs.append(instance_bytes(seed=7, pixels=False))
    folder = tmp_path / "incoming"
    folder.mkdir()
    for i, b in enumerate(blobs):  # file names carry PHI too
        (folder / f"{CANARIES['PatientName']}_{i}.dcm").write_bytes(b)
    pacs = orthanc()
    pacs.upload(blobs)

    ref_path = str(tmp_path / "ref.parquet")
    cfg = {
        "collector_id": "edge-imaging-canary",
        "lake": {"uri": str(tmp_path / "lake")},
        "hmac_key": {"env": "MLMON_HMAC_KEY"},
        "state_dir": str(tmp_path / "state"),
        "window": "1h", "lateness": "0s", "allow_http": True, "metrics": None, "k_anonymity": 1,
        "models": [
            {"name": "chest-ct", "reference": ref_path, "imaging": {"folder": str(folder), "settle": "0s", "partial_wait": "0s"}},
            {"name": "chest-ct-web", "reference": ref_path, "imaging": {"dicomweb": {"url": pacs.dicomweb}}},
            {"name": "chest-ct-api", "reference": ref_path, "sink": {"port": 0}},
        ],
    }  # fmt: skip
    (tmp_path / "edge.yaml").write_text(json.dumps(cfg))
    clock = [T0]
    # every log line at DEBUG, as `mlmon -v edge run` writes it (JSON with the extra= fields);
    # the HTTP clients set to DEBUG too, as a user's logging.basicConfig(level=DEBUG) would
    logs = io.StringIO()
    handler = logging.StreamHandler(logs)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    saved = root.level, {n: logging.getLogger(n).level for n in CLIENT_LOGGERS}
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for n in CLIENT_LOGGERS:
        logging.getLogger(n).setLevel(logging.DEBUG)
    col = Collector(load_config(tmp_path / "edge.yaml"), clock=lambda: clock[0])
    col.start_sinks()
    try:
        sink = col.sinks["chest-ct-api"]
        with httpx.Client() as client:
            for headers, body in _tensor_events(blobs[:4]):
                r = client.post(f"http://127.0.0.1:{sink.port}/", content=body, headers=headers)
                assert r.status_code == 202
        first = col.run_once()
        clock[0] = T0 + timedelta(hours=3)
        last = col.run_once()
    finally:
        col.stop_sinks()
        root.removeHandler(handler)
        root.setLevel(saved[0])
        for n, level in saved[1].items():
            logging.getLogger(n).setLevel(level)
    assert not first.errors and not last.errors, (first.errors, last.errors)
    assert first.records == 5 + 5 + 8  # folder, DICOMweb, 4 requests x (UINT16 + PNG)

    planted = [p.encode() for p in _planted(blobs)]
    # positive control: the scan finds the canaries and UIDs where they are (the inputs)
    dicom_raw = (folder / f"{CANARIES['PatientName']}_0.dcm").read_bytes()
    assert sum(s in dicom_raw for s in planted) >= len(CANARIES) + 3
    assert UID_LIKE.search(dicom_raw)
    objects = [p for p in (tmp_path / "lake").rglob("*") if p.is_file()]
    state = [p for p in (tmp_path / "state").rglob("*") if p.is_file()]
    tables = {p.relative_to(tmp_path / "lake").parts[1] for p in objects if "v1" in p.parts}
    assert {"profiles", "drift", "references"} <= tables
    models = {part for p in objects for part in p.parts if part.startswith("model=")}
    assert {"model=chest-ct", "model=chest-ct-web", "model=chest-ct-api"} <= models
    scanned = 0
    for p in objects + state:
        raw = p.read_bytes()
        texts = [raw, str(p.relative_to(tmp_path)).encode()]
        if p.suffix == ".parquet":
            t = pq.read_table(p)
            texts.append(json.dumps(t.to_pylist(), default=str).encode())
            texts.append(json.dumps({k.decode(): v.decode(errors="replace")
                                     for k, v in (t.schema.metadata or {}).items()}).encode())  # fmt: skip
        for text in texts:
            for s in planted:
                assert s not in text, f"{s!r} found in {p}"
            assert not UID_LIKE.search(text), f"a UID-like string in {p}: {UID_LIKE.search(text)}"
        scanned += 1
    assert scanned > 10
    # the log, at DEBUG: no planted value, UID, file name or PACS URL in any line or field
    text = logs.getvalue().encode()
    assert text.count(b"\n") >= 5, "the run logged nothing: the scan would prove nothing"
    assert b"dicom" in text.lower()  # the imaging sources did log (a file's position, a status)
    for s in planted:  # a two-letter name component ("DR") is in ordinary words: 5 and more
        assert len(s) < 5 or s not in text, f"{s!r} found in the log"
    assert not UID_LIKE.search(text), f"a UID-like string in the log: {UID_LIKE.search(text)}"
    for url_part in (b"/dicom-web", b"/studies/", b"/instances", str(folder).encode()):
        assert url_part not in text, f"{url_part!r} in the log"
    # the tensors were profiled, not dropped: image statistics of the API model are in the lake
    api = [p for p in objects if "model=chest-ct-api" in str(p) and "/profiles/" in str(p)]
    rows = pq.read_table(api[0]).to_pylist()
    mean = next(r for r in rows if r["feature"] == "image_mean")
    assert mean["count"] == 8


def test_pydicoms_own_messages_never_quote_a_value(
    caplog: pytest.LogCaptureFixture, recwarn: pytest.WarningsRecorder
) -> None:
    """pydicom logs and warns "Invalid value for VR UI: '<the UID>'": silenced while reading."""
    from mlmon.edge.imaging.attributes import DEFAULT_ATTRIBUTES, check_attributes
    from mlmon.edge.imaging.dicom import read_instance

    ds = pydicom.dcmread(io.BytesIO(instance_bytes(seed=1)))
    ds.SOPInstanceUID = "1.2.CANARYUID"  # not a valid UI value
    ds.PatientBirthDate = "CANARYDA"  # not a valid DA value
    ds.Manufacturer = "CANARYMAKER" * 8  # longer than LO allows
    buf = io.BytesIO()
    with pytest.warns(UserWarning):  # positive control: pydicom does quote them when writing
        ds.save_as(buf, enforce_file_format=True)
    recwarn.clear()
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    got = read_instance(buf.getvalue(), check_attributes(DEFAULT_ATTRIBUTES), b"k" * 32)
    assert got.status == "ok"
    said = caplog.text + " ".join(str(w.message) for w in recwarn)
    assert "CANARY" not in said, said
