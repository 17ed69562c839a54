"""The audit log's cost per record (the server writes one per request).

    python -m benchmarks.bench_audit [--records 499] [--before DIR]

``--records`` records into one segment of 500 (so none is flushed), as the server's
``RequestAudit`` records them; CPU and wall seconds. ``--before DIR``: the same with the
``AuditLog`` of the code in DIR (e.g. ``git archive`` of an older commit unpacked there),
loaded beside this one in the same process, alternately, twice.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _audit_log_class(code: str | None) -> Any:
    if code is None:
        from mlmon.governance.audit import AuditLog

        return AuditLog
    path = Path(code) / "mlmon" / "governance" / "audit.py"
    spec = importlib.util.spec_from_file_location("audit_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["audit_before"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module.AuditLog


def run(cls: Any, records: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as d:
        log = cls(f"{d}/lake", f"{d}/state", "srv", echo=False, segment_size=500)
        cpu, wall = time.process_time(), time.perf_counter()
        for i in range(records):
            log.record("http_get", f"/models/model-{i % 20:02d}", "200",
                       principal="anonymous", client="127.0.0.1")  # fmt: skip
        return {"cpu_s": round(time.process_time() - cpu, 3),
                "wall_s": round(time.perf_counter() - wall, 3)}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=499)
    ap.add_argument("--before", help="a folder with the old code to compare")
    args = ap.parse_args(argv)
    cases = [("this", _audit_log_class(None))]
    if args.before:
        cases.insert(0, ("before", _audit_log_class(args.before)))
    for _ in range(2):
        for name, cls in cases:
            print(json.dumps({"code": name, "records": args.records, **run(cls, args.records)}))


if __name__ == "__main__":
    main()
