"""The workers' partial profiles merge on the driver into exactly the single-process windows (no engine)."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest

from mlmon.engines.common import parse_window
from mlmon.engines.partials import PartialAccumulator, merge_partials
from mlmon.errors import ConfigError, ProfileError
from mlmon.profiles.frame import build_reference
from tests.engines import data


@pytest.mark.parametrize("segments", [False, True], ids=["plain", "segments"])
def test_uneven_partitions_in_any_order_merge_to_the_single_process_windows(segments: bool) -> None:
    df = data.records(4000, 5, hours=8 if segments else 30)  # segments: fewer, fuller windows
    ref = data.reference(segments=segments)
    step = timedelta(hours=1)
    cuts = [0, 7, 2500, 2501, 3900, df.height]  # one row, most rows, a slice of one window ...
    blobs = []
    for a, b in itertools.pairwise(cuts):
        acc = PartialAccumulator(ref, step)
        for lo in range(a, b, 600):  # several batches per partition
            acc.add(df.slice(lo, min(600, b - lo)))
        blob = acc.serialise()
        assert blob is not None
        blobs.append(blob)
    assert PartialAccumulator(ref, step).serialise() is None  # an empty partition emits nothing
    want = data.single_process(df, ref, step)
    assert all(w.profile.segments for w in want) == segments
    most = max(len(w.profile.segments) for w in want)
    assert most == (13 if segments else 0)  # site: 3 segments, c: 6, k_band: 4
    data.assert_same_windows(merge_partials(blobs, ref), want)
    data.assert_same_windows(merge_partials(blobs[::-1], ref), want)


def test_partials_of_another_reference_are_refused() -> None:
    df = data.records(300, 2)
    other = build_reference(df.select("x", "y"))
    acc = PartialAccumulator(other, timedelta(hours=1))
    acc.add(df)
    with pytest.raises(ProfileError, match="same reference"):
        merge_partials([acc.serialise() or b""], data.reference())


def test_window_argument() -> None:
    assert parse_window("90m") == timedelta(minutes=90)
    assert parse_window(timedelta(days=1)) == timedelta(days=1)
    with pytest.raises(ConfigError, match='window "1 hour" is not a duration'):
        parse_window("1 hour")
    with pytest.raises(ConfigError, match="must be positive"):
        parse_window("0h")
