"""``mlmon report``: run the report notebook on a real kernel, render HTML/PDF, keep the notebook."""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mlmon._extras import require
from mlmon.analysis.lake import Lake
from mlmon.errors import ConfigError, MlmonError
from mlmon.lake.owned import check_free, record_owned
from mlmon.lake.storage import open_storage, put_object
from mlmon.reports.context import ReportContext
from mlmon.reports.render import FORMATS, render

__all__ = ["NOTEBOOK", "output_names", "resolve_location", "run_report"]

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "monitoring_report.ipynb"


class ReportError(MlmonError):
    """The report notebook failed; the executed notebook next to the outputs shows where."""


def _ipc_kernel_manager() -> type:
    """A kernel manager whose kernel talks over Unix sockets, not TCP ports on 127.0.0.1.

    No port is opened for the report kernel (nothing else on the host can connect to
    it), and ipykernel has no unencrypted-TCP warning to print.
    """
    from jupyter_client.manager import AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs: Any) -> None:
            kwargs.setdefault("transport", "ipc")
            super().__init__(**kwargs)

    return IPCKernelManager


def resolve_location(location: str, base: str | os.PathLike[str] | None = None) -> str:
    """A local path made absolute (against ``base``, default the working folder); URIs unchanged.

    The report notebook runs in the output folder, so a relative ``--lake ./lake``
    or ``--out reports/`` must be resolved before it is handed over.

    Examples
    --------
    >>> resolve_location("s3://bucket/lake")
    's3://bucket/lake'
    >>> resolve_location("lake", "/srv")
    '/srv/lake'
    """
    scheme = urlparse(location).scheme
    if scheme and scheme != "file":
        return location
    path = urlparse(location).path if scheme == "file" else location
    return str(Path(base or Path.cwd()).joinpath(os.path.expanduser(path)).resolve())


def output_names(stem: str, formats: tuple[str, ...]) -> tuple[str, ...]:
    """The entries :func:`run_report` writes into its output folder for ``stem``."""
    return (f"{stem}.ipynb", f"{stem}-context", *(f"{stem}.{f}" for f in dict.fromkeys(formats)))


def run_report(
    lake: str,
    models: list[str],
    start: datetime,
    end: datetime,
    out: str,
    *,
    formats: tuple[str, ...] = ("pdf", "html"),
    title: str = "Model monitoring report",
    thresholds: dict[str, float] | None = None,
    storage_options: dict[str, Any] | None = None,
    stem: str | None = None,
) -> dict[str, str]:
    """Execute the parameterised notebook with papermill, then render; returns format -> location.

    ``out`` is a local folder or an ``s3://`` prefix; the executed notebook
    (``.ipynb``) and the context (a folder: JSON plus Parquet) are kept next to the reports.
    Relative local paths (``lake``, ``out``) are taken from the working folder.

    Only entries mlmon wrote are replaced (see :mod:`mlmon.lake.owned`): the
    output folder's ``.mlmon-owned.json`` lists them, and a file of the same name
    that is not listed stops the run before anything is written.

    Raises
    ------
    ForeignFilesError
        An output name is taken by a file or folder mlmon did not write.
    ConfigError
        An unknown format.
    UnknownNameError
        A model has no data in the lake (the message names the models that do);
        nothing was written.
    ReportError
        The notebook failed.
    """
    papermill = require("papermill", "reports")
    if not NOTEBOOK.exists():
        raise ConfigError(f"report notebook {NOTEBOOK} is missing")
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ConfigError(
            f"report format(s) {', '.join(map(repr, unknown))} unknown; use {', '.join(FORMATS)}"
        )
    name = stem or f"{'-'.join(models)}_{start:%Y%m%d}-{end:%Y%m%d}"
    remote = out.startswith("s3://")
    lake, out = resolve_location(lake), resolve_location(out)
    if start >= end:
        raise ConfigError(
            f"report period start {start.isoformat()} is not before end {end.isoformat()} "
            "(end is exclusive); swap them or give --period, e.g. 2026-10"
        )
    store = Lake(lake, storage_options)
    for model in models:  # a typo is an error naming the models, not a "no data" report
        store.require_model(model)
    target = open_storage(out, storage_options if remote else None)
    names = output_names(name, formats)
    check_free(
        target, names, hint="Choose another output folder (--out OTHER) or move those entries away."
    )
    record_owned(target, names, by="mlmon report")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) if remote else Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        executed = folder / f"{name}.ipynb"
        context = folder / f"{name}-context"  # context.json + one Parquet file per frame
        try:
            papermill.execute_notebook(
                str(NOTEBOOK), str(executed), kernel_name="python3", progress_bar=False, cwd=str(folder),
                kernel_manager_class=_ipc_kernel_manager(),
                parameters={"lake": lake, "models": models, "start": start.isoformat(), "end": end.isoformat(),
                            "title": title, "thresholds": thresholds or {}, "storage_options": storage_options or {},
                            "context_path": str(context)},
            )  # fmt: skip
        except papermill.PapermillExecutionError as exc:
            raise ReportError(
                f"the report notebook failed ({exc.ename}: {exc.evalue}); see the executed notebook {executed}"
            ) from exc
        files = render(ReportContext.load(context), folder, formats, stem=name)
        done = {
            "ipynb": str(executed),
            "context": str(context),
            **{k: str(v) for k, v in files.items()},
        }
        if not remote:
            return done
        storage = target
        uploaded = {}
        for kind, local in done.items():
            p = Path(local)
            for f in sorted(p.rglob("*")) if p.is_dir() else [p]:
                if f.is_file():
                    put_object(storage, storage.path(str(f.relative_to(folder))), f.read_bytes())
            uploaded[kind] = storage.url(storage.path(p.name))
        return uploaded
