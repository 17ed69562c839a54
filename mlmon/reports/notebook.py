"""Altair charts in notebooks that show with no network.

altair's default renderer writes a ``<script>`` that loads Vega from a CDN: offline,
or in a viewer that does not run scripts (an untrusted notebook, GitHub), the chart
is blank. :func:`enable_offline_charts` makes altair draw each chart with vl-convert
(the engine the HTML and PDF reports use) into the output itself, as SVG and PNG;
a front end shows the SVG, or the PNG where it does not trust SVG.

Examples
--------
>>> from mlmon.reports.notebook import enable_offline_charts
>>> enable_offline_charts()  # doctest: +SKIP
'mlmon_offline'
"""

from __future__ import annotations

from typing import Any

from mlmon._extras import require

__all__ = ["RENDERER", "enable_offline_charts", "offline_mimebundle"]

#: The altair renderer's name (``alt.renderers.enable(RENDERER)``).
RENDERER = "mlmon_offline"


def offline_mimebundle(
    spec: dict[str, Any], **metadata: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A Vega-Lite spec drawn by vl-convert: ``image/svg+xml`` and ``image/png``, no script, no URL.

    Parameters
    ----------
    spec
        A Vega-Lite spec (what altair hands a renderer).
    **metadata
        Renderer options from ``alt.renderers.enable(RENDERER, ...)``; ``scale_factor``
        (default 2) sets the PNG's resolution.

    Returns
    -------
    tuple of dict
        The mime bundle and its display metadata (the PNG's size at scale 1).

    Raises
    ------
    MissingExtraError
        altair or vl-convert is not installed.
    """
    alt = require("altair", "reports")
    require("vl_convert", "reports")
    from altair.utils.mimebundle import spec_to_mimebundle

    versions = {
        "mode": "vega-lite",
        "vega_version": alt.VEGA_VERSION,
        "vegaembed_version": alt.VEGAEMBED_VERSION,
        "vegalite_version": alt.VEGALITE_VERSION,
    }
    scale = float(metadata.get("scale_factor", 2))
    svg = spec_to_mimebundle(spec, format="svg", **versions)
    png = spec_to_mimebundle(spec, format="png", scale_factor=scale, **versions)
    png_bundle, png_meta = png if isinstance(png, tuple) else (png, {})
    if not isinstance(svg, dict):
        raise TypeError(f"altair returned {type(svg).__name__} for an SVG bundle, not a dict")
    size = png_meta.get("image/png", {})
    shown = {k: size[k] / scale for k in ("width", "height") if k in size}  # drawn at 1x
    return {**png_bundle, **svg}, {"image/png": shown} if shown else {}


def enable_offline_charts() -> str:
    """Register and enable the offline renderer for altair in this kernel; returns its name.

    Call it once at the top of a notebook; every altair chart displayed after it is
    drawn inline (see the module docstring). Calling it again is harmless.
    """
    alt = require("altair", "reports")
    alt.renderers.register(RENDERER, offline_mimebundle)
    alt.renderers.enable(RENDERER)
    return RENDERER
