from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from mlmon.errors import DuplicateNameError, SchemaError
from mlmon.lake.schema import TABLES, Table, register_table, table, to_markdown

ROOT = Path(__file__).resolve().parents[2]


def test_docs_lake_md_is_generated_from_the_schema():
    assert (ROOT / "docs" / "lake.md").read_text() == to_markdown(), (
        "docs/lake.md is stale: run `python -m mlmon.lake.schema > docs/lake.md`"
    )


def test_every_column_is_documented_and_snake_case():
    for t in TABLES.values():
        for c in t.columns:
            assert c.doc.strip(), f"{t.name}.{c.name} has no documentation"
            assert c.name == c.name.lower() and " " not in c.name


def test_conform_names_the_missing_column():
    with pytest.raises(SchemaError, match="window_start"):
        table("golden").conform(pa.table({"passed": [True]}))


def test_tables_refuse_duplicates():
    with pytest.raises(DuplicateNameError):
        register_table(Table("profiles", "x", ()))
