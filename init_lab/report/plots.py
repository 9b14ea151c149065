"""PNG figures of a run (matplotlib, Agg backend): learning curves and the final-accuracy heatmap.

Each function returns PNG bytes; ``store`` writes them. Curves average over seeds.
"""

from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from init_lab.report.tables import METRICS, RunData, facets, matrix, metric_names  # noqa: E402

DPI = 110


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def learning_curves(run: RunData) -> bytes | None:
    """Loss (log scale) and accuracy per epoch: one column of panels per activation, a colour per
    initializer; solid lines for training, dashed for validation. None when no epoch finished."""
    if run.epochs.empty:
        return None
    data = run.epochs.merge(run.trials[["trial_id", "initializer", "activation", *run.swept]], on="trial_id")
    data = data.replace([np.inf, -np.inf], np.nan)
    acts = [a for a in run.act_order if a in set(data["activation"])]
    inits = [i for i in run.init_order if i in set(data["initializer"])]
    colours = plt.get_cmap("tab10" if len(inits) <= 10 else "tab20")
    ncols = len(acts)
    fig, axes = plt.subplots(2, ncols, figsize=(max(4.0, 3.3 * ncols) + 2.2, 6.4), squeeze=False, sharex=True)
    for col, act in enumerate(acts):
        part = data[data["activation"] == act]
        for k, init in enumerate(inits):
            curve = part[part["initializer"] == init].groupby("epoch")[["loss", "val_loss", "accuracy", "val_accuracy"]].mean()
            if curve.empty:
                continue
            c = colours(k % colours.N)
            for row, (train_col, val_col) in enumerate([("loss", "val_loss"), ("accuracy", "val_accuracy")]):
                ax = axes[row][col]
                ax.plot(curve.index, curve[train_col], color=c, lw=1.6, marker="o", ms=2.5, label=init)
                ax.plot(curve.index, curve[val_col], color=c, lw=1.2, ls="--", marker="o", ms=2.5)
        axes[0][col].set_title(f"activation: {act}", fontsize=10)
        axes[0][col].set_yscale("log")
        axes[1][col].set_ylim(0, 1.0)
        axes[1][col].set_xlabel("epoch")
        for row in range(2):
            axes[row][col].grid(True, which="major", alpha=0.3)
            axes[row][col].xaxis.get_major_locator().set_params(integer=True)
    axes[0][0].set_ylabel("cross-entropy loss (log scale)")
    axes[1][0].set_ylabel("accuracy (fraction correct)")
    handles = [plt.Line2D([], [], color=colours(k % colours.N), lw=2) for k in range(len(inits))]
    handles += [plt.Line2D([], [], color="black", lw=1.6), plt.Line2D([], [], color="black", lw=1.2, ls="--")]
    labels = [*inits, "training", "validation"]
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), title="initializer", fontsize=9, frameon=False)
    seeds = f", mean over {run.n_seeds} seeds" if run.n_seeds > 1 else ""
    facet = f" (all values of {', '.join(run.swept)} pooled)" if run.swept else ""
    fig.suptitle(f"Learning curves — {run.name}{seeds}{facet}", fontsize=11)
    fig.tight_layout()
    return _png(fig)


def heatmap(run: RunData, table: pd.DataFrame, metric: str) -> bytes | None:
    """The metric's mean over seeds, initializer × activation, one panel per swept-axis value."""
    label, higher = metric_names(run.thresholds).get(metric, METRICS["best_val_accuracy"])
    parts = facets(run, table)
    if table["mean"].notna().sum() == 0:
        return None
    n = len(parts)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    n_act, n_init = len(run.act_order), len(run.init_order)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(ncols * (1.1 * n_act + 3.2), nrows * (0.55 * n_init + 1.6)), squeeze=False
    )
    values = table["mean"].to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    is_acc = "accuracy" in metric
    vmin, vmax = (0.0, 1.0) if is_acc else (float(finite.min()), float(finite.max()) or 1.0)
    cmap = plt.get_cmap("viridis" if higher else "viridis_r")
    image = None
    for idx, (title, part) in enumerate(parts):
        ax = axes[idx // ncols][idx % ncols]
        mean = matrix(part, run, "mean")
        std = matrix(part, run, "std")
        bad = matrix(part, run, "diverged") + matrix(part, run, "failed")
        image = ax.imshow(mean.to_numpy(dtype=float), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
        ax.set_xticks(range(len(mean.columns)), mean.columns, rotation=30, ha="right")
        ax.set_yticks(range(len(mean.index)), mean.index)
        ax.set_xlabel("activation")
        ax.set_ylabel("initializer")
        if title:
            ax.set_title(title, fontsize=10)
        for i in range(mean.shape[0]):
            for j in range(mean.shape[1]):
                v, s, b = mean.iat[i, j], std.iat[i, j], bad.iat[i, j]
                text = "—" if pd.isna(v) else (f"{v:.3f}" if abs(v) < 100 else f"{v:.3g}")
                if not pd.isna(s):
                    text += f"\n±{s:.3f}"
                if b and not pd.isna(b) and b > 0:
                    text += f"\n{int(b)} div/fail"
                shade = 0.0 if pd.isna(v) else (v - vmin) / ((vmax - vmin) or 1)
                bright = shade > 0.55 if higher else shade < 0.45
                ax.text(j, i, text, ha="center", va="center", fontsize=8, color="black" if bright else "white")
    for idx in range(n, nrows * ncols):
        axes[idx // ncols][idx % ncols].axis("off")
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.8, label=label)
    seeds = f" (mean ± std over {run.n_seeds} seeds)" if run.n_seeds > 1 else ""
    fig.suptitle(f"{label}{seeds} — {run.name}", fontsize=11)
    return _png(fig)


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


def diagnostics_plot(run: RunData) -> bytes | None:
    """Per-layer activation std at initialization and after the last epoch, the last hidden layer's std
    over epochs, and the worst dead (relu; solid) or stuck-negative (leaky_relu/elu/selu/prelu; dashed)
    and saturated fractions over epochs; a line per initializer + activation (mean over seeds). Runs
    recorded before ``negative_frac`` existed simply have no dashed lines."""
    if run.layers.empty:
        return None
    data = run.layers.merge(run.trials[["trial_id", "initializer", "activation"]], on="trial_id")
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
    examples pooled): a violin of log10 s, with the mean squared singular value marked."""
    if spectra.empty:
        return None
    combos = list(dict.fromkeys(spectra["combination"]))
    data, means = [], []
    for combo in combos:
        s = spectra.loc[spectra["combination"] == combo, "singular_value"].to_numpy(dtype=float)
        positive = s[s > 0]
        data.append(np.log10(positive) if positive.size else np.array([np.nan]))
        means.append(0.5 * math.log10(float(np.mean(s**2))) if np.mean(s**2) > 0 else np.nan)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(combos) + 2), 5.0))
    drawable = [i for i, d in enumerate(data) if np.isfinite(d).sum() > 1]
    if drawable:
        ax.violinplot([data[i] for i in drawable], positions=[i + 1 for i in drawable], showextrema=True, widths=0.8)
    ax.scatter(np.arange(1, len(combos) + 1), means, marker="_", s=200, color="black", zorder=3, label="√⟨s²⟩")
    ax.axhline(0.0, color="grey", lw=0.8, ls=":")
    ax.set_xticks(np.arange(1, len(combos) + 1), combos, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("log10 singular value of ∂z_L/∂x")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    ax.set_title(title, fontsize=11)
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
