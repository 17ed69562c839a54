"""Small-count protection where categorical counts are shown (issue 19).

The lake keeps exact counts of allow-listed categories; a report's distribution chart shows a
category counted fewer than ``SHOWN_MIN_COUNT`` times in the period (or the reference) inside
``__other__``, so a chart of a quiet period cannot single out one record.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from mlmon.profiles.kinds import OTHER, SHOWN_MIN_COUNT, CategoricalProfile
from mlmon.reports.context import _distribution

CATS = ("er", "icu", "burns")


def _profile(values: list[str]) -> CategoricalProfile:
    return CategoricalProfile.from_series(pl.Series(values), categories=CATS)


def test_a_category_seen_fewer_than_k_times_in_the_period_is_shown_inside_other():
    assert SHOWN_MIN_COUNT == 5
    reference = _profile(["er"] * 50 + ["icu"] * 30 + ["burns"] * 20)
    current = _profile(["er"] * 6 + ["icu"] * 5 + ["burns"] + ["Jane Doe"] * 2)
    assert current.counts.tolist() == [6, 5, 1, 2]  # exact, as in the lake
    shown = _distribution("ward", reference, current).frame
    assert shown["label"].to_list() == [*CATS, OTHER]
    cur = dict(zip(shown["label"], shown["current"], strict=True))
    assert cur["burns"] == 0.0  # the single burns patient is not shown on its own
    assert np.isclose(cur[OTHER], 3 / 14)  # it is shown with the two values outside the list
    assert np.isclose(cur["icu"], 5 / 14)  # k times is shown
    ref = dict(zip(shown["label"], shown["reference"], strict=True))
    assert np.isclose(ref["burns"], 0.2)  # the reference's own counts are large enough


def test_rare_reference_categories_are_folded_too():
    reference = _profile(["er"] * 50 + ["burns"] * 3)
    current = _profile(["er"] * 10)
    shown = _distribution("ward", reference, current).frame
    ref = dict(zip(shown["label"], shown["reference"], strict=True))
    assert ref["burns"] == 0.0 and np.isclose(ref[OTHER], 3 / 53)
