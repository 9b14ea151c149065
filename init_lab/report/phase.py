"""The trainability phase diagram's data: a metric over (σ_w², depth) against the theory's 6·ξ_c.

Schoenholz et al. 2017 ("Deep Information Propagation", §5, Figs. 5–6) train tanh nets of many depths L and
weight variances σ_w² (at σ_b² = 0.05) and find them trainable where L ≲ 6·ξ_c(σ_w², σ_b²): ξ_c = −1/ln χ_c,
the depth scale of the correlation map (their eq. 9), diverging at the edge of chaos χ₁ = 1. A run has such a
diagram when its grid sweeps depth (``grid.depth``, ≥ 2 values) and σ_w² exactly: ≥ 2 ``variance_scaling`` entries
differing in ``scale`` (σ_w²; mode fan_in, so every layer's fan_in·Var(W) is σ_w² — fan_avg and fan_out give
the same for the equal-width hidden layers of a depth sweep). Other initializers of the run are left out.

One panel per activation × σ_b (model.bias_std or its axis) × any other swept axis; a cell is the mean over
seeds of the values ``tables.entered`` gives (diverged trials at chance for an accuracy), as every other table.
ξ_c comes from ``analysis.meanfield.fixed_point`` at the panel's σ_b² and activation, started from the first
layer's q = σ_w²·(mean of x²) + σ_b² (``theory.input_moment`` of the run's dataset). No TensorFlow here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from init_lab.analysis import meanfield as mf
from init_lab.analysis import theory
from init_lab.catalog.defaults import PHASE_XI_FACTOR
from init_lab.config.grid import expand
from init_lab.report.rundata import RunData
from init_lab.report.tables import entered, metric_names

INITIALIZER = "variance_scaling"
CURVE_POINTS = 200  # σ_w² values the 6·ξ_c curve is drawn through


@dataclass
class PhasePanel:
    """One (σ_w², depth) diagram: the cells and the theory curve at one activation and σ_b."""

    title: str
    activation: str
    sigma_b2: float
    cells: pd.DataFrame  # sigma_w2, depth, mean, std, n (trials that count), n_trials
    curve: pd.DataFrame  # sigma_w2, xi_c, depth_limit (= PHASE_XI_FACTOR·ξ_c; inf at criticality, NaN without c*)
    critical_sigma_w2: float | None  # the edge of chaos (χ₁ = 1), where ξ_c diverges; None where there is none

    def grid(self) -> tuple[list[float], list[int], np.ndarray]:
        """σ_w² values (columns), depths (rows) and the (depth × σ_w²) matrix of means (NaN: no value)."""
        table = self.cells.pivot_table(index="depth", columns="sigma_w2", values="mean", dropna=False)
        return [float(v) for v in table.columns], [int(v) for v in table.index], table.to_numpy(dtype=float)


@dataclass
class PhaseDiagram:
    metric: str
    label: str
    factor: float  # the curve is factor·ξ_c (6: Schoenholz et al.)
    panels: list[PhasePanel]


def _scale_of(spec) -> float | None:
    """σ_w² of a trial drawn by variance_scaling: its ``scale``; None for every other initializer."""
    return spec.initializer.kwargs["scale"] if spec.initializer.name == INITIALIZER else None


def has_phase_axes(run: RunData) -> bool:
    """Whether the run's grid sweeps depth and σ_w² (≥ 2 variance_scaling scales)."""
    config = run.config
    if config is None or not config.grid.depth or len(config.grid.depth) < 2:
        return False
    scales = {c.kwargs["scale"] for c in config.grid.initializer if c.name == INITIALIZER}
    return len(scales) >= 2


def xi_c_curve(activation, sigma_b2: float, sigma_w2: np.ndarray, moment: float,
               factor: float = PHASE_XI_FACTOR) -> pd.DataFrame:
    """ξ_c (Schoenholz et al. 2017, eq. 9: −1/ln χ_c at the correlation map's fixed point c*) along ``sigma_w2``,
    for ``activation`` (a Choice) at ``sigma_b2``, each from the first layer's q = σ_w²·moment + σ_b²; and
    factor·ξ_c, the depth up to which the paper finds networks trainable."""
    f = mf.phi(activation)
    xi = []
    for s in sigma_w2:
        fp = mf.fixed_point(f, float(s), sigma_b2, q0=max(float(s) * moment + sigma_b2, 1e-12))
        xi.append(math.nan if fp.xi_c is None else float(fp.xi_c))
    xi = np.asarray(xi, dtype=float)
    return pd.DataFrame({"sigma_w2": np.asarray(sigma_w2, dtype=float), "xi_c": xi, "depth_limit": factor * xi})


def phase_diagram(run: RunData, metric: str = "best_val_accuracy", factor: float = PHASE_XI_FACTOR,
                  points: int = CURVE_POINTS) -> PhaseDiagram | None:
    """The run's phase diagram of ``metric``, or None when its grid has no depth × σ_w² axes (``has_phase_axes``)."""
    if not has_phase_axes(run):
        return None
    config = run.config
    label = metric_names(run.thresholds)[metric][0]
    by_id = {s.id: s for s in expand(config)}
    trials = run.summary.assign(_value=entered(run, metric))
    trials = trials.assign(sigma_w2=[_scale_of(by_id[t]) if t in by_id else None for t in trials["trial_id"]],
                           _act=[by_id[t].activation if t in by_id else None for t in trials["trial_id"]],
                           _sb=[by_id[t].bias_std if t in by_id else None for t in trials["trial_id"]])
    trials = trials[trials["sigma_w2"].notna()]
    moment = theory.input_moment(config.dataset.name, config.dataset.standardize)[0]
    others = [a for a in run.swept if a not in ("depth", "bias_std")]
    panels = []
    for key, part in trials.groupby(["_act", "_sb", *others], sort=False, dropna=False):
        act, sb, *rest = key
        sb2 = float(sb) ** 2
        grouped = part.groupby(["sigma_w2", "depth"])
        cells = grouped["_value"].agg(mean="mean", std="std", n="count").reset_index()
        cells["n_trials"] = grouped.size().to_numpy()
        lo, hi = float(cells["sigma_w2"].min()), float(cells["sigma_w2"].max())
        span = np.union1d(np.linspace(lo, hi, points), cells["sigma_w2"].to_numpy(dtype=float))
        edge = mf.edge_of_chaos(mf.phi(act), sb2, q0=max(moment, 1e-12))
        critical = edge.sigma_w2 if edge.kind == "critical" else None
        if critical is not None and lo < critical < hi:
            span = np.union1d(span, [critical])  # the curve's peak: ξ_c → ∞ there
        act_label = str(part["activation"].iloc[0])
        title = f"{act_label}, σ_b² = {sb2:.4g}" + "".join(f", {a}={v}" for a, v in zip(others, rest))
        panels.append(PhasePanel(title, act_label, sb2, cells, xi_c_curve(act, sb2, span, moment, factor), critical))
    return PhaseDiagram(metric, label, factor, panels) if panels else None


def trainable_agreement(panel: PhasePanel, threshold: float) -> pd.DataFrame:
    """Per cell: whether the metric reaches ``threshold`` (trainable) and whether the depth is within
    factor·ξ_c (predicted trainable); what docs/reproductions.md counts to say how closely they agree."""
    limit = dict(zip(panel.curve["sigma_w2"], panel.curve["depth_limit"]))
    out = panel.cells.assign(trainable=panel.cells["mean"] >= threshold,
                             predicted=[d <= limit.get(s, math.nan) for s, d in zip(panel.cells["sigma_w2"],
                                                                                    panel.cells["depth"])])
    return out.assign(agree=out["trainable"] == out["predicted"])
