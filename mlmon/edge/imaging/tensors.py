"""Image tensors in Open Inference Protocol requests, turned into image statistics in memory.

The stream and sink parsers (:mod:`mlmon.edge.streams`) call
:func:`image_rows` for a model whose reference has image features
(``image_mean`` ...): every image in the request becomes one flat row of
:data:`~mlmon.edge.imaging.pixels.IMAGE_FEATURES`, and the tensor is dropped.

Which inputs are images (inputs named like a reference feature never are):

* ``BYTES`` tensors whose elements are base64 PNG or JPEG (decoded with
  Pillow; 16-bit PNG keeps its 16 bits); one image per element;
* numeric tensors (``FP32``, ``FP64``, ``UINT8``, ``UINT16``, ``INT16`` ...)
  of rank 4 (``[n, h, w, c]``), rank 3 (``[n, h, w]``, or ``[h, w, c]`` when
  the last axis is 1, 3 or 4 and the first is larger than 4) or rank 2
  (``[h, w]``, both at least 8).

A tensor whose data does not match its shape, or an element that is not a
decodable PNG/JPEG, gives a row with null statistics and
``read_status = undecodable`` (when the reference has that feature).

Example
-------
>>> t = {"name": "x", "datatype": "UINT8", "shape": [1, 8, 8], "data": [3] * 64}
>>> image_rows([t], ["image_mean", "image_rows"])[0]["image_mean"]
3.0
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from mlmon.edge.imaging.pixels import empty_stats, image_stats

__all__ = ["DTYPES", "image_rows"]

#: OIP datatypes of numeric image tensors.
DTYPES = {
    "FP32": np.float32,
    "FP64": np.float64,
    "FP16": np.float16,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
}


def _images(shape: list[int]) -> tuple[int, tuple[int, ...]] | None:
    """(number of images, shape of one) for an image tensor's shape, or None."""
    if len(shape) == 4:
        return shape[0], tuple(shape[1:])
    if len(shape) == 3:
        if shape[-1] in (1, 3, 4) and shape[0] > 4:
            return 1, tuple(shape)
        return shape[0], tuple(shape[1:])
    if len(shape) == 2 and min(shape) >= 8:
        return 1, tuple(shape)
    return None


def _flat(data: Any) -> list[Any]:
    if isinstance(data, list) and data and isinstance(data[0], list):
        return list(np.asarray(data, dtype=object).reshape(-1))
    return data if isinstance(data, list) else []


def _bad() -> dict[str, Any]:
    return {**empty_stats(), "read_status": "undecodable"}


def _decode_picture(item: Any) -> dict[str, Any]:
    from PIL import Image, UnidentifiedImageError

    try:
        raw = base64.b64decode(item, validate=True) if isinstance(item, str) else bytes(item)
        with Image.open(io.BytesIO(raw)) as im:
            if im.format not in ("PNG", "JPEG"):
                return _bad()
            arr = np.asarray(im)
    except (binascii.Error, UnidentifiedImageError, OSError, ValueError, TypeError):
        return _bad()
    samples = arr.shape[-1] if arr.ndim == 3 else 1
    stats = image_stats(arr, samples=samples, frames=1)
    del arr
    return {**stats, "read_status": "ok"}


def _tensor_rows(t: dict[str, Any]) -> list[dict[str, Any]] | None:
    dtype = str(t.get("datatype", "")).upper()
    shape = t.get("shape")
    if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
        return None
    data = t.get("data")
    if dtype == "BYTES":
        items = _flat(data)
        if not items or not all(isinstance(i, str) for i in items):
            return None
        return [_decode_picture(i) for i in items]
    if dtype not in DTYPES:
        return None
    layout = _images(shape)
    if layout is None:
        return None
    n, one = layout
    try:
        arr = np.asarray(_flat(data), dtype=DTYPES[dtype])
        arr = arr.reshape((n, *one))
    except (ValueError, TypeError):
        return [_bad() for _ in range(max(n, 1))]
    samples = one[-1] if len(one) == 3 else 1
    rows = [
        {**image_stats(arr[i], samples=samples, frames=1), "read_status": "ok"} for i in range(n)
    ]
    del arr
    return rows


def image_rows(
    inputs: list[dict[str, Any]], features: Sequence[str]
) -> list[dict[str, Any]] | None:
    """One flat row per image in an OIP ``inputs`` list, or None if it carries no image tensor.

    Scalar feature tensors (one value per image, named like a feature) are
    joined to the image rows in order.
    """
    feats = set(features)
    rows: list[dict[str, Any]] | None = None
    for t in inputs:
        if not isinstance(t, dict) or t.get("name") in feats:
            continue
        got = _tensor_rows(t)
        if got is not None:
            rows = got if rows is None else rows + got
    if rows is None:
        return None
    for t in inputs:
        name = t.get("name") if isinstance(t, dict) else None
        if name in feats:
            values = _flat(t.get("data"))
            if len(values) == len(rows):
                for r, v in zip(rows, values, strict=True):
                    r[name] = v
    keep = [f for f in features]
    return [{f: r.get(f) for f in keep} for r in rows]
