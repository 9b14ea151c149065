"""Interactive charts for the HTML reports: Plotly figures as JSON, drawn in the page by an embedded plotly.js.

Works offline, with no network request of any kind: plotly.js is inlined once per page
(``plotly.offline.get_plotlyjs``), the figures go into one inert ``<script type="application/json">``
block, and a few lines of JavaScript hand each to ``Plotly.newPlot`` (MathJax is never loaded, the
Plotly logo link is off). Every name that reaches a chart (run, initializer, activation, trial, status)
may be hostile: Plotly draws label text as a small subset of HTML, so names are ``html.escape``d like
the rest of the page; and the JSON text has ``<``, ``>`` and ``&`` escaped (``\\u003c`` …) so nothing
in it can end the script element or open a comment. Plotly is imported inside the functions, so that
importing the report (``initlab report --help``) stays fast.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from init_lab.report.colours import Shading, colour_label, shading, tick_labels
from init_lab.report.rundata import RunData
from init_lab.report.selection import Selection
from init_lab.report.tables import comparison, facets, fmt, fmt_diff, metric_names
from init_lab.report.tuned import choice_text
from init_lab.report.verdicts import Verdicts, cell_text, is_true

Figures = dict[str, dict[str, Any]]  # chart id -> {"data": [...], "layout": {...}}: one page's charts
DATA_ID = "initlab-charts"
TEMPLATE = "plotly_white"
CONFIG = {"responsive": True, "displaylogo": False}  # no logo: it is a link to plotly.com
PANELS_PER_ROW = 4  # learning curves / per-layer panels: activations beyond this wrap to a new row
# plotly's D3 palette is matplotlib's tab10: an initializer has the same colour here as in the PNGs
PALETTE_10 = ["#1F77B4", "#FF7F0E", "#2CA02C", "#D62728", "#9467BD", "#8C564B", "#E377C2", "#7F7F7F", "#BCBD22",
              "#17BECF"]
# draws every chart from the data block; a chart that fails is logged, the others still draw
BOOTSTRAP = (
    "(function(){var s=JSON.parse(document.getElementById('" + DATA_ID + "').textContent);"
    "Object.keys(s.figures).forEach(function(id){var f=s.figures[id];f.layout.template=s.template;"
    "try{Plotly.newPlot(id,f.data,f.layout,s.config);}catch(e){console.error(id,e);}});})();"
)


# --- page plumbing -----------------------------------------------------------------------------------


def label(value: Any) -> str:
    """A name as Plotly label text: HTML-escaped (Plotly renders <b>, <a href>, … in labels and hovers)."""
    return html.escape(str(value), quote=False)


def json_for_script(obj: Any) -> str:
    """JSON that is safe as the text of a <script> element: ``<``, ``>`` and ``&`` (and the JavaScript line
    separators) as \\u escapes, so a string holding ``</script>`` or ``<!--`` stays a string."""
    text = json.dumps(obj, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                         ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return text


def figure_dict(fig) -> dict[str, Any]:
    """A plotly Figure as plain JSON data (NaN/inf → null, numpy → lists), without its template: the page
    holds the template once."""
    import plotly.io as pio

    data = json.loads(pio.to_json(fig, validate=False))
    data.get("layout", {}).pop("template", None)
    return {"data": data.get("data", []), "layout": data.get("layout", {})}


def chart_div(chart_id: str) -> str:
    """The element a chart is drawn into (its height comes from the figure's layout)."""
    return f'<div id="{html.escape(chart_id)}" class="chart"></div>'


def page_scripts(figures: Figures) -> str:
    """The page's three scripts: plotly.js (once), the charts' JSON, the lines that draw them."""
    import plotly.io as pio
    from plotly.offline import get_plotlyjs

    payload = {"template": pio.templates[TEMPLATE].to_plotly_json(), "config": CONFIG, "figures": figures}
    return (f"<script>{get_plotlyjs()}</script>\n"
            f'<script type="application/json" id="{DATA_ID}">{json_for_script(payload)}</script>\n'
            f"<script>{BOOTSTRAP}</script>")


def _values(values: Iterable[Any]) -> list[float | None]:
    """Numbers for a chart: 6 significant digits (a smaller file, no visible change), gaps for NaN/inf."""
    out: list[float | None] = []
    for v in values:
        v = float(v) if v is not None else math.nan
        out.append(float(f"{v:.6g}") if math.isfinite(v) else None)
    return out


def _colours(names: list[str]) -> dict[str, str]:
    """A colour per name (initializer), in order."""
    import plotly.colors as pc

    palette = PALETTE_10 if len(names) <= len(PALETTE_10) else pc.qualitative.Dark24
    return {name: palette[k % len(palette)] for k, name in enumerate(names)}


def _ordered(order: list[str], present: Iterable[str]) -> list[str]:
    """The grid's order, then any other value the records hold (a hand-edited trial.json is still shown)."""
    present = list(dict.fromkeys(str(v) for v in present))
    return [v for v in order if v in present] + [v for v in present if v not in order]


# --- heatmap -------------------------------------------------------------------------------------------


def _cell_hover(init: str, act: str, row: pd.Series | None, v: Verdicts) -> str:
    """A heatmap cell's hover: the combination, mean ± std, its CI, n, its trials that do not count, and where it
    stands against its group's best."""
    head = f"{label(init)} + {label(act)}"
    if row is None:
        return head + "<br>no trials"
    value = "—" if pd.isna(row["mean"]) else f"{row['mean']:.4g}"
    spread = "" if pd.isna(row["std"]) else f" ± {row['std']:.3g}"
    ci = "" if pd.isna(row["ci_low"]) else (f"<br>95 % CI of the mean [{row['ci_low']:.4g}, {row['ci_high']:.4g}] "
                                            f"({'BCa bootstrap' if row['ci_method'] == 'bca' else 'Student t'})")
    standing = row["vs_best"] or "no test against the best"
    if not pd.isna(row["p_holm_vs_best"]):
        standing += f" (Holm p = {fmt(row['p_holm_vs_best'], 3)})"
    if not pd.isna(row["diff_to_best"]) and not is_true(row["best"]):
        standing += f"; mean {fmt_diff(row['diff_to_best'], v.metric)} from the best"
    chance = f" ({int(row['diverged_at_chance'])} at chance)" if row["diverged_at_chance"] else ""
    return (f"{head}<br>mean {value}{spread}{ci}<br>n = {int(row['n'])} of {int(row['n_trials'])} trials count"
            f"<br>diverged {int(row['diverged'])}{chance}, failed {int(row['failed'])}, unfinished "
            f"{int(row['unfinished'])}<br>{label(standing)}" + ("<br>at chance" if is_true(row["at_chance"]) else ""))


APART = [[0.0, "#d0d0d0"], [1.0, "#d0d0d0"]]  # cells at chance or without a value: one grey, off the scale


def _heatmap_traces(run: RunData, part: pd.DataFrame, v: Verdicts, shade: Shading, first: bool) -> list:
    """A facet's cells on the shared colour scale, and its cells drawn apart (grey) as a second trace."""
    import plotly.graph_objects as go

    position = shade.matrix(run, part)
    rows = part.set_index(["initializer", "activation"])

    def row_of(i: str, a: str) -> pd.Series | None:
        return rows.loc[(i, a)] if (i, a) in rows.index else None

    text = [["<br>".join(filter(None, (cell_text(r, "<br>"), choice_text(run, {**r, "initializer": i, "activation": a})
                                                               if r is not None else "")))
             for a in position.columns for r in [row_of(i, a)]] for i in position.index]
    hover = [[_cell_hover(i, a, row_of(i, a), v) for a in position.columns] for i in position.index]
    x, y = [label(a) for a in position.columns], [label(i) for i in position.index]
    z = [_values(r) for r in position.to_numpy(dtype=float)]
    apart = [[0.0 if zz is None else None for zz in r] for r in z]
    scale = go.Heatmap(
        z=z, x=x, y=y, text=[[t if zz is not None else "" for t, zz in zip(tr, zr)] for tr, zr in zip(text, z)],
        texttemplate="%{text}", hovertext=hover, hoverinfo="text", zmin=0, zmax=1, colorscale="Viridis",
        showscale=first and bool(shade.ticks), xgap=1, ygap=1, hoverongaps=False,
        colorbar={"title": {"text": label(colour_label(v, shade)), "side": "right"},
                  "tickvals": [pos for pos, _ in shade.ticks], "ticktext": [label(t) for t in tick_labels(v, shade)]},
    )
    grey = go.Heatmap(
        z=apart, x=x, y=y, text=[[t if zz is None else "" for t, zz in zip(tr, zr)] for tr, zr in zip(text, z)],
        texttemplate="%{text}", hovertext=hover, hoverinfo="text", zmin=0, zmax=1, colorscale=APART,
        showscale=False, xgap=1, ygap=1, hoverongaps=False, name="apart",
    )
    return [scale, grey]


def heatmap_figure(run: RunData, verdicts: Verdicts) -> dict[str, Any] | None:
    """The metric's mean over seeds per initializer (rows) × activation (columns), a panel per combination
    of the other swept axes, all on one colour scale: the gap to the cell's group's best on a log scale
    (``colours.shading``), cells at chance or without a value grey and apart; each cell shows the mean, ★ for its
    group's best and ≈ for cells tied with it (± std over seeds where there are several, its diverged/failed
    count), its hover the CI, n, what does not count and its standing against the best. None without a value."""
    from plotly.subplots import make_subplots

    table = verdicts.cells
    if not table["mean"].notna().any():
        return None
    shade = shading(table, verdicts.higher)
    parts = facets(run, table)
    ncols = min(len(parts), 3)
    nrows = math.ceil(len(parts) / ncols)
    fig = make_subplots(nrows, ncols, subplot_titles=[label(t) for t, _ in parts] if run.swept else None,
                        shared_yaxes=True, horizontal_spacing=0.04, vertical_spacing=0.12)  # one set of row names
    for k, (_, part) in enumerate(parts):
        for trace in _heatmap_traces(run, part, verdicts, shade, k == 0):
            fig.add_trace(trace, row=k // ncols + 1, col=k % ncols + 1)
    fig.update_yaxes(autorange="reversed")  # grid order, top to bottom
    fig.update_yaxes(title_text="initializer", col=1)
    fig.update_xaxes(title_text="activation")
    seeds = f" (mean ± std over {run.n_seeds} seeds)" if run.n_seeds > 1 else ""
    height = nrows * (60 * len(run.init_order) + 140) + 60
    tuned = f", each cell at its best {run.tuning.axis} (by {run.tuning.by})" if run.tuning is not None else ""
    fig.update_layout(title=label(f"{verdicts.label.capitalize()}{seeds}{tuned}"), height=max(height, 320))
    return figure_dict(fig)


# --- small multiples: a fixed pixel layout ---------------------------------------------------------------------


@dataclass(frozen=True)
class PanelGrid:
    """Small multiples laid out in pixels, so nothing can overlap at any grid size: per row of panels a head band
    (the panel's dropdown, which names its activation), ``stack`` axes of ``axis_px`` each, and a foot band for the
    x tick labels and title; the figure's title above, the legend below, each in a band of its own. Plotly places
    axes by fractions of the plot area; these are computed from the bands (``domains``), and each dropdown sits in
    its panel's head band (``head_y``). Columns: PANELS_PER_ROW at most, y tick labels only on the first (the
    axes are shared), x gaps for nothing but a margin."""

    n: int
    stack: int = 1
    axis_px: int = 220
    head_px: int = 46
    foot_px: int = 58
    stack_gap_px: int = 14
    top_px: int = 64
    legend_rows: int = 1

    @property
    def ncols(self) -> int:
        return max(1, min(self.n, PANELS_PER_ROW))

    @property
    def nrows(self) -> int:
        return math.ceil(self.n / self.ncols)

    @property
    def block_px(self) -> int:
        return self.head_px + self.stack * self.axis_px + (self.stack - 1) * self.stack_gap_px + self.foot_px

    @property
    def bottom_px(self) -> int:
        return 46 + 24 * self.legend_rows

    @property
    def plot_px(self) -> int:
        return self.nrows * self.block_px

    @property
    def height(self) -> int:
        return self.top_px + self.plot_px + self.bottom_px

    def x_domain(self, k: int) -> list[float]:
        gap = 0.025
        width = (1 - gap * (self.ncols - 1)) / self.ncols
        x0 = (k % self.ncols) * (width + gap)
        return [round(x0, 6), round(min(1.0, x0 + width), 6)]

    def y_domain(self, k: int, j: int) -> list[float]:
        """Panel k's j-th axes (0 = top), in paper fractions."""
        top = (k // self.ncols) * self.block_px + self.head_px + j * (self.axis_px + self.stack_gap_px)
        return [round(1 - (top + self.axis_px) / self.plot_px, 6), round(1 - top / self.plot_px, 6)]

    def head_y(self, k: int) -> float:
        """The top of panel k's head band (where its dropdown hangs from), in paper fractions."""
        return round(1 - ((k // self.ncols) * self.block_px + 4) / self.plot_px, 6)

    def axis_index(self, k: int, j: int) -> int:
        return k * self.stack + j + 1

    def layout(self) -> dict[str, Any]:
        """Every axis's domain, anchor and sharing (x: all panels; y: the j-th axes of every panel), and margins."""
        out: dict[str, Any] = {"height": self.height, "margin": {"t": self.top_px, "b": self.bottom_px, "l": 70, "r": 24}}
        for k in range(self.n):
            for j in range(self.stack):
                i = self.axis_index(k, j)
                bottom = j == self.stack - 1
                out[f"xaxis{i}"] = {"domain": self.x_domain(k), "anchor": f"y{i}", "showticklabels": bottom,
                                    **({"matches": "x"} if i > 1 else {})}
                out[f"yaxis{i}"] = {"domain": self.y_domain(k, j), "anchor": f"x{i}",
                                    "showticklabels": k % self.ncols == 0,
                                    **({"matches": f"y{j + 1}"} if k else {})}
        return out


def _axis_ref(index: int) -> dict[str, str]:
    return {"xaxis": f"x{index}" if index > 1 else "x", "yaxis": f"y{index}" if index > 1 else "y"}


def _dropdowns(grid: PanelGrid, panels: list[tuple[str, list[int], list[int], list[int], int, int]]) -> list[dict]:
    """A dropdown per panel in its head band: [(activation, its traces, the chosen ones among them, its per-seed
    traces, chosen count, initializer count)] → updatemenus. Options: the chosen initializers (the page's rule),
    every initializer, and (with several seeds) every initializer with each seed's own curves."""
    menus = []
    for k, (act, traces, chosen, seeds, n_chosen, n_all) in enumerate(panels):
        chosen_set, seed_set = set(chosen), set(seeds)
        options = [(f"{act}: {n_chosen} chosen of {n_all}", [True if t in chosen_set else "legendonly" for t in traces]),
                   (f"{act}: all {n_all}", [t not in seed_set for t in traces])]
        if seeds:
            options.append((f"{act}: all, each seed", [True] * len(traces)))
        domain = grid.x_domain(k)
        menus.append({
            "type": "dropdown", "direction": "down", "active": 0, "showactive": True,
            "x": (domain[0] + domain[1]) / 2, "xanchor": "center", "y": grid.head_y(k), "yanchor": "top",
            "pad": {"t": 0, "b": 0, "l": 0, "r": 0}, "font": {"size": 12},
            "buttons": [{"label": label(text), "method": "restyle", "args": [{"visible": visible}, traces]}
                        for text, visible in options],
        })
    return menus


def _legend_rows(names: list[str]) -> int:
    """Rows of the horizontal legend along the bottom: about 1,100 px of entries per row."""
    return max(1, math.ceil(sum(len(n) * 7 + 50 for n in names) / 1100))


def _panel_layout(fig, grid: PanelGrid, title: str, legend_title: str, menus: list[dict]) -> None:
    fig.update_layout(
        title={"text": label(title), "x": 0.0, "xanchor": "left", "y": 1 - 18 / grid.height, "yanchor": "top"},
        updatemenus=menus, **grid.layout(),
        legend={"title": {"text": label(legend_title)}, "orientation": "h", "yref": "container", "y": 0.0,
                "yanchor": "bottom", "x": 0.0, "groupclick": "togglegroup"},
    )


def _chosen_count(selection: Selection, act: str, inits: list[str]) -> int:
    return sum(selection.includes(i, act) for i in inits)


# --- learning curves -------------------------------------------------------------------------------------


def _line(x, y, *, meta: str, colour: str, dashed: bool, markers: bool, x_name: str = "epoch", y_format: str = ".4g",
          **extra):
    """A line whose hover names what it is (``meta``: escaped), then the point's x and y."""
    import plotly.graph_objects as go

    return go.Scatter(
        x=_values(x), y=_values(y), meta=meta, mode="lines+markers" if markers else "lines",
        line={"color": colour, "width": 1.5 if dashed else 1.1, "dash": "dash" if dashed else "solid"},
        marker={"size": 5}, hovertemplate=f"%{{meta}}<br>{x_name} %{{x:.3g}}: %{{y:{y_format}}}<extra></extra>",
        **extra,
    )


def _curves(run: RunData, ids: set[str], metric: str) -> list[tuple[pd.Series, bool, str]]:
    """[(mean curve over the trials ``ids``, dashed?, what)] for the training and the validation ``metric``:
    training from steps.csv against progress where recorded, else the per-epoch training mean."""
    from init_lab.report.plots import _mean_curve  # the PNGs' own averaging: both figures agree

    per_epoch = run.epochs[run.epochs["trial_id"].isin(ids)].replace([np.inf, -np.inf], np.nan)
    per_step = run.steps[run.steps["trial_id"].isin(ids)].replace([np.inf, -np.inf], np.nan)
    if per_epoch.empty:
        return []
    train = _mean_curve(per_epoch, "epoch", metric) if per_step.empty else _mean_curve(per_step, "progress", metric)
    return [(train, False, "training"), (_mean_curve(per_epoch, "epoch", f"val_{metric}"), True, "validation")]


def _add_curves(fig, run: RunData, ids: set[str], grid: PanelGrid, k: int, meta: str, colour: str, **extra) -> list[int]:
    """Loss (panel k's top axes) and accuracy (below it) of the trials ``ids``: training and validation; returns
    the new traces' indices. ``extra`` (legend entry, group, visibility) goes to the first trace; the others follow
    it in the legend."""
    per_epoch_only = run.steps.empty
    added = []
    for j, metric in enumerate(("loss", "accuracy")):
        for curve, dashed, what in _curves(run, ids, metric):
            trace = _line(curve.index, curve.to_numpy(), meta=f"{meta} · {what} {metric}", colour=colour,
                          dashed=dashed, markers=dashed or per_epoch_only, **_axis_ref(grid.axis_index(k, j)), **extra)
            fig.add_trace(trace)
            added.append(len(fig.data) - 1)
            extra = {**extra, "showlegend": False}
    return added


def _meta(init: str, act: str, part: pd.DataFrame) -> str:
    """A mean curve's hover name: the combination and its trials (the trial id itself when there is one)."""
    if len(part) == 1:
        return label(f"{init} + {act} (trial {part['trial_id'].iloc[0]})")
    return label(f"{init} + {act}, mean of {len(part)} trials")


def curves_figure(run: RunData, selection: Selection | None = None) -> dict[str, Any] | None:
    """Loss (log scale) and accuracy over training from epoch 0 (the initial weights) as small multiples with shared
    axes: a panel pair per activation (``PanelGrid``), a colour per initializer (mean over seeds and pooled swept
    values; training thin and solid from steps.csv where recorded, validation dashed with markers per epoch), one
    legend of initializers. Every initializer has its curves; those the selection (``report.selection``) does not
    choose start hidden, and a dropdown per activation shows the chosen ones, all, or (with several seeds) each
    seed's own curves too. None when no epoch was recorded."""
    import plotly.graph_objects as go

    trials = run.summary[run.summary["trial_id"].isin(set(run.epochs["trial_id"]))]
    if trials.empty:
        return None
    selection = _selection(run, selection)
    acts = _ordered(run.act_order, trials["activation"])
    inits = _ordered(run.init_order, trials["initializer"])
    colours = _colours(inits)
    grid = PanelGrid(len(acts), stack=2, axis_px=190, legend_rows=_legend_rows(inits))
    fig = go.Figure()
    shown = _legend_homes(selection, trials, acts, inits)
    panels = []
    for k, act in enumerate(acts):
        traces, chosen, seeds = [], [], []
        for init in inits:
            part = trials[(trials["activation"] == act) & (trials["initializer"] == init)]
            if part.empty:
                continue
            picked = selection.includes(init, act)
            added = _add_curves(fig, run, set(part["trial_id"]), grid, k, _meta(init, act, part), colours[init],
                                name=label(init), legendgroup=label(init), showlegend=shown.get(init) == act,
                                visible=True if picked else "legendonly")
            traces += added
            chosen += added if picked else []
            if len(part) > 1:  # each seed's own curves, off until the dropdown shows them
                for tid, status in zip(part["trial_id"], part["status"]):
                    name = tid if status == "completed" else f"{tid} ({status})"
                    own = _add_curves(fig, run, {tid}, grid, k, label(f"trial {name}"), colours[init],
                                      name=label(name), legendgroup=label(tid), showlegend=False, visible=False,
                                      opacity=0.5)
                    traces += own
                    seeds += own
        panels.append((act, traces, chosen, seeds, _chosen_count(selection, act, inits), len(inits)))
    for k in range(grid.n):
        top, bottom = grid.axis_index(k, 0), grid.axis_index(k, 1)
        fig.update_layout({f"yaxis{top}": {"type": "log"}, f"yaxis{bottom}": {"range": [0, 1.02]}})
    _panel_layout(fig, grid, _curves_title(run), "initializer (solid: training, dashed: validation):", _dropdowns(grid, panels))
    epoch = "epoch (steps as fractions)" if len(run.steps) else "epoch"
    for k in range(grid.n):
        fig.layout[f"xaxis{grid.axis_index(k, 1)}"].title = {"text": epoch, "standoff": 4}
    fig.layout["yaxis"].title = {"text": "loss (log)"}
    fig.layout["yaxis2"].title = {"text": "accuracy"}
    return figure_dict(fig)


def _curves_title(run: RunData) -> str:
    mean = f"mean over {run.n_seeds} seeds" if run.n_seeds > 1 else "one seed"
    pooled = f"; {', '.join(run.swept)} pooled" if run.swept else ""
    return f"Learning curves ({mean}{pooled})"


def _legend_homes(selection: Selection, frame: pd.DataFrame, acts: list[str], inits: list[str]) -> dict[str, str]:
    """Per initializer, the panel (activation) whose trace carries its one legend entry: the first where it is
    chosen, so the legend shows it as drawn; else the first that has it (shown greyed: hidden until clicked)."""
    present = set(zip(frame["initializer"], frame["activation"]))
    homes = {}
    for init in inits:
        having = [a for a in acts if (init, a) in present]
        chosen = [a for a in having if selection.includes(init, a)]
        if having:
            homes[init] = (chosen or having)[0]
    return homes


def _selection(run: RunData, selection: Selection | None) -> Selection:
    from init_lab.report.plots import _default_selection

    return _default_selection(run, selection)


# --- per-layer signals -------------------------------------------------------------------------------------


def layers_figure(run: RunData, selection: Selection | None = None) -> dict[str, Any] | None:
    """Each hidden layer's activation std on the probe batch (log scale) as small multiples with shared axes: a
    panel per activation, a colour per initializer (mean over seeds), dashed at initialization (epoch 0) and solid
    after the combination's last recorded epoch; the selection's initializers shown, the others a dropdown away.
    None without layers.csv.

    A panel per activation rather than per initializer: the lab's question is which initializer suits an
    activation, so the initializers meet in one panel, in the colours the learning curves give them."""
    import plotly.graph_objects as go

    if run.layers.empty:
        return None
    selection = _selection(run, selection)
    data = run.layers.replace([np.inf, -np.inf], np.nan)  # its rows carry each trial's axes
    acts = _ordered(run.act_order, data["activation"])
    inits = _ordered(run.init_order, data["initializer"])
    colours = _colours(inits)
    grid = PanelGrid(len(acts), stack=1, axis_px=260, legend_rows=_legend_rows(inits))
    fig = go.Figure()
    shown = _legend_homes(selection, data, acts, inits)
    panels = []
    for k, act in enumerate(acts):
        traces, chosen = [], []
        for init in inits:
            part = data[(data["activation"] == act) & (data["initializer"] == init)]
            picked = selection.includes(init, act)
            for trace in _layer_lines(part, f"{init} + {act}", colours[init], showlegend=shown.get(init) == act,
                                      name=label(init), legendgroup=label(init),
                                      visible=True if picked else "legendonly", **_axis_ref(grid.axis_index(k, 0))):
                fig.add_trace(trace)
                traces.append(len(fig.data) - 1)
                chosen += [len(fig.data) - 1] if picked else []
        panels.append((act, traces, chosen, [], _chosen_count(selection, act, inits), len(inits)))
    _panel_layout(fig, grid, "Per-layer activation std on the probe batch (dashed: at init, solid: after training)",
                  "initializer", _dropdowns(grid, panels))
    for k in range(grid.n):
        fig.layout[f"yaxis{grid.axis_index(k, 0)}"].type = "log"
        fig.layout[f"xaxis{grid.axis_index(k, 0)}"].update(title={"text": "hidden layer (1 = first)", "standoff": 4},
                                                           dtick=1)
    fig.layout["yaxis"].title = {"text": "activation std (log)"}
    return figure_dict(fig)


def _layer_lines(part: pd.DataFrame, combination: str, colour: str, **extra) -> list:
    """The combination's per-layer mean activation std after its last epoch (solid, first: the legend shows
    it) and at epoch 0 (dashed); a std of 0 (all-zero weights) has no place on a log axis and is left out."""
    if part.empty:
        return []
    last = int(part["epoch"].max())
    lines = []
    for epoch, dashed in [(last, False), (0, True)] if last else [(0, True)]:
        rows = part[part["epoch"] == epoch]
        std = rows.groupby("layer")["act_std"].mean()
        when = "at initialization" if epoch == 0 else f"after epoch {epoch}"
        meta = label(f"{combination} {when}, mean of {rows['trial_id'].nunique()} trials")
        lines.append(_line(std.index + 1, std.where(std > 0), meta=meta, colour=colour, dashed=dashed, markers=True,
                           x_name="layer", y_format=".3g", **extra))
        extra = {**extra, "showlegend": False}
    return lines


# --- comparison of two runs ----------------------------------------------------------------------------------


def shared_trials(a: RunData, b: RunData, metric: str) -> pd.DataFrame:
    """``tables.comparison``'s rows that both runs hold, with each run's trial id (trial_a, trial_b)."""
    table = comparison(a, b, metric)
    keys = [c for c in table.columns if c not in ("status_a", "a", "status_b", "b", "delta", "in")]
    both = table[table["in"] == "both"]
    for run, column in ((a, "trial_a"), (b, "trial_b")):
        ids = run.summary[[*keys, "trial_id"]].rename(columns={"trial_id": column})
        both = both.merge(ids, on=keys, how="left")
    return both.reset_index(drop=True)


def _comparison_hover(row: pd.Series, a: RunData, b: RunData) -> str:
    return (f"A: {label(row['trial_a'])} ({label(row['status_a'])}): {row['a']:.4g}<br>"
            f"B: {label(row['trial_b'])} ({label(row['status_b'])}): {row['b']:.4g}<br>"
            f"B − A = {row['delta']:+.4g}<br>A = {label(a.name)}<br>B = {label(b.name)}")


def comparison_figure(a: RunData, b: RunData, metric: str) -> dict[str, Any] | None:
    """The metric of each trial the two runs share, run A (x) against run B (y), a colour per initializer,
    with the line y = x: points above it did better in B when higher is better. Hover: both trials, their
    values and the difference. None when no shared trial has a value in both runs."""
    import plotly.graph_objects as go

    shared = shared_trials(a, b, metric)
    drawn = shared[np.isfinite(shared["a"].astype(float)) & np.isfinite(shared["b"].astype(float))]
    if drawn.empty:
        return None
    label_text, higher = metric_names(a.thresholds)[metric]
    inits = _ordered(a.init_order, drawn["initializer"])
    colours = _colours(inits)
    fig = go.Figure()
    lo, hi = float(min(drawn["a"].min(), drawn["b"].min())), float(max(drawn["a"].max(), drawn["b"].max()))
    pad = (hi - lo) * 0.05 or 0.05
    fig.add_trace(go.Scatter(x=[lo - pad, hi + pad], y=[lo - pad, hi + pad], mode="lines", name="y = x (same in both)",
                             line={"color": "#888", "dash": "dot"}, hoverinfo="skip"))
    for init in inits:
        part = drawn[drawn["initializer"] == init]
        fig.add_trace(go.Scatter(
            x=_values(part["a"]), y=_values(part["b"]), mode="markers", name=label(init),
            marker={"color": colours[init], "size": 9, "line": {"color": "white", "width": 1}},
            hovertext=[_comparison_hover(r, a, b) for _, r in part.iterrows()], hoverinfo="text"))
    better = "above the line: better in B" if higher else "below the line: better (lower) in B"
    fig.update_layout(
        title=label(f"{label_text}: {a.name} (A, x) vs {b.name} (B, y); {better}"), height=640,
        xaxis={"title": {"text": label(f"A: {a.name}")}, "range": [lo - pad, hi + pad], "constrain": "domain"},
        yaxis={"title": {"text": label(f"B: {b.name}")}, "range": [lo - pad, hi + pad], "scaleanchor": "x"},
        legend={"title": {"text": "initializer"}},
    )
    return figure_dict(fig)


# --- phase diagram -------------------------------------------------------------------------------------------


def phase_figure(diagram) -> dict[str, Any] | None:
    """The trainability phase diagram (``report.phase``) as a Plotly heatmap over σ_w² × depth, a panel per
    activation × σ_b², with the theory's factor·ξ_c curve and the edge of chaos; hover: the cell's mean, std and n."""
    if diagram is None or not diagram.panels:
        return None
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    n = len(diagram.panels)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig = make_subplots(nrows, ncols, subplot_titles=[label(p.title) for p in diagram.panels],
                        horizontal_spacing=0.08, vertical_spacing=0.15)
    for k, panel in enumerate(diagram.panels):
        at = {"row": k // ncols + 1, "col": k % ncols + 1}
        sw, depths, grid = panel.grid()
        cells = panel.cells.set_index(["depth", "sigma_w2"])
        hover = [[label(_phase_hover(cells, d, s, diagram.label)) for s in sw] for d in depths]
        fig.add_trace(go.Heatmap(x=_values(sw), y=[int(d) for d in depths],
                                 z=[_values(row) for row in grid], text=hover, hoverinfo="text",
                                 colorscale="Viridis", coloraxis="coloraxis"), **at)
        curve = panel.curve
        top = max(depths) * 1.15
        fig.add_trace(go.Scatter(x=_values(curve["sigma_w2"]), y=_values(curve["depth_limit"].clip(upper=top * 10)),
                                 mode="lines", line={"color": "#d62728", "width": 2}, showlegend=k == 0,
                                 name=label(f"{diagram.factor:g}·ξ_c (theory)"),
                                 hovertemplate="σ_w² %{x:.4g}: " + f"{diagram.factor:g}" + "·ξ_c = %{y:.4g}<extra></extra>"),
                      **at)
        if panel.critical_sigma_w2 is not None:
            fig.add_trace(go.Scatter(x=[panel.critical_sigma_w2] * 2, y=[0, top], mode="lines",
                                     line={"color": "white", "dash": "dot"}, showlegend=k == 0,
                                     name=label("χ₁ = 1 (edge of chaos)"), hoverinfo="skip"), **at)
        fig.update_yaxes(title_text="depth", range=[0, top], **at)
        fig.update_xaxes(title_text="σ_w²", range=[min(sw) - 0.1, max(sw) + 0.1], **at)
    fig.update_layout(title=label(f"Trainability: {diagram.label} over σ_w² × depth; red: "
                                  f"{diagram.factor:g}·ξ_c (Schoenholz et al. 2017)"),
                      coloraxis={"colorscale": "Viridis", "colorbar": {"title": {"text": label(diagram.label)}}},
                      height=max(nrows * 420 + 80, 420))
    return figure_dict(fig)


def _phase_hover(cells: pd.DataFrame, depth: int, sigma_w2: float, metric_label: str) -> str:
    if (depth, sigma_w2) not in cells.index:
        return f"σ_w² {sigma_w2:g}, depth {depth}: no trial"
    row = cells.loc[(depth, sigma_w2)]
    std = f" ± {fmt(row['std'])}" if pd.notna(row["std"]) else ""
    return f"σ_w² {sigma_w2:g}, depth {depth}: {metric_label} {fmt(row['mean'])}{std} (n = {int(row['n'])} of {int(row['n_trials'])})"
