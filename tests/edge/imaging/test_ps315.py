"""The allow-list follows DICOM PS3.15 Table E.1-1's action codes (issue 20, item 5)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mlmon.edge.config import load_config
from mlmon.edge.imaging.attributes import (
    DEFAULT_ATTRIBUTES,
    allow_list_table,
    check_attributes,
    profile_row,
    refusal,
)
from mlmon.edge.imaging.ps315 import OPTIONS, TABLE_E1_1
from mlmon.errors import ConfigError

DOCS = Path(__file__).resolve().parents[3] / "docs" / "imaging.md"


def test_docs_table_is_the_one_the_code_generates() -> None:
    text = DOCS.read_text()
    m = re.search(r"<!-- ps315-table[^>]*-->\n(.*?)<!-- /ps315-table -->", text, re.S)
    assert m is not None, "docs/imaging.md lost its generated PS3.15 table"
    assert m.group(1) == allow_list_table()


def test_the_table_is_data_with_known_action_codes() -> None:
    assert len(TABLE_E1_1) > 600
    codes = {"X", "Z", "D", "U", "K", "C"}
    for tag, name, basic, opts in TABLE_E1_1:
        assert re.fullmatch(r"[0-9A-FX]{4},[0-9A-FX]{4}|GGGG,EEEE", tag), tag
        assert name and set(basic.replace("/", "").rstrip("*")) <= codes, (tag, basic)
        for item in opts.split():
            key, _, code = item.partition("=")
            assert key in OPTIONS and code in codes, (tag, item)
    # rows of the standard that the brief's cases turn on
    assert profile_row(0x00181030)[2:] == ("X/D", "desc=C")  # ProtocolName
    assert profile_row(0x00180010)[2:] == ("Z/D", "desc=C")  # ContrastBolusAgent
    assert profile_row(0x00081010)[2:] == ("X/Z/D", "dev=K")  # StationName
    assert profile_row(0x60004000)[1] == "Overlay Comments"  # a repeating group
    assert profile_row(0x00291010)[1] == "Private Attributes"
    assert profile_row(0x00180024) is None and profile_row(0x00185100) is None


@pytest.mark.parametrize("keyword", ["SequenceName", "PatientPosition", *DEFAULT_ATTRIBUTES])
def test_attributes_the_profile_retains_are_allowed(keyword: str) -> None:
    assert refusal(keyword) is None
    assert profile_row(int(check_attributes([keyword])[0].tag)) is None


@pytest.mark.parametrize(
    ("keyword", "basic"),
    [("ProtocolName", "X/D"), ("ContrastBolusAgent", "Z/D"), ("SeriesDescription", "X"),
     ("PatientID", "Z/D"), ("StationName", "X/Z/D"), ("PatientSex", "Z")],
)  # fmt: skip
def test_refusals_name_the_profiles_row_and_action(keyword: str, basic: str) -> None:
    why = refusal(keyword) or ""
    assert (
        why.startswith(f"{keyword} is in PS3.15 Table E.1-1 (") and f"Basic Profile {basic} " in why
    )


def test_an_option_keeps_only_what_its_column_keeps() -> None:
    dev = ("retain_device_identity",)
    assert refusal("StationName", options=dev) is None
    assert refusal("DeviceSerialNumber", options=dev) is None
    assert refusal("InstitutionName", options=dev) is not None  # another option's K
    assert refusal("PatientSex", options=("retain_patient_characteristics",)) is None
    assert refusal("PatientAge", options=("retain_patient_characteristics",)).startswith(
        "PatientAge has VR AS"
    )  # kept by the option, refused by mlmon's stricter VR rule
    assert refusal("ProtocolName", options=tuple(OPTIONS_SUPPORTED)) is not None  # C: never
    with pytest.raises(ConfigError, match="retain_uids not supported"):
        refusal("KVP", options=("retain_uids",))


OPTIONS_SUPPORTED = ("retain_device_identity", "retain_institution_identity",
                     "retain_patient_characteristics")  # fmt: skip


def test_profile_options_in_the_config(tmp_path: Path) -> None:
    def config(imaging: dict[str, object]) -> Path:
        cfg = {"collector_id": "c", "lake": {"uri": str(tmp_path / "lake")},
               "hmac_key": {"env": "MLMON_HMAC_KEY"}, "state_dir": str(tmp_path / "s"),
               "models": [{"name": "m", "reference": str(tmp_path / "r.parquet"),
                           "imaging": {"folder": str(tmp_path), **imaging}}]}  # fmt: skip
        p = tmp_path / "edge.yaml"
        p.write_text(json.dumps(cfg))
        return p

    attrs = ["KVP", "StationName", "PatientPosition"]
    with pytest.raises(ConfigError) as err:
        load_config(config({"attributes": attrs}))
    assert "attributes[1]: StationName is in PS3.15 Table E.1-1 (0008,1010)" in str(err.value)
    assert "PatientPosition" not in str(err.value)
    ok = load_config(config({"attributes": attrs, "profile_options": ["retain_device_identity"]}))
    assert ok.models[0].imaging.attributes == tuple(attrs)
    with pytest.raises(ConfigError, match="clean_descriptors not supported"):
        load_config(config({"attributes": attrs, "profile_options": ["clean_descriptors"]}))
