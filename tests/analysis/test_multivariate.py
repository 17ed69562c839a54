"""Multivariate drift from profiles: PCA reconstruction error against a reference band (issue 19, item 7).

The oracle is scikit-learn (SimpleImputer, StandardScaler, PCA) on the raw rows, with the
categorical frequency encoding NannyML uses written out by hand; NannyML itself runs in its
own environment for the last test.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from sklearn.decomposition import PCA
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import StandardScaler

from mlmon.analysis.lake import Lake
from mlmon.edge.ingest import WindowAccumulator
from mlmon.errors import SchemaError
from mlmon.lake.references import load_reference, save_reference
from mlmon.lake.writer import LakeWriter
from mlmon.profiles.frame import build_reference, profile_frame, profile_windows
from mlmon.profiles.multivariate import MULTIVARIATE, MULTIVARIATE_LABEL, display_name
from mlmon.profiles.schema import FeatureSpec, Schema

MODEL = "loans"
T0 = datetime(2026, 10, 1, tzinfo=UTC)
COLOURS = ("red", "green", "blue")
SCHEMA = Schema(
    features=(
        FeatureSpec("a", "numeric"),
        FeatureSpec("b", "numeric"),
        FeatureSpec("c", "numeric"),
        FeatureSpec("colour", "categorical"),
    ),
    latency=None,
    version=None,
)


def _records(rng: np.random.Generator, n: int, rho: float, start: datetime) -> pl.DataFrame:
    """a, b correlated by ``rho`` (standard normal marginals whatever rho), c and colour apart."""
    a = rng.normal(size=n)
    b = rho * a + np.sqrt(1 - rho**2) * rng.normal(size=n)
    c = 10 + 3 * rng.normal(size=n) + 0.5 * a
    colour = rng.choice(COLOURS, n, p=[0.5, 0.3, 0.2])
    secs = np.sort(rng.uniform(0, n * 60, n))
    return pl.DataFrame(
        {
            "timestamp": pl.Series(
                [start + timedelta(seconds=float(s)) for s in secs], dtype=pl.Datetime("us", "UTC")
            ),
            "a": a,
            "b": b,
            "c": c,
            "colour": colour.tolist(),
        }
    )


def _with_missing(df: pl.DataFrame, rng: np.random.Generator, share: float) -> pl.DataFrame:
    """Nulls in a and colour, NaN in b, at random rows."""
    n = df.height
    return df.with_columns(
        pl.when(pl.Series(rng.random(n) < share)).then(None).otherwise(pl.col("a")).alias("a"),
        pl.when(pl.Series(rng.random(n) < share))
        .then(float("nan"))
        .otherwise(pl.col("b"))
        .alias("b"),
        pl.when(pl.Series(rng.random(n) < share))
        .then(None)
        .otherwise(pl.col("colour"))
        .alias("colour"),
    )


def _oracle(reference: pl.DataFrame, current: pl.DataFrame, n_components: float = 0.65):
    """Per-record errors of ``current`` by scikit-learn, NannyML's recipe, no mlmon code."""
    numeric = ["a", "b", "c"]

    def num(df: pl.DataFrame) -> np.ndarray:
        x = df.select(numeric).to_numpy().astype(np.float64)
        return np.where(np.isfinite(x), x, np.nan)

    imputer = SimpleImputer(strategy="mean").fit(num(reference))
    colours = reference.get_column("colour").to_list()
    present = [c for c in colours if c is not None]
    mode = max(sorted(set(present)), key=present.count)
    filled = [mode if c is None else c for c in colours]
    freq = {c: filled.count(c) / len(filled) for c in set(filled)}

    def encode(df: pl.DataFrame) -> np.ndarray:
        col = [mode if c is None else c for c in df.get_column("colour").to_list()]
        return np.array([[freq.get(c, 0.0)] for c in col])  # unseen: 0 (NannyML)

    xr = np.hstack([imputer.transform(num(reference)), encode(reference)])
    scaler = StandardScaler().fit(xr)
    pca = PCA(n_components=n_components, svd_solver="full").fit(scaler.transform(xr))
    xc = scaler.transform(np.hstack([imputer.transform(num(current)), encode(current)]))
    return np.linalg.norm(xc - pca.inverse_transform(pca.transform(xc)), axis=1), pca


@pytest.fixture(scope="module")
def data() -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(19)
    reference = _with_missing(_records(rng, 4000, 0.9, T0), rng, 0.05)
    current = _with_missing(_records(rng, 3000, 0.9, T0 + timedelta(days=30)), rng, 0.05)
    return reference, current


def test_each_record_error_and_each_chunk_mean_equal_scikit_learn(data) -> None:
    reference, current = data
    ref = build_reference(reference, SCHEMA, k=1, multivariate=True)
    mv = ref.multivariate
    assert mv is not None
    want, pca = _oracle(reference, current)
    assert mv.components.shape[0] == pca.n_components_ > 0
    np.testing.assert_allclose(mv.explained, pca.explained_variance_ratio_, rtol=1e-9)
    got = mv.errors(current)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=0)
    # a chunk's value is its profile's mean: exact from sum / count
    for lo in range(0, current.height, 1000):
        prof = profile_frame(current.slice(lo, 1000), ref).multivariate
        assert prof is not None and prof.count == 1000
        assert prof.mean == pytest.approx(want[lo : lo + 1000].mean(), rel=1e-9)
    # the band: 10 reference chunks, mean +/- 3 std (population) of their mean errors
    on_ref, _ = _oracle(reference, reference)
    chunk_means = np.array([c.mean() for c in np.array_split(on_ref, 10)])
    np.testing.assert_allclose(mv.chunk_means, chunk_means, rtol=1e-9)
    assert mv.upper == pytest.approx(chunk_means.mean() + 3 * chunk_means.std(), rel=1e-9)
    assert mv.lower == pytest.approx(max(0.0, chunk_means.mean() - 3 * chunk_means.std()), rel=1e-9)
    # an integer n_components keeps exactly that many components
    two = build_reference(reference, SCHEMA, k=1, multivariate=True, n_components=2)
    assert two.multivariate is not None and two.multivariate.components.shape[0] == 2
    np.testing.assert_allclose(
        two.multivariate.errors(current), _oracle(reference, current, 2)[0], rtol=1e-9
    )


def test_merged_windows_equal_one_shot(data) -> None:
    reference, current = data
    ref = build_reference(reference, SCHEMA, multivariate=True)
    shuffled = current.sample(fraction=1.0, shuffle=True, seed=3)  # the permutation path
    windows = list(profile_windows(shuffled, ref, window=timedelta(minutes=5)))
    assert len(windows) > 500
    merged = windows[0].profile
    for w in windows[1:]:
        merged = merged.merge(w.profile)
    one = profile_frame(current, ref)
    assert merged.multivariate is not None and one.multivariate is not None
    assert merged.multivariate.count == one.multivariate.count == current.height
    np.testing.assert_array_equal(merged.multivariate.bins, one.multivariate.bins)
    assert merged.multivariate.sum == pytest.approx(one.multivariate.sum, rel=1e-12)
    assert merged.multivariate.sketch == one.multivariate.sketch
    # the features are untouched by the extra column
    assert set(merged.features) == set(SCHEMA.names)


def _into_lake(lake: Path, ref, records: pl.DataFrame) -> Lake:
    writer = LakeWriter(str(lake), collector_id="edge-1")
    writer.write_reference(MODEL, ref)
    acc = WindowAccumulator(ref, window=timedelta(hours=1))  # 5-minute windows: see above
    acc.add(records)
    acc.flush(writer, MODEL, source="batch")
    writer.write_rollups()
    return Lake(str(lake))


def test_shifted_correlation_drifts_where_no_univariate_method_alerts(tmp_path: Path) -> None:
    """The point of multivariate drift: the same marginals, the correlation of a and b flipped."""
    rng = np.random.default_rng(7)
    reference = _records(rng, 5000, 0.9, T0 - timedelta(days=10))
    same = _records(rng, 2880, 0.9, T0)
    flipped = _records(rng, 2880, -0.9, T0 + timedelta(days=2))
    ref = build_reference(reference, SCHEMA, multivariate=True)
    lake = _into_lake(tmp_path / "lake", ref, pl.concat([same, flipped]))
    uni = lake.drift(MODEL, by="day")
    assert uni.height > 0 and not uni.get_column("drifted").any()
    mv = lake.multivariate_drift(MODEL, by="day")
    assert mv.get_column("metric").unique().to_list() == [MULTIVARIATE_LABEL]
    days_of = mv.get_column("period").dt.day().to_list()
    alerts = dict(zip(days_of, mv.get_column("alert").to_list(), strict=True))
    assert alerts == {1: False, 2: False, 3: True, 4: True}
    # the value is the exact mean of the period's records' errors
    first_day = same.filter(pl.col("timestamp") < T0 + timedelta(days=1))
    assert mv.get_column("value")[0] == pytest.approx(
        float(ref.multivariate.errors(first_day).mean()), rel=1e-12
    )
    days = (same.height, flipped.height)
    counts = mv.get_column("count").to_list()
    assert sum(counts[:2]) == days[0] and sum(counts[2:]) == days[1]
    # the CLI shows it, and --fail-on-drift counts it
    from mlmon.cli import main

    assert main(["drift", "--lake", str(tmp_path / "lake"), "--model", MODEL]) == 0
    code = main(
        ["drift", "--lake", str(tmp_path / "lake"), "--model", MODEL, "--multivariate",
         "--format", "json", "--out", str(tmp_path / "mv.json"), "--fail-on-drift"]
    )  # fmt: skip
    assert code == 1
    shown = json.loads((tmp_path / "mv.json").read_text())
    assert [r["alert"] for r in shown] == [False, False, True, True]
    # the errors are no feature of the data-quality table
    assert set(lake.data_quality(MODEL).get_column("feature")) == set(SCHEMA.names)
    # the report says it in one sentence, from a context that survives save and load
    from mlmon.reports.context import collect, load, save
    from mlmon.reports.render import render_html

    ctx = collect(lake, [MODEL], T0, T0 + timedelta(days=4))
    whole = ctx.models[0].multivariate
    assert whole["alert"] is True and whole["count"] == same.height + flipped.height
    assert ctx.models[0].status == "amber"  # no feature drifted alone
    assert ctx.models[0].status_reasons == [
        "the features together drifted (multivariate reconstruction error outside the reference band)"
    ]
    ctx = load(save(ctx, tmp_path / "ctx").parent)
    assert ctx.models[0].multivariate == whole
    html = render_html(ctx)
    assert "All features together (multivariate drift)" in html
    assert "<b>outside</b> the reference band" in html


def test_missing_values_are_imputed_and_unseen_categories_handled(data) -> None:
    reference, _ = data
    ref = build_reference(reference, SCHEMA, k=1, multivariate=True)
    mv = ref.multivariate
    assert mv is not None
    row = {"a": [0.3], "b": [-0.2], "c": [11.0], "colour": ["green"]}
    base = pl.DataFrame(row)
    a_mean = float(np.nanmean(reference.get_column("a").cast(pl.Float64).to_numpy()))
    # a null, NaN or infinite number is the reference mean; a null category the mode
    for bad in (None, float("nan"), float("inf")):
        missing = base.with_columns(pl.Series("a", [bad], dtype=pl.Float64))
        mean_in = base.with_columns(pl.Series("a", [a_mean]))
        assert mv.errors(missing)[0] == pytest.approx(mv.errors(mean_in)[0], rel=1e-12)
    no_colour = base.with_columns(pl.Series("colour", [None], dtype=pl.String))
    red = base.with_columns(pl.Series("colour", ["red"]))  # the most frequent
    assert mv.errors(no_colour)[0] == pytest.approx(mv.errors(red)[0], rel=1e-12)
    # an unseen category is encoded as __other__'s reference frequency: 0 here (as NannyML)
    unseen = base.with_columns(pl.Series("colour", ["mauve"]))
    want, _ = _oracle(reference, unseen)
    assert np.isfinite(mv.errors(unseen)[0])
    assert mv.errors(unseen)[0] == pytest.approx(want[0], rel=1e-9)
    # with a learned vocabulary (k=5) a rare reference value is __other__: an unseen value
    # then shares its frequency
    rare = reference.with_columns(
        pl.when(pl.int_range(pl.len()) < 3).then(pl.lit("teal")).otherwise(pl.col("colour"))
        .alias("colour")
    )  # fmt: skip
    learned = build_reference(rare, SCHEMA, k=5, multivariate=True).multivariate
    assert learned is not None and "teal" not in learned.categories["colour"]
    assert learned.frequencies["colour"][-1] == pytest.approx(3 / rare.height)
    teal = base.with_columns(pl.Series("colour", ["teal"]))
    assert learned.errors(unseen)[0] == learned.errors(teal)[0]
    # a frame made only of missing values still gives finite errors
    empty = pl.DataFrame(
        {"a": [None], "b": [None], "c": [None], "colour": [None]},
        schema={"a": pl.Float64, "b": pl.Float64, "c": pl.Float64, "colour": pl.String},
    )
    assert np.isfinite(mv.errors(empty)).all()


def test_reference_round_trip_and_old_references_still_work(data, tmp_path: Path) -> None:
    reference, current = data
    ref = build_reference(reference, SCHEMA, multivariate=True)
    path = save_reference(ref, tmp_path / "ref.parquet")
    back = load_reference(path)
    assert back.reference_id == ref.reference_id
    assert back.multivariate is not None and ref.multivariate is not None
    assert back.multivariate.to_dict() == ref.multivariate.to_dict()
    np.testing.assert_array_equal(
        back.multivariate.errors(current), ref.multivariate.errors(current)
    )
    assert back.multivariate.profile == ref.multivariate.profile
    # a reference without a PCA keeps its id, profiles no errors, writes no extra row
    plain = build_reference(reference, SCHEMA)
    assert plain.multivariate is None and plain.reference_id != ref.reference_id
    assert profile_frame(current, plain).multivariate is None
    # a reference file of the previous schema (no multivariate_json column) loads
    old = pq.read_table(save_reference(plain, tmp_path / "plain.parquet"))
    old = old.drop_columns(["multivariate_json"])
    pq.write_table(old, tmp_path / "old.parquet")
    loaded = load_reference(tmp_path / "old.parquet")
    assert loaded.multivariate is None and loaded.reference_id == plain.reference_id
    # in the lake: the old reference's windows have no multivariate rows; drift still works
    lake = _into_lake(tmp_path / "lake", plain, current)
    assert lake.multivariate_drift(MODEL, by="all").height == 0
    assert lake.drift(MODEL, by="all").height > 0
    rows = lake.read("profiles", model=MODEL)
    assert MULTIVARIATE not in rows.get_column("feature").to_list()


def test_the_reserved_name_never_meets_a_user_column() -> None:
    assert display_name(MULTIVARIATE) == MULTIVARIATE_LABEL and display_name("age") == "age"
    with pytest.raises(SchemaError, match="reserves"):
        Schema((FeatureSpec(MULTIVARIATE, "numeric"), FeatureSpec("x", "numeric")))
    df = pl.DataFrame({MULTIVARIATE: [1.0, 2.0], "x": [1.0, 2.0]})
    with pytest.raises(SchemaError, match="reserves"):
        build_reference(df)


def test_stored_category_names_are_the_vocabulary_only(tmp_path: Path) -> None:
    """docs/security.md: the PCA stores aggregates and the vocabulary, never a raw value."""
    rng = np.random.default_rng(5)
    reference = _records(rng, 3000, 0.5, T0)
    secret = "Jane Doe MRN-123456"
    reference = reference.with_columns(
        pl.when(pl.int_range(pl.len()) < 4).then(pl.lit(secret)).otherwise(pl.col("colour"))
        .alias("colour")
    )  # fmt: skip
    allowed = Schema(
        (*SCHEMA.features[:3], FeatureSpec("colour", "categorical", allowed=("red", "green"))),
        latency=None,
        version=None,
    )
    for schema in (SCHEMA, allowed):  # learned (k=5: the secret is seen 4 times) and allow-listed
        ref = build_reference(reference, schema, multivariate=True)
        mv = ref.multivariate
        assert mv is not None
        vocab = ref.profiles["colour"].categories  # type: ignore[union-attr]
        assert mv.categories == {"colour": vocab} and secret not in vocab
        stored = json.dumps(mv.to_dict())
        assert secret not in stored
        path = save_reference(ref, tmp_path / "ref.parquet")
        table = pq.read_table(path)
        assert (
            secret not in str(table.to_pylist()) and secret.encode() not in Path(path).read_bytes()
        )
        names = json.loads(table.column("multivariate_json").drop_null()[0].as_py())["categories"]
        assert set(names["colour"]) <= set(vocab)


def test_equal_to_nannyml_data_reconstruction_drift_on_car_loan() -> None:
    """NannyML 0.13.1 in its own environment, its defaults, chunks of 5,000 rows."""
    from benchmarks.bench_multivariate import run_mlmon, run_nannyml

    theirs = run_nannyml("car_loan")
    ours = run_mlmon("car_loan")
    ref_rows = [r for r in theirs["rows"] if r["period"] == "reference"]
    rows = [r for r in theirs["rows"] if r["period"] == "analysis"]
    assert ours["components"] == theirs["components"]
    np.testing.assert_allclose(ours["reference"], [r["value"] for r in ref_rows], rtol=0.02)
    np.testing.assert_allclose(ours["analysis"], [r["value"] for r in rows], rtol=0.02)
    assert ours["upper"] == pytest.approx(rows[0]["upper"], rel=0.02)
    assert ours["alerts"] == [r["alert"] for r in rows]
    assert any(ours["alerts"]) and not all(ours["alerts"])


def test_open_windows_keep_their_errors_across_an_edge_checkpoint(data, tmp_path: Path) -> None:
    """An edge restart reloads its open windows from the checkpoint, errors included."""
    from mlmon.edge.checkpoint import Checkpoint, CheckpointState

    reference, current = data
    ref = build_reference(reference, SCHEMA, multivariate=True)
    windows = tuple(profile_windows(current, ref, window=timedelta(hours=6)))
    cp = Checkpoint(tmp_path / "cp")
    cp.commit(CheckpointState(windows=windows, reference_id=ref.reference_id))
    back = Checkpoint(tmp_path / "cp").load().windows
    assert len(back) == len(windows)
    for a, b in zip(sorted(back, key=lambda w: w.start), windows, strict=True):
        assert a.profile.multivariate is not None
        assert a.profile.multivariate == b.profile.multivariate
        assert a.profile.features == b.profile.features


def test_reference_build_on_the_cli_fits_the_pca(data, tmp_path: Path, capsys) -> None:
    from mlmon.cli import main

    reference, _ = data
    reference.write_parquet(tmp_path / "baseline.parquet")
    out = tmp_path / "ref.parquet"
    argv = ["reference", "build", "--data", str(tmp_path / "baseline.parquet"), "--model", MODEL,
            "--out", str(out), "--multivariate", "--pca-components", "2",
            "--multivariate-chunks", "8", "--multivariate-std", "2"]  # fmt: skip
    assert main(argv) == 0
    assert "multivariate: PCA of 4 features, 2 component(s)" in capsys.readouterr().out
    mv = load_reference(out).multivariate
    assert mv is not None and mv.components.shape == (2, 4)
    assert mv.chunk_means.size == 8 and mv.k == 2.0
    spread = mv.chunk_means.std()
    assert mv.upper == pytest.approx(mv.chunk_means.mean() + 2 * spread, rel=1e-12)
    # a fraction of 1 or more that is no whole number is refused, naming the setting
    assert main([*argv[:-6], "--pca-components", "2.5"]) == 2
    assert "n_components 2.5" in capsys.readouterr().err
