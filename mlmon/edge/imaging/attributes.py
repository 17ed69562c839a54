"""Which DICOM attributes may be profiled: an allow-list, and a rule that refuses identifying ones.

Acquisition attributes (scanner, software, kernel, dose, geometry) are
profiled as ordinary features: numeric VRs as numeric features, code strings
and a few reviewed device strings as categorical ones. The allow-list is
configurable, but :func:`check_attributes` refuses any attribute that could
identify a patient, a person, a place or a study, by three rules checked
against pydicom's data dictionary:

1. **Value representation.** Person names (PN), dates and times (DA, DT, TM),
   ages (AS), UIDs (UI), application entities (AE), URIs (UR), free text
   (LT, ST, UT, UC), sequences (SQ), binary and unknown values (OB, OW, OF,
   OD, OL, OV, UN, AT) are never profiled.
2. **Long and short strings (LO, SH)** hold ids (PatientID, AccessionNumber,
   StudyID), names (InstitutionName, StationName) and descriptions; only the
   reviewed device strings of :data:`REVIEWED_STRINGS` are accepted.
3. **Keywords** naming a patient, a person, a place, an identifier, a
   description or a comment (:data:`DENIED_KEYWORD`) are refused whatever their
   VR, and so are private tags (odd group) and anything not in the dictionary.

Example
-------
>>> [a.columns for a in check_attributes(["KVP", "PixelSpacing"], source="cfg")]
[('KVP',), ('PixelSpacing_0', 'PixelSpacing_1')]
>>> refusal("PatientName")
'PatientName has VR PN (a person name)'
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
    "DENIED_KEYWORD",
    "DENIED_VRS",
    "REVIEWED_STRINGS",
    "AttributeSpec",
    "attribute_values",
    "check_attributes",
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

#: The only LO/SH (long/short string) attributes accepted: device descriptions, reviewed.
REVIEWED_STRINGS: frozenset[str] = frozenset(
    {"Manufacturer", "ManufacturerModelName", "SoftwareVersions", "ConvolutionKernel", "FilterType"}
)

#: Keywords refused whatever their VR (patients, people, places, ids, free descriptions).
DENIED_KEYWORD = re.compile(
    r"Patient|Person|Physician|Operator|Referring|Requesting|Requested|Performing|Scheduled"
    r"|Admitting|Attending|Consulting|Institution|Department|Station|Address|Telephone|Accession"
    r"|Birth|Ethnic|Occupation|Religio|Military|Country|Region|Insurance|Issuer|Medical|Allerg"
    r"|Pregnan|Comment|Description|Text|Label|Overlay|Curve|Icon|Barcode|Serial|Identifier|UID"
    r"|Name(?!$)|(?<!Model)Name$|ID$|IDs$"
)

_NUMERIC_VRS = frozenset({"DS", "IS", "US", "UL", "SS", "SL", "FL", "FD", "UV", "SV"})
_CATEGORICAL_VRS = frozenset({"CS", "LO", "SH"})
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


def refusal(keyword: str) -> str | None:
    """Why ``keyword`` may not be profiled, or ``None`` if it may."""
    dd = _dictionary()
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
    if DENIED_KEYWORD.search(text):
        return f"{text} names a patient, person, place, identifier or free description"
    if vr in {"LO", "SH"} and text not in REVIEWED_STRINGS:
        return (
            f"{text} has VR {vr} (a long/short string, which holds ids and names); reviewed "
            f"strings: {', '.join(sorted(REVIEWED_STRINGS))}"
        )
    if vr not in _NUMERIC_VRS and vr not in _CATEGORICAL_VRS:
        return f"{text} has VR {vr}, which is neither a number nor a code string"
    return None


def check_attributes(
    keywords: Iterable[str], *, source: str = "imaging"
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
        why = refusal(kw)
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
