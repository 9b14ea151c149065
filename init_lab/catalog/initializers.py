"""Weight initializers, with the formulas of the papers (DESIGN §4).

fan_in / fan_out of a Dense kernel (n_in, n_out) are n_in / n_out; of a Conv2D
kernel (k_h, k_w, c_in, c_out) they are k_h·k_w·c_in / k_h·k_w·c_out (Keras
computes them the same way). Biases always start at 0.

Entries are data: each names the Keras initializer class and its arguments
(:func:`keras_spec`); only the engine turns that into a Keras object.

The "*_normal" variance-scaling initializers draw, as Keras does, from a normal
truncated at ±2σ' with σ' = σ/0.8796 so that the *variance* is exactly the one in
the formula column. ``random_normal`` is a plain, untruncated Gaussian.
"""

from __future__ import annotations

import math
from typing import Any

from init_lab.catalog.registry import Choice, Entry, Param, Registry


def _variance_scaling(scale: float, mode: str, distribution: str):
    def spec(params: dict[str, float]) -> tuple[str, dict[str, Any]]:
        return "VarianceScaling", {"scale": scale, "mode": mode, "distribution": distribution}

    return spec


def _random_normal(params: dict[str, float]) -> tuple[str, dict[str, Any]]:
    return "RandomNormal", {"mean": 0.0, "stddev": params["stddev"]}


def _random_uniform(params: dict[str, float]) -> tuple[str, dict[str, Any]]:
    return "RandomUniform", {"minval": -params["limit"], "maxval": params["limit"]}


def _orthogonal(params: dict[str, float]) -> tuple[str, dict[str, Any]]:
    return "Orthogonal", {"gain": params.get("gain", 1.0)}


def _zeros(params: dict[str, float]) -> tuple[str, dict[str, Any]]:
    return "Zeros", {}


def _constant(params: dict[str, float]) -> tuple[str, dict[str, Any]]:
    return "Constant", {"value": params["value"]}


_TRUNC = "truncated normal rescaled to this variance (as Keras)"

INITIALIZERS = Registry(
    "initializer",
    [
        Entry("zeros", "W = 0 (symmetric units: nothing breaks the symmetry)", build=_zeros),
        Entry(
            "constant",
            "W = value",
            {"value": Param(0.1, "the constant weight")},
            build=_constant,
        ),
        Entry(
            "random_normal",
            "W ~ N(0, stddev²); stddev=1 is the naive 'N(0,1)', 0.01 the 'small Gaussian'",
            {"stddev": Param(1.0, "standard deviation", positive=True)},
            build=_random_normal,
        ),
        Entry(
            "random_uniform",
            "W ~ U(-limit, limit)",
            {"limit": Param(0.05, "half-width of the interval", positive=True)},
            build=_random_uniform,
        ),
        Entry(
            "glorot2010_standard",
            "W ~ U(-1/√fan_in, 1/√fan_in), Var = 1/(3·fan_in)  (Glorot & Bengio 2010, 'standard')",
            build=_variance_scaling(1.0 / 3.0, "fan_in", "uniform"),
        ),
        Entry(
            "lecun_normal",
            "Var = 1/fan_in, σ = √(1/fan_in)  (LeCun 1998)",
            build=_variance_scaling(1.0, "fan_in", "truncated_normal"),
            note=_TRUNC,
        ),
        Entry(
            "lecun_uniform",
            "W ~ U(-√(3/fan_in), √(3/fan_in)), Var = 1/fan_in",
            build=_variance_scaling(1.0, "fan_in", "uniform"),
        ),
        Entry(
            "glorot_normal",
            "Var = 2/(fan_in+fan_out)  (Xavier, Glorot & Bengio 2010)",
            build=_variance_scaling(1.0, "fan_avg", "truncated_normal"),
            note=_TRUNC,
        ),
        Entry(
            "glorot_uniform",
            "W ~ U(-√(6/(fan_in+fan_out)), +√(6/(fan_in+fan_out))), Var = 2/(fan_in+fan_out)  (Xavier)",
            build=_variance_scaling(1.0, "fan_avg", "uniform"),
        ),
        Entry(
            "he_normal",
            "Var = 2/fan_in, σ = √(2/fan_in)  (Kaiming, He et al. 2015)",
            build=_variance_scaling(2.0, "fan_in", "truncated_normal"),
            note=_TRUNC,
        ),
        Entry(
            "he_uniform",
            "W ~ U(-√(6/fan_in), √(6/fan_in)), Var = 2/fan_in  (Kaiming)",
            build=_variance_scaling(2.0, "fan_in", "uniform"),
        ),
        Entry(
            "lsuv",
            "Mishkin & Matas 2016: orthogonal pre-init, then layer by layer W ← W/√Var(layer output) on a data "
            "batch (the sweep's probe batch) until |Var − 1| < tol or max_iter iterations",
            {"tol": Param(0.1, "tolerance on |Var − 1|", positive=True),
             "max_iter": Param(10, "iterations per layer at most", positive=True)},
            build=_orthogonal,  # gain 1: LSUV's orthogonal pre-init
            note="needs data: the rescaling runs when the trial starts; iterations and final variances go to trial.json",
            needs_data=True,
        ),
        Entry(
            "orthogonal",
            "W = gain · Q, Q from the QR decomposition of a Gaussian matrix, sign-corrected (Saxe et al. 2014)",
            {"gain": Param(1.0, "multiplier of the orthogonal matrix", positive=True)},
            build=_orthogonal,
        ),
    ],
)


def layer_seed(trial_seed: int, layer_index: int) -> int:
    """The seed of one layer's initializer, derived from the trial seed and the layer's position.

    Independent of the activation and of the initializer, so two trials with the same
    seed and initializer start from the same weights whatever their activation
    (comparisons are paired), and no two layers share a draw.
    """
    import numpy as np

    return int(np.random.SeedSequence([trial_seed, layer_index]).generate_state(1)[0] & 0x7FFFFFFF)


def keras_spec(choice: Choice, trial_seed: int, layer_index: int) -> tuple[str, dict[str, Any]]:
    """The Keras initializer class name and arguments for one layer of one trial (the engine builds it)."""
    name, kwargs = INITIALIZERS.entries[choice.name].build(choice.kwargs)
    seeded = name not in ("Zeros", "Constant")
    return name, {**kwargs, **({"seed": layer_seed(trial_seed, layer_index)} if seeded else {})}


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """fan_in, fan_out of a kernel shape (Dense: (in, out); ConvND: (*kernel, c_in, c_out))."""
    if len(shape) < 2:
        raise ValueError(f"a kernel has at least 2 dimensions, got shape {shape}")
    receptive = math.prod(shape[:-2])
    return receptive * shape[-2], receptive * shape[-1]
