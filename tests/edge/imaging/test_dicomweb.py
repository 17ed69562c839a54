"""A real PACS (Orthanc + DICOMweb) through the collector: each instance once, outages and 401 counted."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from mlmon.analysis.lake import Lake
from mlmon.edge.collector import Collector
from mlmon.edge.config import load_config
from mlmon.edge.imaging.dicomweb import split_multipart
from mlmon.edge.imaging.reference import build_imaging_reference
from mlmon.errors import ConfigError
from mlmon.lake.references import save_reference
from tests.edge.imaging.orthanc import PASSWORD, USER, Orthanc, free_port
from tests.edge.imaging.synth import Acquisition, edge_config, instance_bytes, write_study

T0 = datetime(2026, 10, 5, 10, 0, tzinfo=UTC)


def _reference(tmp_path: Path) -> Path:
    base = tmp_path / "baseline"
    for s in range(3):
        write_study(base, Acquisition(mean=1040 + 10 * s), instances=2, seed=s, name=f"b{s}")
    ref, _ = build_imaging_reference(base, model="chest-ct", k=2)
    save_reference(ref, tmp_path / "ref.parquet")
    return tmp_path / "ref.parquet"


def _metric(col: Collector, reason: str) -> float:
    for m in col.metrics.bad_records.collect():
        for s in m.samples:
            if s.name.endswith("_total") and s.labels["reason"] == reason:
                return s.value
    return 0.0


def test_dicomweb_reads_each_instance_once(tmp_path: Path, orthanc: Callable[..., Orthanc]) -> None:
    pacs = orthanc()
    pacs.upload([instance_bytes(seed=i, study="1.2.3.4.5", series="1.2.3.4.5.1") for i in range(5)])
    pacs.upload([instance_bytes(syntax="1.2.840.10008.1.2.4.80")])
    clock = [T0]
    cfg = load_config(edge_config(tmp_path, _reference(tmp_path),
                                  {"dicomweb": {"url": pacs.dicomweb, "page_size": 2}}))  # fmt: skip
    col = Collector(cfg, clock=lambda: clock[0])
    assert col.run_once().records == 6  # three QIDO pages of 2
    clock[0] = T0 + timedelta(hours=2)
    pacs.upload([instance_bytes(seed=9)])
    assert col.run_once().records == 1  # only the new one
    # restart from the committed state: nothing twice
    col2 = Collector(cfg, clock=lambda: clock[0] + timedelta(hours=2))
    assert col2.run_once().records == 0
    prof = Lake(str(tmp_path / "lake")).read("profiles", model="chest-ct")
    first = prof.filter(pl.col("feature") == "study_first_instance")
    assert first["count"].sum() == 7 and first["sum"].sum() == 3  # three distinct studies
    syntax = prof.filter(pl.col("feature") == "transfer_syntax")
    assert syntax["count"].sum() == 7
    assert _metric(col, "undecodable") == 1


def test_pacs_down_and_401_are_counted_never_a_crash(
    tmp_path: Path, orthanc: Callable[..., Orthanc], monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    ref = _reference(tmp_path)
    down = f"http://127.0.0.1:{free_port()}/dicom-web"  # nothing listens there
    cfg = load_config(edge_config(tmp_path, ref, {"dicomweb": {"url": down, "timeout": "2s"}}))
    col = Collector(cfg, clock=lambda: T0)
    report = col.run_once()
    assert report.records == 0 and _metric(col, "pacs_unreachable") == 1
    assert report.errors == ["chest-ct/imaging: EdgeError: PACS not read (pacs_unreachable); "
                             "its instances wait for the next read"]  # fmt: skip

    pacs = orthanc(auth=True)
    pacs.upload([instance_bytes(seed=1)])
    monkeypatch.setenv("PACS_PASSWORD", "wrong-password")
    imaging = {"dicomweb": {"url": pacs.dicomweb, "username": USER,
                            "password": {"env": "PACS_PASSWORD"}}}  # fmt: skip
    other = tmp_path / "wrong"
    other.mkdir()
    cfg = load_config(edge_config(other, ref, imaging))
    col = Collector(cfg, clock=lambda: T0)
    caplog.set_level("WARNING")
    report = col.run_once()
    assert report.records == 0 and _metric(col, "pacs_unauthorized") == 1
    assert len(report.errors) == 1 and "pacs_unauthorized" in report.errors[0]
    assert "wrong-password" not in caplog.text and "401" in json.dumps(
        [getattr(r, "where", "") for r in caplog.records]
    )
    # the right password: the instance left unread before is read now
    monkeypatch.setenv("PACS_PASSWORD", PASSWORD)
    col = Collector(cfg, clock=lambda: T0)
    assert col.run_once().records == 1


def test_plain_http_pacs_needs_allow_http(tmp_path: Path) -> None:
    p = edge_config(tmp_path, _reference(tmp_path), {"dicomweb": {"url": "http://pacs.local/dw"}})
    raw = json.loads(p.read_text())
    raw["allow_http"] = False
    p.write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match="not https"):
        Collector(load_config(p))


def test_multipart_split() -> None:
    body = b"--b1\r\nContent-Type: application/dicom\r\n\r\nAAA\r\n--b1\r\n\r\nBB\r\n--b1--\r\n"
    assert split_multipart('multipart/related; type="application/dicom"; boundary=b1', body) == [
        b"AAA",
        b"BB",
    ]
    with pytest.raises(ValueError, match="boundary"):
        split_multipart("multipart/related", body)


def test_a_qido_filter_on_a_value_with_spaces_reads_every_match(
    tmp_path: Path, orthanc: Callable[..., Orthanc]
) -> None:
    """Orthanc's DICOMweb plugin matched ``GE%20MEDICAL%20SYSTEMS`` literally: 0 of 10 were read."""
    pacs = orthanc()
    pacs.upload([instance_bytes(seed=i) for i in range(10)])  # GE MEDICAL SYSTEMS
    pacs.upload(
        [instance_bytes(Acquisition(manufacturer="SIEMENS"), seed=20 + i) for i in range(2)]
    )
    # the same length with other separators: the wire's wildcard matches it, the exact check not
    pacs.upload([instance_bytes(Acquisition(manufacturer="GE-MEDICAL-SYSTEMS"), seed=30)])
    imaging = {"dicomweb": {"url": pacs.dicomweb, "query": {"Manufacturer": "GE MEDICAL SYSTEMS"}}}
    clock = [T0]
    col = Collector(load_config(edge_config(tmp_path, _reference(tmp_path), imaging)),
                    clock=lambda: clock[0])  # fmt: skip
    report = col.run_once()
    assert report.records == 10 and not report.errors, report.errors
    clock[0] = T0 + timedelta(hours=2)
    assert col.run_once().records == 0  # the near-miss is marked read, never fetched again
    prof = Lake(str(tmp_path / "lake")).read("profiles", model="chest-ct")
    manu = prof.filter(pl.col("feature") == "Manufacturer")
    assert manu["count"].sum() == 10


def test_https_against_a_plain_port_is_a_configuration_error(
    tmp_path: Path, orthanc: Callable[..., Orthanc]
) -> None:
    pacs = orthanc()
    url = pacs.dicomweb.replace("http://", "https://")  # Orthanc speaks plain HTTP there
    col = Collector(load_config(edge_config(tmp_path, _reference(tmp_path), {"dicomweb": {"url": url}})),
                    clock=lambda: T0)  # fmt: skip
    report = col.run_once()
    assert report.records == 0
    assert _metric(col, "pacs_tls") == 1 and _metric(col, "pacs_unreachable") == 0
    assert any("pacs_tls" in e for e in report.errors), report.errors


def test_edge_once_exits_non_zero_while_the_pacs_is_down(tmp_path: Path) -> None:
    import subprocess
    import sys

    down = f"http://127.0.0.1:{free_port()}/dicom-web"  # nothing listens there
    cfg = edge_config(tmp_path, _reference(tmp_path), {"dicomweb": {"url": down, "timeout": "2s"}})
    r = subprocess.run([sys.executable, "-m", "mlmon.cli", "-v", "edge", "once", "--config", str(cfg)],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 6, (r.returncode, r.stderr[-2000:])
    assert "pacs_unreachable" in r.stderr
    assert down not in r.stderr and "127.0.0.1" not in r.stderr  # not even the PACS's URL
