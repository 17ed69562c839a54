"""KServe's Python ModelServer serving a joblib scikit-learn model, on 127.0.0.1 only.

Run with the KServe environment's interpreter (its own lock, tests/servers/kserve)::

    tests/servers/kserve/.venv/bin/python tests/servers/kserve/serve.py \
        --model_dir DIR --model_name risk --http_port 8080 [--predict_proba]

The model class is what KServe's own scikit-learn server (``sklearnserver``) does:
``get_predict_input`` turns the V1 or V2 body into what the model gets,
``predict`` or ``predict_proba`` runs, ``get_predict_response`` answers. Two changes
to KServe's defaults, both needed on a shared test machine: the REST server binds
127.0.0.1 (KServe hard-codes 0.0.0.0) and gRPC is off. ``kserve.model_server``
parses ``sys.argv`` at import, so the arguments are hidden from it and parsed here
with a parser built on KServe's own (``--http_port`` and the rest keep their names).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

_argv, sys.argv = sys.argv[1:], sys.argv[:1]  # kserve.model_server parses sys.argv at import

import joblib  # noqa: E402
from kserve import Model, ModelServer  # noqa: E402
from kserve import model_server as kserve_model_server  # noqa: E402
from kserve.errors import InferenceError  # noqa: E402
from kserve.protocol.rest.server import RESTServer  # noqa: E402
from kserve.utils.utils import get_predict_input, get_predict_response  # noqa: E402


class LoopbackRESTServer(RESTServer):
    """KServe's REST server, listening on 127.0.0.1 instead of every interface."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config.host = "127.0.0.1"


class SKLearnModel(Model):
    def __init__(self, name: str, model_dir: str, predict_proba: bool) -> None:
        super().__init__(name)
        self.model_dir = Path(model_dir)
        self.predict_proba = predict_proba
        self.ready = False

    def load(self) -> bool:
        self._model = joblib.load(self.model_dir / "model.joblib")
        self.ready = True
        return self.ready

    def predict(self, payload: Any, headers: Any = None, response_headers: Any = None) -> Any:
        try:
            instances = get_predict_input(payload)
            if self.predict_proba:
                result = self._model.predict_proba(instances)
            else:
                result = self._model.predict(instances)
            return get_predict_response(payload, result, self.name)
        except Exception as e:
            raise InferenceError(str(e)) from e


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(parents=[kserve_model_server.parser])
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--predict_proba", action="store_true")
    args = parser.parse_args(argv)
    kserve_model_server.RESTServer = LoopbackRESTServer  # type: ignore[misc]
    model = SKLearnModel(args.model_name, args.model_dir, args.predict_proba)
    model.load()
    ModelServer(http_port=args.http_port, enable_grpc=False, workers=1).start([model])


if __name__ == "__main__":
    main(_argv)
