"""Activation functions of hidden layers (DESIGN §4): the one registry every model class uses.

Each entry carries ``fn(x, ops, params)``: the function written against ``ops``, a namespace of
elementwise tensor functions that the caller supplies (the engine passes TensorFlow's; NumPy ones
work too). So a new activation is one entry here, and the packed MLP, the Keras models and any
numerical code evaluate the very same formula. The output layer is always softmax.

Parameters are set explicitly rather than taken from Keras, whose defaults differ from the
literature (leaky ReLU: Keras uses 0.2 for the function and 0.3 for the layer; initlab uses
α = 0.01, Maas et al. 2013). PReLU's slope is *learned*: the model class creates it as a variable
(initialised to ``alpha_init``) and passes it in as ``params["alpha"]``.
"""

from __future__ import annotations

import math

from init_lab.catalog.registry import Entry, Param, Registry

SQRT_HALF = math.sqrt(0.5)


def _leaky(x, ops, slope):
    return ops.where(x >= 0, x, slope * x)


ACTIVATIONS = Registry(
    "activation",
    [
        Entry("sigmoid", "σ(x) = 1/(1+e^-x)", fn=lambda x, ops, p: ops.sigmoid(x)),
        Entry("tanh", "tanh(x)", fn=lambda x, ops, p: ops.tanh(x)),
        Entry("relu", "max(0, x)", fn=lambda x, ops, p: ops.relu(x)),
        Entry(
            "leaky_relu",
            "x if x ≥ 0 else α·x",
            {"alpha": Param(0.01, "slope for x < 0 (Maas et al. 2013)")},
            fn=lambda x, ops, p: _leaky(x, ops, p["alpha"]),
        ),
        Entry(
            "elu",
            "x if x > 0 else α·(e^x − 1)",
            {"alpha": Param(1.0, "saturation value for x → −∞", positive=True)},
            fn=lambda x, ops, p: ops.elu(x) if p["alpha"] == 1.0 else ops.where(x > 0, x, p["alpha"] * ops.elu(x)),
        ),
        Entry(
            "selu",
            "λ·(x if x > 0 else α·(e^x − 1)), λ ≈ 1.0507, α ≈ 1.6733 (Klambauer et al. 2017)",
            fn=lambda x, ops, p: ops.selu(x),
        ),
        Entry("gelu", "x·Φ(x) = x/2·(1 + erf(x/√2)), exact form",
              fn=lambda x, ops, p: 0.5 * x * (1.0 + ops.erf(x * SQRT_HALF))),
        Entry("swish", "x·σ(x) (also called silu)", fn=lambda x, ops, p: x * ops.sigmoid(x)),
        Entry("silu", "x·σ(x) (also called swish)", fn=lambda x, ops, p: x * ops.sigmoid(x)),
        Entry("softplus", "log(1 + e^x)", fn=lambda x, ops, p: ops.softplus(x)),
        Entry("softsign", "x/(1 + |x|)", fn=lambda x, ops, p: x / (1.0 + ops.abs(x))),
        Entry("linear", "x (no nonlinearity)", fn=lambda x, ops, p: x),
        Entry(
            "prelu",
            "x if x ≥ 0 else a·x, a learned per unit (He et al. 2015)",
            {"alpha_init": Param(0.25, "initial slope a")},
            fn=lambda x, ops, p: _leaky(x, ops, p["alpha"]),
            learned=("alpha",),
        ),
    ],
)
