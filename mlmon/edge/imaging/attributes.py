"""Which DICOM attributes may be profiled: an allow-list checked against DICOM PS3.15's profile.

Acquisition attributes (scanner, software, kernel, dose, geometry) are
profiled as ordinary features: numeric VRs as numeric features, code and
short strings as categorical ones. The allow-list is configurable, but
:func:`check_attributes` refuses every attribute that DICOM PS3.15's Basic
Application Level Confidentiality Profile does not retain, by its action
codes (Table E.1-1, shipped as data in :mod:`mlmon.edge.imaging.ps315`), not
by the attribute's name:

1. **Listed in Table E.1-1**: refused unless an option the configuration
   claims (``profile_options``: :data:`SUPPORTED_OPTIONS`) keeps it (``K``).
   ``X``, ``Z``, ``D``, ``U`` and their combinations remove or replace the
   value; ``C`` (clean) needs a cleaning of free text that mlmon does not do,
   so it refuses those too.
2. **Private tags** (odd groups): refused (the Basic Profile removes them;
   Retain Safe Private needs a per-creator list of safe tags mlmon does not keep).
3. **Not listed**: the Basic Profile retains it. mlmon adds one stricter rule,
   by value representation: person names, dates and times, ages, UIDs, AE
   titles, URIs, free text, sequences and binary values are never profiled
   (:data:`DENIED_VRS`), whatever the options (they are no drift feature
   either). Anything not in pydicom's data dictionary is refused.

Example
-------
>>> [a.columns for a in check_attributes(["KVP", "PixelSpacing"], source="cfg")]
[('KVP',), ('PixelSpacing_0', 'PixelSpacing_1')]
>>> refusal("PatientName")
'PatientName has VR PN (a person name)'
>>> refusal("ProtocolName")
'ProtocolName is in PS3.15 Table E.1-1 (0018,1030) Protocol Name: Basic Profile X/D (remove or replace), Clean Descriptors C (clean); no claimed option keeps it'
>>> refusal("StationName", options=("retain_device_identity",)) is None
True
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from mlmon._extras import require
from mlmon.errors import ConfigError

__all__ = [
    "DEFAULT_ATTRIBUTES",
    "DENIED_VRS",
    "SUPPORTED_OPTIONS",
    "AttributeSpec",
    "attribute_values",
    "check_attributes",
    "profile_row",
    "refusal",
]

#: Profiled unless the config gives its own list.
DEFAULT_ATTRIBUTES: tuple[str, ...] = (
    "Modality",
    "Manufacturer",
    "ManufacturerModelName",
    "SoftwareVersions",
    "BodyPartExamined",
    "KVP",
    "Exposure",
    "XRayTubeCurrent",
    "ExposureTime",
    "SliceThickness",
    "PixelSpacing",
    "ConvolutionKernel",
    "PhotometricInterpretation",
    "Rows",
    "Columns",
    "BitsStored",
    "NumberOfFrames",
)

#: VRs never profiled, with the reason shown in the refusal.
DENIED_VRS: dict[str, str] = {
    "PN": "a person name",
    "DA": "a date",
    "DT": "a date and time",
    "TM": "a time of day",
    "AS": "an age",
    "UI": "a UID",
    "AE": "a device or site title",
    "UR": "a URI",
    "LT": "free text",
    "ST": "free text",
    "UT": "free text",
    "UC": "free text",
    "SQ": "a sequence of nested items",
    "OB": "binary data",
    "OW": "binary data",
    "OF": "binary data",
    "OD": "binary data",
    "OL": "binary data",
    "OV": "binary data",
    "UN": "binary data of unknown meaning",
    "AT": "a tag pointer",
}

_NUMERIC_VRS = frozenset({"DS", "IS", "US", "UL", "SS", "SL", "FL", "FD", "UV", "SV"})
_CATEGORICAL_VRS = frozenset({"CS", "LO", "SH"})  # strings the profile retains
_MAX_TEXT = 64


@dataclass(frozen=True)
class AttributeSpec:
    """One allow-listed attribute: its tag, VR, VM and the feature columns it becomes."""

    keyword: str
    tag: int
    vr: str
    vm: str
    kind: Literal["numeric", "categorical"]
    columns: tuple[str, ...]


def _dictionary() -> Any:
    return require("pydicom.datadict", "imaging")


#: ``profile_options`` a configuration may claim: PS3.15 options whose ``K`` (keep) mlmon honours.
SUPPORTED_OPTIONS: dict[str, str] = {
    "retain_device_identity": "dev",
    "retain_institution_identity": "inst",
    "retain_patient_characteristics": "pat",
}

_ACTIONS = {"X": "remove", "Z": "replace with an empty value", "D": "replace with a dummy",
            "U": "replace the UID", "C": "clean", "K": "keep"}  # fmt: skip


def profile_row(tag: int) -> tuple[str, str, str, str] | None:
    """The Table E.1-1 row of a (public or private) tag, or ``None`` if the table does not list it."""
    from mlmon.edge.imaging.ps315 import TABLE_E1_1

    if (tag >> 16) % 2:
        return next(r for r in TABLE_E1_1 if r[0] == "GGGG,EEEE")
    text = f"{tag >> 16:04X},{tag & 0xFFFF:04X}"
    for row in TABLE_E1_1:
        pattern = row[0]
        if pattern == text or (
            "X" in pattern and all(p in ("X", c) for p, c in zip(pattern, text, strict=True))
        ):
            return row
    return None


def _describe(row: tuple[str, str, str, str]) -> str:
    from mlmon.edge.imaging.ps315 import OPTIONS

    tag, name, basic, opts = row
    meaning = "remove or replace" if "/" in basic else _ACTIONS.get(basic.rstrip("*"), basic)
    parts = [f"Basic Profile {basic} ({meaning})"]
    for item in opts.split():
        key, _, code = item.partition("=")
        parts.append(f"{OPTIONS[key].split(' Option')[0]} {code} ({_ACTIONS.get(code, code)})")
    return f"PS3.15 Table E.1-1 ({tag}) {name}: " + ", ".join(parts)


def _kept_by(row: tuple[str, str, str, str], options: Iterable[str]) -> str | None:
    codes = dict(item.partition("=")[::2] for item in row[3].split())
    for opt in options:
        if codes.get(SUPPORTED_OPTIONS.get(opt, "")) == "K":
            return opt
    return None


def _check_options(options: Iterable[str]) -> None:
    bad = [o for o in options if o not in SUPPORTED_OPTIONS]
    if bad:
        raise ConfigError(
            f"profile_options: {', '.join(bad)} not supported; supported: "
            f"{', '.join(SUPPORTED_OPTIONS)} (options that clean values, keep dates, UIDs or "
            "safe private tags are not: those attributes are never profiled)"
        )


def refusal(keyword: str, *, options: Iterable[str] = ()) -> str | None:
    """Why ``keyword`` may not be profiled under the claimed PS3.15 ``options``, or ``None``."""
    dd = _dictionary()
    options = tuple(options)
    _check_options(options)
    text = str(keyword).strip()
    if re.fullmatch(r"\(?\s*(0x)?[0-9A-Fa-f]{4}\s*,?\s*(0x)?[0-9A-Fa-f]{4}\s*\)?", text):
        group = int(re.findall(r"[0-9A-Fa-f]{4}", text.replace("0x", ""))[0], 16)
        if group % 2:
            return (
                f"{text} is a private tag (odd group {group:04X}); private tags are never profiled"
            )
        return f"{text} is a tag number; name attributes by their DICOM keyword (e.g. KVP)"
    tag = dd.tag_for_keyword(text)
    if tag is None:
        return f"{text} is not a DICOM keyword in pydicom's data dictionary"
    vr = dd.dictionary_VR(tag)
    if vr in DENIED_VRS:
        return f"{text} has VR {vr} ({DENIED_VRS[vr]})"
    row = profile_row(int(tag))
    if row is not None and _kept_by(row, options) is None:
        return f"{text} is in {_describe(row)}; no claimed option keeps it"
    if vr not in _NUMERIC_VRS and vr not in _CATEGORICAL_VRS:
        return f"{text} has VR {vr}, which is neither a number nor a code string"
    return None


def check_attributes(
    keywords: Iterable[str], *, source: str = "imaging", options: Iterable[str] = ()
) -> tuple[AttributeSpec, ...]:
    """Validate an allow-list and describe each attribute.

    Raises
    ------
    ConfigError
        One line per refused attribute, naming it and the rule it breaks.
    """
    dd = _dictionary()
    prefix = f"{source}: " if source else ""
    problems, specs, seen = [], [], set()
    for i, kw in enumerate(keywords):
        why = refusal(kw, options=options)
        if why is not None:
            tail = "" if "never profiled" in why else "; it can never be profiled"
            problems.append(f"{prefix}attributes[{i}]: {why}{tail}")
            continue
        if kw in seen:
            problems.append(f"{prefix}attributes[{i}]: {kw} is listed twice")
            continue
        seen.add(kw)
        tag = dd.tag_for_keyword(kw)
        vr, vm = dd.dictionary_VR(tag), dd.dictionary_VM(tag)
        kind: Literal["numeric", "categorical"] = "numeric" if vr in _NUMERIC_VRS else "categorical"
        cols: tuple[str, ...] = (kw,)
        if kind == "numeric" and vm.isdigit() and int(vm) > 1:
            cols = tuple(f"{kw}_{j}" for j in range(int(vm)))
        specs.append(AttributeSpec(kw, int(tag), vr, vm, kind, cols))
    if problems:
        raise ConfigError("\n".join(problems))
    return tuple(specs)


def _number(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f == f else None


def _values(v: Any) -> list[Any]:
    if v is None:
        return []
    if isinstance(v, str | bytes) or not hasattr(v, "__iter__"):
        return [v]
    return list(v)


def attribute_values(dataset: Any, specs: Iterable[AttributeSpec]) -> dict[str, Any]:
    """Feature values of the allow-listed attributes of one pydicom dataset (top level only).

    Numbers that do not parse become null; multi-valued code strings are joined
    with a backslash, as DICOM writes them, and cut to 64 characters.
    """
    out: dict[str, Any] = {}
    for s in specs:
        elem = dataset.get(s.tag) if hasattr(dataset, "get") else None
        vals = _values(None if elem is None else elem.value)
        if s.kind == "numeric":
            for j, col in enumerate(s.columns):
                out[col] = _number(vals[j]) if j < len(vals) else None
        else:
            text = "\\".join(str(v).strip() for v in vals if v is not None)
            out[s.columns[0]] = text[:_MAX_TEXT] if text else None
    return out


def feature_kinds(specs: Iterable[AttributeSpec]) -> Mapping[str, str]:
    """Feature column -> ``numeric``/``categorical``."""
    return {c: s.kind for s in specs for c in s.columns}


#: Attributes shown in docs/imaging.md besides the default list: the ones a privacy officer asks about.
DOC_EXAMPLES: tuple[str, ...] = (
    "SequenceName",
    "PatientPosition",
    "FilterType",
    "ProtocolName",
    "ContrastBolusAgent",
    "SeriesDescription",
    "StationName",
    "DeviceSerialNumber",
    "InstitutionName",
    "PatientSex",
    "PatientWeight",
    "PatientAge",
    "PatientName",
    "PatientID",
    "StudyDate",
    "SOPInstanceUID",
    "ImageComments",
)


def allow_list_table(keywords: Iterable[str] = DEFAULT_ATTRIBUTES + DOC_EXAMPLES) -> str:
    """The Markdown table of docs/imaging.md: each attribute's PS3.15 row and mlmon's verdict.

    Generated from :data:`~mlmon.edge.imaging.ps315.TABLE_E1_1` and :func:`refusal`;
    ``tests/edge/imaging/test_ps315.py`` checks that the docs hold exactly this table.
    """
    from mlmon.edge.imaging.ps315 import OPTIONS

    dd = _dictionary()
    lines = [
        "| attribute | tag | VR | PS3.15 Table E.1-1 (Basic Profile; options) | mlmon | "
        "allowed with |",
        "|---|---|---|---|---|---|",
    ]
    for kw in keywords:
        tag = int(dd.tag_for_keyword(kw))
        vr = dd.dictionary_VR(tag)
        row = profile_row(tag)
        if row is None:
            e11 = "not listed: retained"
        else:
            opts = ", ".join(
                f"{OPTIONS[k].split(' Option')[0]} {c}"
                for k, _, c in (item.partition("=") for item in row[3].split())
            )
            e11 = f"{row[2]}" + (f"; {opts}" if opts else "")
        why = refusal(kw)
        verdict = "allowed" if why is None else "refused: " + _rule(why)
        with_opt = (
            ""
            if why is None
            else next((o for o in SUPPORTED_OPTIONS if refusal(kw, options=(o,)) is None), "never")
        )
        lines.append(
            f"| {kw} | ({tag >> 16:04X},{tag & 0xFFFF:04X}) | {vr} | {e11} | {verdict} | {with_opt} |"
        )
    return "\n".join(lines) + "\n"


def _rule(why: str) -> str:
    """The rule a refusal names, without the attribute's name."""
    if "Table E.1-1" in why:
        return "the profile's action codes"
    return why.split(" has ", 1)[-1] if " has VR " in why else why
