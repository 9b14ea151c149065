"""Issue 29: a report that reads at the headline job's scale. The selection rule (``report.selection``) and
``--select``; PNGs no wider than the page, no text under MIN_FONT, no two texts overlapping (measured on the drawn
figure) for the shipped configs' grids; report.html's charts drawn in headless Chromium with no two texts overlapping.

The shipped grids (mnist: 8 × 7, quickstart: 4 × 4, probe_deep: 7 × 4) run here on tiny synthetic data: the layout
depends on the grid's size, not on the data."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from types import SimpleNamespace

import matplotlib.text
import numpy as np
import pandas as pd
import pytest

from init_lab.catalog.errors import ConfigError
from init_lab.report import interactive, plots
from init_lab.report.run import load_run
from init_lab.report.selection import parse_select, select
from init_lab.report.verdicts import analyse

from .helpers import REPO, TINY, assert_clean_exit, copy_run, invoke
from .test_report_html import CHROMIUM, offline_chromium

TINY_DATA = ["dataset.name=synthetic", "dataset.synthetic_train=300", "dataset.synthetic_test=100",
             "model.hidden=[8, 8]", "training.epochs=1", "training.batch_size=50", "device=cpu"]


# --- the rule ---------------------------------------------------------------------------------------------------


def grid_of(means: dict[tuple[str, str], float]):
    """A stand-in run and cells table for ``select``: initializers × activations with these means (NaN: no value)."""
    inits = list(dict.fromkeys(i for i, _ in means))
    acts = list(dict.fromkeys(a for _, a in means))
    summary = pd.DataFrame([{"initializer": i, "activation": a} for i, a in means])
    cells = pd.DataFrame([{"initializer": i, "activation": a, "mean": m} for (i, a), m in means.items()])
    return SimpleNamespace(init_order=inits, act_order=acts, summary=summary), cells


MEANS = {
    ("zeros", "relu"): 0.11, ("random_normal", "relu"): 0.30, ("random_normal(stddev=0.01)", "relu"): 0.80,
    ("glorot_uniform", "relu"): 0.96, ("he_normal", "relu"): 0.97, ("orthogonal", "relu"): 0.95,
    ("zeros", "tanh"): 0.20, ("random_normal", "tanh"): float("nan"), ("random_normal(stddev=0.01)", "tanh"): 0.85,
    ("glorot_uniform", "tanh"): 0.95, ("he_normal", "tanh"): 0.94, ("orthogonal", "tanh"): 0.96,
}


def test_default_rule_draws_best_worst_and_references_and_summarises_the_rest():
    run, cells = grid_of(MEANS)
    chosen = select(run, cells, higher=True, metric_label="best validation accuracy")
    assert chosen.initializers("relu") == ["random_normal", "glorot_uniform", "he_normal"]
    assert chosen.pick("he_normal", "relu").roles == ("best", "reference")
    assert chosen.pick("random_normal", "relu").roles == ("worst",)
    # tanh: random_normal has no value (failed), so the worst with a value is the small Gaussian
    assert chosen.initializers("tanh") == ["random_normal(stddev=0.01)", "glorot_uniform", "he_normal", "orthogonal"]
    assert chosen.pick("orthogonal", "tanh").roles == ("best",)
    reasons = {(i, a): r for i, a, r in chosen.summarised}
    assert reasons[("zeros", "relu")].startswith("constant weights") and reasons[("zeros", "tanh")].startswith("const")
    assert reasons[("random_normal", "tanh")].startswith("no value")
    assert ("orthogonal", "relu") in reasons and not chosen.includes("zeros", "relu")
    # the page's sentence: the rule, then every combination left out, in one line
    assert chosen.text.startswith("Drawn per activation: the best initializer by best validation accuracy")
    assert "\n" not in chosen.text and "zeros with 2 activations (relu, tanh)" in chosen.text


def test_a_lower_is_better_metric_swaps_best_and_worst():
    run, cells = grid_of(MEANS)
    chosen = select(run, cells, higher=False)
    assert chosen.pick("random_normal", "relu").roles == ("best",)
    assert chosen.pick("he_normal", "relu").roles == ("reference", "worst")


def test_select_names_combinations_in_several_forms():
    inits, acts = ["zeros", "random_normal(stddev=0.01)", "he_normal"], ["relu", "tanh"]
    assert parse_select(["he_normal+relu"], inits, acts) == [("he_normal", "relu")]
    assert parse_select("he_normal + tanh, zeros+relu", inits, acts) == [("zeros", "relu"), ("he_normal", "tanh")]
    assert parse_select(["random_normal"], inits, acts) == [("random_normal(stddev=0.01)", "relu"),
                                                            ("random_normal(stddev=0.01)", "tanh")]
    assert parse_select(["*+tanh"], inits, acts) == [(i, "tanh") for i in inits]
    assert parse_select(["relu"], inits, acts) == [(i, "relu") for i in inits]
    assert parse_select(["random_normal(stddev=0.01)+*"], inits, acts) == [("random_normal(stddev=0.01)", "relu"),
                                                                         ("random_normal(stddev=0.01)", "tanh")]
    run, cells = grid_of({(i, a): 0.5 for i in inits for a in acts})
    named = select(run, cells, True, named=["zeros+relu"])
    assert [(p.initializer, p.activation) for p in named.picks] == [("zeros", "relu")]  # a constant one, if named
    assert named.text.startswith("Drawn: the combinations named by --select (zeros+relu).")


@pytest.mark.parametrize("item, message", [
    ("he_norml+relu", "unknown initializer 'he_norml'. Did you mean 'he_normal'?"),
    ("he_normal+rleu", "unknown activation 'rleu'. Did you mean 'relu'?"),
    ("tahn", "unknown initializer or activation 'tahn'. Did you mean 'tanh'?"),
])
def test_select_with_an_unknown_name_is_a_clear_error(item, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        parse_select([item], ["zeros", "he_normal"], ["relu", "tanh"])
    assert str(caught.value).startswith("--select") and "Allowed:" in str(caught.value)


def test_cli_select_draws_the_named_combinations(reference_run, tmp_path):
    run_dir = copy_run(reference_run(TINY), tmp_path / "run")
    result = invoke("report", run_dir, "--select", "zeros+tanh", "--select", "he_normal+relu")
    assert_clean_exit(result, 0)
    page = (run_dir / "report" / "report.html").read_text()
    assert "Drawn: the combinations named by --select (zeros+tanh, he_normal+relu)." in page
    data = interactive.curves_figure(load_run(run_dir), _selection(run_dir, ["zeros+tanh", "he_normal+relu"]))
    visible = {t["legendgroup"] + " " + t["meta"].split(" ")[2] for t in data["data"] if t.get("visible") is True}
    assert visible == {"zeros tanh", "he_normal relu"}
    bad = invoke("report", run_dir, "--select", "he_norml+relu")
    assert_clean_exit(bad, 1)
    assert "Did you mean 'he_normal'?" in bad.output and "Traceback" not in bad.output


def _selection(run_dir, named=None):
    from init_lab.report.selection import for_run

    run = load_run(run_dir)
    return for_run(run, analyse(run), named)


def test_run_report_takes_select(reference_run, tmp_path):
    run = load_run(copy_run(reference_run(TINY), tmp_path / "run"))
    run.report(select="he_normal")
    assert "named by --select (he_normal)" in (run.path / "report" / "report.html").read_text()
    with pytest.raises(ConfigError, match="Did you mean 'zeros'"):
        run.report(select=["zero+relu"])


def test_charts_show_the_selection_and_a_dropdown_per_activation(reference_run):
    """zeros (constant weights) start hidden, every other initializer drawn; a dropdown per activation panel, its
    options restyling only that panel's traces; no per-trial legend."""
    run = load_run(reference_run(TINY, ["grid.seed=[0, 1]"]))
    data = interactive.curves_figure(run)
    traces, layout = data["data"], data["layout"]
    assert {t["legendgroup"] for t in traces if t.get("visible") is True} == {"he_normal"}
    assert {t["legendgroup"] for t in traces if t.get("visible") == "legendonly"} == {"zeros"}
    per_seed = [t for t in traces if t.get("visible") is False]
    assert {t["legendgroup"] for t in per_seed} == set(run.summary["trial_id"]) and "legend2" not in layout
    menus = layout["updatemenus"]
    assert [m["buttons"][0]["label"] for m in menus] == ["relu: 1 chosen of 2", "tanh: 1 chosen of 2"]
    panels = [set(m["buttons"][0]["args"][1]) for m in menus]
    assert not panels[0] & panels[1] and panels[0] | panels[1] == set(range(len(traces)))
    assert [b["label"] for b in menus[0]["buttons"]] == ["relu: 1 chosen of 2", "relu: all 2", "relu: all, each seed"]


def test_panel_grid_bands_never_overlap():
    """The pixel layout: per row of panels a head band (dropdown), the axes, a foot band (x labels), for any count."""
    for n in (1, 3, 4, 5, 7, 12, 13):
        for stack in (1, 2):
            grid = interactive.PanelGrid(n, stack=stack)
            px = grid.plot_px
            for k in range(n):
                top = grid.y_domain(k, 0)[1]
                assert (grid.head_y(k) - top) * px >= grid.head_px - 5  # the dropdown's band above the axes
                bottom = grid.y_domain(k, stack - 1)[0]
                below = k + grid.ncols
                if below < n:  # the next row's head band starts under this row's foot band
                    assert (bottom - grid.head_y(below)) * px >= grid.foot_px - 5
                for j in range(stack - 1):
                    assert grid.y_domain(k, j)[0] > grid.y_domain(k, j + 1)[1]
                if k % grid.ncols:
                    assert grid.x_domain(k)[0] > grid.x_domain(k - 1)[1]


# --- the PNGs, measured ---------------------------------------------------------------------------------------


def drawn_texts(fig) -> list[matplotlib.text.Text]:
    """Every text matplotlib draws in the figure: titles, axis labels, the ticks it draws, texts, legends."""
    fig.canvas.draw()
    texts = [t for t in fig.texts] + ([fig._suptitle] if fig._suptitle else [])
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    for legend in legends:
        texts += [*legend.get_texts(), legend.get_title()]
    for ax in fig.axes:
        texts += [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label, *ax.texts]
        for axis in (ax.xaxis, ax.yaxis):
            texts += [tick.label1 for tick in axis._update_ticks() if tick.label1.get_visible()]
    unique = list({id(t): t for t in texts}.values())  # fig.texts may hold the suptitle too
    return [t for t in unique if t.get_visible() and t.get_text().strip()]


def layout_problems(fig) -> list[str]:
    """Texts that overlap (by more than a pixel each way), texts below MIN_FONT, a figure wider than the page."""
    problems = []
    width = fig.get_size_inches()[0] * plots.DPI
    if width > plots.PAGE_INCHES * plots.DPI + 1:
        problems.append(f"{width:.0f} px wide")
    texts = drawn_texts(fig)
    renderer = fig.canvas.get_renderer()
    boxes = [(t, t.get_window_extent(renderer)) for t in texts]
    for t, _ in boxes:
        if t.get_fontsize() < plots.MIN_FONT - 1e-6:
            problems.append(f"{t.get_text()!r} at {t.get_fontsize()} pt")
    for i, (a, box_a) in enumerate(boxes):
        for b, box_b in boxes[i + 1:]:
            dx = min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0)
            dy = min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0)
            if dx > 1 and dy > 1:
                problems.append(f"{a.get_text()!r} overlaps {b.get_text()!r}")
    return problems


def test_overlap_measure_sees_an_overlap(figures):
    """The measure itself: two titles drawn on top of each other are found."""
    fig = plots.plt.figure(figsize=(4, 3))
    fig.text(0.5, 0.5, "activation: elu", fontsize=10)
    fig.text(0.52, 0.5, "hidden layer (1 = first)", fontsize=10)
    assert any("overlaps" in p for p in layout_problems(fig))
    plots.plt.close(fig)


def run_figures(run, figures) -> list:
    verdicts = analyse(run)
    plots.heatmap(run, verdicts)
    plots.learning_curves(run)
    plots.diagnostics_plot(run)
    plots.training_signals_plot(run)
    plots.histograms_plot(run)
    return list(figures)


def test_tiny_run_figures_are_readable(reference_run, figures):
    drawn = run_figures(load_run(reference_run(TINY)), figures)
    assert len(drawn) == 5
    for fig in drawn:
        assert layout_problems(fig) == [], fig._suptitle.get_text()


def shipped_run(name: str, tmp_path_factory):
    from init_lab.config.loading import config_from_text
    from init_lab.run.sweep import run_sweep

    text = (REPO / "configs" / f"{name}.yaml").read_text()
    return run_sweep(config_from_text(text, overrides=TINY_DATA), out=tmp_path_factory.mktemp(name)).run_dir


@pytest.fixture(scope="module")
def mnist_grid(tmp_path_factory):
    """configs/mnist.yaml's grid (8 initializers × 7 activations, 56 trials) on tiny synthetic data."""
    return shipped_run("mnist", tmp_path_factory)


@pytest.fixture(scope="module")
def quickstart_grid(tmp_path_factory):
    """configs/quickstart.yaml's grid (4 × 4) on tiny synthetic data."""
    return shipped_run("quickstart", tmp_path_factory)


@pytest.mark.slow
def test_shipped_grids_figures_are_readable(mnist_grid, quickstart_grid, figures):
    for run_dir in (mnist_grid, quickstart_grid):
        run = load_run(run_dir)
        figures.clear()
        for fig in run_figures(run, figures):
            title = fig._suptitle.get_text()
            assert len(title) <= 70 and " + " not in title, title  # short, and no list of combinations
            assert layout_problems(fig) == [], title
    # the 56-trial grid: per activation the best, the worst and the references — never zeros
    chosen = _selection(mnist_grid)
    assert not any(p.initializer == "zeros" for p in chosen.picks) and len(chosen.activations()) == 7
    assert all(set(p.roles) <= {"best", "worst", "reference"} for p in chosen.picks)


@pytest.mark.slow
def test_probe_deep_figures_are_readable(figures):
    """configs/probe_deep.yaml: 7 initializers × 4 activations, 30 layers (width 16 here), 2 seeds."""
    from init_lab.api import probe

    result = probe(REPO / "configs" / "probe_deep.yaml", overrides=[*TINY_DATA[:3], "model.width=16"], seeds=2,
                   jacobian_examples=2)
    plots.probe_plot(result["layers"], "Signal propagation at initialization — probe-deep")
    plots.jacobian_plot(result["spectra"], "Input–output Jacobian spectrum — probe-deep")
    assert len(figures) == 2
    probe_fig, jacobian_fig = figures
    assert len(probe_fig.axes) == 4 * 3 and len(jacobian_fig.axes) == 4  # a row / a panel per activation
    assert len(probe_fig.legends[0].get_texts()) == 7 + 1  # one entry per initializer, and the theory's
    for fig in figures:
        assert layout_problems(fig) == [], fig._suptitle.get_text()


def test_theory_figure_of_probe_deep_is_readable(figures):
    from init_lab.analysis.theory import stack_tables
    from init_lab.config.loading import load_config

    _, layers = stack_tables(load_config(REPO / "configs" / "probe_deep.yaml", []), 0.112, None)
    plots.theory_plot(layers, "Mean-field propagation over depth — probe-deep")
    assert len(figures[0].axes) == 4 * 2 and layout_problems(figures[0]) == []


# --- report.html, drawn ---------------------------------------------------------------------------------------

# every chart's visible texts (tick labels, titles, legend, dropdowns) as boxes, read through a same-origin iframe
BOXES = """<!DOCTYPE html><html><body style="margin:0"><pre id="o">waiting</pre>
<iframe id="f" src="report.html" style="width:1400px;height:900px"></iframe><script>
const f = document.getElementById("f");
f.onload = () => setTimeout(() => {
  const out = {};
  for (const chart of f.contentWindow.document.querySelectorAll(".js-plotly-plot")) {
    out[chart.id] = [...chart.querySelectorAll("text")]
      .filter((t) => t.textContent.trim() && !t.closest(".hm, .heatmaplayer, .textpoint"))
      .map((t) => [t.textContent.slice(0, 40), t.getBoundingClientRect()])
      .filter(([, r]) => r.width >= 1 && r.height >= 1)
      .map(([s, r]) => [s, r.left, r.top, r.right, r.bottom]);
  }
  document.getElementById("o").textContent = "BOXES " + JSON.stringify(out);
}, 1500);
</script></body></html>"""


def chart_text_boxes(run_dir, tmp_path) -> dict[str, list]:
    probe = run_dir / "report" / "boxes.html"
    probe.write_text(BOXES, encoding="utf-8")
    try:
        out = subprocess.run([*offline_chromium(tmp_path), "--allow-file-access-from-files", "--window-size=1420,1000",
                              "--virtual-time-budget=30000", "--dump-dom", probe.as_uri()], capture_output=True,
                             text=True, timeout=300)
    finally:
        probe.unlink()
    found = re.search(r"BOXES (\{.*\})</pre>", html.unescape(out.stdout), re.S)
    assert found, out.stdout[-2000:] + out.stderr[-2000:]
    return json.loads(found.group(1))


def overlapping(boxes: list) -> list[tuple[str, str]]:
    pairs = []
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            if min(a[3], b[3]) - max(a[1], b[1]) > 1 and min(a[4], b[4]) - max(a[2], b[2]) > 1:
                pairs.append((a[0], b[0]))
    return pairs


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None or shutil.which("unshare") is None, reason="needs chromium (apt-get install chromium)")
def test_report_html_of_the_shipped_grids_has_no_overlapping_text(mnist_grid, quickstart_grid, tmp_path):
    for name, grid in (("quickstart", quickstart_grid), ("mnist", mnist_grid)):
        run_dir = copy_run(grid, tmp_path / name)
        assert_clean_exit(invoke("report", run_dir), 0)
        boxes = chart_text_boxes(run_dir, tmp_path)
        assert set(boxes) == {"chart-heatmap", "chart-curves", "chart-layers"}
        for chart, texts in boxes.items():
            assert len(texts) > 15 and overlapping(texts) == [], (name, chart)
    # a dropdown per activation, drawn; the legend names initializers only (8), not 56 trials
    curves = [t[0] for t in boxes["chart-curves"]]
    assert sum(": " in t and "chosen of 8" in t for t in curves) == 7
    assert not any(re.match(r"\d{3}_", t) for t in curves)
    assert np.isfinite([t[1:] for t in boxes["chart-curves"]]).all()
