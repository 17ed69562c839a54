"""Regenerate the report notebooks (kept thin: parameters, then calls into mlmon).

python notebooks/make_notebooks.py
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent


def _nb(cells: list) -> nbformat.NotebookNode:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def report() -> nbformat.NotebookNode:
    params = new_code_cell(
        "# Parameters (papermill replaces these)\n"
        'lake = "file:///data/lake"\n'
        'models = ["risk-model"]\n'
        'start = "2026-10-01T00:00:00+00:00"\n'
        'end = "2026-11-01T00:00:00+00:00"\n'
        'title = "Model monitoring report"\n'
        "thresholds = {}\n"
        "storage_options = {}\n"
        'context_path = "context.json"\n'
    )
    params.metadata["tags"] = ["parameters"]
    return _nb([
        new_markdown_cell("# Monitoring report\nEverything below is computed from the metric lake alone."),
        params,
        new_code_cell(
            "from datetime import datetime\n\n"
            "from mlmon.reports.context import collect\n"
            "from mlmon.reports.render import summary_lines\n\n"
            "ctx = collect(lake, models, datetime.fromisoformat(start), datetime.fromisoformat(end),\n"
            "              thresholds=thresholds, title=title, storage_options=storage_options or None)\n"
            "ctx.save(context_path)\n"
            "print(f'overall status: {ctx.overall_status}')\n"
            "for line in summary_lines(ctx):\n"
            "    print(line)"
        ),
        new_code_cell(
            "import polars as pl\n\n"
            "for m in ctx.models:\n"
            "    if m.drift.height:\n"
            "        display(m.drift.pivot('method', index='feature', values='value'))"
        ),
    ])  # fmt: skip


def explore() -> nbformat.NotebookNode:
    params = new_code_cell('lake_uri = "file:///data/lake"\nmodel = "risk-model"\n')
    params.metadata["tags"] = ["parameters"]
    return _nb([
        new_markdown_cell("# Explore a metric lake\nduckdb SQL, drift over time and percentiles, from profiles only."),
        params,
        new_code_cell("import mlmon\n\nlake = mlmon.Lake(lake_uri)\nlake.sql('SELECT model, date, count(*) AS windows FROM profiles GROUP BY ALL ORDER BY 1, 2')"),
        new_code_cell("drift = lake.drift(model, by='day', methods=['psi', 'jensen_shannon', 'ks'])\ndrift.filter(drift['drifted'])"),
        new_code_cell("lake.percentiles('latency_ms', (0.5, 0.95, 0.99), model=model, by='day')"),
        new_code_cell(
            "import altair as alt\n\n"
            "from mlmon.reports.notebook import enable_offline_charts\n\n"
            "enable_offline_charts()  # drawn inline (SVG, PNG) by vl-convert: no CDN, no network\n"
            "js = drift.filter(drift['method'] == 'jensen_shannon')\n"
            "alt.Chart(js).mark_line(point=True).encode(x='period:T', y='value:Q', color='feature:N')"
        ),
    ])  # fmt: skip


if __name__ == "__main__":
    nbformat.write(report(), HERE / "monitoring_report.ipynb")
    nbformat.write(explore(), HERE / "explore.ipynb")
    print("wrote", HERE / "monitoring_report.ipynb", HERE / "explore.ipynb")
