"""report.html in a real browser: headless Chromium loads the page, an injected script counts the
images that did not decode (naturalWidth 0), clicks the PSNR header and records the order of the
methods; ``--dump-dom`` returns the DOM after all that ran.

Chromium (Debian's ``chromium``) is installed by ``.ci/run``; where it is absent these tests skip,
unless ``GENC_REQUIRE_BROWSER=1`` (set by .ci/run), where they fail.
"""

import base64
import json
import os
import re
import shutil
import subprocess

import pytest
import torch
from PIL import Image

from generative_encoder.apps.bench import ResultRow, write_results
from generative_encoder.apps.report import write_report
from generative_encoder.io.images import save_grid

BROWSER = next(
    (b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None
)
needs_browser = pytest.mark.skipif(
    BROWSER is None and os.environ.get("GENC_REQUIRE_BROWSER") != "1",
    reason="no chromium on PATH (.ci/run installs it)",
)

# Runs after the page's own script: counts broken images, then sorts by PSNR (the 7th column,
# 0-based 6) twice, recording the method column after each click.
CHECK = """<script>
window.addEventListener("load", function () {
  var imgs = Array.from(document.images);
  var broken = imgs.filter(function (i) { return !i.complete || i.naturalWidth === 0; }).length;
  var table = document.getElementById("results");
  var th = table.querySelectorAll("th")[6];
  var methods = function () {
    return Array.from(table.tBodies[0].rows).map(function (r) { return r.cells[2].textContent; });
  };
  th.click(); var asc = methods(); th.click(); var desc = methods();
  var out = document.createElement("pre");
  out.id = "check";
  out.textContent = JSON.stringify({images: imgs.length, broken: broken,
                                    widths: imgs.map(function (i) { return i.naturalWidth; }),
                                    asc: asc, desc: desc, rows: table.tBodies[0].rows.length});
  document.body.appendChild(out);
});
</script></body>"""

ROWS = [
    ("noisy", "ge", 24.1),
    ("noisy", "csgm", 22.5),
    ("noisy", "bm3d", 25.3),
    ("hole", "ge", 19.0),
]


def _row(task: str, method: str, psnr: float) -> ResultRow:
    return ResultRow(
        task=task,
        params="{}",
        method=method,
        n=4,
        mse=10 ** (-psnr / 10),
        mse_std=0.001,
        psnr=psnr,
        psnr_std=0.5,
        ssim=0.8,
        ssim_std=0.05,
        residual=1e-3,
        seconds=1.5,
    )


@pytest.fixture
def bench_folder(tmp_path):
    """A tiny bench output: results.csv / .md, two grids, one plot, spec and model records."""
    write_results([_row(*r) for r in ROWS], tmp_path)
    g = torch.Generator().manual_seed(0)
    for task in ("noisy", "hole"):
        save_grid(
            tmp_path / f"grid_{task}.png",
            [torch.rand(4, 1, 28, 28, generator=g)] * 3,
            ["clean", "degraded", "ge"],
        )
    save_grid(tmp_path / "psnr_vs_steps.png", [torch.rand(1, 3, 40, 60, generator=g)])
    (tmp_path / "spec.json").write_text(json.dumps({"n_images": 4, "seed": 0}))
    (tmp_path / "model_info.json").write_text(json.dumps({"dataset": "mnist5k"}))
    return tmp_path


def _browser_dom(page) -> str:
    if BROWSER is None:
        pytest.fail("GENC_REQUIRE_BROWSER=1 but no chromium on PATH")
    cmd = [
        BROWSER,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--virtual-time-budget=5000",
        "--dump-dom",
        page.as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_report_is_self_contained(bench_folder):
    page = write_report(bench_folder).read_text()
    sources = re.findall(r'<img src="([^"]*)"', page)
    assert len(sources) == 3 and all(s.startswith("data:image/png;base64,") for s in sources)
    decoded = base64.b64decode(sources[0].split(",", 1)[1])
    assert decoded == (bench_folder / "grid_hole.png").read_bytes()  # sorted: hole, noisy
    assert "http://" not in page and "https://" not in page  # nothing to fetch
    assert page.count("<tr>") == 1 + len(ROWS)  # header + rows
    assert "&quot;n_images&quot;: 4" in page and "Comparison grids" in page and "Plots" in page


@needs_browser
def test_report_renders_and_sorts_in_chromium(bench_folder):
    page = write_report(bench_folder)
    probe = page.with_name("probe.html")
    probe.write_text(page.read_text().replace("</body>", CHECK, 1))
    dom = _browser_dom(probe)
    match = re.search(r'<pre id="check">(.*?)</pre>', dom, re.S)
    assert match, dom[-2000:]
    check = json.loads(match.group(1).replace("&quot;", '"'))
    assert check["images"] == 3 and check["broken"] == 0
    expected = [
        Image.open(bench_folder / n).width
        for n in ("grid_hole.png", "grid_noisy.png", "psnr_vs_steps.png")
    ]
    assert check["widths"] == expected  # every image decoded, in order
    assert check["rows"] == len(ROWS)
    by_psnr = [m for _, m, _ in sorted(ROWS, key=lambda r: r[2])]
    assert check["asc"] == by_psnr and check["desc"] == by_psnr[::-1]


@needs_browser
def test_a_broken_image_is_caught(bench_folder):
    """The check itself works: a PNG cut short does not decode and is counted."""
    grid = bench_folder / "grid_noisy.png"
    grid.write_bytes(grid.read_bytes()[:40])
    probe = write_report(bench_folder).with_name("probe.html")
    probe.write_text((bench_folder / "report.html").read_text().replace("</body>", CHECK, 1))
    check = json.loads(
        re.search(r'<pre id="check">(.*?)</pre>', _browser_dom(probe), re.S)
        .group(1)
        .replace("&quot;", '"')
    )
    assert check["broken"] == 1


def test_bench_writes_a_report(tiny_model_dir, tmp_path):
    from generative_encoder.apps.bench import BenchSpec, TaskSpec, run_bench
    from generative_encoder.io.checkpoints import load_model

    spec = BenchSpec(
        n_images=2, tasks=(TaskSpec("sr", "superres", {"factor": 2}),), methods=("baseline",)
    )
    run_bench(spec, load_model(tiny_model_dir), tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert "<td>bicubic</td>" in page and page.count('<img src="data:image/png;base64,') == 1
