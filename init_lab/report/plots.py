"""PNG figures (matplotlib, Agg backend), each function one figure's PNG bytes (None where it has nothing to draw).

Of a run's report (``render.write_report`` has the run store write them): the heatmap of the metric
(``heatmap``), learning curves (``learning_curves``), per-layer signals at initialization and over training
(``diagnostics_plot``), Glorot & Bengio's activation and gradient histograms (``histograms_plot``) and activations
during training (``training_signals_plot``), the trainability phase diagram (``phase_plot``). Of ``initlab probe``:
signal propagation at initialization (``probe_plot``) and the Jacobian's singular values (``jacobian_plot``); of
``initlab theory``: the mean-field prediction over depth (``theory_plot``). A run's figures average over seeds,
except the histograms and the signals during training, which show each combination's first seed.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from init_lab.report.colours import colour_label, shading, tick_labels  # noqa: E402
from init_lab.report.rundata import RunData  # noqa: E402
from init_lab.report.selection import Selection, for_run  # noqa: E402
from init_lab.report.tables import facets, matrix  # noqa: E402
from init_lab.report.tuned import choice_text  # noqa: E402
from init_lab.report.verdicts import Verdicts, cell_text  # noqa: E402

DPI = 110


def _png(fig, tight: bool = True) -> bytes:
    """PNG bytes. ``tight`` crops to what is drawn (legends outside the axes included) at the price of a second
    draw; figures laid out with fixed margins (``_fixed_margins``) skip it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight" if tight else None)
    plt.close(fig)
    return buf.getvalue()


def _mean_curve(frame: pd.DataFrame, x: str, y: str) -> pd.Series:
    """Mean of ``y`` over the frame's trials against ``x``. Each trial is interpolated at the others' x
    values (never past its own ends), so pooled trials on different step grids (batch sizes) average
    point by point instead of zigzagging between subsets."""
    wide = frame.pivot_table(index=x, columns="trial_id", values=y)
    return wide.interpolate(method="index", limit_area="inside").mean(axis=1)


def heatmap(run: RunData, verdicts: Verdicts) -> bytes | None:
    """The metric's mean over seeds, initializer × activation, one panel per swept-axis value, coloured by the gap
    to each cell's group's best on a log scale (``colours.shading``: cells a hair apart differ in colour even
    beside a cell at chance); cells at chance or without a value in grey, apart; ★ the group's best, ≈ tied."""
    table = verdicts.cells
    parts = facets(run, table)
    if not table["mean"].notna().any():
        return None
    shade = shading(table, verdicts.higher)
    n = len(parts)
    n_act, n_init = len(run.act_order), len(run.init_order)
    panel = 1.1 * n_act + 2.4
    ncols = max(1, min(n, int((PAGE_INCHES - 1.2) // panel)))  # as many facets side by side as the page holds
    nrows = math.ceil(n / ncols)
    # constrained: panels, their row names, the colour bar and the title never overlap, however many facets
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(min(PAGE_INCHES, ncols * panel + 1.2), nrows * (0.6 * n_init + 1.6)), squeeze=False,
        layout="constrained",
    )
    cmap = plt.get_cmap("viridis").with_extremes(bad=APART_GREY)  # at chance, or no value: outside the scale
    image = None
    for idx, (title, part) in enumerate(parts):
        ax = axes[idx // ncols][idx % ncols]
        texts = part.apply(lambda r: "\n".join(filter(None, (cell_text(r), choice_text(run, r)))), axis=1)
        position, text = shade.matrix(run, part), matrix(part.assign(text=texts), run, "text")
        image = ax.imshow(position.to_numpy(dtype=float), cmap=cmap, vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(position.columns)), position.columns, rotation=30, ha="right")
        ax.set_yticks(range(len(position.index)), position.index)
        ax.set_xlabel("activation")
        ax.set_ylabel("initializer")
        if title:
            ax.set_title(title, fontsize=10)
        for i in range(position.shape[0]):
            for j in range(position.shape[1]):
                t, label = position.iat[i, j], text.iat[i, j]
                dark = not pd.isna(t) and t < 0.55  # viridis: dark below the middle, so white text there
                ax.text(j, i, label if isinstance(label, str) else "—", ha="center", va="center", fontsize=8,
                        color="white" if dark else "black")
    for idx in range(n, nrows * ncols):
        axes[idx // ncols][idx % ncols].axis("off")
    if image is not None and shade.ticks:
        bar = fig.colorbar(image, ax=axes, shrink=0.8, label=colour_label(verdicts, shade))
        bar.set_ticks([pos for pos, _ in shade.ticks], labels=tick_labels(verdicts, shade))
    seeds = f" (mean ± std over {run.n_seeds} seeds)" if run.n_seeds > 1 else ""
    tuned = f"\neach cell at its best {run.tuning.axis} (by {run.tuning.by})" if run.tuning is not None else ""
    fig.suptitle(f"{verdicts.label.capitalize()}{seeds}{tuned}", fontsize=MIN_FONT + 4)
    return _png(fig)


APART_GREY = "#d0d0d0"


MAX_LAYERS_DRAWN = 8  # deeper nets: this many layers, evenly spread from the first to the last


def shown_layers(depth: int) -> list[int]:
    """The hidden layers the per-layer figures draw: all of a shallow net, else MAX_LAYERS_DRAWN evenly spread
    (first and last included) — 30 overlapping lines hide what 8 show."""
    if depth <= MAX_LAYERS_DRAWN:
        return list(range(depth))
    return sorted({int(round(x)) for x in np.linspace(0, depth - 1, MAX_LAYERS_DRAWN)})


def _layer_handles(colours: np.ndarray, layers: list[int]) -> tuple[list, list[str]]:
    return [plt.Line2D([], [], color=colours[i], lw=1.5) for i in layers], [f"layer {i + 1}" for i in layers]


def _layer_colours(n: int) -> np.ndarray:
    """A colour per hidden layer along a sequential colormap: first layer dark, last light (not yellow)."""
    return plt.get_cmap("viridis")(np.linspace(0.0, 0.85, max(n, 1)))


def _fractions(counts: np.ndarray, nonfinite: int) -> np.ndarray:
    """Counts as fractions of every value, non-finite ones included, so layers of any width compare."""
    total = counts.sum() + nonfinite
    return counts / total if total else np.zeros(len(counts))


def fold_gradients(counts: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Signed log-spaced gradient counts (``histograms.gradient_edges``: −10^max … −10^min, 10^min … 10^max)
    folded onto |g|: (the magnitude edges, counts per magnitude bin, the centre bin |g| < 10^min ("≈0"),
    the values beyond 10^max)."""
    n = len(edges) // 2  # edges[:n] negative, edges[n:] positive; counts[n] is the centre bin
    inner = counts[n + 1:2 * n] + counts[1:n][::-1]
    return edges[n:], inner, counts[n], counts[0] + counts[-1]


def _beyond(ax, x: float, y: float, colour, marker: str) -> None:
    """Values past the binned range, as a triangle just outside it."""
    if y > 0:
        ax.plot([x], [y], marker=marker, ms=4, color=colour, ls="none")


def _nonfinite_note(ax, counts: np.ndarray, nonfinite: np.ndarray) -> None:
    """Say so when values are NaN or infinite (a diverging trial): they are in no bin, so a panel looks empty."""
    share = nonfinite / np.maximum(counts.sum(axis=-1) + nonfinite, 1)
    if share.max() > 0:
        ax.text(0.5, 0.5, f"non-finite: up to {share.max():.0%} of a layer's values", transform=ax.transAxes,
                ha="center", va="center", fontsize=8, color="#b00020")


def _activation_panel(ax, h: dict, snap: int, colours: np.ndarray) -> None:
    _nonfinite_note(ax, h["epoch_act"][snap], h["epoch_act_nonfinite"][snap])
    edges = h["act_edges"]
    width = edges[1] - edges[0]
    for layer in shown_layers(len(h["layers"])):
        frac = _fractions(h["epoch_act"][snap, layer], h["epoch_act_nonfinite"][snap, layer])
        ax.stairs(frac[1:-1], edges, color=colours[layer], lw=1.1)
        _beyond(ax, edges[0] - width, frac[0], colours[layer], "<")
        _beyond(ax, edges[-1] + width, frac[-1], colours[layer], ">")
    ax.set_xlabel("activation value", fontsize=8)


def _gradient_panel(ax, h: dict, snap: int, colours: np.ndarray, span: tuple[float, float]) -> None:
    lo, hi = span
    zero_at, separator = lo / 30, lo / 10  # the centre bin ("≈0") is drawn left of a dotted line
    _nonfinite_note(ax, h["epoch_grad"][snap], h["epoch_grad_nonfinite"][snap])
    for layer in shown_layers(len(h["layers"])):
        frac = _fractions(h["epoch_grad"][snap, layer], h["epoch_grad_nonfinite"][snap, layer])
        edges, inner, zero, beyond = fold_gradients(frac, h["grad_edges"])
        ax.stairs(inner, edges, color=colours[layer], lw=1.1)
        _beyond(ax, zero_at, zero, colours[layer], "o")
        _beyond(ax, edges[-1] * 1.5, beyond, colours[layer], ">")
    ax.set_xscale("log")
    ax.set_xlim(lo / 100, hi * 10)
    ax.axvline(separator, color="grey", lw=0.8, ls=":")
    # decade ticks, at most 6, the first well clear of the "≈0" tick
    first, last = math.ceil(math.log10(zero_at) + 1.5), math.floor(math.log10(hi * 10))
    decades = range(first, last + 1, max(1, math.ceil((last - first + 1) / 6)))
    ax.set_xticks([zero_at, *(10.0**d for d in decades)], ["≈0", *(f"$10^{{{d}}}$" for d in decades)])
    ax.minorticks_off()
    threshold = h["grad_edges"][len(h["grad_edges"]) // 2]
    ax.set_xlabel(f"|∂ℓ/∂z| per example (log scale; ≈0: < {threshold:.0e})", fontsize=8)


def _gradient_span(h: dict, snaps: tuple[int, ...]) -> tuple[float, float]:
    """The range of |∂ℓ/∂z| bins holding data in these snapshots (every bin's when none does)."""
    counts = h["epoch_grad"][list(snaps)].sum(axis=(0, 1))  # every layer of both snapshots
    edges, inner, _, beyond = fold_gradients(counts, h["grad_edges"])
    used = np.flatnonzero(inner)
    lo, hi = (edges[used[0]], edges[used[-1] + 1]) if used.size else (edges[0], edges[-1])
    return lo, edges[-1] if beyond else hi


EPOCH_ARRAYS = {"layers", "act_edges", "grad_edges", "epoch", "epoch_act", "epoch_grad", "epoch_act_nonfinite",
                "epoch_grad_nonfinite"}


def _epoch_histograms(run: RunData, trial_id: str) -> dict | None:
    """The trial's histograms when they hold at least one epoch snapshot (initialization)."""
    h = run.histogram_arrays(trial_id)
    return h if h is not None and EPOCH_ARRAYS <= h.keys() and len(h["epoch"]) else None


def _signal_series(run: RunData, trial_id: str) -> pd.DataFrame:
    """A trial's per-layer activation statistics over training: step_layers.csv (with percentiles), continued
    after its last step by layers.csv's epoch ends (mean and std only)."""
    steps = run.step_layers[run.step_layers["trial_id"] == trial_id]
    later = run.layers[(run.layers["trial_id"] == trial_id) & (run.layers["epoch"] > steps["progress"].max())]
    if not later.empty:
        steps = pd.concat([steps, later.assign(progress=later["epoch"].astype(float))], ignore_index=True)
    return steps.replace([np.inf, -np.inf], np.nan)  # a diverging trial: gaps, not an axis out to infinity


def _edges(values: list[float]) -> np.ndarray:
    """Cell edges around sorted centres: midpoints, the ends half a neighbour's gap out (one value: ±0.5)."""
    v = np.asarray(values, dtype=float)
    if len(v) == 1:
        return np.array([v[0] - 0.5, v[0] + 0.5])
    mid = (v[:-1] + v[1:]) / 2
    return np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])


def phase_plot(diagram, title: str) -> bytes | None:
    """The trainability phase diagram (``report.phase``; Schoenholz et al. 2017, Figs. 5–6): the metric's mean over
    seeds as a heatmap over σ_w² (x) and depth (y), a panel per activation × σ_b², the theory's factor·ξ_c as a
    white curve (trainable below it, by the paper) and the edge of chaos χ₁ = 1 dotted. None without a panel."""
    if diagram is None or not diagram.panels:
        return None
    n = len(diagram.panels)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(min(PAGE_INCHES, 4.2 * ncols + 1.0), 3.8 * nrows + 0.6),
                             squeeze=False, layout="constrained")
    values = np.concatenate([p.grid()[2].ravel() for p in diagram.panels])
    finite = values[np.isfinite(values)]
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    mesh = None
    for ax, panel in zip(axes.ravel(), diagram.panels):
        sw, depths, grid = panel.grid()
        x_edges, y_edges = _edges(sw), _edges(depths)
        mesh = ax.pcolormesh(x_edges, y_edges, np.ma.masked_invalid(grid), cmap="viridis", vmin=vmin, vmax=vmax,
                             shading="flat")
        if grid.size <= 120:
            for i, d in enumerate(depths):
                for j, s in enumerate(sw):
                    if np.isfinite(grid[i, j]):
                        light = grid[i, j] < (vmin + vmax) / 2
                        ax.text(s, d, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=MIN_FONT,
                                color="white" if light else "black")
        curve = panel.curve
        y_top = float(y_edges[-1])
        limit = curve["depth_limit"].clip(upper=y_top * 10).to_numpy()
        ax.plot(curve["sigma_w2"], limit, color="white", lw=2.2)
        ax.plot(curve["sigma_w2"], limit, color="#d62728", lw=1.2, label=f"{diagram.factor:g}·ξ_c (theory)")
        if panel.critical_sigma_w2 is not None and x_edges[0] < panel.critical_sigma_w2 < x_edges[-1]:
            ax.axvline(panel.critical_sigma_w2, color="white", ls=":", lw=1.2,
                       label=f"χ₁ = 1 (σ_w² = {panel.critical_sigma_w2:.3g})")
        ax.set_xlim(x_edges[0], x_edges[-1])
        ax.set_ylim(y_edges[0], y_top)
        ax.set_xlabel("σ_w² (variance_scaling scale)")
        ax.set_ylabel("depth (hidden layers)")
        ax.set_title(panel.title, fontsize=10)
        ax.legend(loc="upper right", fontsize=MIN_FONT, framealpha=0.7)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    fig.colorbar(mesh, ax=axes.ravel().tolist(), shrink=0.85, label=diagram.label)
    fig.suptitle(title, fontsize=11)
    return _png(fig)


PAGE_INCHES = 12.4  # the widest PNG: 1364 px at DPI 110, inside report.html's 1400 px column at 100 % zoom
MIN_FONT = 8  # points: the smallest text of a figure (12 px at DPI 110)
PER_ROW = 4  # activations per row of small multiples before they wrap


def _page_figure(height: float, width: float = PAGE_INCHES):
    """A figure of at most the page's width, laid out by matplotlib's constrained layout, which places every title,
    axis label, tick label, colour bar and figure legend outside the others (so nothing overlaps at any grid size:
    ``tests/test_layout.py`` measures it)."""
    fig = plt.figure(figsize=(min(width, PAGE_INCHES), height), layout="constrained")
    fig.get_layout_engine().set(h_pad=0.06, w_pad=0.06, hspace=0.04, wspace=0.03)
    return fig


def _axes_grid(fig, nrows: int, ncols: int, share_y: Callable[[int, int], tuple[int, int] | None] = lambda r, c: None,
               share_x: bool = False) -> np.ndarray:
    """An nrows × ncols array of axes; ``share_y(r, c)`` names the earlier panel whose y axis (scale, limits) the
    panel at (r, c) shares, None for its own; ``share_x``: every panel shares the first one's x axis. Shared when
    made, so limits cover every sharing panel's data."""
    spec = fig.add_gridspec(nrows, ncols)
    grid = np.empty((nrows, ncols), dtype=object)
    for r in range(nrows):
        for c in range(ncols):
            other = share_y(r, c)
            grid[r, c] = fig.add_subplot(spec[r, c], sharey=grid[other] if other is not None else None,
                                         sharex=grid[0, 0] if share_x and (r, c) != (0, 0) else None)
    return grid


def _bottom_legend(fig, handles: list, labels: list[str], title: str) -> None:
    """One legend for the whole figure, below the panels, in as many columns as fit the page."""
    longest = max((len(t) for t in labels), default=10)
    ncol = max(1, min(len(labels), int(PAGE_INCHES * 72 / ((longest + 5) * MIN_FONT * 0.62))))
    fig.legend(handles, labels, loc="outside lower center", ncol=ncol, fontsize=MIN_FONT + 1, title=title,
               title_fontsize=MIN_FONT + 1, frameon=False)


def _default_selection(run: RunData, selection: Selection | None) -> Selection:
    """The report's selection, or the default rule by the default metric where the caller gives none."""
    if selection is not None:
        return selection
    from init_lab.report.verdicts import analyse

    return for_run(run, analyse(run))


def _init_colours(run: RunData) -> dict[str, Any]:
    """A colour per initializer of the grid, the same in every figure (and as report.html's: tab10 = D3)."""
    cmap = plt.get_cmap("tab10" if len(run.init_order) <= 10 else "tab20")
    return {init: cmap(k % cmap.N) for k, init in enumerate(run.init_order)}


def _pick_title(pick) -> str:
    roles = pick.role_text if pick is not None else ""
    return f"{pick.initializer} ({roles})" if roles else (pick.initializer if pick is not None else "")


def learning_curves(run: RunData, selection: Selection | None = None) -> bytes | None:
    """Loss (log scale) and accuracy over training as small multiples: a panel pair (loss above accuracy) per
    activation, PER_ROW to a row, sharing their axes; a colour per initializer, the selection's initializers only
    (``report.selection``); epoch 0 = the initial weights. Training: a thin solid line through steps.csv (the mean
    over every k batches, at its position in epochs), or solid with markers per epoch for runs without it;
    validation: dashed with markers per epoch. One legend below. None when no epoch was recorded."""
    if run.epochs.empty:
        return None
    selection = _default_selection(run, selection)
    data = run.epochs.replace([np.inf, -np.inf], np.nan)  # its rows carry each trial's axes
    steps = run.steps.replace([np.inf, -np.inf], np.nan)
    acts = [a for a in selection.activations() if a in set(data["activation"])]
    if not acts:
        return None
    colours = _init_colours(run)
    ncols = min(len(acts), PER_ROW)
    nrows = math.ceil(len(acts) / ncols)
    fig = _page_figure(nrows * 4.4 + 1.4, width=max(6.0, 3.1 * ncols + 0.8))
    grid = _axes_grid(fig, 2 * nrows, ncols, lambda r, c: (r % 2, 0) if (r, c) not in ((0, 0), (1, 0)) else None,
                      share_x=True)
    drawn: list[str] = []
    for k, act in enumerate(acts):
        loss_ax, acc_ax = grid[2 * (k // ncols)][k % ncols], grid[2 * (k // ncols) + 1][k % ncols]
        for init in selection.initializers(act):
            per_epoch = data[(data["activation"] == act) & (data["initializer"] == init)]
            if per_epoch.empty:
                continue
            drawn.append(init)
            per_step = steps[steps["trial_id"].isin(set(per_epoch["trial_id"]))]
            c = colours[init]
            for ax, metric in ((loss_ax, "loss"), (acc_ax, "accuracy")):
                if per_step.empty:
                    train = _mean_curve(per_epoch, "epoch", metric)
                    ax.plot(train.index, train, color=c, lw=1.6, marker="o", ms=2.5)
                else:
                    train = _mean_curve(per_step, "progress", metric)
                    ax.plot(train.index, train, color=c, lw=0.9)
                val = _mean_curve(per_epoch, "epoch", f"val_{metric}")
                ax.plot(val.index, val, color=c, lw=1.2, ls="--", marker="o", ms=3)
        loss_ax.set_title(act, fontsize=MIN_FONT + 2)
        loss_ax.set_yscale("log")
        _plain_log(loss_ax)
        acc_ax.set_ylim(0, 1.02)  # a line at 1.0 stays visible
        acc_ax.set_xlabel("epoch (steps as fractions)" if len(steps) else "epoch", fontsize=MIN_FONT + 1)
        acc_ax.xaxis.set_tick_params(labelbottom=True)
        for ax in (loss_ax, acc_ax):
            ax.grid(True, which="major", alpha=0.3)
            ax.tick_params(labelsize=MIN_FONT)
            ax.xaxis.get_major_locator().set_params(integer=True)
        if k % ncols == 0:
            loss_ax.set_ylabel("loss (log)", fontsize=MIN_FONT + 1)
            acc_ax.set_ylabel("accuracy", fontsize=MIN_FONT + 1)
        else:  # shared with the row's first panel: its labels say it
            loss_ax.yaxis.set_tick_params(labelleft=False)
            acc_ax.yaxis.set_tick_params(labelleft=False)
    for k in range(len(acts), nrows * ncols):
        fig.delaxes(grid[2 * (k // ncols)][k % ncols])
        fig.delaxes(grid[2 * (k // ncols) + 1][k % ncols])
    inits = [i for i in run.init_order if i in set(drawn)]
    handles = [plt.Line2D([], [], color=colours[i], lw=2) for i in inits]
    handles += [plt.Line2D([], [], color="black", lw=0.9 if len(steps) else 1.6),
                plt.Line2D([], [], color="black", lw=1.2, ls="--", marker="o", ms=3)]
    labels = [*inits, "training" if len(steps) else "training (per epoch)", "validation"]
    _bottom_legend(fig, handles, labels, "initializer")
    seeds = f"mean over {run.n_seeds} seeds" if run.n_seeds > 1 else "one seed"
    pooled = f"; {', '.join(run.swept)} pooled" if run.swept else ""
    fig.suptitle(f"Learning curves ({seeds}{pooled})", fontsize=MIN_FONT + 4)
    return _png(fig, tight=False)


def _plain_log(ax) -> None:
    """Log-axis tick labels as plain numbers (0.5, 2, 100), never 2.6×10⁰."""
    from matplotlib.ticker import LogFormatter

    ax.yaxis.set_major_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1.2, 0.4)))
    ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1.2, 0.4)))


LOST_UNITS = (("dead_frac", "dead units (relu)"), ("negative_frac", "stuck < 0 (leaky/elu/selu/prelu)"),
              ("saturated_frac", "saturated units"))


def diagnostics_plot(run: RunData, selection: Selection | None = None) -> bytes | None:
    """Per-layer signals on the probe batch as small multiples, a row per activation, the selection's initializers
    (a colour each, mean over seeds): (a) each hidden layer's activation std at initialization, (b) after the last
    epoch, (c) the last hidden layer's std over epochs, (d) the worst layer's fraction of dead (relu), stuck-negative
    (leaky_relu/elu/selu/prelu) or saturated (sigmoid/tanh/lecun_tanh/softsign) units over epochs. The std panels of
    a row share their y axis. Runs recorded before ``negative_frac`` existed simply have no stuck-negative lines."""
    if run.layers.empty:
        return None
    selection = _default_selection(run, selection)
    data = run.layers.replace([np.inf, -np.inf], np.nan)  # its rows carry each trial's axes
    acts = [a for a in selection.activations() if a in set(data["activation"])]
    if not acts:
        return None
    colours = _init_colours(run)
    last_epoch = int(data["epoch"].max())
    top = int(data["layer"].max())
    fig = _page_figure(2.5 * len(acts) + 1.6)
    grid = _axes_grid(fig, len(acts), 4, lambda r, c: (r, 0) if 0 < c < 3 else None)
    drawn: set[str] = set()
    for row, act in enumerate(acts):
        axes = grid[row]
        kinds: list[str] = []
        for init in selection.initializers(act):
            part = data[(data["activation"] == act) & (data["initializer"] == init)]
            if part.empty:
                continue
            drawn.add(init)
            c = colours[init]
            for ax, epoch in ((axes[0], 0), (axes[1], last_epoch)):
                at = part[part["epoch"] == epoch].groupby("layer")["act_std"].mean()
                if len(at):
                    ax.plot(at.index + 1, at.where(at > 0), color=c, marker="o", ms=2.5, lw=1.4)
            over = part[part["layer"] == top].groupby("epoch")["act_std"].mean()
            axes[2].plot(over.index, over.where(over > 0), color=c, marker="o", ms=2.5, lw=1.4)
            for col, what in LOST_UNITS:
                if col not in part:
                    continue
                worst = part.groupby(["trial_id", "epoch"])[col].max().groupby("epoch").mean()
                if worst.notna().any():
                    axes[3].plot(worst.index, worst, color=c, marker="o", ms=2.5, lw=1.4)
                    kinds.append(what)
        axes[0].set_yscale("log")  # and the two panels that share its y axis
        _plain_log(axes[0])
        for ax in axes:
            ax.grid(True, alpha=0.3)
            ax.tick_params(labelsize=MIN_FONT)
            ax.xaxis.get_major_locator().set_params(integer=True)
        axes[0].set_ylabel(f"{act}\nactivation std (log)", fontsize=MIN_FONT + 1)
        axes[3].set_ylim(-0.02, 1.02)
        axes[3].set_ylabel(" / ".join(dict.fromkeys(kinds)) or "fraction of units", fontsize=MIN_FONT)
        if not kinds:
            axes[3].text(0.5, 0.5, f"no dead, stuck or saturated\nmeasure for {act}", transform=axes[3].transAxes,
                         ha="center", va="center", fontsize=MIN_FONT, color="#555")
        if row == len(acts) - 1:
            for ax, label in zip(axes, ("hidden layer (1 = first)", "hidden layer (1 = first)",
                                        "epoch (0 = initialization)", "epoch (0 = initialization)")):
                ax.set_xlabel(label, fontsize=MIN_FONT + 1)
    for ax, title in zip(grid[0], ("(a) std at initialization", f"(b) std after epoch {last_epoch}",
                                   "(c) last hidden layer's std", "(d) worst layer's lost units")):
        ax.set_title(title, fontsize=MIN_FONT + 1)
    inits = [i for i in run.init_order if i in drawn]
    _bottom_legend(fig, [plt.Line2D([], [], color=colours[i], lw=2) for i in inits], inits, "initializer")
    seeds = f"mean over {run.n_seeds} seeds" if run.n_seeds > 1 else "one seed"
    fig.suptitle(f"Per-layer signals on the probe batch ({seeds})", fontsize=MIN_FONT + 4)
    return _png(fig, tight=False)


def _picked_trials(run: RunData, selection: Selection, load: Callable[[str], Any]) -> list[tuple[Any, str, Any]]:
    """Per drawn combination of ``selection`` (activation, then grid order), its first trial (lowest seed, then grid
    order) for which ``load(trial_id)`` gives data: [(pick, trial_id, data)]."""
    trials = run.summary.sort_values(["seed", "index"], kind="stable")
    chosen = []
    for pick in selection.picks:
        ids = trials.loc[(trials["initializer"] == pick.initializer) & (trials["activation"] == pick.activation),
                         "trial_id"]
        found = next(((tid, data) for tid in ids if (data := load(tid)) is not None), None)
        if found:
            chosen.append((pick, *found))
    return chosen


def histograms_plot(run: RunData, selection: Selection | None = None) -> bytes | None:
    """Glorot & Bengio (2010) Figs. 3–7: per drawn initializer + activation (a row; its first seed; the selection,
    ``report.selection``), histograms of every hidden layer's activations and of the back-propagated per-example
    gradients |∂ℓ/∂z| on the probe batch, at initialization and after the last recorded epoch; a line per layer,
    y = fraction of values. None when no drawn trial has histograms.npz."""
    chosen = _picked_trials(run, _default_selection(run, selection), lambda tid: _epoch_histograms(run, tid))
    if not chosen:
        return None
    depth = max(len(h["layers"]) for _, _, h in chosen)
    colours = _layer_colours(depth)
    fig = _page_figure(2.45 * len(chosen) + 1.5)
    axes = _axes_grid(fig, len(chosen), 4, lambda r, c: (r, c - 1) if c in (1, 3) else None)
    for row, (pick, tid, h) in enumerate(chosen):
        last = len(h["epoch"]) - 1
        span = _gradient_span(h, (0, last))
        after = f"after epoch {h['epoch'][last]}"
        _activation_panel(axes[row][0], h, 0, colours)
        _activation_panel(axes[row][1], h, last, colours)
        _gradient_panel(axes[row][2], h, 0, colours, span)
        _gradient_panel(axes[row][3], h, last, colours, span)
        titles = ["(a) activations at initialization", f"(b) activations {after}", "(c) |∂ℓ/∂z| at initialization",
                  f"(d) |∂ℓ/∂z| {after}"]
        for ax, title in zip(axes[row], titles):
            ax.set_title(title, fontsize=MIN_FONT)
            ax.tick_params(labelsize=MIN_FONT)
            ax.grid(True, alpha=0.3)
            ax.set_label(tid)
        axes[row][0].set_ylabel(f"{pick.initializer}\n+ {pick.activation}\nfraction", fontsize=MIN_FONT)
    _bottom_legend(fig, *_layer_handles(colours, shown_layers(depth)), "hidden layer (triangles: values past the bins)")
    fig.suptitle("Activation and gradient histograms on the probe batch (first seed)", fontsize=MIN_FONT + 4)
    return _png(fig, tight=False)


def training_signals_plot(run: RunData, selection: Selection | None = None) -> bytes | None:
    """Glorot & Bengio (2010) Fig. 2: a row per activation, a panel per drawn initializer (``report.selection``; its
    first seed), every hidden layer's activation on the probe batch over training: the mean as a line, mean ± std
    shaded, the 2nd and 98th percentiles dotted (where step_layers.csv has them: the first epoch(s)); the panels
    share the epoch axis. None without step_layers.csv."""
    def load(tid: str) -> pd.DataFrame | None:
        part = run.step_layers[run.step_layers["trial_id"] == tid]
        return None if part.empty else _signal_series(run, tid)

    chosen = _picked_trials(run, _default_selection(run, selection), load)
    if not chosen:
        return None
    depth = max(int(series["layer"].max()) + 1 for _, _, series in chosen)
    colours = _layer_colours(depth)
    rows = list(dict.fromkeys(pick.activation for pick, _, _ in chosen))
    ncols = max(sum(p.activation == a for p, _, _ in chosen) for a in rows)
    fig = _page_figure(2.6 * len(rows) + 1.6, width=max(6.0, 2.9 * ncols + 0.8))
    grid = _axes_grid(fig, len(rows), ncols, share_x=True)  # own y axes: an exploding net's scale is 100× the rest
    used: dict[str, int] = {}
    for pick, tid, series in chosen:
        r = rows.index(pick.activation)
        c = used.get(pick.activation, 0)
        used[pick.activation] = c + 1
        ax = grid[r][c]
        ax.set_label(tid)
        drawn = set(shown_layers(int(series["layer"].max()) + 1))
        for layer, part in series.groupby("layer"):
            if layer not in drawn:
                continue
            part = part.sort_values("progress")
            x, mean, std, colour = part["progress"], part["act_mean"], part["act_std"], colours[int(layer)]
            ax.plot(x, mean, color=colour, lw=1.3, marker="o" if len(part) < 3 else None, ms=3)  # a lone point shows
            ax.fill_between(x, mean - std, mean + std, color=colour, alpha=0.15, lw=0)
            for p in ("p2", "p98"):
                ax.plot(x, part[p], color=colour, lw=0.7, ls=":")
        steps_end = run.step_layers.loc[run.step_layers["trial_id"] == tid, "progress"].max()
        if series["progress"].max() > steps_end:
            ax.axvline(steps_end, color="grey", lw=0.8, ls="--")  # right of it: epoch ends only
        status = run.summary.loc[run.summary["trial_id"] == tid, "status"].iloc[0]
        ax.set_title(_pick_title(pick) + ("" if status == "completed" else f" — {status}"), fontsize=MIN_FONT)
        ax.tick_params(labelsize=MIN_FONT)
        ax.grid(True, alpha=0.3)
        ax.xaxis.set_tick_params(labelbottom=True)
        ax.set_xlabel("epoch", fontsize=MIN_FONT)
        if c == 0:
            ax.set_ylabel(f"{pick.activation}\nactivation value", fontsize=MIN_FONT + 1)
    for r, act in enumerate(rows):
        for c in range(used[act], ncols):
            fig.delaxes(grid[r][c])
    handles, labels = _layer_handles(colours, shown_layers(depth))
    handles += [plt.Line2D([], [], color="black", lw=1.3), plt.Rectangle((0, 0), 1, 1, color="black", alpha=0.15),
                plt.Line2D([], [], color="black", lw=0.7, ls=":"), plt.Line2D([], [], color="grey", lw=0.8, ls="--")]
    labels += ["mean", "mean ± std", "2nd / 98th percentile", "later: epoch ends only"]
    _bottom_legend(fig, handles, labels, "hidden layer")
    fig.suptitle("Activations on the probe batch during training (first seed)", fontsize=MIN_FONT + 4)
    return _png(fig, tight=False)


def _by_activation(frame: pd.DataFrame) -> tuple[list[str], list[str], dict[str, Any]]:
    """A probe's or theory's combinations split as (activations, line keys, colour per key): a line key is the
    combination without its activation ('he_normal', 'he_normal, depth=3'), so a key keeps its colour in every
    activation's panel."""
    acts = list(dict.fromkeys(frame["activation"]))
    keys = list(dict.fromkeys(_line_key(c, a) for c, a in zip(frame["combination"], frame["activation"])))
    cmap = plt.get_cmap("tab10" if len(keys) <= 10 else "tab20")
    return acts, keys, {k: cmap(i % cmap.N) for i, k in enumerate(keys)}


def _line_key(combination: str, activation: str) -> str:
    return combination.replace(f" + {activation}", "", 1)


def probe_plot(layers: pd.DataFrame, title: str) -> bytes:
    """Per-layer pre-activation std, activation std and gradient RMS at initialization, log scale, as small
    multiples: a row per activation, a line per initializer (a colour each, the same in every row): the geometric
    mean over seeds, shaded from the lowest to the highest seed, and the mean-field prediction dashed (scaled to the
    measured first layer). Each column shares its y axis. One legend below."""
    acts, keys, colours = _by_activation(layers)
    panels = [("pre_std", "pre-activation std", "theory_pre_std_ratio"), ("act_std", "activation std", "theory_act_std_ratio"),
              ("grad_out_rms", "RMS of ∂L/∂activation", "theory_grad_rms_ratio")]
    n_seeds = layers["seed"].nunique() if "seed" in layers else 1
    fig = _page_figure(2.9 * len(acts) + 1.6)
    grid = _axes_grid(fig, len(acts), 3, lambda r, c: (0, c) if r else None, share_x=True)
    for row, act in enumerate(acts):
        rows = layers[layers["activation"] == act]
        for combo in dict.fromkeys(rows["combination"]):
            part = rows[rows["combination"] == combo]
            c = colours[_line_key(combo, act)]
            for ax, (col, _, theory_col) in zip(grid[row], panels):
                logs = np.log(part[col].where(part[col] > 0).astype(float))
                by_layer = logs.groupby(part["layer"])
                depth = np.array(sorted(part["layer"].unique())) + 1
                ax.plot(depth, np.exp(by_layer.mean()), color=c, lw=1.4, marker="o", ms=2)
                if n_seeds > 1:
                    ax.fill_between(depth, np.exp(by_layer.min()), np.exp(by_layer.max()), color=c, alpha=0.15, lw=0)
                if theory_col in part:
                    theory = part.groupby("layer")[theory_col].first() * float(np.exp(by_layer.mean().iloc[0]))
                    if theory.notna().all():
                        ax.plot(depth, theory, color=c, lw=1.0, ls="--")
        for ax, (_, label, _) in zip(grid[row], panels):
            _depth_panel(ax, label, row == 0, row == len(acts) - 1)
        grid[row][0].set_ylabel(act, fontsize=MIN_FONT + 2)
    spread = f"; shaded: min–max over {n_seeds} seeds" if n_seeds > 1 else ""
    handles = [plt.Line2D([], [], color=colours[k], lw=2) for k in keys]
    handles.append(plt.Line2D([], [], color="black", lw=1.0, ls="--"))
    _bottom_legend(fig, handles, [*keys, f"mean-field theory{spread}"], "initializer")
    fig.suptitle(title, fontsize=MIN_FONT + 4)
    return _png(fig, tight=False)


def _depth_panel(ax, label: str, top: bool, bottom: bool) -> None:
    """A panel over hidden layers on a log scale: its quantity titled on the top row, depth labelled on the last."""
    ax.set_yscale("log")
    ax.grid(True, which="major", alpha=0.3)
    ax.tick_params(labelsize=MIN_FONT)
    ax.xaxis.get_major_locator().set_params(integer=True)
    if top:
        ax.set_title(label + " (log)", fontsize=MIN_FONT + 1)
    if bottom:
        ax.set_xlabel("hidden layer (1 = first)", fontsize=MIN_FONT + 1)
    _plain_log(ax)


def _split_combination(combination: str) -> tuple[str, str]:
    """'he_normal + relu, depth=3' → ('relu', 'he_normal, depth=3'): the activation, and the rest (the line key)."""
    init, _, rest = combination.partition(" + ")
    depth = 0
    for k, ch in enumerate(rest):
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            return rest[:k], init + rest[k:]
    return rest, init


def jacobian_plot(spectra: pd.DataFrame, title: str) -> bytes | None:
    """Distribution of the input–output Jacobian's singular values as small multiples, a panel per activation
    (two to a row, each on its own y range: a ReLU net's exact zeros would flatten the others), a violin per initializer (all seeds and examples pooled): log10 s (the
    ``log10_singular_value`` column, finite where s itself underflows), the root mean squared singular value
    marked, and above each violin log10 of the median condition number, or how many singular values are exactly 0
    where the Jacobian is rank-deficient."""
    if spectra.empty:
        return None
    if "log10_singular_value" in spectra:
        logs_all = spectra["log10_singular_value"].astype(float)
    else:  # a probe written before the column existed
        with np.errstate(divide="ignore"):
            logs_all = np.log10(spectra["singular_value"].astype(float))
    split = {c: _split_combination(c) for c in dict.fromkeys(spectra["combination"])}
    acts = list(dict.fromkeys(a for a, _ in split.values()))
    ncols = min(len(acts), 2)
    nrows = math.ceil(len(acts) / ncols)
    fig = _page_figure(4.3 * nrows + 1.4)
    grid = _axes_grid(fig, nrows, ncols)
    for k, act in enumerate(acts):
        ax = grid[k // ncols][k % ncols]
        combos = [c for c, (a, _) in split.items() if a == act]
        data, means, labels = [], [], []
        for combo in combos:
            part = spectra["combination"] == combo
            logs = logs_all[part].to_numpy()
            finite = logs[np.isfinite(logs)]
            data.append(finite if finite.size else np.array([np.nan]))
            top = finite.max() if finite.size else np.nan  # √⟨s²⟩ from the logs, scaled by the largest: stays finite
            means.append(top + 0.5 * math.log10(np.mean(10.0 ** (2 * (finite - top)))) if finite.size else np.nan)
            keys = list(zip(spectra.loc[part, "seed"], spectra.loc[part, "example"]))
            by_example = pd.DataFrame({"log": logs, "key": keys})
            zeros = int(np.isneginf(logs).sum())
            if zeros:
                labels.append(f"{zeros / by_example['key'].nunique():.0f} s=0")
            else:
                conds = by_example.groupby("key")["log"].agg(lambda v: v.max() - v.min())
                labels.append(f"1e{np.median(conds):.0f}" if conds.notna().any() else "")
        drawable = [i for i, d in enumerate(data) if np.isfinite(d).sum() > 1]
        if drawable:
            ax.violinplot([data[i] for i in drawable], positions=[i + 1 for i in drawable], showextrema=True,
                          widths=0.8)
        ax.scatter(np.arange(1, len(combos) + 1), means, marker="_", s=200, color="black", zorder=3)
        ax.axhline(0.0, color="grey", lw=0.8, ls=":")
        finite = np.concatenate([d[np.isfinite(d)] for d in data])
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (-1.0, 1.0)
        ax.set_ylim(low - 0.03 * (high - low + 1), high + 0.16 * (high - low + 1))  # room for the labels above
        for i, text in enumerate(labels):
            ax.text(i + 1, 0.985, text, transform=ax.get_xaxis_transform(), ha="center", va="top", fontsize=MIN_FONT)
        ax.set_xticks(np.arange(1, len(combos) + 1), [split[c][1] for c in combos], rotation=90,
                      fontsize=MIN_FONT)  # upright names would overlap; slanted ones' boxes still do
        ax.tick_params(axis="y", labelsize=MIN_FONT)
        ax.set_title(act, fontsize=MIN_FONT + 2)
        ax.grid(True, axis="y", alpha=0.3)
        if k % ncols == 0:
            ax.set_ylabel("log10 singular value of ∂z_L/∂x", fontsize=MIN_FONT + 1)
    for k in range(len(acts), nrows * ncols):
        fig.delaxes(grid[k // ncols][k % ncols])
    _bottom_legend(fig, [plt.Line2D([], [], color="black", marker="_", ms=14, ls="none")],
                   ["√⟨s²⟩ (bar); above each violin: median condition number, or zero singular values per Jacobian"],
                   "float64, QR through the layers")
    fig.suptitle(title, fontsize=MIN_FONT + 4)
    return _png(fig, tight=False)


def theory_plot(layers: pd.DataFrame, title: str) -> bytes | None:
    """Mean-field q_l (pre-activation second moment) and gradient second moment E[(∂L/∂a_l)²] (relative to the
    last hidden layer) over depth, log scale, as small multiples: a row per activation, a line per initializer."""
    if layers.empty:
        return None
    acts, keys, colours = _by_activation(layers)
    fig = _page_figure(2.7 * len(acts) + 1.5, width=10.0)
    grid = _axes_grid(fig, len(acts), 2, share_x=True)
    for row, act in enumerate(acts):
        rows = layers[layers["activation"] == act]
        for combo in dict.fromkeys(rows["combination"]):
            part = rows[rows["combination"] == combo].sort_values("layer")
            for ax, col in zip(grid[row], ("q", "grad_ms")):
                ax.plot(part["layer"] + 1, part[col].where(part[col] > 0), color=colours[_line_key(combo, act)],
                        lw=1.5)
        for ax, label in zip(grid[row], ("q_l: pre-activation second moment", "gradient second moment ÷ last layer's")):
            _depth_panel(ax, label, row == 0, row == len(acts) - 1)
        grid[row][0].set_ylabel(act, fontsize=MIN_FONT + 2)
    _bottom_legend(fig, [plt.Line2D([], [], color=colours[k], lw=2) for k in keys], keys, "initializer")
    fig.suptitle(title, fontsize=MIN_FONT + 4)
    return _png(fig, tight=False)
