"""``mlmon_shown_counts``: the plain-SQL small-count protection equals ``fold_rare`` (issue 19).

The lake keeps exact categorical counts; a BI export folds small counts with this macro before
the counts leave the reader role. It runs in plain duckdb with only the shipped macros loaded.
"""

from __future__ import annotations

import duckdb
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mlmon.lake import sql
from mlmon.profiles.kinds import SHOWN_MIN_COUNT, CategoricalProfile

counts_lists = st.lists(st.integers(0, 12), min_size=1, max_size=8)


def _con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(config={"autoinstall_known_extensions": "false"})
    con.execute(sql.macros())
    return con


def test_small_counts_go_to_other_in_sql():
    got = _con().execute("SELECT mlmon_shown_counts([10, 2, 0, 5, 1, 3], 5)").fetchone()
    assert got is not None
    assert list(got[0]) == [10, 0, 0, 5, 0, 6]  # 2 and 1 joined __other__ (3); 0 stays 0


@given(counts_lists, st.integers(1, 8))
@settings(max_examples=60, deadline=None)
def test_the_macro_equals_fold_rare(counts, k):
    cats = tuple(f"c{i}" for i in range(len(counts) - 1))
    prof = CategoricalProfile(cats, np.array(counts, dtype=np.int64))
    row = _con().execute("SELECT mlmon_shown_counts(?::BIGINT[], ?)", [counts, k]).fetchone()
    assert row is not None
    assert list(row[0]) == prof.fold_rare(k).counts.tolist()


def test_the_default_k_is_the_reports_k():
    assert f"{SHOWN_MIN_COUNT})" in sql.macros()  # the documented example uses the same k
