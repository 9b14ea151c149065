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
from init_lab.report.run import Run  # noqa: E402
from init_lab.report.tables import facets, matrix  # noqa: E402
from init_lab.report.verdicts import MARKS, Verdicts, cell_text  # noqa: E402

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


def learning_curves(run: Run) -> bytes | None:
    """Loss (log scale) and accuracy over training: one column of panels per activation, a colour per
    initializer, epoch 0 = the initial weights. Training: a thin solid line through steps.csv (the mean
    over every k batches, at its position in epochs), or solid with markers per epoch for runs without
    it; validation: dashed with markers per epoch. None when no epoch was recorded."""
    if run.epochs.empty:
        return None
    data = run.epochs.replace([np.inf, -np.inf], np.nan)  # its rows carry each trial's axes
    steps = run.steps.replace([np.inf, -np.inf], np.nan)
    acts = [a for a in run.act_order if a in set(data["activation"])]
    inits = [i for i in run.init_order if i in set(data["initializer"])]
    colours = plt.get_cmap("tab10" if len(inits) <= 10 else "tab20")
    ncols = len(acts)
    fig, axes = plt.subplots(2, ncols, figsize=(max(4.0, 3.3 * ncols) + 2.2, 6.4), squeeze=False, sharex=True)
    for col, act in enumerate(acts):
        for k, init in enumerate(inits):
            per_epoch = data[(data["activation"] == act) & (data["initializer"] == init)]
            if per_epoch.empty:
                continue
            per_step = steps[steps["trial_id"].isin(set(per_epoch["trial_id"]))]
            c = colours(k % colours.N)
            for row, metric in enumerate(("loss", "accuracy")):
                ax = axes[row][col]
                if per_step.empty:
                    train = _mean_curve(per_epoch, "epoch", metric)
                    ax.plot(train.index, train, color=c, lw=1.6, marker="o", ms=2.5)
                else:
                    train = _mean_curve(per_step, "progress", metric)
                    ax.plot(train.index, train, color=c, lw=0.9)
                val = _mean_curve(per_epoch, "epoch", f"val_{metric}")
                ax.plot(val.index, val, color=c, lw=1.2, ls="--", marker="o", ms=3)
        axes[0][col].set_title(f"activation: {act}", fontsize=10)
        axes[0][col].set_yscale("log")
        axes[1][col].set_ylim(0, 1.02)  # a line at 1.0 stays visible
        axes[1][col].set_xlabel("epoch (steps as fractions)" if len(steps) else "epoch")
        for row in range(2):
            axes[row][col].grid(True, which="major", alpha=0.3)
            axes[row][col].xaxis.get_major_locator().set_params(integer=True)
    axes[0][0].set_ylabel("cross-entropy loss (log scale)")
    axes[1][0].set_ylabel("accuracy (fraction correct)")
    handles = [plt.Line2D([], [], color=colours(k % colours.N), lw=2) for k in range(len(inits))]
    handles += [plt.Line2D([], [], color="black", lw=0.9 if len(steps) else 1.6),
                plt.Line2D([], [], color="black", lw=1.2, ls="--", marker="o", ms=3)]
    labels = [*inits, "training (mean over every k steps)" if len(steps) else "training", "validation (per epoch)"]
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), title="initializer", fontsize=9, frameon=False)
    seeds = f", mean over {run.n_seeds} seeds" if run.n_seeds > 1 else ""
    facet = f" (all values of {', '.join(run.swept)} pooled)" if run.swept else ""
    fig.suptitle(f"Learning curves — {run.name}{seeds}{facet}; epoch 0 = initial weights", fontsize=11)
    fig.tight_layout()
    return _png(fig)


def heatmap(run: Run, verdicts: Verdicts) -> bytes | None:
    """The metric's mean over seeds, initializer × activation, one panel per swept-axis value, coloured by the gap
    to each cell's group's best on a log scale (``colours.shading``: cells a hair apart differ in colour even
    beside a cell at chance); cells at chance or without a value in grey, apart; ★ the group's best, ≈ tied."""
    table = verdicts.cells
    parts = facets(run, table)
    if not table["mean"].notna().any():
        return None
    shade = shading(table, verdicts.higher)
    n = len(parts)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    n_act, n_init = len(run.act_order), len(run.init_order)
    # constrained: panels, their row names, the colour bar and the title never overlap, however many facets
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(ncols * (1.1 * n_act + 3.2), nrows * (0.6 * n_init + 1.6)), squeeze=False,
        layout="constrained",
    )
    cmap = plt.get_cmap("viridis").with_extremes(bad=APART_GREY)  # at chance, or no value: outside the scale
    image = None
    for idx, (title, part) in enumerate(parts):
        ax = axes[idx // ncols][idx % ncols]
        position, text = shade.matrix(run, part), matrix(part.assign(text=part.apply(cell_text, axis=1)), run, "text")
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
    fig.suptitle(f"{verdicts.label}{seeds} — {run.name}; {MARKS['best']} best of its group, {MARKS['tied']} tied "
                 "with it; grey: at chance or no value", fontsize=11)
    return _png(fig)


APART_GREY = "#d0d0d0"


def probe_plot(layers: pd.DataFrame, title: str) -> bytes:
    """Per-layer pre-activation std, activation std and gradient RMS at initialization, log scale, one line
    per combination: the geometric mean over seeds, shaded from the lowest to the highest seed, and the
    mean-field prediction dashed (scaled to the measured first layer)."""
    combos = list(dict.fromkeys(layers["combination"]))
    colours = plt.get_cmap("tab10" if len(combos) <= 10 else "tab20")
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.2))
    panels = [("pre_std", "pre-activation std", "theory_pre_std_ratio"), ("act_std", "activation std", "theory_act_std_ratio"),
              ("grad_out_rms", "RMS of ∂L/∂activation", "theory_grad_rms_ratio")]
    n_seeds = layers["seed"].nunique() if "seed" in layers else 1
    for k, combo in enumerate(combos):
        part = layers[layers["combination"] == combo]
        c = colours(k % colours.N)
        for ax, (col, _, theory_col) in zip(axes, panels):
            logs = np.log(part[col].where(part[col] > 0).astype(float))
            by_layer = logs.groupby(part["layer"])
            depth = np.array(sorted(part["layer"].unique())) + 1
            ax.plot(depth, np.exp(by_layer.mean()), color=c, lw=1.5, marker="o", ms=2.5, label=combo)
            if n_seeds > 1:
                ax.fill_between(depth, np.exp(by_layer.min()), np.exp(by_layer.max()), color=c, alpha=0.15, lw=0)
            if theory_col in part:
                theory = part.groupby("layer")[theory_col].first() * float(np.exp(by_layer.mean().iloc[0]))
                if theory.notna().all():
                    ax.plot(depth, theory, color=c, lw=1.0, ls="--")
    for ax, (_, label, _) in zip(axes, panels):
        ax.set_yscale("log")
        ax.set_xlabel("hidden layer (1 = first)")
        ax.set_ylabel(label + " (log scale)")
        ax.grid(True, which="major", alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    spread = f"; shaded: min–max over {n_seeds} seeds" if n_seeds > 1 else ""
    axes[0].set_title(f"pre-activations (dashed: mean-field theory{spread})", fontsize=10)
    axes[1].set_title("activations", fontsize=10)
    axes[2].set_title("back-propagated gradients", fontsize=10)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8,
               frameon=False, title="initializer + activation")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _png(fig)


def diagnostics_plot(run: Run) -> bytes | None:
    """Per-layer activation std at initialization and after the last epoch, the last hidden layer's std
    over epochs, and the worst dead (relu; solid) or stuck-negative (leaky_relu/elu/selu/prelu; dashed)
    and saturated fractions over epochs; a line per initializer + activation (mean over seeds). Runs
    recorded before ``negative_frac`` existed simply have no dashed lines."""
    if run.layers.empty:
        return None
    data = run.layers.copy()  # its rows carry each trial's axes
    data["combination"] = data["initializer"] + " + " + data["activation"]
    combos = list(dict.fromkeys(data.sort_values(["initializer", "activation"], key=lambda s: s.map(
        {v: i for i, v in enumerate(run.init_order + run.act_order)}))["combination"]))
    colours = plt.get_cmap("tab10" if len(combos) <= 10 else "tab20")
    fig, axes = plt.subplots(1, 5, figsize=(23, 4.8))
    last_epoch = int(data["epoch"].max())
    top = int(data["layer"].max())
    for k, combo in enumerate(combos):
        part = data[data["combination"] == combo]
        c = colours(k % colours.N)
        for ax, epoch in ((axes[0], 0), (axes[1], last_epoch)):
            at = part[part["epoch"] == epoch].groupby("layer")["act_std"].mean()
            if len(at):
                ax.plot(at.index + 1, at.where(at > 0), color=c, marker="o", ms=2.5, lw=1.4, label=combo)
        over = part[part["layer"] == top].groupby("epoch")["act_std"].mean()
        axes[2].plot(over.index, over.where(over > 0), color=c, marker="o", ms=2.5, lw=1.4, label=combo)
        for ax, col, style in ((axes[3], "dead_frac", "-"), (axes[3], "negative_frac", "--"),
                               (axes[4], "saturated_frac", "-")):
            if col not in part:
                continue
            worst = part.groupby(["trial_id", "epoch"])[col].max().groupby("epoch").mean()
            if worst.notna().any():
                ax.plot(worst.index, worst, color=c, ls=style, marker="o", ms=2.5, lw=1.4, label=combo)
    titles = ["activation std at initialization", f"activation std after epoch {last_epoch}",
              "last hidden layer's activation std over epochs",
              "dead units (relu, solid) / stuck < 0\n(leaky_relu, elu, selu, prelu, dashed), worst layer",
              "saturated units (sigmoid/tanh/lecun_tanh/softsign), worst layer"]
    for i, (ax, title) in enumerate(zip(axes, titles)):
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
        if i < 3:
            ax.set_yscale("log")
            ax.set_xlabel("hidden layer (1 = first)" if i < 2 else "epoch (0 = initialization)")
            ax.set_ylabel("std over probe batch and units (log scale)")
        else:
            ax.set_ylim(-0.02, 1.02)
            ax.set_xlabel("epoch (0 = initialization)")
            ax.set_ylabel("fraction of units")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False,
               title="initializer + activation")
    fig.suptitle(f"Per-layer signals on the probe batch — {run.name}", fontsize=11)
    fig.tight_layout()
    return _png(fig)


def jacobian_plot(spectra: pd.DataFrame, title: str) -> bytes | None:
    """Distribution of the input–output Jacobian's singular values per combination (all seeds and
    examples pooled): a violin of log10 s (the ``log10_singular_value`` column, finite where s itself
    underflows), the mean squared singular value marked, and above each violin log10 of the median condition
    number, or how many singular values are exactly 0 where the Jacobian is rank-deficient."""
    if spectra.empty:
        return None
    combos = list(dict.fromkeys(spectra["combination"]))
    if "log10_singular_value" in spectra:
        logs_all = spectra["log10_singular_value"].astype(float)
    else:  # a probe written before the column existed
        with np.errstate(divide="ignore"):
            logs_all = np.log10(spectra["singular_value"].astype(float))
    data, means, labels = [], [], []
    for combo in combos:
        part = spectra["combination"] == combo
        logs = logs_all[part].to_numpy()
        finite = logs[np.isfinite(logs)]
        data.append(finite if finite.size else np.array([np.nan]))
        top = finite.max() if finite.size else np.nan  # √⟨s²⟩ from the logs, scaled by the largest to stay finite
        means.append(top + 0.5 * math.log10(np.mean(10.0 ** (2 * (finite - top)))) if finite.size else np.nan)
        by_example = pd.DataFrame({"log": logs, "key": list(zip(spectra.loc[part, "seed"], spectra.loc[part, "example"]))})
        zeros = int(np.isneginf(logs).sum())
        if zeros:
            labels.append(f"{zeros / by_example['key'].nunique():.0f} s = 0")
        else:
            conds = by_example.groupby("key")["log"].agg(lambda v: v.max() - v.min())
            labels.append(f"cond 1e{np.median(conds):.0f}" if conds.notna().any() else "")
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(combos) + 2), 6.5))
    drawable = [i for i, d in enumerate(data) if np.isfinite(d).sum() > 1]
    if drawable:
        ax.violinplot([data[i] for i in drawable], positions=[i + 1 for i in drawable], showextrema=True, widths=0.8)
    ax.scatter(np.arange(1, len(combos) + 1), means, marker="_", s=200, color="black", zorder=3, label="√⟨s²⟩")
    ax.axhline(0.0, color="grey", lw=0.8, ls=":")
    low = min((np.nanmin(d) for d in data if np.isfinite(d).any()), default=-1.0)
    high = max((np.nanmax(d) for d in data if np.isfinite(d).any()), default=1.0)
    ax.set_ylim(low - 0.03 * (high - low), high + 0.22 * (high - low))  # room for the labels above the violins
    for i, text in enumerate(labels):
        ax.text(i + 1, 0.98, text, transform=ax.get_xaxis_transform(), ha="center", va="top", fontsize=7, rotation=90)
    ax.set_xticks(np.arange(1, len(combos) + 1), combos, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("log10 singular value of ∂z_L/∂x")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    ax.set_title(title + "\n(float64, QR through the layers; above each: median condition number, or the mean count "
                 "of exactly-zero singular values per Jacobian)", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def theory_plot(layers: pd.DataFrame, title: str) -> bytes | None:
    """Mean-field q_l (pre-activation second moment) and gradient second moment E[(∂L/∂a_l)²] (relative to the
    last hidden layer) over depth, one line per initializer + activation, log scale."""
    if layers.empty:
        return None
    combos = list(dict.fromkeys(layers["combination"]))
    colours = plt.get_cmap("tab10" if len(combos) <= 10 else "tab20")
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.0))
    for k, combo in enumerate(combos):
        part = layers[layers["combination"] == combo].sort_values("layer")
        depth = part["layer"] + 1
        for ax, col in zip(axes, ("q", "grad_ms")):
            ax.plot(depth, part[col].where(part[col] > 0), color=colours(k % colours.N), lw=1.5, label=combo)
    for ax, label in zip(axes, ("q_l: pre-activation second moment", "gradient second moment ÷ last hidden layer's")):
        ax.set_yscale("log")
        ax.set_xlabel("hidden layer (1 = first)")
        ax.set_ylabel(label + " (log scale)")
        ax.grid(True, which="major", alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8,
               frameon=False, title="initializer + activation")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _png(fig)


MAX_COMBINATIONS = 12  # rows / panels of the per-combination figures, so the PNG stays a readable size


def _first_seed_trials(run: Run, load: Callable[[str], Any]) -> tuple[list[tuple[str, Any]], list[str]]:
    """Per initializer + activation (grid order), its first trial (lowest seed, then grid order) for which
    ``load(trial_id)`` gives data: [(trial_id, data)] for the first MAX_COMBINATIONS combinations, and the
    names of the combinations left out after them (not loaded, so some may have no data)."""
    trials = run.summary.sort_values(["seed", "index"], kind="stable")
    chosen, left_out = [], []
    for init in run.init_order:
        for act in run.act_order:
            ids = trials.loc[(trials["initializer"] == init) & (trials["activation"] == act), "trial_id"]
            if len(chosen) == MAX_COMBINATIONS:
                left_out += [f"{init} + {act}"] if len(ids) else []
                continue
            found = next(((tid, data) for tid in ids if (data := load(tid)) is not None), None)
            if found:
                chosen.append(found)
    return chosen, left_out


def _left_out_note(left_out: list[str]) -> str:
    return f"\nnot shown ({len(left_out)}): " + ", ".join(left_out) if left_out else ""


LEGEND_INCHES = 1.9  # right margin kept for a figure legend


def _fixed_margins(fig, title_inches: float = 0.6) -> float:
    """Fixed margins in inches for a grid of small multiples under a (two-line) suptitle, with room on the right
    for the legend; returns the legend's x anchor. tight_layout measured 2.3 s per call on a 12 × 4 grid, and
    bbox_inches="tight" draws the figure twice: most of a report's time, for the same result."""
    width, height = fig.get_size_inches()
    right = 1 - LEGEND_INCHES / width
    fig.subplots_adjust(left=0.75 / width, right=right, top=1 - title_inches / height,
                        bottom=0.6 / height, wspace=0.28, hspace=0.55)
    return right + 0.15 / width


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


def _epoch_histograms(run: Run, trial_id: str) -> dict | None:
    """The trial's histograms when they hold at least one epoch snapshot (initialization)."""
    h = run.histogram_arrays(trial_id)
    return h if h is not None and EPOCH_ARRAYS <= h.keys() and len(h["epoch"]) else None


def histograms_plot(run: Run) -> bytes | None:
    """Glorot & Bengio (2010) Figs. 3–7: per initializer + activation (a row; its first seed), histograms of
    every hidden layer's activations and of the back-propagated per-example gradients |∂ℓ/∂z| on the probe
    batch, at initialization and after the last recorded epoch; a line per layer, y = fraction of values.
    None when no trial has histograms.npz."""
    chosen, left_out = _first_seed_trials(run, lambda tid: _epoch_histograms(run, tid))
    if not chosen:
        return None
    depth = max(len(h["layers"]) for _, h in chosen)
    colours = _layer_colours(depth)
    fig, axes = plt.subplots(len(chosen), 4, figsize=(18, 2.9 * len(chosen) + 1.0), squeeze=False)
    for row, (tid, h) in enumerate(chosen):
        last = len(h["epoch"]) - 1
        span = _gradient_span(h, (0, last))
        after = f"after epoch {h['epoch'][last]}"
        _activation_panel(axes[row][0], h, 0, colours)
        _activation_panel(axes[row][1], h, last, colours)
        _gradient_panel(axes[row][2], h, 0, colours, span)
        _gradient_panel(axes[row][3], h, last, colours, span)
        titles = ["(a) activations at initialization", f"(b) activations {after}",
                  "(c) gradients at initialization", f"(d) gradients {after}"]
        for ax, title in zip(axes[row], titles):
            ax.set_title(title, fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(True, alpha=0.3)
        axes[row][0].set_ylabel(f"{tid}\nfraction of values", fontsize=8)
    anchor = _fixed_margins(fig)
    fig.legend(*_layer_handles(colours, shown_layers(depth)), title="hidden layer", loc="center left",
               bbox_to_anchor=(anchor, 0.5), fontsize=8, title_fontsize=8, frameon=False)
    fig.suptitle(f"Activation and gradient histograms on the probe batch — {run.name}; first seed of each "
                 f"initializer + activation; triangles: values past the binned range{_left_out_note(left_out)}",
                 fontsize=10)
    return _png(fig, tight=False)


def _signal_series(run: Run, trial_id: str) -> pd.DataFrame:
    """A trial's per-layer activation statistics over training: step_layers.csv (with percentiles), continued
    after its last step by layers.csv's epoch ends (mean and std only)."""
    steps = run.step_layers[run.step_layers["trial_id"] == trial_id]
    later = run.layers[(run.layers["trial_id"] == trial_id) & (run.layers["epoch"] > steps["progress"].max())]
    if not later.empty:
        steps = pd.concat([steps, later.assign(progress=later["epoch"].astype(float))], ignore_index=True)
    return steps.replace([np.inf, -np.inf], np.nan)  # a diverging trial: gaps, not an axis out to infinity


def training_signals_plot(run: Run) -> bytes | None:
    """Glorot & Bengio (2010) Fig. 2: per initializer + activation (a panel; its first seed), every hidden
    layer's activation on the probe batch over training: the mean as a line, mean ± std shaded, the 2nd and
    98th percentiles dotted (where step_layers.csv has them: the first epoch(s)). None without step_layers.csv."""
    def load(tid: str) -> pd.DataFrame | None:
        part = run.step_layers[run.step_layers["trial_id"] == tid]
        return None if part.empty else _signal_series(run, tid)

    chosen, left_out = _first_seed_trials(run, load)
    if not chosen:
        return None
    depth = max(int(series["layer"].max()) + 1 for _, series in chosen)
    colours = _layer_colours(depth)
    ncols = min(len(chosen), 3)
    nrows = math.ceil(len(chosen) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.4 * ncols, 3.6 * nrows + 0.6), squeeze=False)
    for idx, (tid, series) in enumerate(chosen):
        ax = axes[idx // ncols][idx % ncols]
        drawn = set(shown_layers(int(series["layer"].max()) + 1))
        for layer, part in series.groupby("layer"):
            if layer not in drawn:
                continue
            part = part.sort_values("progress")
            x, mean, std, c = part["progress"], part["act_mean"], part["act_std"], colours[int(layer)]
            ax.plot(x, mean, color=c, lw=1.3, marker="o" if len(part) < 3 else None, ms=3)  # a lone point shows
            ax.fill_between(x, mean - std, mean + std, color=c, alpha=0.15, lw=0)
            for p in ("p2", "p98"):
                ax.plot(x, part[p], color=c, lw=0.7, ls=":")
        steps_end = run.step_layers.loc[run.step_layers["trial_id"] == tid, "progress"].max()
        if series["progress"].max() > steps_end:
            ax.axvline(steps_end, color="grey", lw=0.8, ls="--")  # right of it: epoch ends only
        status = run.summary.loc[run.summary["trial_id"] == tid, "status"].iloc[0]
        ax.set_title(tid if status == "completed" else f"{tid} ({status})", fontsize=9)
        ax.set_xlabel("epoch (steps as fractions)", fontsize=8)
        ax.set_ylabel("activation value", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.3)
    for idx in range(len(chosen), nrows * ncols):
        axes[idx // ncols][idx % ncols].axis("off")
    handles, labels = _layer_handles(colours, shown_layers(depth))
    handles += [plt.Line2D([], [], color="black", lw=1.3), plt.Rectangle((0, 0), 1, 1, color="black", alpha=0.15),
                plt.Line2D([], [], color="black", lw=0.7, ls=":"), plt.Line2D([], [], color="grey", lw=0.8, ls="--")]
    labels += ["mean", "mean ± std", "2nd / 98th percentile", "later: epoch ends only"]
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(_fixed_margins(fig), 0.5), fontsize=8,
               frameon=False, title="hidden layer")
    fig.suptitle(f"Activations on the probe batch during training — {run.name}; first seed of each "
                 f"initializer + activation{_left_out_note(left_out)}", fontsize=10)
    return _png(fig, tight=False)


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
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.4 * ncols, 4.4 * nrows), squeeze=False)
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
                        ax.text(s, d, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=7,
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
        ax.legend(loc="upper right", fontsize=7, framealpha=0.7)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    fig.colorbar(mesh, ax=axes.ravel().tolist(), shrink=0.85, label=diagram.label)
    fig.suptitle(title, fontsize=11)
    return _png(fig)
