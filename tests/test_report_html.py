"""report.html's interactive charts and comparison_<B>.html: chart data for every trial, no external URL,
hostile names kept inside the chart JSON, the heatmap's colour range, the comparison file; and, where a
chromium binary is installed, the page drawn headless with networking off."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from typer.testing import CliRunner

from init_lab.cli import app
from init_lab.report import interactive
from init_lab.report.colours import shading
from init_lab.report.render import html_report
from init_lab.report.run import load_run
from init_lab.report.verdicts import analyse

from .helpers import HOSTILE_DIR, TINY, copy_run
from .helpers import HOSTILE_NAME as HOSTILE

runner = CliRunner()
CHART_IDS = {"chart-heatmap", "chart-curves", "chart-layers"}
DATA_BLOCK = re.compile(r'<script type="application/json" id="initlab-charts">(.*?)</script>', re.S)
LIBRARY = re.compile(r"<script>(.*?)</script>", re.S)  # the first plain script: plotly.js


@pytest.fixture(scope="module")
def runs(reference_run, tmp_path_factory):
    """Two real runs: A with seeds 0 and 1 (test_report's run A), B (another learning rate) with seed 0 only:
    4 shared trials. This module's copies: its tests write reports into them."""
    base = tmp_path_factory.mktemp("runs")
    a = reference_run(TINY, ["grid.seed=[0, 1]"])
    b = reference_run(TINY, ["training.learning_rate=0.003"])
    return copy_run(a, base / "a" / a.name), copy_run(b, base / "b" / b.name)


def write_report(run_dir):
    result = runner.invoke(app, ["report", str(run_dir)])
    assert result.exit_code == 0, result.output
    return (run_dir / "report" / "report.html").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory):
    """Run A's report.html, written by `initlab report`, with its run directory."""
    run_dir = copy_run(runs[0], tmp_path_factory.mktemp("report") / runs[0].name)
    return run_dir, write_report(run_dir)


def charts_json(page: str) -> tuple[str, dict]:
    """The chart data block's raw text and its parsed content."""
    match = DATA_BLOCK.search(page)
    assert match, "no chart data block"
    return match.group(1), json.loads(match.group(1))


def without_library(page: str) -> str:
    """The page with plotly.js cut out (the library's own source mentions URLs for map tiles it never loads here)."""
    from plotly.offline import get_plotlyjs

    match = LIBRARY.search(page)
    assert match and match.group(1) == get_plotlyjs(), "plotly.js is not embedded verbatim"
    return page[:match.start(1)] + page[match.end(1):]


def test_json_for_script_cannot_end_the_script():
    text = interactive.json_for_script({"name": "</script><!--<b>&amp;\u2028", "x": [1.5, None]})
    assert not set("<>&") & set(text) and "\u2028" not in text
    assert json.loads(text) == {"name": "</script><!--<b>&amp;\u2028", "x": [1.5, None]}


def test_html_holds_chart_data_for_every_trial_and_no_external_url(report):
    run_dir, page = report
    raw, data = charts_json(page)
    assert set(data["figures"]) == CHART_IDS and data["config"]["displaylogo"] is False
    for trial_id in load_run(run_dir).summary["trial_id"]:
        assert trial_id in raw
    # every trial has its own curves, hidden until its activation's dropdown shows each seed
    curves = data["figures"]["chart-curves"]["data"]
    hidden = {t["legendgroup"] for t in curves if t.get("visible") is False}  # a dropdown option shows them
    assert hidden == set(load_run(run_dir).summary["trial_id"])
    rest = without_library(page)
    assert rest.count("<script") == 3 and page.count(interactive.DATA_ID) == 2  # the block and the lines reading it
    for external in ("<script src", "<link", 'href="http', 'src="http', "@import", "http://", "https://", "//cdn"):
        assert external not in rest, external
    assert "MathJax" not in rest
    # images stay for the figures without an interactive version; heatmap and curves are charts now
    assert rest.count("data:image/png;base64,") == 3 and 'id="chart-heatmap"' in page


def test_hostile_names_are_escaped_in_the_chart_data(runs, tmp_path):
    """A hand-edited trial.json (initializer and error) and a hostile run directory name reach the charts'
    titles, legends and hovers; none of them can end the data's script element or start a comment."""
    run_dir = copy_run(runs[0], tmp_path / HOSTILE_DIR)
    trial = sorted(run_dir.glob("trials/*/trial.json"))[0]
    record = json.loads(trial.read_text())
    record["spec"]["initializer"] = HOSTILE
    trial.write_text(json.dumps({**record, "status": "failed", "error": f"ValueError: {HOSTILE}"}))
    page = write_report(run_dir)
    lowered = page.lower()
    assert lowered.count("<script") == 3 and lowered.count("</script") == 3  # ours: library, data, drawing
    assert "</script><script>" not in page and "<!--" not in page
    raw, data = charts_json(page)
    assert not set("<>&") & set(raw)
    names = {t.get("name") for f in data["figures"].values() for t in f["data"]}
    assert html.escape(HOSTILE, quote=False) in names  # shown as text by Plotly, never as markup
    assert html.escape(HOSTILE_DIR) in page.split("<script")[0]  # the run's name heads the page, escaped


def test_heatmap_colours_the_gap_to_each_groups_best(report):
    """Issue 23: the colour is the gap to the best initializer of the cell's activation (1: the best; the scale's
    values are ``colours.shading``'s), cells at chance or without a value in a grey trace of their own."""
    run_dir, page = report
    verdicts = analyse(load_run(run_dir))
    position = shading(verdicts.cells, verdicts.higher).position
    scale, apart = charts_json(page)[1]["figures"]["chart-heatmap"]["data"]
    assert (scale["zmin"], scale["zmax"]) == (0, 1) and not apart["showscale"]
    drawn = sorted(z for row in scale["z"] for z in row if z is not None)
    assert drawn == pytest.approx(sorted(position.dropna()), abs=1e-5) and max(drawn) == 1
    texts = [s or a for sr, ar in zip(scale["text"], apart["text"]) for s, a in zip(sr, ar)]
    assert all("±" in text for text in texts)  # two seeds: mean ± std in every cell
    assert all("n = 2 of 2" in h and "diverged 0, failed 0" in h for row in scale["hovertext"] for h in row)


def test_comparison_file_holds_the_shared_trials(runs, tmp_path):
    a = copy_run(runs[0], tmp_path / runs[0].name)
    result = runner.invoke(app, ["report", str(a), str(runs[1]), "--metric", "test_accuracy"])
    assert result.exit_code == 0 and "4 shared trials" in result.output, result.output
    path = a / "report" / f"comparison_{runs[1].name}.html"
    assert path.is_file() and str(path) in result.output.replace("\n", "")
    page = path.read_text(encoding="utf-8")
    _, data = charts_json(page)
    points = [t for t in data["figures"]["chart-comparison"]["data"] if t["mode"] == "markers"]
    hovers = " ".join(h for t in points for h in t["hovertext"])
    trials = load_run(a).summary
    shared = trials.loc[trials["seed"] == 0, "trial_id"]
    assert sum(len(t["x"]) for t in points) == 4 and all(tid in hovers for tid in shared)
    assert not any(tid in hovers for tid in trials.loc[trials["seed"] == 1, "trial_id"])
    assert "<script src" not in without_library(page) and "https://" not in without_library(page)
    result = runner.invoke(app, ["report", str(a), str(runs[1]), "--no-files"])
    assert result.exit_code == 0 and "comparison chart" not in result.output


def test_page_without_charts_has_no_script(report):
    """`--format html` prints the tables only: no 4.5 MB library on stdout."""
    page = html_report(load_run(report[0]), "best_val_accuracy", {})
    assert "<script" not in page and "<table>" in page


# --- headless Chromium ---------------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# the page's resource requests (there must be none) and the charts Plotly drew, read through a same-origin iframe
PROBE = """<!DOCTYPE html><html><body><pre id="o">waiting</pre><iframe id="f" src="report.html"></iframe><script>
const f = document.getElementById("f");
f.onload = () => setTimeout(() => {
  const w = f.contentWindow;
  const resources = w.performance.getEntriesByType("resource").map((e) => e.name);
  const drawn = [...w.document.querySelectorAll(".js-plotly-plot")].filter((d) => d.querySelector(".main-svg"));
  document.getElementById("o").textContent = "PROBE " + JSON.stringify({resources, drawn: drawn.map((d) => d.id)});
}, 500);
</script></body></html>"""


def offline_chromium(tmp_path) -> list[str]:
    """Chromium with no network: in a network namespace of its own where that is allowed (root), else with
    every host name unresolvable and a dead proxy."""
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
            "--disable-background-networking", f"--user-data-dir={tmp_path / 'profile'}"]
    if shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0:
        return ["unshare", "-n", *base]
    return [*base, "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND"]


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (apt-get install chromium)")
def test_chromium_draws_every_chart_offline(report, tmp_path):
    from PIL import Image

    run_dir, _ = report
    chromium = offline_chromium(tmp_path)
    shot = tmp_path / "shot.png"
    page = (run_dir / "report" / "report.html").as_uri()
    subprocess.run([*chromium, "--window-size=1400,900", f"--screenshot={shot}", page], capture_output=True,
                   timeout=120)
    assert shot.is_file()
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert pixels.shape[:2] == (900, 1400)
    # strongly coloured pixels: the heatmap's cells (the pivot table's pastel cells and the text are not)
    vivid = (pixels.max(axis=2) - pixels.min(axis=2)) > 100
    assert vivid.sum() > 20_000 and len(np.unique(pixels[vivid], axis=0)) > 20
    probe = run_dir / "report" / "probe.html"
    probe.write_text(PROBE, encoding="utf-8")
    try:
        out = subprocess.run([*chromium, "--allow-file-access-from-files", "--virtual-time-budget=20000",
                              "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120)
    finally:
        probe.unlink()
    found = re.search(r"PROBE (\{.*?\})</pre>", html.unescape(out.stdout))
    assert found, out.stdout[-2000:] + out.stderr[-2000:]
    result = json.loads(found.group(1))
    assert result["resources"] == [] and set(result["drawn"]) == CHART_IDS
