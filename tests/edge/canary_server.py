"""The demo model server, made hostile: it puts a planted string everywhere it can.

``python -m tests.edge.canary_server --canary TEXT [demo server options]`` runs
:mod:`mlmon.demo.model_server` with two changes: every response carries the
header ``X-Model-Note: TEXT``, and every JSON answer with ``predictions`` (the
V1 and MLflow answers) gains ``"model_version": TEXT``. The demo's own
``--model-version TEXT`` puts it in the V2 answer and the model metadata.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mlmon.demo import model_server


class CanaryServer(model_server.Server):
    """The demo server whose handler adds the canary to headers and V1 answers."""

    canary = ""

    def handler(self) -> Any:
        base = super().handler()
        canary = self.canary

        class Handler(base):  # type: ignore[misc,valid-type]
            def end_headers(self) -> None:
                self.send_header("X-Model-Note", canary)
                super().end_headers()

            def _json(self, code: int, obj: Any) -> None:
                if isinstance(obj, dict) and "predictions" in obj:
                    obj = {**obj, "model_version": canary}
                super()._json(code, obj)

        return Handler


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--canary", required=True)
    args, rest = ap.parse_known_args(sys.argv[1:] if argv is None else argv)
    CanaryServer.canary = args.canary
    model_server.Server = CanaryServer  # type: ignore[misc]
    model_server.main(rest)


if __name__ == "__main__":
    main()
