"""Reading one DICOM Part-10 instance into a flat feature row; nothing else of it survives.

:func:`read_instance` parses a file or a byte string with pydicom, keeps the
allow-listed attributes (:mod:`mlmon.edge.imaging.attributes`) and the image
statistics (:mod:`mlmon.edge.imaging.pixels`), HMACs the study, series and
instance UIDs, and returns an :class:`Instance`. The dataset and its pixel
array are dropped before it returns.

Every instance gets a ``read_status`` (a categorical feature, so the lake
counts them per window) from :data:`READ_STATUS`:

``ok``
    Metadata and pixels profiled.
``no_pixel_data``
    No Pixel Data element (a structured report, a presentation state, an
    image whose pixel data was removed): metadata profiled, image statistics null.
``undecodable``
    A compressed transfer syntax no decoder here can read (e.g. JPEG-LS without
    pylibjpeg): metadata profiled, image statistics null, and the syntax is the
    ``transfer_syntax`` feature (its public name, never a UID).
``truncated``
    The file ends early (in the header: nothing profiled; in the pixel data:
    metadata profiled).
``not_dicom``
    Not a DICOM Part-10 file.

A log line names the status and where (a file's position in the read, never
its name, which can hold a patient's name), never content. pydicom itself
logs and warns with values ("Invalid value for VR UI: '1.2.…'", a UID or a
date of the record): its logger is capped at CRITICAL and its warnings are
silenced while an instance is read.
"""

from __future__ import annotations

import io
import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mlmon._extras import require
from mlmon.edge.imaging.attributes import AttributeSpec, attribute_values
from mlmon.edge.imaging.pixels import IMAGE_FEATURES, empty_stats, image_stats
from mlmon.governance.deid import hmac_id

__all__ = [
    "READ_STATUS",
    "SERIES_PREFIX",
    "STATUS_FEATURES",
    "Instance",
    "add_series_features",
    "imaging_features",
    "read_instance",
]

log = logging.getLogger("mlmon.edge.imaging")

READ_STATUS = {
    "ok": "metadata and pixels profiled",
    "no_pixel_data": "no Pixel Data element; metadata profiled",
    "undecodable": "a compressed transfer syntax that cannot be decoded here; metadata profiled",
    "truncated": "the file ends early",
    "not_dicom": "not a DICOM Part-10 file",
}

#: Categorical features every imaging record has.
STATUS_FEATURES = ("read_status", "transfer_syntax")
#: Numeric 0/1 features set by the sources: the first instance of a study/series seen.
FIRST_FEATURES = ("study_first_instance", "series_first_instance")


#: Prefix of the series-level features: set on a series' first instance only.
SERIES_PREFIX = "series_"


def imaging_features(
    specs: Sequence[AttributeSpec], *, pixels: bool = True, series: bool = False
) -> dict[str, str]:
    """Feature column -> kind for an imaging source with these attributes.

    With ``series``, each attribute and image statistic also has a series-level
    twin (``series_KVP``, ``series_image_mean``...) set only on the first
    instance of each series the reader sees and null on the others: its
    profile counts each series once, whatever its number of instances.
    """
    out = dict.fromkeys(STATUS_FEATURES, "categorical")
    per_instance: dict[str, str] = {}
    for s in specs:
        per_instance.update(dict.fromkeys(s.columns, s.kind))
    if pixels:
        per_instance.update(dict.fromkeys(IMAGE_FEATURES, "numeric"))
    out.update(per_instance)
    out.update(dict.fromkeys(FIRST_FEATURES, "numeric"))
    if series:
        out.update({SERIES_PREFIX + k: v for k, v in per_instance.items()})
    return out


def add_series_features(row: dict[str, Any], names: Sequence[str]) -> None:
    """Fill the series-level twins of ``row`` (in ``names``): its values on a series' first instance."""
    first = row.get("series_first_instance") == 1.0
    for name in names:
        if name.startswith(SERIES_PREFIX) and name != "series_first_instance":
            row[name] = row.get(name[len(SERIES_PREFIX) :]) if first else None


@dataclass
class Instance:
    """One instance as the edge keeps it: a feature row and HMACed UIDs."""

    status: str
    row: dict[str, Any] = field(default_factory=dict)
    study: str | None = None
    series: str | None = None
    instance: str | None = None
    #: ``no_pixel_data`` of an image (an image storage SOP class, or the image pixel module
    #: without its pixel data): the pixel data was removed, or the file is still being
    #: written (a folder source waits while it is young)
    pixels_missing: bool = False


def _syntax_name(uid: Any) -> str:
    """The public name of a transfer syntax (``unknown`` for a private or unlisted one)."""
    from pydicom.uid import UID

    u = UID(str(uid))
    return u.name if u.is_transfer_syntax else "unknown"


def read_instance(
    source: bytes | str | os.PathLike[str],
    specs: Sequence[AttributeSpec],
    secret: bytes,
    *,
    pixels: bool = True,
    where: str = "",
) -> Instance:
    """Parse one Part-10 instance into an :class:`Instance`; never raises for bad input."""
    pydicom = require("pydicom", "imaging")
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)  # its messages quote values
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Invalid value for VR UI: '<the UID>'" and the like
        return _read(pydicom, source, specs, secret, pixels, where)


def _read(
    pydicom: Any,
    source: bytes | str | os.PathLike[str],
    specs: Sequence[AttributeSpec],
    secret: bytes,
    pixels: bool,
    where: str,
) -> Instance:
    from pydicom.errors import InvalidDicomError

    raw = source if isinstance(source, bytes) else None
    try:
        fp: Any = io.BytesIO(raw) if raw is not None else os.fspath(source)
        ds = pydicom.dcmread(fp, stop_before_pixels=not pixels)
    except InvalidDicomError:
        return _bad("not_dicom", where)
    except FileNotFoundError:
        raise
    except Exception:  # pydicom raises many types on a file cut short
        head = raw[:132] if raw is not None else _head(source)
        return _bad("truncated" if head[128:132] == b"DICM" else "not_dicom", where)
    size = len(raw) if raw is not None else _size(source)
    try:
        if _cut_short(ds, size, pixels):
            inst = _profile(ds, specs, secret, False, where)
            inst.status = inst.row["read_status"] = "truncated"
            if pixels:
                inst.row.update(empty_stats())
            log.warning("dicom instance cut short", extra={"reason": "truncated", "where": where})
            return inst
        return _profile(ds, specs, secret, pixels, where)
    finally:
        del ds


def _size(path: Any) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _cut_short(ds: Any, size: int, pixels: bool) -> bool:
    """pydicom stops quietly at a partial element: find the signs of a file cut short.

    A cut exactly between two elements cannot be told from an object without
    pixel data (a CT whose pixel data was removed): it reads as
    ``no_pixel_data`` (``pixels_missing`` when it is an image), and a folder source waits while such a file is young. Reading
    metadata only (``pixels=False``) does not look past the pixel data's start.
    """
    if len(ds) == 0:
        return True  # the file meta and nothing else
    if not pixels:
        return False
    last = ds._dict[list(ds.keys())[-1]]
    tell, length = getattr(last, "value_tell", None), getattr(last, "length", None)
    if isinstance(tell, int) and isinstance(length, int) and length != 0xFFFFFFFF:
        short = last.value is not None and len(last.value) < length
        if tell + length < size or short:
            return True  # bytes left over that do not form an element, or a short value
    # A file that ends exactly between two elements before the pixel data cannot be told
    # from an object whose pixel data was removed: it is labelled no_pixel_data, which is
    # what it holds (a cut inside an element is caught above).
    return False


def _head(path: Any) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(132)
    except OSError:
        return b""


def _bad(status: str, where: str) -> Instance:
    log.warning("dicom instance not profiled", extra={"reason": status, "where": where})
    return Instance(status, {"read_status": status, "transfer_syntax": None})


def _profile(
    ds: Any, specs: Sequence[AttributeSpec], secret: bytes, pixels: bool, where: str
) -> Instance:
    meta = getattr(ds, "file_meta", None)
    syntax = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    row: dict[str, Any] = {"transfer_syntax": None if syntax is None else _syntax_name(syntax)}
    try:
        row.update(attribute_values(ds, specs))
    except Exception:  # a malformed element: the file is cut or corrupt
        return _bad("truncated", where)
    uids = [
        str(ds.get(k, "") or "")
        for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
    ]
    study, series, inst = (hmac_id(secret, u) if u else None for u in uids)
    status = "ok"
    if pixels:
        stats, status = _pixel_stats(ds, syntax)
        row.update(stats)  # metadata only (stop_before_pixels): the pixel data is not looked at
    row["read_status"] = status
    if status != "ok":
        log.warning("dicom pixels not profiled", extra={"reason": status, "where": where,
                                                        "transfer_syntax": row["transfer_syntax"]})  # fmt: skip
    missing = status == "no_pixel_data" and (
        ("Rows" in ds and "BitsAllocated" in ds) or _is_image_class(ds.get("SOPClassUID"))
    )
    return Instance(status, row, study, series, inst, pixels_missing=missing)


def _is_image_class(uid: Any) -> bool:
    from pydicom.uid import UID

    return uid is not None and "Image Storage" in UID(str(uid)).name


def _pixel_stats(ds: Any, syntax: Any) -> tuple[dict[str, Any], str]:
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        return empty_stats(), "no_pixel_data"
    if syntax is not None:
        from pydicom.pixels import get_decoder

        try:
            decoder = get_decoder(syntax)
        except (NotImplementedError, ValueError):
            return empty_stats(), "undecodable"
        if not decoder.is_available:
            return empty_stats(), "undecodable"
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()
    try:
        arr = ds.pixel_array  # pydicom converts YBR to RGB (as_rgb)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        if photometric == "PALETTE COLOR":  # measure the looked-up colours, not the indices
            from pydicom.pixels import apply_color_lut

            arr, samples = apply_color_lut(arr, ds), 3
    except Exception as exc:  # length mismatch: cut short; otherwise the codec failed
        text = str(exc).lower()
        cut = "length" in text or "truncat" in text or "end of" in text or "size" in text
        return empty_stats(), "truncated" if cut else "undecodable"
    try:
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        frames = 1
    colour = samples > 1
    stats = image_stats(
        arr,
        slope=1.0 if colour else float(ds.get("RescaleSlope", 1.0) or 1.0),
        intercept=0.0 if colour else float(ds.get("RescaleIntercept", 0.0) or 0.0),
        frames=frames,
        samples=samples,
        photometric=photometric,
        bits_stored=int(ds.get("BitsStored", 0) or 0) or None,
        signed=int(ds.get("PixelRepresentation", 0) or 0) == 1,
    )
    del arr
    return stats, "ok"
