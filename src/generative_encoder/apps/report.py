"""One self-contained HTML page for a results folder: ``report.html``.

``write_report(out_dir)`` reads what a ``genc bench`` (or ``genc restore``) folder holds and
writes ``out_dir/report.html`` atomically:

- the results table (``results.csv``, else ``metrics.csv``), sortable by clicking a header
  (numbers numerically, text alphabetically; a second click reverses), a few lines of vanilla JS;
- the comparison grids (``grid_*.png``, ``grid.png``) and every other PNG plot at the folder's top
  level, embedded as base64 ``data:`` URIs, so the page is one file that can be mailed or moved;
- the run's configuration: ``spec.json``, ``model_info.json``, ``restore.json`` when present.

Nothing is fetched from the network; the page needs no server.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import os
import struct
from datetime import datetime, timezone
from pathlib import Path

from ..io.files import atomic_path

REPORT_NAME = "report.html"
TABLE_FILES = ("results.csv", "metrics.csv")  # the first one present is the table
CONFIG_FILES = ("spec.json", "model_info.json", "restore.json")
ZOOM = 2  # small grids shown twice their size
MAX_TABLE_ROWS = 5000  # a huge metrics.csv is cut, and said so

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #eee; cursor: pointer; user-select: none; }
th[data-order="asc"]::after { content: " \\25B2"; }
th[data-order="desc"]::after { content: " \\25BC"; }
figure { margin: 0.8em 0; } figcaption { font-size: 0.85em; color: #555; }
img { image-rendering: pixelated; max-width: 100%; border: 1px solid #ddd; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
"""

# Click a header: sort the body rows by that column (numbers as numbers), again: reverse.
_SORT_JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var asc = th.dataset.order !== "asc";
      table.querySelectorAll("th").forEach(function (h) { delete h.dataset.order; });
      th.dataset.order = asc ? "asc" : "desc";
      var key = function (row) {
        var text = row.cells[col].textContent.trim(), v = Number(text);
        return text !== "" && !isNaN(v) ? v : text;
      };
      var body = table.tBodies[0];
      Array.from(body.rows).sort(function (a, b) {
        var x = key(a), y = key(b);
        var c = (typeof x === "number" && typeof y === "number") ? x - y
              : String(x).localeCompare(String(y));
        return asc ? c : -c;
      }).forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def write_report(
    out_dir: str | os.PathLike, title: str | None = None, extra_config: dict | None = None
) -> Path:
    """Write ``out_dir/report.html`` from the files in ``out_dir`` and return its path.

    title: the page's heading (default: the folder's name). extra_config: more settings to show
    beside the folder's JSON records (any JSON-serialisable dict).
    """
    out = Path(out_dir)
    parts = [
        f"<h1>{html.escape(title or f'Results: {out.resolve().name}')}</h1>",
        f"<p>Written {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} from "
        f"<code>{html.escape(str(out.resolve()))}</code>.</p>",
    ]
    table_file = next((out / n for n in TABLE_FILES if (out / n).is_file()), None)
    if table_file is not None:
        parts += [
            f"<h2>Results ({html.escape(table_file.name)})</h2>",
            "<p>Click a column header to sort.</p>",
            _table_html(table_file),
        ]
    grids, plots = _pictures(out)
    for heading, files in (("Comparison grids", grids), ("Plots", plots)):
        if files:
            parts.append(f"<h2>{heading}</h2>")
            parts += [_figure_html(f) for f in files]
    configs = [(n, (out / n).read_text()) for n in CONFIG_FILES if (out / n).is_file()]
    if extra_config:
        configs.append(("settings", json.dumps(extra_config, indent=2, default=str)))
    if configs:
        parts.append("<h2>Configuration</h2>")
        parts += [
            f"<h3>{html.escape(name)}</h3><pre>{html.escape(_pretty(text))}</pre>"
            for name, text in configs
        ]
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title or out.resolve().name)}</title>"
        f"<style>{_STYLE}</style></head><body>\n"
        + "\n".join(parts)
        + f"\n<script>{_SORT_JS}</script>\n</body></html>\n"
    )
    path = out / REPORT_NAME
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path


def _table_html(path: Path) -> str:
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return "<p>(empty)</p>"
    header, body = rows[0], rows[1:]
    note = ""
    if len(body) > MAX_TABLE_ROWS:
        note = f"<p>First {MAX_TABLE_ROWS} of {len(body)} rows.</p>"
        body = body[:MAX_TABLE_ROWS]
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    lines = ["<tr>" + "".join(_cell(v) for v in r) + "</tr>" for r in body]
    return (
        f'{note}<table class="sortable" id="results"><thead><tr>{head}</tr></thead>'
        "<tbody>\n" + "\n".join(lines) + "\n</tbody></table>"
    )


def _cell(value: str) -> str:
    try:
        number = float(value)
    except ValueError:
        return f"<td>{html.escape(value)}</td>"
    shown = value if number.is_integer() else f"{number:.4g}"
    return f'<td class="num" title="{html.escape(value)}">{html.escape(shown)}</td>'


def _pictures(out: Path) -> tuple[list[Path], list[Path]]:
    """(comparison grids, other PNG plots) at the folder's top level, sorted by name."""
    pngs = sorted(p for p in out.glob("*.png") if p.is_file())
    grids = [p for p in pngs if p.name == "grid.png" or p.name.startswith("grid_")]
    return grids, [p for p in pngs if p not in grids]


def _figure_html(path: Path) -> str:
    raw = path.read_bytes()
    data = base64.b64encode(raw).decode("ascii")
    name = html.escape(path.name)
    width = ""
    if raw[:8] == b"\x89PNG\r\n\x1a\n" and len(raw) >= 24:  # IHDR: shown at ZOOM x its size
        width = f' width="{ZOOM * struct.unpack(">I", raw[16:20])[0]}"'
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{name}"{width}>'
        f"<figcaption>{name}</figcaption></figure>"
    )


def _pretty(text: str) -> str:
    try:
        return json.dumps(json.loads(text), indent=2)
    except json.JSONDecodeError:
        return text
