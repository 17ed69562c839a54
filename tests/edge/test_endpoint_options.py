"""edge.yaml endpoint options (issue 16): request shapes, outputs and versions, checked at load."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from mlmon.edge.config import load_config
from mlmon.edge.protocols import SHAPES, Endpoint, HttpSettings
from mlmon.edge.versions import AliasVersion, check_version, is_version
from mlmon.errors import ConfigError


def write(tmp: Path, **endpoint: object) -> Path:
    cfg = {
        "collector_id": "edge-1",
        "lake": {"uri": (tmp / "lake").as_uri()},
        "hmac_key": {"env": "K"},
        "state_dir": str(tmp / "s"),
        "allow_http": True,
        "models": [{"name": "risk", "reference": "r.parquet",
                    "endpoint": {"url": "http://127.0.0.1:1", **endpoint}}],
    }  # fmt: skip
    path = tmp / "edge.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        ({"protocol": "kserve_v1", "request_shape": "tensor"},
         "request_shape 'tensor' is not a kserve_v1 shape; use one of objects, rows (default objects)"),
        ({"protocol": "kserve_v1", "request_shape": "rows"},
         "request_shape 'rows' sends values by position; list the model's feature order in features"),
        ({"protocol": "oip_v2", "request_shape": "tensor", "features": ["a", "b", "a"]},
         "features lists a more than once"),
        ({"protocol": "oip_v2", "request_shape": "pandas", "tensor_datatype": "FP64"},
         "tensor_datatype is for request_shape 'tensor' (protocol oip_v2); this endpoint sends 'pandas'"),
        ({"protocol": "oip_v2", "request_shape": "tensor", "features": ["a"],
          "tensor_datatype": "FLOAT"},
         "tensor_datatype 'FLOAT' is not an Open Inference Protocol datatype mlmon sends; use one of FP64"),
        ({"protocol": "mlflow", "request_shape": "parquet"},
         "use one of dataframe_split, dataframe_records, csv (default dataframe_split)"),
        ({"protocol": "mlflow", "output_column": -1}, "output_column must be an index >= 0"),
        ({"protocol": "mlflow", "output": "no spaces please"}, "output must be the answer's key"),
        ({"protocol": "generic_json", "request_template": "{\"x\": {{inputs}}}",
          "response_path": "y", "request_shape": "rows"},
         "request_shape 'rows' is not a generic_json shape"),
        ({"model_version": "1 OR 1=1"},
         "model_version is not a version string (8 characters); use 1-64 letters"),
        ({"model_version": 1.1}, 'quote it (model_version: "1.1")'),
        ({"model_version": "3", "version_alias": {"registry": "http://127.0.0.1:1", "model": "m",
                                                  "alias": "champion"}},
         "give model_version (the version this endpoint serves) or version_alias"),
        ({"version_alias": {"registry": "mlflow.internal", "model": "m", "alias": "champion"}},
         "registry 'mlflow.internal' is not an http(s) URL"),
    ],
)  # fmt: skip
def test_bad_endpoint_options_name_the_file_field_and_fix(
    tmp_path: Path, endpoint: dict[str, object], message: str
) -> None:
    path = write(tmp_path, **endpoint)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert text.startswith(f"{path}: models[0].endpoint"), text
    assert message in text, text


def test_defaults_keep_todays_shapes_and_new_options_load(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, protocol="kserve_v1")).models[0].endpoint
    assert cfg is not None and cfg.request_shape is None and cfg.features is None
    assert (
        Endpoint("http://127.0.0.1:1", "kserve_v1", settings=HttpSettings(allow_http=True)).shape
        == "objects"
    )
    assert {p: s[0] for p, s in SHAPES.items()} == {
        "generic_json": "template", "kserve_v1": "objects", "mlflow": "dataframe_split",
        "oip_v2": "tensor_per_feature",
    }  # fmt: skip
    cfg = load_config(
        write(tmp_path, protocol="oip_v2", request_shape="tensor", features=["b", "a"],
              tensor_datatype="FP32", output="predict_proba", output_column=1, model_version=12)
    ).models[0].endpoint  # fmt: skip
    assert cfg is not None
    assert (cfg.features, cfg.model_version, cfg.output_column) == (("b", "a"), "12", 1)


def test_request_bodies_follow_the_declared_order_and_datatype() -> None:
    settings = HttpSettings(allow_http=True)
    rows = [{"a": 1, "b": 2.5}, {"a": 3, "b": 4.0}]
    ep = Endpoint("http://127.0.0.1:1", "oip_v2", "m", settings, request_shape="tensor",
                  features=("b", "a"), tensor_datatype="FP32", output="predict_proba")  # fmt: skip
    call = ep.adapter.request(ep, rows)
    assert call.json == {
        "inputs": [{"name": "input-0", "shape": [2, 2], "datatype": "FP32",
                    "data": [2.5, 1.0, 4.0, 3.0]}],
        "outputs": [{"name": "predict_proba"}],
    }  # fmt: skip
    ints = Endpoint("http://127.0.0.1:1", "oip_v2", "m", settings, request_shape="tensor",
                    features=("b", "a"), tensor_datatype="INT64")  # fmt: skip
    with pytest.raises(ConfigError, match="do not fit one INT64 tensor"):
        ints.adapter.request(ints, rows)
    v1 = Endpoint("http://127.0.0.1:1", "kserve_v1", "m", settings, request_shape="rows",
                  features=("b", "a"))  # fmt: skip
    assert v1.adapter.request(v1, rows).json == {"instances": [[2.5, 1], [4.0, 3]]}
    with pytest.raises(ConfigError, match=re.escape("missing a; not in endpoint.features c")):
        v1.adapter.request(v1, [{"b": 1, "c": 2}])
    csv = Endpoint("http://127.0.0.1:1", "mlflow", settings=settings, request_shape="csv")
    call = csv.adapter.request(csv, rows)
    assert call.content == b"a,b\n1,2.5\n3,4.0\n"
    assert call.headers == {"Content-Type": "text/csv"}
    pd = Endpoint("http://127.0.0.1:1", "oip_v2", "m", settings, request_shape="pandas")
    assert pd.adapter.request(pd, rows).json["parameters"] == {"content_type": "pd"}


def test_version_strings_are_a_closed_alphabet() -> None:
    for good in ("1", "2.1.0", "v3", "1.0.0+cpu", "a_b-c", "x" * 64):
        assert is_version(good) and check_version(good, "w") == good
    for bad in ("", " 1", "1 ", "../etc", "a/b", "x" * 65, "é", "1;drop", "-1", None, 1.5):
        assert not is_version(bad)
        with pytest.raises(ConfigError, match="not a version string"):
            check_version(bad, "where")


def test_alias_version_caches_and_never_reuses_a_value_after_a_failure() -> None:
    from mlmon.registry.base import RegistryUnreachable

    now = [0.0]
    answers: list[object] = ["1", "2", RegistryUnreachable("down"), "3", "not a version!"]
    calls = []

    def resolve() -> str | None:
        calls.append(now[0])
        value = answers.pop(0)
        if isinstance(value, Exception):
            raise value
        return value  # type: ignore[return-value]

    alias = AliasVersion(resolve, "m@champion", refresh_s=60, clock=lambda: now[0])
    assert alias() == "1" and alias() == "1" and len(calls) == 1  # cached
    now[0] = 61
    assert alias() == "2"
    now[0] = 122
    assert alias() is None  # registry down: unattributed, not the old "2"
    now[0] = 130
    assert alias() is None and len(calls) == 3  # retried only after min(refresh, 30 s)
    now[0] = 153
    assert alias() == "3"
    now[0] = 214
    assert alias() is None  # a resolved value outside the alphabet is dropped
