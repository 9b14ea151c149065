"""Activation functions of hidden layers (DESIGN §4): the one registry every model class uses.

Each entry carries ``fn(x, ops, params)``: the function written against ``ops``, a namespace of
elementwise tensor functions that the caller supplies (the engine passes TensorFlow's; NumPy ones
work too). So a new activation is one entry here, and the packed MLP, the Keras models and any
numerical code evaluate the very same formula. The output layer is always softmax.

Parameters are set explicitly rather than taken from Keras, whose defaults differ from the
literature (leaky ReLU: Keras uses 0.2 for the function and 0.3 for the layer; initlab uses
α = 0.01, Maas et al. 2013). PReLU's slope is *learned*: the model class creates it as a variable
(initialised to ``alpha_init``) and passes it in as ``params["alpha"]``.

Entries also say what the diagnostics need to know (``analysis.diagnostics``): ``saturation``, the
|x| beyond which φ′(x) falls below ``FLAT`` (5 %) of its maximum, derived below from each formula;
and ``negative_side``, whether a unit stuck at x < 0 is dead (relu: no gradient) or only in its
negative regime (leaky_relu, elu, selu, prelu: a gradient still flows).
"""

from __future__ import annotations

import math

from init_lab.catalog.registry import Entry, NegativeSide, Param, Registry

SQRT_HALF = math.sqrt(0.5)
FLAT = 0.05  # a unit is saturated where φ′(x) < FLAT · max φ′

# LeCun et al. 1998 ("Efficient BackProp" §4.4): f(x) = 1.7159·tanh(2x/3), so that f(±1) ≈ ±1
LECUN_TANH_SCALE, LECUN_TANH_SLOPE = 1.7159, 2.0 / 3.0

# Saturation thresholds, solved from φ′(x) = FLAT · max φ′:
# tanh: 1 − tanh²x = FLAT → x = atanh(√(1 − FLAT)) ≈ 2.1783
TANH_SATURATION = math.atanh(math.sqrt(1 - FLAT))
# sigmoid: σ(1 − σ) = FLAT/4 → σ = (1 + √(1 − FLAT))/2 → x = ln((1 + √0.95)/(1 − √0.95)) ≈ 4.3565
SIGMOID_SATURATION = math.log((1 + math.sqrt(1 - FLAT)) / (1 - math.sqrt(1 - FLAT)))
# softsign: 1/(1 + |x|)² = FLAT → |x| = 1/√FLAT − 1 ≈ 3.4721
SOFTSIGN_SATURATION = 1 / math.sqrt(FLAT) - 1
# LeCun's tanh: the tanh threshold on the scaled input 2x/3 → 1.5 · atanh(√0.95) ≈ 3.2674
LECUN_TANH_SATURATION = TANH_SATURATION / LECUN_TANH_SLOPE

DEAD, NEGATIVE = NegativeSide.DEAD, NegativeSide.NEGATIVE_REGIME


def _leaky(x, ops, slope):
    return ops.where(x >= 0, x, slope * x)


ACTIVATIONS = Registry(
    "activation",
    [
        Entry("sigmoid", "σ(x) = 1/(1+e^-x)", fn=lambda x, ops, p: ops.sigmoid(x), saturation=SIGMOID_SATURATION),
        Entry("tanh", "tanh(x)", fn=lambda x, ops, p: ops.tanh(x), saturation=TANH_SATURATION),
        Entry(
            "lecun_tanh",
            "1.7159·tanh(2x/3)  (LeCun et al. 1998, 'Efficient BackProp': f(±1) ≈ ±1)",
            fn=lambda x, ops, p: LECUN_TANH_SCALE * ops.tanh(x * LECUN_TANH_SLOPE),
            saturation=LECUN_TANH_SATURATION,
        ),
        Entry("relu", "max(0, x)", fn=lambda x, ops, p: ops.relu(x), negative_side=DEAD),
        Entry(
            "leaky_relu",
            "x if x ≥ 0 else α·x",
            {"alpha": Param(0.01, "slope for x < 0 (Maas et al. 2013)")},
            fn=lambda x, ops, p: _leaky(x, ops, p["alpha"]),
            negative_side=NEGATIVE,
        ),
        Entry(
            "elu",
            "x if x > 0 else α·(e^x − 1)",
            {"alpha": Param(1.0, "saturation value for x → −∞", positive=True)},
            fn=lambda x, ops, p: ops.elu(x) if p["alpha"] == 1.0 else ops.where(x > 0, x, p["alpha"] * ops.elu(x)),
            negative_side=NEGATIVE,
        ),
        Entry(
            "selu",
            "λ·(x if x > 0 else α·(e^x − 1)), λ ≈ 1.0507, α ≈ 1.6733 (Klambauer et al. 2017)",
            fn=lambda x, ops, p: ops.selu(x),
            negative_side=NEGATIVE,
        ),
        Entry("gelu", "x·Φ(x) = x/2·(1 + erf(x/√2)), exact form",
              fn=lambda x, ops, p: 0.5 * x * (1.0 + ops.erf(x * SQRT_HALF))),
        Entry("swish", "x·σ(x) (also called silu)", fn=lambda x, ops, p: x * ops.sigmoid(x)),
        Entry("silu", "x·σ(x) (also called swish)", fn=lambda x, ops, p: x * ops.sigmoid(x)),
        Entry("softplus", "log(1 + e^x)", fn=lambda x, ops, p: ops.softplus(x)),
        Entry("softsign", "x/(1 + |x|)", fn=lambda x, ops, p: x / (1.0 + ops.abs(x)), saturation=SOFTSIGN_SATURATION),
        Entry("linear", "x (no nonlinearity)", fn=lambda x, ops, p: x),
        Entry(
            "prelu",
            "x if x ≥ 0 else a·x, a learned per unit (He et al. 2015)",
            {"alpha_init": Param(0.25, "initial slope a")},
            fn=lambda x, ops, p: _leaky(x, ops, p["alpha"]),
            learned=("alpha",),
            negative_side=NEGATIVE,
        ),
    ],
)
