"""The reference of an imaging model, built from a folder of baseline DICOM files.

The features are exactly what an imaging source produces for the same
allow-list (:func:`~mlmon.edge.imaging.dicom.imaging_features`); a numeric
attribute absent from every baseline file (``NumberOfFrames`` of single-frame
images) is left out, and reported. ``read_status`` and ``transfer_syntax``
get fixed vocabularies (every status; every public transfer syntax name), so
a new syntax or a failure in production shows up as itself, not as
``__other__``; the other categorical vocabularies are learned with the usual
k-anonymity rule.

Example (``mlmon reference dicom BASELINE_DIR -o ref.parquet`` does this)::

    ref, report = build_imaging_reference("baseline/", model="chest-ct")
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlmon.edge.imaging.attributes import DEFAULT_ATTRIBUTES, check_attributes
from mlmon.edge.imaging.dicom import (
    READ_STATUS,
    Instance,
    add_series_features,
    imaging_features,
    read_instance,
)
from mlmon.edge.imaging.pixels import CHANNEL_FEATURES
from mlmon.edge.imaging.source import instances_frame
from mlmon.errors import SchemaError
from mlmon.profiles.frame import Reference, build_reference
from mlmon.profiles.schema import FeatureSpec, Schema

__all__ = ["ReferenceReport", "build_imaging_reference", "transfer_syntax_names"]


def transfer_syntax_names() -> tuple[str, ...]:
    """Public names of the transfer syntaxes pydicom knows (the vocabulary of ``transfer_syntax``)."""
    from pydicom.uid import UID, AllTransferSyntaxes

    return tuple(sorted({UID(u).name for u in AllTransferSyntaxes} | {"unknown"}))


@dataclass
class ReferenceReport:
    files: int = 0
    status: Counter[str] = field(default_factory=Counter)
    dropped: list[str] = field(default_factory=list)


def build_imaging_reference(
    folder: str | os.PathLike[str],
    *,
    attributes: tuple[str, ...] = DEFAULT_ATTRIBUTES,
    pixels: bool = True,
    model: str | None = None,
    k: int = 5,
    bins: int = 10,
    options: tuple[str, ...] = (),
    series: bool = False,
) -> tuple[Reference, ReferenceReport]:
    """Read every file under ``folder`` and build the reference profile.

    Raises
    ------
    ConfigError
        An attribute is not allowed (see :func:`check_attributes`).
    SchemaError
        The folder holds no readable DICOM instance.
    """
    specs = check_attributes(attributes, source="reference", options=options)
    secret = os.urandom(32)  # first-instance flags only; the tokens are not kept
    root = Path(folder)
    if not root.is_dir():
        raise SchemaError(f"{root}: not a folder of baseline DICOM files")
    report = ReferenceReport()
    names = list(imaging_features(specs, pixels=pixels, series=series))
    got: list[Instance] = []
    studies: set[str] = set()
    seen_series: set[str] = set()
    for dirpath, _dirs, files in sorted(os.walk(root)):
        for name in sorted(files):
            inst = read_instance(Path(dirpath) / name, specs, secret, pixels=pixels,
                                 where=f"baseline file #{report.files}")  # fmt: skip
            report.files += 1
            report.status[inst.status] += 1
            for h, seen, col in ((inst.study, studies, "study_first_instance"),
                                 (inst.series, seen_series, "series_first_instance")):  # fmt: skip
                inst.row[col] = None if h is None else float(h not in seen)
                if h is not None:
                    seen.add(h)
            if series:
                add_series_features(inst.row, names)
            got.append(inst)
    if not report.status.get("ok") and not (report.status.get("no_pixel_data") and not pixels):
        raise SchemaError(
            f"{root}: no readable DICOM instance among {report.files} files "
            f"({', '.join(f'{s}: {n}' for s, n in sorted(report.status.items())) or 'empty'}); "
            "point it at a folder of baseline Part-10 files"
        )
    kinds = imaging_features(specs, pixels=pixels, series=series)
    frame = instances_frame(got, kinds)
    del got
    feats = []
    syntaxes = transfer_syntax_names()
    for name, kind in kinds.items():
        values = frame.get_column(name)
        if kind == "numeric" and values.null_count() == values.len():
            if name.removeprefix("series_") not in CHANNEL_FEATURES:  # grey baseline: not news
                report.dropped.append(name)
            continue
        allowed: tuple[str, ...] | None = None
        if name == "read_status":
            allowed = tuple(READ_STATUS)
        elif name == "transfer_syntax":
            allowed = syntaxes
        feats.append(FeatureSpec(name, kind, allowed=allowed, bins=bins))  # type: ignore[arg-type]
    schema = Schema(tuple(feats), latency=None, version=None, ignore=())
    ref = build_reference(frame.select([f.name for f in feats]), schema, model=model, k=k)
    return ref, report


def reference_summary(report: ReferenceReport) -> dict[str, Any]:
    return {"files": report.files, "status": dict(report.status), "dropped": report.dropped}
