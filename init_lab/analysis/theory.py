"""What theory predicts for signal propagation at initialization (no TensorFlow here).

The second moment of the pre-activations obeys q_{l+1} = n_l · Var(W_{l+1}) · g · q_l, where n_l is
the fan-in and g = E[f(z)²]/E[z²] for the activation f near the origin (He et al. 2015, eq. 5–7;
Glorot & Bengio 2010 in the linear regime): g = 1/2 for ReLU, (1+α²)/2 for leaky ReLU, 1 for
linear/tanh/softsign in their linear regime (so only where the signal does not grow), and 1 for
SELU with LeCun-scaled weights, at its fixed point (Klambauer et al. 2017). So He init keeps the std constant through ReLU layers, Glorot halves q per ReLU layer at
equal widths, and Glorot & Bengio's "standard" init shrinks q by 1/3 per tanh layer.
Returned: the predicted std of each hidden layer's pre-activation relative to the first one, or
None where the activation (sigmoid, elu, gelu, …) or initializer (zeros, constant) has no such law.
"""

from __future__ import annotations

import math

from init_lab.catalog.initializers import fans
from init_lab.catalog.registry import Choice

GAIN = {"relu": 0.5, "linear": 1.0, "tanh": 1.0, "softsign": 1.0, "selu": 1.0}


def weight_variance(init: Choice, fan_in: int, fan_out: int) -> float | None:
    kw = init.kwargs
    return {
        "random_normal": lambda: kw["stddev"] ** 2,
        "random_uniform": lambda: kw["limit"] ** 2 / 3,
        "glorot2010_standard": lambda: 1 / (3 * fan_in),
        "lecun_normal": lambda: 1 / fan_in,
        "lecun_uniform": lambda: 1 / fan_in,
        "glorot_normal": lambda: 2 / (fan_in + fan_out),
        "glorot_uniform": lambda: 2 / (fan_in + fan_out),
        "he_normal": lambda: 2 / fan_in,
        "he_uniform": lambda: 2 / fan_in,
        # square orthogonal matrices have entries of variance 1/n; rectangular ones only approximately
        "orthogonal": lambda: kw["gain"] ** 2 / max(fan_in, fan_out),
    }.get(init.name, lambda: None)()


def activation_gain(act: Choice) -> float | None:
    if act.name == "leaky_relu":
        return (1 + act.kwargs["alpha"] ** 2) / 2
    return GAIN.get(act.name)


def predicted_std_ratio(init: Choice, act: Choice, hidden: tuple[int, ...], input_dim: int = 784) -> list[float] | None:
    """Predicted pre-activation std of hidden layer l divided by that of hidden layer 0."""
    if init.name == "lsuv":
        return [1.0] * len(hidden)  # LSUV sets every layer's output variance to 1 by construction
    g = activation_gain(act)
    if g is None:
        return None
    if act.name == "selu" and init.name not in ("lecun_normal", "lecun_uniform"):
        return None  # SELU's fixed point (mean 0, variance 1) is a law of LeCun-scaled weights only
    widths = [input_dim, *hidden]
    ratios, q = [1.0], 1.0
    for layer in range(1, len(hidden)):
        fan_in, fan_out = fans((widths[layer], widths[layer + 1]))
        var = weight_variance(init, fan_in, fan_out)
        if var is None:
            return None
        factor = fan_in * var * g
        if act.name in ("tanh", "softsign") and factor > 1.0 + 1e-9:
            return None  # growing signals leave the linear regime: saturation, not the recursion, decides
        q *= factor
        ratios.append(math.sqrt(q))
    return ratios
