"""A one-page PDF of a deletion attestation, for the customer's records.

The signed JSON written by ``mlmon offboard`` is authoritative; this page
shows its summary, the outcome (complete or NOT complete, with the keys that
could not be deleted), the manifest digest, the signing key's fingerprint and
the first entries of the manifest with a count of the rest. The page stays one
page whatever the manifest's size: rows are cut until weasyprint lays it out
on one A4 page. Template: ``attestation.html.j2`` in the report templates
folder (see :mod:`mlmon.reports.render` for the lookup order).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from mlmon._extras import require
from mlmon.errors import ConfigError, GovernanceError
from mlmon.reports.render import _candidates
from mlmon.reports.summary import fmt_count

__all__ = ["ATTESTATION_TEMPLATE", "render_attestation_pdf"]

ATTESTATION_TEMPLATE = "attestation.html.j2"
#: Rows tried first (each render that overflows costs 1-3 s, so start with what usually fits);
#: fewer if they do not fit on the page. With refused keys, fewer manifest rows.
MANIFEST_ROWS = 25
MANIFEST_ROWS_WITH_REFUSED = 10
REFUSED_ROWS = 6
#: Keys longer than this are shortened in the middle on the page (never in the JSON).
MAX_KEY_CHARS = 70


def _short(key: str) -> str:
    if len(key) <= MAX_KEY_CHARS:
        return key
    half = (MAX_KEY_CHARS - 1) // 2
    return key[:half] + "…" + key[-half:]


def _template(templates: str | Path | None) -> Any:
    jinja2 = require("jinja2", "reports")
    tried = _candidates(templates)
    for folder in tried:
        if (folder / ATTESTATION_TEMPLATE).is_file():
            env = jinja2.Environment(
                loader=jinja2.FileSystemLoader(str(folder)),
                autoescape=True,
                undefined=jinja2.StrictUndefined,
            )
            return env.get_template(ATTESTATION_TEMPLATE)
    raise ConfigError(
        f"{ATTESTATION_TEMPLATE} not found; looked in {', '.join(map(str, tried))}. Set "
        "MLMON_TEMPLATES to the folder holding it (report_templates/ in the mlmon source)."
    )


def render_attestation_pdf(
    attestation: str | os.PathLike[str],
    path: str | os.PathLike[str],
    *,
    templates: str | Path | None = None,
) -> Path:
    """Write the one-page PDF of the attestation JSON file ``attestation`` to ``path``.

    Raises
    ------
    MissingExtraError
        jinja2 or weasyprint is not installed (``pip install 'mlmon[reports]'``).
    GovernanceError
        The file is not an attestation, or the page could not be made to fit.
    """
    weasyprint = require("weasyprint", "reports")
    src = Path(attestation)
    raw = src.read_bytes()
    try:
        doc = json.loads(raw)
        body, sig = doc["attestation"], doc["signature"]
    except (ValueError, KeyError, TypeError) as exc:
        raise GovernanceError(f"{src}: not an attestation file ({exc})") from exc
    template = _template(templates)
    refused_rows = REFUSED_ROWS
    manifest_rows = MANIFEST_ROWS_WITH_REFUSED if body["refused"] else MANIFEST_ROWS
    while True:
        html = template.render(
            a=body,
            sig=sig,
            manifest=[{**e, "key": _short(e["key"])} for e in body["manifest"][:manifest_rows]],
            refused=[{**r, "key": _short(r["key"])} for r in body["refused"][:refused_rows]],
            file_name=src.name,
            file_sha256=hashlib.sha256(raw).hexdigest(),
            count=fmt_count,
        )
        document = weasyprint.HTML(string=html, base_url=str(src.parent)).render()
        if len(document.pages) == 1:
            break
        if manifest_rows == 0 and refused_rows <= 1:
            raise GovernanceError(
                f"{src}: the attestation summary does not fit on one page even without the "
                "manifest rows (are the scopes very many or very long?)"
            )
        manifest_rows, refused_rows = manifest_rows * 2 // 3, max(1, refused_rows - 2)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    document.write_pdf(str(out))
    return out
