"""Per-layer signal diagnostics (Glorot & Bengio 2010; He et al. 2015) on a fixed probe batch.

For every hidden layer, at initialization (epoch 0) and after every epoch:

* ``pre_mean``, ``pre_std``   — the layer's pre-activation (Dense/Conv output, before the nonlinearity);
* ``act_mean``, ``act_std``   — its activation;
* ``saturated_frac``          — sigmoid/tanh/softsign only: fraction of (example, unit) values in the flat
  tails, defined as where the derivative is below 5 % of its maximum: |x| > 4.36 (sigmoid),
  |x| > 2.18 (tanh), |x| > 3.47 (softsign); empty for other activations;
* ``dead_frac``               — ReLU family only (relu, leaky_relu, prelu, elu, selu): fraction of units whose
  pre-activation is ≤ 0 for every probe example (for relu: units that output 0 on the whole batch);
* ``grad_out_rms``            — RMS of ∂L/∂(activation), L the mean cross-entropy of the probe batch;
* ``grad_kernel_rms``         — RMS of ∂L/∂W of the layer's kernel;
* ``kernel_std``              — standard deviation of the kernel.

The probe batch is drawn once per sweep (the first ``PROBE_SIZE`` validation examples), so every
trial is measured on the same inputs. Units of a conv layer are its (position, channel) outputs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

LAYER_COLUMNS = [
    "epoch", "layer", "name", "units", "pre_mean", "pre_std", "act_mean", "act_std", "saturated_frac",
    "dead_frac", "grad_out_rms", "grad_kernel_rms", "kernel_std",
]

# |pre-activation| beyond which the derivative is < 5 % of its maximum
SATURATION = {"sigmoid": 4.3596, "tanh": 2.1783, "softsign": 3.4721}
RELU_FAMILY = {"relu", "leaky_relu", "prelu", "elu", "selu"}


def layer_rows(
    epoch: int,
    activation: str,
    names: list[str],
    pres: list[np.ndarray],
    acts: list[np.ndarray],
    grads_out: list[np.ndarray],
    kernels: list[np.ndarray],
    grads_kernel: list[np.ndarray],
) -> list[dict[str, Any]]:
    """Rows of layers.csv for one trial from per-layer arrays (batch first; kernels any shape)."""
    rows = []
    for i, name in enumerate(names):
        pre = pres[i].reshape(len(pres[i]), -1).astype(np.float64)
        act = acts[i].reshape(len(acts[i]), -1).astype(np.float64)
        sat = math.nan
        if activation in SATURATION:
            sat = float(np.mean(np.abs(pre) > SATURATION[activation]))
        dead = math.nan
        if activation in RELU_FAMILY:
            dead = float(np.mean(np.all(pre <= 0, axis=0)))
        rows.append({
            "epoch": epoch,
            "layer": i,
            "name": name,
            "units": pre.shape[1],
            "pre_mean": float(pre.mean()),
            "pre_std": float(pre.std()),
            "act_mean": float(act.mean()),
            "act_std": float(act.std()),
            "saturated_frac": sat,
            "dead_frac": dead,
            "grad_out_rms": _rms(grads_out[i]),
            "grad_kernel_rms": _rms(grads_kernel[i]),
            "kernel_std": float(np.asarray(kernels[i], dtype=np.float64).std()),
        })
    return rows


def _rms(a: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64)
    return float(np.sqrt(np.mean(a * a)))


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """trial.json figures: signal ratios at init and the worst dead/saturated fractions seen."""
    if not rows:
        return {}
    init = [r for r in rows if r["epoch"] == 0]
    out: dict[str, Any] = {}
    if len(init) >= 2:
        first, last = init[0], init[-1]
        out["init_act_std_last_over_first"] = _ratio(last["act_std"], first["act_std"])
        out["init_grad_rms_last_over_first"] = _ratio(last["grad_out_rms"], first["grad_out_rms"])
    for key in ("dead_frac", "saturated_frac"):
        values = [r[key] for r in rows if isinstance(r[key], float) and math.isfinite(r[key])]
        out[f"peak_{key}"] = max(values) if values else None
    return out


def _ratio(a: float, b: float) -> float | None:
    if not (math.isfinite(a) and math.isfinite(b)) or b == 0:
        return None
    return a / b
