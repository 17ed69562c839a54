"""The replication decision and the watch's diff, on answers and snapshots built here."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from mlmon.errors import ConfigError, UnknownNameError
from mlmon.lake.freetext import hash_version
from mlmon.profiles.frame import build_reference
from mlmon.profiles.schema import FeatureSpec, Schema
from mlmon.registry.replicate import Answer, ReplicationTolerance, compare_versions
from mlmon.registry.watch import RegistryEvent, Snapshot, diff, events_frame, to_test


def _answers(outputs: list[float], latency: float = 10.0) -> list[Answer]:
    return [Answer(True, True, latency, outputs=(o,)) for o in outputs]


def test_scores_agree_within_the_tolerance_and_not_beyond() -> None:
    champ = _answers([0.1, 0.5, 0.9])
    near = _answers([0.1 + 1e-7, 0.5, 0.9])
    far = _answers([0.1, 0.52, 0.9])
    assert compare_versions(near, champ).outcome == "pass"
    r = compare_versions(far, champ)
    assert r.outcome == "fail" and r.summary["disagreed"] == 1
    assert r.summary["max_score_delta"] == pytest.approx(0.02)
    loose = ReplicationTolerance(score_abs_tol=0.05)
    assert compare_versions(far, champ, loose).outcome == "pass"
    assert compare_versions(far, champ, ReplicationTolerance(max_disagreement=0.34)).passed


def test_latency_ratio_fails_above_the_limit_only() -> None:
    champ = _answers([1, 0, 1], latency=100.0)
    slow = _answers([1, 0, 1], latency=201.0)  # limit 100 x 1.5 + 50 = 200
    ok = _answers([1, 0, 1], latency=199.0)
    r = compare_versions(slow, champ)
    assert r.outcome == "fail" and r.summary["latency_ratio"] == pytest.approx(2.01)
    assert "median latency 201.0 ms is above 200.0 ms" in r.reasons[0]
    assert compare_versions(ok, champ).outcome == "pass"


def test_an_endpoint_that_answers_nothing_decides_nothing() -> None:
    champ = _answers([1, 0])
    down = [Answer(False, False, 3.0, "connect"), Answer(False, False, 3.0, "connect")]
    r = compare_versions(down, champ)
    assert r.outcome == "error" and "candidate's endpoint answered none" in r.reasons[0]
    assert compare_versions(champ, down).outcome == "error"
    # one unanswered case is a failure, not an error
    half = [down[0], champ[1]]
    r = compare_versions(half, champ)
    assert r.outcome == "fail" and "did not answer 1 case(s)" in " ".join(r.reasons)


def test_output_distributions_on_the_reference_bins() -> None:
    rng = np.random.default_rng(3)
    frame = pl.DataFrame({"score": rng.uniform(0, 1, 2000)})
    ref = build_reference(frame, Schema((FeatureSpec("score", "numeric"),)), model="m")
    champ = _answers(list(rng.uniform(0, 0.5, 200)))
    shifted = [Answer(True, True, 10.0, outputs=(a.outputs[0] + 0.5,)) for a in champ]
    loose = ReplicationTolerance(score_abs_tol=1.0)  # the outputs agree; only the shape differs
    r = compare_versions(shifted, champ, loose, reference=ref, output_feature="score")
    assert r.summary["reference_id"] == ref.reference_id
    assert r.summary["output_drift"] > 0.5 and r.outcome == "fail"
    assert "score distribution on the golden set drifts" in r.reasons[0]
    same = compare_versions(champ, champ, loose, reference=ref, output_feature="score")
    assert same.summary["output_drift"] == 0.0 and same.passed
    # no such feature in the reference: nothing compared
    none = compare_versions(champ, champ, loose, reference=ref, output_feature="prediction")
    assert none.summary["output_drift"] is None


def test_bad_tolerances_and_inputs_are_named() -> None:
    with pytest.raises(ConfigError, match="max_disagreement is 2"):
        ReplicationTolerance(max_disagreement=2)
    with pytest.raises(UnknownNameError, match="registered methods"):
        ReplicationTolerance(output_drift_method="nope")
    with pytest.raises(ConfigError, match="2 candidate answers for 1 champion"):
        compare_versions(_answers([1, 2]), _answers([1]))


def test_the_answers_outputs_are_not_in_repr() -> None:
    assert "0.1234" not in repr(Answer(True, True, 1.0, outputs=(0.1234,)))


def test_diff_of_deletions_removals_and_status() -> None:
    before = Snapshot({"1": {"stage": "None", "status": "PENDING_REGISTRATION"},
                       "2": {"stage": "None", "status": "READY"}},
                      {"champion": "2", "old": "1"})  # fmt: skip
    after = Snapshot({"1": {"stage": "None", "status": "READY"}}, {"champion": "1"})
    got = [(e.event, e.version, e.previous_version, e.alias) for e in diff("m", before, after)]
    assert got == [
        ("status_changed", "1", None, None),
        ("version_deleted", "2", None, None),
        ("alias_moved", "1", "2", "champion"),
        ("alias_removed", None, "1", "old"),
    ]
    # the champion's own alias move does not start a test; a candidate alias does
    evs = [RegistryEvent("m", "alias_moved", "1", "2", alias="champion")]
    assert to_test(evs, champion="1", candidate_aliases=["challenger"]) == []


def test_registry_names_that_are_not_version_strings_are_hashed() -> None:
    from datetime import UTC, datetime

    from mlmon.lake.freetext import VersionGuard

    key = b"k" * 32
    ev = RegistryEvent("risk", "alias_set", "3", alias="Jane Doe's pick")
    df = events_frame([ev], registry_url="https://r", observed_at=datetime.now(UTC),
                      collector_id="w", guard=VersionGuard(key))  # fmt: skip
    assert df.get_column("alias").to_list() == [hash_version("Jane Doe's pick", key)]
    assert df.get_column("registered_version").to_list() == ["3"]
