"""The report's files: report.md, a self-contained interactive report.html, leaderboard.csv, pivot.csv, cells.csv,
comparisons.csv, PNGs, and the comparison of two runs as comparison_<run B>.html (+ comparisons_<run B>.csv);
and the text of the verdicts over seeds (``verdicts``) that every format shows.

Every string that comes from a config or a file (names can be anything) is
escaped for the format it lands in: ``html.escape`` for HTML, and backslash
escapes plus entity-encoding of ``<``/``>`` for Markdown (whose renderers pass raw HTML through);
chart data as script-safe JSON (``interactive.json_for_script``).
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from init_lab.analysis.histograms import ACT_BINS, ACT_CAP, GRAD_MIN_EXP, GRAD_PER_DECADE
from init_lab.catalog.defaults import ALPHA, POWER, PROBE_SIZE
from init_lab.report import interactive, selection
from init_lab.report.colours import Shading, shading
from init_lab.report.phase import phase_diagram
from init_lab.report.rundata import RunData
from init_lab.report.tables import comparison, facets, fmt, fmt_diff, matrix, metric_names, value_label
from init_lab.report.timings import TIMINGS_TEXT, timings_table
from init_lab.report.tuned import TUNED_FILE, choice_text, choices_frame
from init_lab.report.verdicts import (
    CELL_COLUMNS,
    MAX_SEEDS_SEARCHED,
    Comparison,
    PairedRuns,
    Verdicts,
    analyse,
    analyse_runs,
    is_true,
    mark,
    marked_leaderboard,
    seeds_needed,
)
from init_lab.run.lock import RunLock
from init_lab.run.store import RunStore

PROBE_TEXT = (
    f"the fixed probe batch (the first {PROBE_SIZE} validation examples, or all of them if fewer; the same for every "
    "trial)"
)
CURVES_TEXT = (
    "Epoch 0 is the initial weights. Thin solid lines: training loss and accuracy from steps.csv, each point the "
    "mean over the training examples of k consecutive batches (about 50 points per epoch), placed at its position "
    "in epochs; runs recorded without steps.csv show the per-epoch training mean instead (with markers). Dashed "
    "with markers: the validation set, per epoch."
)
TRAINING_SIGNALS_TEXT = (
    "After Glorot & Bengio (2010), Fig. 2. For the first seed of each initializer + activation, each hidden "
    f"layer's activation values on {PROBE_TEXT} over training: the mean (line), mean ± standard deviation "
    "(shaded) and the 2nd and 98th percentiles (dotted), at every logged step of the first epoch(s) "
    "(step_layers.csv); right of the dashed line, at epoch ends only (layers.csv: mean and std). A layer whose "
    "mean drifts to the activation's bound and whose band collapses is saturating."
)
HISTOGRAMS_TEXT = (
    "After Glorot & Bengio (2010), Figs. 3–7. For the first seed of each initializer + activation, on "
    f"{PROBE_TEXT}, at initialization and after the last recorded epoch: (a, b) each hidden layer's activation "
    f"values, in {ACT_BINS} equal bins over the activation's range (an unbounded side cut at ±{ACT_CAP:g}; "
    "triangles: values beyond the bins); (c, d) the back-propagated gradients ∂ℓ/∂z of each example's own "
    "cross-entropy ℓ with respect to the layer's pre-activation z (per example, so the scale does not depend on "
    f"the batch size), as magnitudes |∂ℓ/∂z| in log-spaced bins ({GRAD_PER_DECADE} per decade, signs folded "
    f"together); '≈0' counts |∂ℓ/∂z| < 1e{GRAD_MIN_EXP} (a dead relu unit's exact zeros). y: the fraction of the "
    "layer's values, so layers of different widths compare. Gradient curves that spread apart layer by layer "
    "mean gradients that vanish or explode with depth; curves that overlap keep their scale."
)
SIGNALS_TEXT = (
    "Measured on a fixed probe batch of validation images (layers.csv of each trial): the spread of each hidden "
    "layer's activations at initialization and after training, and the worst layer's fraction of dead units "
    "(relu: pre-activation ≤ 0 on every probe example, so no gradient), of units stuck in the negative regime "
    "(leaky_relu, elu, selu, prelu: < 0 on every probe example, a gradient still flows) and of saturated values "
    "(derivative below 5% of its maximum). A conv layer's unit is a channel, over every position."
)
PHASE_TEXT = (
    "After Schoenholz et al. (2017), Figs. 5–6: the metric's mean over seeds for each exact weight variance σ_w² "
    "(variance_scaling's scale) and depth, a panel per activation and bias variance σ_b²; failed and unfinished "
    "trials are left out and diverged ones enter as in every table. Red: {factor:g}·ξ_c, with ξ_c = −1/ln χ_c the "
    "mean-field depth scale of the correlation map at that σ_w², σ_b² and activation (their eq. 9); the paper finds "
    "networks trainable below it. Dotted: the edge of chaos χ₁ = 1, where ξ_c diverges. The theory is for "
    "infinite width; with little training the trainable region is narrower than the curve (see "
    "docs/reproductions.md)."
)


@dataclass(frozen=True)
class Figure:
    """A figure with a section of its own in the report (the heatmap sits under the pivot tables)."""

    file: str
    heading: str
    text: str


SPP_TEXT = (
    "Signal-propagation plot (Brock, De & Smith 2021, Fig. 1) at initialization, mean over seeds: per layer the "
    "average over channels of each channel's squared mean and variance of the layer's output h (its Dense or conv "
    "output, after a residual block's skip, before its normalization), and at each residual block's last layer the "
    "branch's variance; log scale. Drawn for residual, normalized and conv nets."
)
FIGURES = {
    "curves": Figure("learning_curves.png", "Learning curves", CURVES_TEXT),
    "signals": Figure("diagnostics.png", "Per-layer signals", SIGNALS_TEXT),
    "training_signals": Figure("training_signals.png", "Activations during training", TRAINING_SIGNALS_TEXT),
    "histograms": Figure("histograms.png", "Activation and gradient histograms", HISTOGRAMS_TEXT),
    "phase": Figure("phase_diagram.png", "Trainability phase diagram: σ_w² × depth", PHASE_TEXT),
    "spp": Figure("signal_propagation.png", "Signal-propagation plot", SPP_TEXT),
}
HEATMAP_FILE = "heatmap.png"
CHARTS_TEXT = (
    "The charts are interactive: hover a point or cell for its trial and value; click a legend entry to hide or "
    "show it, double-click one to show it alone; the dropdown above each panel shows the selected initializers, all "
    "of them, or each seed's own curves; drag to zoom, double-click to zoom back out."
)
CELLS_TEXT = (
    "Each cell: the mean ± std over seeds, [the 95 % confidence interval of the mean] (n: the trials that count, see "
    "Verdicts), ★ the best of its group, ≈ tied with it (Holm-adjusted paired p ≥ 0.05); colours: the gap to the "
    "group's best on a log scale (grey: no value, or at chance)."
)
LAYERS_TEXT = (
    "Each hidden layer's activation std on the probe batch, mean over seeds: dashed at initialization, solid after "
    "the last recorded epoch; a panel per activation, a colour per initializer. A std of 0 (all-zero weights) has "
    "no place on the log axis and is not drawn. The figure below adds the std over epochs and the dead, "
    "stuck-negative and saturated fractions."
)
# figure -> the element id of the interactive chart that report.html shows in its place (the PNG stays for
# report.md); the diagnostics PNG stays in report.html too, below its chart: it shows more than the chart
CHART_IDS = {"heatmap": "chart-heatmap", "curves": "chart-curves", "signals": "chart-layers", "phase": "chart-phase"}
KEEP_PNG = {"signals"}
SELECTED = {"curves", "signals", "training_signals", "histograms"}  # figures that draw ``report.selection``
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~])")


def md_escape(value: Any) -> str:
    text = " ".join(str(value).split())  # no newlines inside a table cell
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cell(row: pd.Series, std_digits: int = 3) -> str:
    """'mean ± std [95 % CI] (n=k) ★' with the bad trials of the cell, for pivot tables (a row of
    ``verdicts.Verdicts.cells``; a plain ``tables.pivot`` row shows no CI and no mark)."""
    text = fmt(row["mean"])
    if not pd.isna(row["std"]):
        text += f" ± {row['std']:.{std_digits}f}"
    if not pd.isna(row.get("ci_low", math.nan)):
        text += f" [{fmt(row['ci_low'], std_digits)}, {fmt(row['ci_high'], std_digits)}]"
    if row["n_trials"] > 1:
        text += f" (n={int(row['n'])})"
    if symbol := mark(row):
        text += f" {symbol}"
    notes = [f"{int(row[k])} {k}" for k in ("diverged", "failed", "unfinished") if row[k]]
    if row.get("diverged_at_chance"):
        notes[0] += f" ({int(row['diverged_at_chance'])} at chance)"
    if is_true(row.get("at_chance")):
        notes.append("at chance")
    if notes:
        text += " [" + ", ".join(notes) + "]"
    return text


# --- verdicts as text ---------------------------------------------------------------------------


def p_text(p: float, name: str = "p = ") -> str:
    """A p-value to 3 decimals, below 0.001 as '< 0.001': 'p = 0.080', or with ``name`` 'Holm ' 'Holm 0.310'."""
    return f"{name.removesuffix('= ').strip()} < 0.001" if p < 0.001 else f"{name}{fmt(p, 3)}"


def _where(c: Comparison) -> str:
    """The values a comparison's two cells share: 'relu', 'relu, depth=3' (names first, then swept axes)."""
    names = [value_label(c.fixed[k]) for k in ("initializer", "activation") if k in c.fixed]
    return ", ".join(names + [f"{k}={value_label(x)}" for k, x in c.fixed.items() if k not in ("initializer",
                                                                                                  "activation")])


def verdict_line(c: Comparison, m: int = 1) -> str:
    """One comparison in words, e.g. 'glorot_uniform vs he_normal (relu): −0.40 pt [−0.90, +0.10], p = 0.080
    (Holm 0.310), P(better) = 0.33 — not distinguishable with 3 seeds; ≈ 9 would detect 0.40 pt (…)'. ``m``: the
    report's number of tests, for the seeds a difference would need at Holm's strictest level α/m."""
    s = c.stats
    head = ("A − B" if c.axis == "run" else f"{c.a} vs {c.b}") + (f" ({_where(c)})" if c.fixed else
                                                                   " (all shared trials)")
    if s.n == 0:
        return f"{head}: no seed in common where both count — not compared"
    diff = fmt_diff(s.mean_diff, c.metric)
    if s.n == 1:
        return f"{head}: {diff} on 1 shared seed — no test possible"
    low, high = (fmt_diff(x, c.metric).removesuffix(" pt") for x in (s.ci.low, s.ci.high))
    text = (f"{head}: {diff} [{low}, {high}], {p_text(s.p_value)} ({p_text(c.p_holm, 'Holm ')}), "
            f"P(better) = {fmt(s.prob_improvement, 2)} — ")
    if not c.tied:
        who = "A" if c.axis == "run" else c.a
        return text + f"{who} {'better' if c.a_better else 'worse'}, distinguishable with {s.n} seeds"
    needed = seeds_needed(s.mean_diff, s.sd_diff, ALPHA / max(m, 1))
    size = fmt_diff(abs(s.mean_diff), c.metric, signed=False)
    level = f"α = {ALPHA:g}" + (f"/{m}" if m > 1 else "")
    if needed is None:
        more = "no difference to detect"
    elif needed > MAX_SEEDS_SEARCHED:
        more = f"more than {MAX_SEEDS_SEARCHED:,} seeds would be needed to detect {size}"
    else:
        more = f"≈ {needed} would detect {size} ({POWER:.0%} power at {level})"
    return text + f"not distinguishable with {s.n} seeds; {more}"


def verdict_lines(v: Verdicts | PairedRuns) -> list[str]:
    """The comparisons in words; none when no test was possible (the notes say so, once)."""
    m = sum(math.isfinite(c.stats.p_value) for c in v.comparisons)  # Holm's m
    if not m:
        return []
    return [verdict_line(c, m) for c in v.comparisons]


def pivot_matrices(run: RunData, table: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """Facets of the pivot as initializer × activation matrices of display strings."""
    out = []
    for title, part in facets(run, table):
        texts = part.assign(text=part.apply(lambda r: " ".join(filter(None, (cell(r), choice_text(run, r)))), axis=1))
        out.append((title, matrix(texts, run, "text").fillna("—")))
    return out


# --- markdown -------------------------------------------------------------------------


DIGITS = {"group_seconds": 1, "wall_seconds": 1}  # timings to a tenth of a second; other numbers to 4 decimals


def md_table(df: pd.DataFrame, index: bool = False) -> str:
    cols = ([df.index.name or ""] if index else []) + [str(c) for c in df.columns]
    lines = ["| " + " | ".join(md_escape(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    for key, row in df.iterrows():
        values = ([key] if index else []) + list(row)
        lines.append("| " + " | ".join(md_escape(fmt(v, DIGITS.get(c, 4))) for c, v in zip(cols, values)) + " |")
    return "\n".join(lines)


def data_shape(ds: dict[str, Any]) -> str:
    """"32×32×3 images, 10 classes" from a manifest's dataset record ('' for runs recorded before it had them)."""
    shape, classes = ds.get("shape"), ds.get("classes")
    if not isinstance(shape, list) or not shape:
        return ""
    return "×".join(map(str, shape)) + " images" + (f", {classes} classes" if classes else "")


def status_line(run: RunData) -> str:
    total = len(run.summary)
    counts = run.summary["status"].value_counts().to_dict()
    parts = ", ".join(f"{counts[s]} {s}" for s in ("completed", "diverged", "failed", "running", "pending") if counts.get(s))
    line = f"{run.n_finished} of {total} trials finished ({parts})."
    if run.missing:
        shown = ", ".join(run.missing[:8]) + (" …" if len(run.missing) > 8 else "")
        line += f" Not finished: {shown}."
    return line


def _tuned_md(run: RunData) -> list[str]:
    """A tuned run's choices (``report.tuned``): what each cell chose and how, before its tables."""
    if run.tuning is None:
        return []
    t = run.tuning
    return [f"## Each cell at its best {md_escape(t.axis)} (chosen by {md_escape(t.by)})", "",
            *[f"{md_escape(n)}\n" for n in t.notes], md_table(choices_frame(run)), ""]


def markdown(run: RunData, metric: str, images: dict[str, str], verdicts: Verdicts | None = None,
             chosen: selection.Selection | None = None) -> str:
    verdicts = verdicts or analyse(run, metric)
    chosen = chosen or selection.for_run(run, verdicts)
    label = metric_names(run.thresholds)[metric][0]
    board = marked_leaderboard(run, verdicts)
    table = verdicts.cells
    env = run.manifest.environment
    ds = run.manifest.dataset or {}
    out = [
        f"# initlab report: {md_escape(run.name)}",
        "",
        md_escape(status_line(run)),
        "",
        f"Dataset: {md_escape(ds.get('source', '?'))} ({md_escape(data_shape(ds)) + '; ' if data_shape(ds) else ''}{ds.get('train', '?')} train / "
        f"{ds.get('validation', '?')} "
        f"validation / {ds.get('test', '?')} test). Device: {md_escape(env.get('device', '?'))}. "
        f"TensorFlow {md_escape(env.get('tensorflow', '?'))}, Keras {md_escape(env.get('keras', '?'))}.",
        "",
        *_tuned_md(run),
        f"## {md_escape(label.capitalize())}: initializer × activation",
        "",
    ]
    for title, m in pivot_matrices(run, table):
        if title:
            out += [f"### {md_escape(title)}", ""]
        out += [md_table(m, index=True), ""]
    out += [md_escape(CELLS_TEXT), ""]
    if "heatmap" in images:
        out += [f"![{md_escape(label)} heatmap]({images['heatmap']})", ""]
    out += [f"## Verdicts over seeds ({md_escape(label)})", "", *[f"{md_escape(n)}\n" for n in verdicts.notes]]
    out += [f"- {md_escape(line)}" for line in verdict_lines(verdicts)] + [""]
    for key, figure in FIGURES.items():
        if key in images:
            out += [f"## {figure.heading}", "", _figure_text(figure), ""]
            out += [md_escape(chosen.text), ""] if key in SELECTED else []
            out += [f"![{figure.heading.lower()}]({images[key]})", ""]
    out += [f"## Leaderboard (by {md_escape(label)})", "", md_table(board.drop(columns=["error"], errors="ignore")), ""]
    errors = board[board["error"].fillna("") != ""] if "error" in board else board.iloc[0:0]
    if len(errors):
        out += ["## Errors", ""] + [f"- {md_escape(r.trial_id)}: {md_escape(r.error)}" for r in errors.itertuples()] + [""]
    if (spent := timings_table(run)) is not None:
        out += ["## Where the time went", "", md_escape(TIMINGS_TEXT), "", md_table(spent.round(3)), ""]
    return "\n".join(out)


# --- html --------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1400px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0}th,td{border:1px solid #ddd;padding:.25em .55em;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}tr:nth-child(even) td{background:#fafafa}
.diverged,.failed{color:#b00020;font-weight:600}.pending,.running{color:#888}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}.meta{color:#555;font-size:.9em}
.chart{width:100%;margin:.5em 0;border:1px solid #eee}
.selection{background:#f6f8fa;padding:.4em .6em;font-size:.9em}
"""


def _h(value: Any, digits: int = 4) -> str:
    return html.escape(fmt(value, digits), quote=True)


def html_table(df: pd.DataFrame, index: bool = False, left: tuple[str, ...] = (), colours: dict | None = None) -> str:
    cols = ([df.index.name or ""] if index else []) + [str(c) for c in df.columns]
    head = "".join(f'<th class="{"l" if c in left or (index and i == 0) else ""}">{html.escape(c)}</th>' for i, c in enumerate(cols))
    rows = []
    for key, row in df.iterrows():
        cells = []
        if index:
            cells.append(f'<th class="l">{_h(key)}</th>')
        for col, value in row.items():
            cls = "l" if col in left else ""
            if col == "status":
                cls += f" {html.escape(str(value))}"
            style = ""
            if colours is not None:
                style = f' style="background:{colours.get((key, col), "transparent")}"'
            cells.append(f'<td class="{cls.strip()}"{style}>{_h(value, DIGITS.get(str(col), 4))}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


APART_COLOUR = "#dddddd"  # a cell without a value, or at chance: outside the colour scale


def _heat_colours(run: RunData, part: pd.DataFrame, shade: Shading) -> dict:
    """A facet's cell backgrounds from their place on the shared colour scale (``colours.shading``)."""
    m = shade.matrix(run, part)
    out = {}
    for i in m.index:
        for a in m.columns:
            t = m.at[i, a]
            out[(i, a)] = APART_COLOUR if pd.isna(t) else f"hsl({int(120 * t)},65%,82%)"  # red (worst) → green (best)
    return out


def _verdicts_html(v: Verdicts | PairedRuns) -> list[str]:
    """The verdicts section: what was done (once), the comparisons in words, and their table."""
    parts = [f"<p class=\"meta\">{html.escape(n)}</p>" for n in v.notes]
    lines = verdict_lines(v)
    if lines:
        parts.append("<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in lines) + "</ul>")
        parts.append("<details><summary>the comparisons as a table (comparisons.csv)</summary>"
                     + _scrolling(html_table(v.comparisons_table, left=("metric", "axis", "a", "b"))) + "</details>")
    return parts


def _html_image(data: bytes, alt: str) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'


def _html_head(title: str) -> str:
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{CSS}</style></head><body>")


def _scrolling(table: str) -> str:
    return f'<div style="overflow-x:auto">{table}</div>'  # a wide table scrolls, the page does not


def _html_meta(run: RunData) -> str:
    env = run.manifest.environment
    ds = run.manifest.dataset or {}
    return (
        f"<p class=\"meta\">{html.escape(status_line(run))}<br>Dataset: {html.escape(str(ds.get('source', '?')))} "
        f"({html.escape(data_shape(ds)) + '; ' if data_shape(ds) else ''}{html.escape(str(ds.get('train', '?')))} train / "
        f"{html.escape(str(ds.get('validation', '?')))} validation / "
        f"{html.escape(str(ds.get('test', '?')))} test). Device: {html.escape(str(env.get('device', '?')))}. "
        f"TensorFlow {html.escape(str(env.get('tensorflow', '?')))}, Keras {html.escape(str(env.get('keras', '?')))}.</p>"
    )


def _figure_text(figure: Figure) -> str:
    """A figure's explanation (the phase diagram's names its curve's factor)."""
    from init_lab.catalog.defaults import PHASE_XI_FACTOR

    return figure.text.format(factor=PHASE_XI_FACTOR) if figure is FIGURES["phase"] else figure.text


def _figure_sections(images: dict[str, bytes], charts: interactive.Figures,
                     chosen: selection.Selection | None = None) -> list[str]:
    """The figures' sections: the interactive chart where there is one, else the PNG; the per-layer chart
    goes with the diagnostics PNG, which shows more (std over epochs, dead and saturated fractions). Under the
    heading of each figure that draws a selection, the rule (``chosen.text``)."""
    parts = []
    for key, figure in FIGURES.items():
        chart = CHART_IDS.get(key, "")
        if key not in images and chart not in charts:
            continue
        parts.append(f"<h2>{html.escape(figure.heading)}</h2><p>{html.escape(_figure_text(figure))}</p>")
        if chosen is not None and key in SELECTED:
            menu = " Each chart's dropdown per activation shows every initializer." if chart in charts else ""
            parts.append(f'<p class="selection">{html.escape(chosen.text + menu)}</p>')
        if chart in charts:
            intro = f"<p>{html.escape(LAYERS_TEXT)}</p>" if key == "signals" else ""
            parts.append(intro + interactive.chart_div(chart))
        if key in images and (chart not in charts or key in KEEP_PNG):
            parts.append(_html_image(images[key], figure.heading.lower()))
    return parts


def _tuned_html(run: RunData) -> list[str]:
    if run.tuning is None:
        return []
    t = run.tuning
    return [f"<h2>Each cell at its best {html.escape(t.axis)} (chosen by {html.escape(t.by)})</h2>",
            *[f'<p class="meta">{html.escape(n)}</p>' for n in t.notes],
            _scrolling(html_table(choices_frame(run), left=("initializer", "activation")))]


def html_report(run: RunData, metric: str, images: dict[str, bytes], charts: interactive.Figures | None = None,
                verdicts: Verdicts | None = None, chosen: selection.Selection | None = None) -> str:
    """report.html: the tables, and each figure as an interactive chart (``charts``, by element id: see
    ``report_charts``) or else as its embedded PNG. Without charts the page has no script at all."""
    charts = charts or {}
    verdicts = verdicts or analyse(run, metric)
    label, higher = metric_names(run.thresholds)[metric]
    board = marked_leaderboard(run, verdicts)
    table = verdicts.cells
    shade = shading(table, higher)
    parts = [
        _html_head(f"initlab report: {run.name}"),
        f"<h1>initlab report: {html.escape(run.name)}</h1>",
        _html_meta(run),
        f"<p class=\"meta\">{html.escape(CHARTS_TEXT)}</p>" if charts else "",
        *_tuned_html(run),
        f"<h2>{html.escape(label.capitalize())}: initializer × activation</h2>",
    ]
    texts = dict(pivot_matrices(run, table))
    for title, part in facets(run, table):
        if title:
            parts.append(f"<h3>{html.escape(title)}</h3>")
        parts.append(html_table(texts[title], index=True, colours=_heat_colours(run, part, shade)))
    parts.append(f'<p class="meta">{html.escape(CELLS_TEXT)}</p>')
    if CHART_IDS["heatmap"] in charts:
        parts.append(interactive.chart_div(CHART_IDS["heatmap"]))
    elif "heatmap" in images:
        parts.append(_html_image(images["heatmap"], f"{label} heatmap"))
    parts.append(f"<h2>Verdicts over seeds ({html.escape(label)})</h2>")
    parts += _verdicts_html(verdicts)
    parts += _figure_sections(images, charts, chosen or selection.for_run(run, verdicts))
    parts.append(f"<h2>Leaderboard (by {html.escape(label)})</h2>")
    parts.append(_scrolling(html_table(board, left=("trial_id", "initializer", "activation", "status", "error"))))
    if (spent := timings_table(run)) is not None:
        parts += ["<h2>Where the time went</h2>", f'<p class="meta">{html.escape(TIMINGS_TEXT)}</p>',
                  html_table(spent.round(3), left=("phase", "what"))]
    if charts:
        parts.append(interactive.page_scripts(charts))
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p)


def report_charts(run: RunData, verdicts: Verdicts, chosen: selection.Selection | None = None) -> interactive.Figures:
    """report.html's interactive charts, by element id; a chart without data is left out."""
    chosen = chosen or selection.for_run(run, verdicts)
    made = {
        CHART_IDS["heatmap"]: interactive.heatmap_figure(run, verdicts),
        CHART_IDS["curves"]: interactive.curves_figure(run, chosen),
        CHART_IDS["signals"]: interactive.layers_figure(run, chosen),
        CHART_IDS["phase"]: interactive.phase_figure(phase_diagram(run, verdicts.metric)),
    }
    return {chart_id: figure for chart_id, figure in made.items() if figure is not None}


def comparison_html(a: RunData, b: RunData, metric: str, verdicts: PairedRuns | None = None) -> str:
    """comparison_<B>.html: the shared trials' metric in A against B as an interactive scatter, the paired
    statistics of A − B, then the table of every trial (shared or not) with both values and the difference."""
    verdicts = verdicts or analyse_runs(a, b, metric)
    label, _ = metric_names(a.thresholds)[metric]
    table = comparison(a, b, metric)
    counts = table["in"].value_counts()
    figure = interactive.comparison_figure(a, b, metric)
    charts = {"chart-comparison": figure} if figure else {}
    summary = (f"{counts.get('both', 0)} shared trials, {counts.get('A only', 0)} only in A, "
               f"{counts.get('B only', 0)} only in B. A: {a.name}. B: {b.name}.")
    parts = [
        _html_head(f"initlab comparison: {a.name} vs {b.name}"),
        f"<h1>initlab comparison ({html.escape(label)}): {html.escape(a.name)} vs {html.escape(b.name)}</h1>",
        f'<p class="meta">{html.escape(summary)} {html.escape(CHARTS_TEXT) if charts else ""}</p>',
        interactive.chart_div("chart-comparison") if charts else "<p>No shared trial has a value in both runs.</p>",
        f"<h2>Verdicts: A − B, paired trial by trial ({html.escape(label)})</h2>",
        *_verdicts_html(verdicts),
        f"<h2>Trials (a: {html.escape(a.name)}, b: {html.escape(b.name)}, delta = b − a)</h2>",
        _scrolling(html_table(table, left=("initializer", "activation", "status_a", "status_b", "in"))),
        interactive.page_scripts(charts) if charts else "",
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p)


# --- all files -------------------------------------------------------------------------------


def write_report(run: RunData, metric: str = "best_val_accuracy", plots: bool = True,
                 verdicts: Verdicts | None = None, select: str | list[str] | None = None) -> list[Path]:
    """Write every report file under RUN_DIR/report/; returns their paths. A writer of the run directory like a
    sweep: it holds the run's lock, and is refused at once (RunLockedError) while another process writes it.
    ``verdicts``: ``verdicts.analyse(run, metric, …)`` (by default against each group's best initializer);
    ``select``: the combinations the figures draw (``report.selection``; default: its rule). A bad ``select``
    raises ConfigError before anything is written."""
    verdicts = verdicts or analyse(run, metric)
    chosen = selection.for_run(run, verdicts, select)
    with RunLock(run.path):
        return _write_report(run, metric, plots, verdicts, chosen)


def _write_report(run: RunData, metric: str, plots: bool, verdicts: Verdicts, chosen: selection.Selection) -> list[Path]:
    from init_lab.report import plots as plotting

    store = RunStore(run.path)
    board = marked_leaderboard(run, verdicts)
    table = verdicts.cells
    written = [
        store.write_report_file("leaderboard.csv", board.to_csv(index=False)),
        store.write_report_file("pivot.csv", table.drop(columns=CELL_COLUMNS).to_csv(index=False)),
        store.write_report_file("cells.csv", table.to_csv(index=False)),
        store.write_report_file("comparisons.csv", verdicts.comparisons_table.to_csv(index=False)),
    ]
    if run.tuning is not None:  # the choices behind these tables; an untuned report leaves no stale one
        written.append(store.write_report_file(TUNED_FILE, run.tuning.table.to_csv(index=False)))
    else:
        store.remove_report_file(TUNED_FILE)
    images: dict[str, bytes] = {}
    if plots:
        made = {
            "heatmap": plotting.heatmap(run, verdicts),
            "curves": plotting.learning_curves(run, chosen),
            "signals": plotting.diagnostics_plot(run, chosen),
            "training_signals": plotting.training_signals_plot(run, chosen),
            "histograms": plotting.histograms_plot(run, chosen),
            "phase": plotting.phase_plot(phase_diagram(run, metric), f"Trainability phase diagram — {run.name}"),
            "spp": _spp(run),
        }
        images = {key: data for key, data in made.items() if data}
    names = {"heatmap": HEATMAP_FILE, **{key: figure.file for key, figure in FIGURES.items()}}
    for key, data in images.items():
        written.append(store.write_report_file(names[key], data))
    written.append(store.write_report_file("report.md", markdown(run, metric, {k: names[k] for k in images},
                                                                 verdicts, chosen)))
    charts = report_charts(run, verdicts, chosen) if plots else {}
    written.append(store.write_report_file("report.html", html_report(run, metric, images, charts, verdicts,
                                                                      chosen)))
    return written


def _spp(run: RunData) -> bytes | None:
    """The signal-propagation plot of a run of residual, normalized or conv nets (None for plain MLPs)."""
    from init_lab.report.spp import spp_plot

    m, g = run.config.model, run.config.grid
    if not (m.kind in ("cnn", "mnist_cnn") or m.residual or m.normalization != "none" or g.residual or g.normalization):
        return None
    return spp_plot(run.layers, f"Signal-propagation plot at initialization — {run.name}",
                    by=["initializer", "activation", *run.swept])


def write_comparison(a: RunData, b: RunData, metric: str = "best_val_accuracy") -> list[Path]:
    """Write RUN_A/report/comparison_<RUN_B name>.html and comparisons_<RUN_B name>.csv (the paired statistics of
    A − B; the store makes the names file-safe); returns their paths, the page first. Holds RUN_A's lock while it
    writes, as ``write_report`` does."""
    verdicts = analyse_runs(a, b, metric)
    with RunLock(a.path):
        store = RunStore(a.path)
        return [store.write_report_file(f"comparison_{b.name}.html", comparison_html(a, b, metric, verdicts)),
                store.write_report_file(f"comparisons_{b.name}.csv", verdicts.comparisons_table.to_csv(index=False))]


def leaderboard_json(board: pd.DataFrame) -> str:
    """Any of the report's tables as strict JSON records (NaN and ±inf → null)."""
    records = json.loads(board.to_json(orient="records"))  # NaN → null
    return json.dumps(records, indent=2, allow_nan=False)
