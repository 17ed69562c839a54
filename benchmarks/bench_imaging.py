"""Images profiled per second: 512x512 16-bit single-frame DICOM from a folder and over DICOMweb.

    python -m benchmarks.bench_imaging [--images 300]

Writes ``--images`` synthetic CT instances (pydicom, 512x512, 16 bits stored
as 12, explicit VR little endian) into a temporary folder, builds a reference
from the first 20, then measures, each in a fresh subprocess (so its peak RSS
is its own):

* ``folder``: :class:`~mlmon.edge.imaging.source.FolderSource` reading every
  file (pydicom parse, pixel array, statistics, HMACs, profiling into a window);
* ``dicomweb``: the same instances stored in a local Orthanc (DICOMweb plugin,
  127.0.0.1), read by :class:`~mlmon.edge.imaging.dicomweb.DicomWebSource`
  (QIDO-RS pages, one WADO-RS GET per instance).

Prints one JSON line per mode: images, seconds, images/s, peak RSS (MiB).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.common import peak_rss_mib

KEY = b"bench-imaging-hmac-key-0123456789"


def _write(folder: Path, n: int) -> None:
    from tests.edge.imaging.synth import Acquisition, instance_bytes

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        acq = Acquisition(mean=1000 + (i % 12) * 10)
        blob = instance_bytes(acq, rows=512, cols=512, seed=i, burned_in=False)
        (folder / f"img-{i:05d}.dcm").write_bytes(blob)


def _measure(mode: str, folder: Path, ref: Path, url: str | None) -> dict[str, float | int | str]:
    from mlmon.edge.imaging.config import ImagingConfig
    from mlmon.edge.imaging.source import open_imaging
    from mlmon.lake.references import load_reference

    if mode == "folder":
        cfg = ImagingConfig(folder=str(folder), settle="0s", max_instances_per_read=10**6)
    else:
        cfg = ImagingConfig(dicomweb={"url": url, "page_size": 1000}, max_instances_per_read=10**6)
    kwargs = {"allow_http": True} if mode == "dicomweb" else {}
    with tempfile.TemporaryDirectory() as state:
        src = open_imaging(cfg, load_reference(ref), KEY, state,
                           clock=lambda: datetime(2026, 11, 23, 12, tzinfo=UTC), **kwargs)  # fmt: skip
        t0 = time.perf_counter()
        n = src.read()
        dt = time.perf_counter() - t0
    peak = peak_rss_mib()
    return {"mode": mode, "images": n, "seconds": round(dt, 2), "images_per_s": round(n / dt, 1),
            "peak_rss_mib": round(peak, 1), "bad": dict(src.bad_records)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--child", choices=["folder", "dicomweb"])
    ap.add_argument("--folder")
    ap.add_argument("--ref")
    ap.add_argument("--url")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_measure(args.child, Path(args.folder), Path(args.ref), args.url)))
        return

    from mlmon.edge.imaging.reference import build_imaging_reference
    from mlmon.lake.references import save_reference
    from tests.edge.imaging.orthanc import start_orthanc

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        _write(root / "images", args.images)
        print(f"wrote {args.images} instances in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        base = root / "baseline"
        base.mkdir()
        for p in sorted((root / "images").iterdir())[:20]:
            (base / p.name).write_bytes(p.read_bytes())
        ref, _ = build_imaging_reference(base, model="bench-ct")
        save_reference(ref, root / "ref.parquet")
        cmd = [sys.executable, "-m", "benchmarks.bench_imaging", "--folder", str(root / "images"),
               "--ref", str(root / "ref.parquet")]  # fmt: skip
        env = {**os.environ}
        print(subprocess.run([*cmd, "--child", "folder"], check=True, capture_output=True,
                             text=True, env=env).stdout.strip())  # fmt: skip
        pacs = start_orthanc()
        try:
            t0 = time.perf_counter()
            pacs.upload([p.read_bytes() for p in sorted((root / "images").iterdir())])
            print(f"stored in Orthanc in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
            out = subprocess.run([*cmd, "--child", "dicomweb", "--url", pacs.dicomweb], check=True,
                                 capture_output=True, text=True, env=env)  # fmt: skip
            print(out.stdout.strip())
        finally:
            pacs.stop()


if __name__ == "__main__":
    main()
