// Appended to vega + vega-lite + vega-embed by vl_convert.javascript_bundle (mlmon.server.assets).
// Draws every <div class="chart" data-spec="ID"> from the JSON data island with that id, with
// Vega's expression interpreter (ast: true) so the page's CSP needs no 'unsafe-eval'; makes
// tables with class "sortable" sortable by clicking a column header.
function mlmonDraw() {
  for (const el of document.querySelectorAll("div.chart[data-spec]")) {
    const island = document.getElementById(el.dataset.spec);
    if (!island) continue;
    let spec;
    try {
      spec = JSON.parse(island.textContent);
    } catch (err) {
      el.textContent = "This chart could not be read.";
      continue;
    }
    vegaEmbed(el, spec, {
      ast: true, // Vega's expression interpreter: no eval, so no 'unsafe-eval' in the CSP
      actions: false,
      renderer: "svg",
      defaultStyle: false, // no <style> element (the CSP allows style sheets from 'self' only)
      tooltip: { disableDefaultStyle: true }, // its style is in /static/mlmon.css
    }).catch((err) => {
      el.textContent = "This chart could not be drawn: " + err.message;
    });
  }
}

function mlmonSortable() {
  for (const table of document.querySelectorAll("table.sortable")) {
    const heads = table.querySelectorAll("thead th");
    heads.forEach((th, col) => {
      th.tabIndex = 0;
      th.title = "Sort by this column";
      const sort = () => {
        const body = table.tBodies[0];
        const rows = Array.from(body.rows);
        const asc = th.dataset.order !== "asc";
        heads.forEach((h) => delete h.dataset.order);
        th.dataset.order = asc ? "asc" : "desc";
        const key = (row) => {
          const cell = row.cells[col];
          const v = cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent.trim();
          const n = Number(v);
          return v !== "" && !Number.isNaN(n) ? n : v.toLowerCase();
        };
        rows.sort((a, b) => {
          const x = key(a), y = key(b);
          const c = typeof x === typeof y ? (x < y ? -1 : x > y ? 1 : 0) : typeof x === "number" ? -1 : 1;
          return asc ? c : -c;
        });
        rows.forEach((r) => body.appendChild(r));
      };
      th.addEventListener("click", sort);
      th.addEventListener("keydown", (e) => { if (e.key === "Enter") sort(); });
    });
  }
}

function mlmonCustomRange() {
  const select = document.getElementById("range");
  const custom = document.getElementById("custom-dates");
  if (!select || !custom) return;
  const show = () => { custom.hidden = select.value !== "custom"; };
  select.addEventListener("change", show);
  show();
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", () => { mlmonDraw(); mlmonSortable(); mlmonCustomRange(); });
} else {
  mlmonDraw();
  mlmonSortable();
  mlmonCustomRange();
}
