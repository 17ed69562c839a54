"""Golden probes against the real model servers users run (issue 16): KServe, MLServer, MLflow.

Each server serves the same scikit-learn pipeline (tests/servers/real.py). Every
endpoint is configured through ``edge.yaml`` as a user would, and every test shows
both sides: the golden set passes with the right request shape, and the same probe
fails, with the failure it really gets, when the shape or the expected output is wrong.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from mlmon.edge.config import load_config
from mlmon.edge.golden import load_golden_set, run_golden
from mlmon.edge.protocols import Endpoint, endpoint_from_config
from tests.servers.real import (
    FEATURES,
    Server,
    TrainedModel,
    golden_rows,
    kserve,
    mlflow_proba,
    mlflow_scoring,
    mlserver,
    real_servers,
    trained_model,
)

# The real servers these tests start are session fixtures: one worker runs them all, so each
# server starts once per run (make test: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("real-model-servers")

__all__ = [
    "kserve",
    "mlflow_proba",
    "mlflow_scoring",
    "mlserver",
    "real_servers",
    "trained_model",
]

SECRET = b"real-servers-hmac-key-0123456789"
ROWS = golden_rows()


def golden_file(
    tmp: Path, model: TrainedModel, *, kind: str = "label", flip: bool = False, name: str = "g"
) -> Path:
    """One single-row sample per row and one three-row sample; ``flip`` makes them all wrong."""
    samples: list[dict[str, Any]] = []
    for i, row in enumerate(ROWS):
        if kind == "label":
            expected: Any = model.predict([row])[0]
            expected = 1 - expected if flip else expected
        else:
            expected = model.proba1([row])[0] + (0.25 if flip else 0.0)
        samples.append({"id": f"case-{i}", "inputs": row, "expected": expected, "kind": kind,
                        "abs_tol": 1e-6})  # fmt: skip
    batch = ROWS[:3]
    expected_batch: list[Any] = model.predict(batch) if kind == "label" else model.proba1(batch)
    if flip:
        expected_batch = [1 - v if kind == "label" else v + 0.25 for v in expected_batch]
    samples.append({"id": "batch", "inputs": batch, "expected": expected_batch, "kind": kind,
                    "abs_tol": 1e-6})  # fmt: skip
    path = tmp / f"{name}-{kind}{'-flipped' if flip else ''}.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in samples))
    return path


def endpoint(tmp: Path, **endpoint_cfg: Any) -> Endpoint:
    """The endpoint as ``edge.yaml`` describes it (load_config validates every option)."""
    cfg = {
        "collector_id": "edge-1",
        "lake": {"uri": (tmp / "lake").as_uri()},
        "hmac_key": {"env": "MLMON_HMAC_KEY"},
        "state_dir": str(tmp / "state"),
        "allow_http": True,
        "models": [{"name": "risk", "reference": "ref.parquet",
                    "endpoint": {"retries": 0, "timeout": "20s", **endpoint_cfg}}],
    }  # fmt: skip
    path = tmp / "edge.yaml"
    path.write_text(yaml.safe_dump(cfg))
    model = load_config(path).models[0]
    assert model.endpoint is not None
    return endpoint_from_config(model.endpoint, allow_http=True)


def run(ep: Endpoint, golden: Path) -> pl.DataFrame:
    return run_golden(None, ep, load_golden_set(golden), SECRET)


def outcome(frame: pl.DataFrame) -> dict[str | None, int]:
    """error_kind -> count (None: passed)."""
    kinds = frame.get_column("error_kind").to_list()
    return {k: kinds.count(k) for k in sorted(set(kinds), key=str)}


CASES = len(ROWS) + 1


# -- KServe V1 -----------------------------------------------------------------------------
def test_kserve_v1_rows_in_feature_order_pass_and_objects_fail(
    kserve: Server, trained_model: TrainedModel, tmp_path: Path
) -> None:
    labels = golden_file(tmp_path, trained_model)
    base = {"url": kserve.url, "protocol": "kserve_v1", "model_name": "risk"}
    # mlmon's default V1 shape (objects) reaches the pipeline as dicts: KServe answers 500
    objects = run(endpoint(tmp_path, **base), labels)
    assert outcome(objects) == {"http_5xx": CASES}
    rows = endpoint(tmp_path, **base, request_shape="rows", features=list(FEATURES))
    good = run(rows, labels)
    assert outcome(good) == {None: CASES}
    assert good.get_column("status_code").to_list() == [200] * CASES
    bad = run(rows, golden_file(tmp_path, trained_model, flip=True))
    assert outcome(bad) == {"mismatch": CASES}
    # the declared order matters: the same rows in another order give other answers
    shuffled = endpoint(tmp_path, **base, request_shape="rows", features=list(FEATURES[::-1]))
    assert outcome(run(shuffled, labels)).get("mismatch", 0) > 0


# -- KServe V2 -----------------------------------------------------------------------------
def test_kserve_v2_one_tensor_or_pandas_pass_and_tensor_per_feature_fails(
    kserve: Server, trained_model: TrainedModel, tmp_path: Path
) -> None:
    labels = golden_file(tmp_path, trained_model)
    base = {"url": kserve.url, "protocol": "oip_v2", "model_name": "risk"}
    # the default (one tensor per feature, no parameters): KServe reads the first tensor only
    assert outcome(run(endpoint(tmp_path, **base), labels)) == {"http_5xx": CASES}
    tensor = endpoint(tmp_path, **base, request_shape="tensor", features=list(FEATURES),
                      model_version="4")  # fmt: skip
    good = run(tensor, labels)
    assert outcome(good) == {None: CASES}
    # KServe answers model_version null and no metadata versions: the declared one is used
    assert good.get_column("model_version").to_list() == ["4"] * CASES
    pandas = run(endpoint(tmp_path, **base, request_shape="pandas"), labels)
    assert outcome(pandas) == {None: CASES}
    assert pandas.get_column("model_version").to_list() == [None] * CASES
    bad = run(tensor, golden_file(tmp_path, trained_model, flip=True))
    assert outcome(bad) == {"mismatch": CASES}
    assert bad.get_column("model_version").to_list() == ["4"] * CASES
    # an output name the server does not answer is malformed, not a pass
    wrong = endpoint(tmp_path, **base, request_shape="tensor", features=list(FEATURES),
                     output="predict_proba")  # fmt: skip
    assert outcome(run(wrong, labels)) != {None: CASES}


# -- MLServer ------------------------------------------------------------------------------
def test_mlserver_pandas_and_tensor_pass_and_report_its_version(
    mlserver: Server, trained_model: TrainedModel, tmp_path: Path
) -> None:
    labels = golden_file(tmp_path, trained_model)
    base = {"url": mlserver.url, "protocol": "oip_v2", "model_name": "risk"}
    # without a content type MLServer's numpy codec refuses more than one input tensor
    assert outcome(run(endpoint(tmp_path, **base), labels)) == {"http_4xx": CASES}
    for shape in ("pandas", "tensor"):
        ep = endpoint(tmp_path, **base, request_shape=shape, features=list(FEATURES),
                      model_version="ignored-when-reported")  # fmt: skip
        frame = run(ep, labels)
        assert outcome(frame) == {None: CASES}, shape
        # the version the server reports wins over the declared one
        assert frame.get_column("model_version").to_list() == ["7"] * CASES
    bad = run(endpoint(tmp_path, **base, request_shape="pandas"),
              golden_file(tmp_path, trained_model, flip=True))  # fmt: skip
    assert outcome(bad) == {"mismatch": CASES}


def test_mlserver_predict_proba_output_and_column(
    mlserver: Server, trained_model: TrainedModel, tmp_path: Path
) -> None:
    scores = golden_file(tmp_path, trained_model, kind="score")
    proba = endpoint(tmp_path, url=mlserver.url, protocol="oip_v2", model_name="risk",
                     request_shape="tensor", features=list(FEATURES), output="predict_proba",
                     output_column=1)  # fmt: skip
    assert outcome(run(proba, scores)) == {None: CASES}
    flipped = golden_file(tmp_path, trained_model, kind="score", flip=True)
    assert outcome(run(proba, flipped)) == {"mismatch": CASES}
    # the default output (predict: labels 0/1) matches only where a probability is within
    # 1e-6 of 0 or 1
    labels_only = endpoint(tmp_path, url=mlserver.url, protocol="oip_v2", model_name="risk",
                           request_shape="tensor", features=list(FEATURES))  # fmt: skip
    probs = trained_model.proba1(ROWS)
    near = sum(min(p, 1 - p) <= 1e-6 for p in probs)
    assert near < len(ROWS)
    assert outcome(run(labels_only, scores)).get("mismatch", 0) >= len(ROWS) - near


# -- MLflow --------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", ["dataframe_split", "dataframe_records", "csv"])
def test_mlflow_scoring_server_each_request_shape(
    shape: str, mlflow_scoring: Server, trained_model: TrainedModel, tmp_path: Path
) -> None:
    ep = endpoint(tmp_path, url=mlflow_scoring.url, protocol="mlflow", request_shape=shape,
                  model_version="2")  # fmt: skip
    good = run(ep, golden_file(tmp_path, trained_model))
    assert outcome(good) == {None: CASES}
    assert good.get_column("model_version").to_list() == ["2"] * CASES
    bad = run(ep, golden_file(tmp_path, trained_model, flip=True))
    assert outcome(bad) == {"mismatch": CASES}


def test_mlflow_predict_proba_model_with_output_column(
    mlflow_proba: Server, trained_model: TrainedModel, tmp_path: Path
) -> None:
    ep = endpoint(tmp_path, url=mlflow_proba.url, protocol="mlflow", output_column=1)
    assert outcome(run(ep, golden_file(tmp_path, trained_model, kind="score"))) == {None: CASES}
    flipped = golden_file(tmp_path, trained_model, kind="score", flip=True)
    assert outcome(run(ep, flipped)) == {"mismatch": CASES}
    # without output_column each prediction is [p0, p1]: not the expected score
    whole = endpoint(tmp_path, url=mlflow_proba.url, protocol="mlflow")
    assert outcome(run(whole, golden_file(tmp_path, trained_model, kind="score"))) == {
        "mismatch": CASES
    }
    # a column past the end of [p0, p1] is a malformed answer, not a pass
    past = endpoint(tmp_path, url=mlflow_proba.url, protocol="mlflow", output_column=2)
    assert outcome(run(past, golden_file(tmp_path, trained_model, kind="score"))) == {
        "malformed": CASES
    }
