"""The signal-propagation plot (Brock, De & Smith 2021, NF-ResNets §4, Fig. 1): at initialization, over depth, one line
per combination (mean over seeds) of the average channel squared mean, the average channel variance and, for residual
nets, the residual branch's variance, each on a log scale: a point per block (``_per_block``). Drawn from layers.csv (a run) or probe_layers.csv (a probe).
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

PANELS = (("channel_sq_mean", "average channel squared mean"), ("channel_var", "average channel variance"),
          ("branch_var", "residual branch variance"))
DPI = 110


def spp_plot(layers: pd.DataFrame, title: str, by: list[str] | None = None) -> bytes | None:
    """PNG bytes of the SPP over depth at epoch 0, one line per combination (the ``by`` columns; default
    ``combination`` where the frame has it, else initializer, activation and the swept axes present), or None
    where the frame has no SPP columns or nothing to draw. Non-positive values (SkipInit's zero branches) are left
    out of the log scale and say so in the legend."""
    if "channel_var" not in layers or layers["channel_var"].isna().all():
        return None
    frame = _per_block(layers[layers["epoch"] == 0] if "epoch" in layers else layers)
    if frame.empty:
        return None
    if by is None:
        by = ["combination"] if "combination" in frame else [c for c in ("initializer", "activation") if c in frame]
    panels = [(c, label) for c, label in PANELS if c in frame and frame[c].notna().any()]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 3.6), squeeze=False, layout="constrained")
    for ax, (column, label) in zip(axes[0], panels):
        for key, part in frame.groupby(by, sort=False):
            name = " + ".join(map(str, key if isinstance(key, tuple) else (key,)))
            mean = part.groupby("layer")[column].mean().dropna()
            positive = mean[mean > 0]
            if positive.empty:
                ax.plot([], [], label=f"{name} (all 0)")
                continue
            ax.plot(positive.index, positive.to_numpy(dtype=float), marker="o", markersize=3, label=name)
        ax.set_yscale("log")
        ax.set_xlabel("layer (depth)")
        ax.set_title(label, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle(title, fontsize=11)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue() if np.isfinite(frame["channel_var"].to_numpy(dtype=float)).any() else None


def _per_block(frame: pd.DataFrame) -> pd.DataFrame:
    """A point per block, as in the SPPs of Brock et al.: for a residual trial its first layer and each block's
    output (the rows that carry ``branch_var``), at their depth in layers; for a plain one every layer (each is a
    block of one)."""
    if "branch_var" not in frame or frame["branch_var"].isna().all():
        return frame
    keys = ["trial_id"] if "trial_id" in frame else [c for c in ("combination", "initializer", "activation", "seed")
                                                     if c in frame]  # a probe's rows: a combination and seed each
    residual = frame.groupby(keys or (lambda _: 0))["branch_var"].transform(lambda v: v.notna().any())
    return frame[~residual | frame["branch_var"].notna() | (frame["layer"] == 0)]

