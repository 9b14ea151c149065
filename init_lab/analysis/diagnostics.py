"""Per-layer signal diagnostics (Glorot & Bengio 2010; He et al. 2015) on a fixed probe batch.

For every hidden layer, at initialization (epoch 0) and after every epoch:

* ``units``                   — the layer's units: a Dense layer's outputs, a conv layer's channels;
* ``pre_mean``, ``pre_std``   — the layer's pre-activation (Dense/Conv output, before the nonlinearity);
* ``act_mean``, ``act_std``   — its activation;
* ``saturated_frac``          — activations with flat tails only (sigmoid, tanh, lecun_tanh, softsign): fraction
  of pre-activation values (example × unit, and position in a conv) in the tails, where φ′ is below 5 % of its
  maximum: |x| > 4.3565 (sigmoid), 2.1783 (tanh), 3.2674 (lecun_tanh), 3.4721 (softsign) — the thresholds are
  the registry's (``Entry.saturation``, derived there from the formulas); empty for other activations;
* ``dead_frac``               — relu only (``NegativeSide.DEAD``: zero gradient for x < 0): fraction of units
  whose pre-activation is ≤ 0 on every probe example, i.e. that output 0 and learn nothing from the batch;
* ``negative_frac``           — leaky_relu, elu, selu, prelu (``NegativeSide.NEGATIVE_REGIME``): fraction of
  units whose pre-activation is < 0 on every probe example — stuck in the negative regime, which still passes
  a (smaller) gradient, so not dead; empty for other activations;
* ``grad_out_rms``            — RMS of ∂L/∂(activation), L the mean cross-entropy of the probe batch;
* ``grad_kernel_rms``         — RMS of ∂L/∂W of the layer's kernel;
* ``kernel_std``              — standard deviation of the kernel.

A unit of a conv layer is a channel (the last axis): it counts as dead (or stuck negative) only if its
pre-activation is ≤ 0 (< 0) at every example *and* every spatial position, so a blank patch of the image,
where every channel is ≤ 0, does not make a unit dead.

The probe batch is drawn once per sweep (the first ``PROBE_SIZE`` validation examples), so every
trial is measured on the same inputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from init_lab.analysis import histograms
from init_lab.catalog.activations import ACTIVATIONS
from init_lab.catalog.registry import NegativeSide
from init_lab.runschema.columns import PEAKS, PERCENTILES


@dataclass
class LayerSignals:
    """One trial's hidden layers measured on the probe batch: per layer, arrays with the batch first.

    ``grads_out`` and ``grads_kernel`` are gradients of the probe batch's *mean* loss; ``grads_pre``
    (∂ℓ/∂z) is per example — of each example's own loss — for the histograms.
    """

    names: list[str]
    pres: list[np.ndarray]  # pre-activations z
    acts: list[np.ndarray]  # activations φ(z)
    grads_out: list[np.ndarray]  # ∂L/∂φ(z)
    kernels: list[np.ndarray]
    grads_kernel: list[np.ndarray]  # ∂L/∂W
    grads_pre: list[np.ndarray] = field(default_factory=list)  # ∂ℓ/∂z per example
    # residual and normalized nets: each layer's h (its Dense / conv output, after a block's skip, before its
    # normalization: the residual stream at a block's end), where it differs from the pre-activation; and per residual
    # block's last layer the branch's output (what the block adds to its input)
    streams: list[np.ndarray] = field(default_factory=list)
    branches: dict[int, np.ndarray] = field(default_factory=dict)


def layer_rows(epoch: int, activation: str, signals: LayerSignals) -> list[dict[str, Any]]:
    """Rows of layers.csv for one trial."""
    entry = ACTIVATIONS.entries[activation]
    names, pres, acts = signals.names, signals.pres, signals.acts
    grads_out, kernels, grads_kernel = signals.grads_out, signals.kernels, signals.grads_kernel
    rows = []
    for i, name in enumerate(names):
        # (examples × positions, units): a conv layer's unit is a channel, seen at every position
        pre = _units(pres[i])
        means, variances = _unit_moments(pre)
        pre_mean, pre_std = _pooled(means, variances)
        act_mean, act_std = _moments(acts[i])
        sat, dead, negative = unit_fractions(pre, entry)
        rows.append({
            "epoch": epoch,
            "layer": i,
            "name": name,
            "units": pre.shape[1],
            "pre_mean": pre_mean,
            "pre_std": pre_std,
            "act_mean": act_mean,
            "act_std": act_std,
            "saturated_frac": sat,
            "dead_frac": dead,
            "negative_frac": negative,
            "grad_out_rms": _rms(grads_out[i]),
            "grad_kernel_rms": _rms(grads_kernel[i]),
            "kernel_std": _moments(kernels[i])[1],
            **(signal_propagation(signals.streams[i], signals.branches.get(i)) if signals.streams
               else _propagation(means, variances, signals.branches.get(i))),
        })
    return rows


def signal_propagation(h: np.ndarray, branch: np.ndarray | None = None) -> dict[str, float]:
    """The signal-propagation-plot quantities (Brock, De & Smith 2021, NF-ResNets §4) of one layer's output h
    (examples, [positions,] channels): the average over channels of each channel's squared mean and of its variance
    (over examples and positions), and of the residual branch's output its average channel variance (NaN where the
    layer ends no residual block)."""
    return _propagation(*_unit_moments(_units(h)), branch)


def _propagation(means: np.ndarray, variances: np.ndarray, branch: np.ndarray | None) -> dict[str, float]:
    out = {"channel_sq_mean": float(np.mean(means ** 2)), "channel_var": float(np.mean(variances)),
           "branch_var": math.nan}
    if branch is not None:
        out["branch_var"] = float(np.mean(_unit_moments(_units(branch))[1]))
    return out


def _units(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    return a.reshape(-1, a.shape[-1])  # (examples × positions, units), in the array's own dtype: no float64 copy


BLOCK_VALUES = 65_536  # values per block of rows the moments are summed over (float64 copies that stay in cache)


def _blocks(units: np.ndarray):
    """(values, units) as float64 blocks of rows: a conv layer's whole float64 copy (44 MB of fresh memory for each
    statistic) cost more in page faults than the arithmetic."""
    rows = max(1, BLOCK_VALUES // units.shape[1])
    for start in range(0, units.shape[0], rows):
        yield units[start: start + rows].astype(np.float64)


def _unit_moments(units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each unit's mean and variance (over examples and positions) of (values, units): two passes in each block of
    rows, the blocks combined by Chan, Golub & LeVeque's pairwise update — as exact as NumPy's two-pass var, where
    one pass of sums (E[x²] − E[x]²) is not: a saturated tanh unit at 0.9999 ± 10⁻⁷ loses every digit."""
    count, mean, m2 = 0, np.zeros(units.shape[1]), np.zeros(units.shape[1])
    for x in _blocks(units):
        n, block_mean = len(x), x.mean(axis=0)
        x -= block_mean
        block_m2 = np.einsum("ij,ij->j", x, x)
        delta, total = block_mean - mean, count + n
        mean = mean + delta * (n / total)
        m2 = m2 + block_m2 + delta * delta * (count * n / total)
        count = total
    return mean, m2 / max(count, 1)


def _pooled(means: np.ndarray, variances: np.ndarray) -> tuple[float, float]:
    """Mean and std of every value of a layer from its units' equal-count moments (the law of total variance)."""
    mean = float(means.mean())
    return mean, float(np.sqrt(np.mean(variances + (means - mean) ** 2)))


def _moments(a: np.ndarray) -> tuple[float, float]:
    """Mean and std of every value of ``a`` (its last axis taken as units), in float64."""
    return _pooled(*_unit_moments(_units(a)))


def unit_fractions(pre: np.ndarray, entry) -> tuple[float, float, float]:
    """Saturated values, dead units, stuck-negative units of one layer's (values, units) pre-activations;
    NaN where the activation has no such notion."""
    return unit_fractions_of_trials(pre[None], entry)[0]


def step_statistics(activation: str, pre: np.ndarray, act: np.ndarray, edges: np.ndarray
                    ) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray]:
    """One layer at a logged step, for T trials at once (Glorot & Bengio 2010, Fig. 2): per trial a dict of
    step_layers.csv's statistics, and its activation histogram counts (T, A) with non-finite counts (T,).

    ``pre`` and ``act`` are (T, examples, …, units). Percentiles come from the histogram's fine sub-bins
    (exact to 1/``FINE`` of a bin); one outside the histogram's range is computed exactly.
    """
    entry = ACTIVATIONS.entries[activation]
    T = act.shape[0]
    flat = np.asarray(act, dtype=np.float32).reshape(T, -1)
    with np.errstate(invalid="ignore", over="ignore"):  # a diverging trial's inf/NaN: reported as nan
        mean = flat.mean(axis=1, dtype=np.float64)
        std = _std(flat, mean)
    # float32 values summed in float64 cannot overflow, so a row's mean is finite exactly when all its values are
    fine, nonfinite = histograms.fine_counts(flat, edges, finite=np.isfinite(mean))
    pct = histograms.percentiles(fine, edges, PERCENTILES)
    fractions = unit_fractions_of_trials(np.asarray(pre).reshape(T, -1, pre.shape[-1]), entry)
    stats = []
    for t in range(T):
        if np.isnan(pct[t]).any():
            finite = flat[t][np.isfinite(flat[t])]
            pct[t] = np.percentile(finite, PERCENTILES) if finite.size else np.nan
        sat, dead, negative = fractions[t]
        stats.append({"act_mean": float(mean[t]), "act_std": float(std[t]), "saturated_frac": sat,
                      "dead_frac": dead, "negative_frac": negative,
                      **{f"p{q}": float(v) for q, v in zip(PERCENTILES, pct[t])}})
    return stats, histograms.coarse(fine), nonfinite


_STD_TAKES_MEAN = int(np.__version__.split(".")[0]) >= 2  # np.std(…, mean=) is NumPy 2's


def _std(rows: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """``rows.std(axis=1, dtype=float64)`` given that mean (its own, ``rows.mean(axis=1, dtype=float64)``): the same
    arithmetic, bit for bit, without summing every value a second time where NumPy takes the mean."""
    if _STD_TAKES_MEAN:
        return np.std(rows, axis=1, dtype=np.float64, mean=mean[:, None])
    return rows.std(axis=1, dtype=np.float64)


def unit_fractions_of_trials(pre: np.ndarray, entry) -> list[tuple[float, float, float]]:
    """``unit_fractions`` of each trial's (values, units) pre-activations in ``pre`` (T, values, units), for all
    trials at once (means of booleans: exact, however they are grouped)."""
    T = pre.shape[0]
    sat = dead = negative = np.full(T, math.nan)
    if entry.saturation is not None:
        sat = np.mean(np.abs(pre) > entry.saturation, axis=(1, 2))
    if entry.negative_side is NegativeSide.DEAD:
        dead = np.mean(np.all(pre <= 0, axis=1), axis=1)
    elif entry.negative_side is NegativeSide.NEGATIVE_REGIME:
        negative = np.mean(np.all(pre < 0, axis=1), axis=1)
    return [(float(sat[t]), float(dead[t]), float(negative[t])) for t in range(T)]


def _rms(a: np.ndarray) -> float:
    units = _units(a)
    return float(np.sqrt(sum(np.einsum("ij,ij->", x, x) for x in _blocks(units)) / units.size))


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """trial.json figures: signal ratios at init and the worst dead/negative/saturated fractions seen.

    Rows recorded before a column existed (a resumed old run: no ``negative_frac``) count as empty.
    """
    if not rows:
        return {}
    init = [r for r in rows if r["epoch"] == 0]
    out: dict[str, Any] = {}
    if len(init) >= 2:
        first, last = init[0], init[-1]
        out["init_act_std_last_over_first"] = _ratio(last["act_std"], first["act_std"])
        out["init_grad_rms_last_over_first"] = _ratio(last["grad_out_rms"], first["grad_out_rms"])
    for key in PEAKS:
        values = [r[key] for r in rows if isinstance(r.get(key), float) and math.isfinite(r[key])]
        out[f"peak_{key}"] = max(values) if values else None
    return out


def _ratio(a: float, b: float) -> float | None:
    if not (math.isfinite(a) and math.isfinite(b)) or b == 0:
        return None
    return a / b
