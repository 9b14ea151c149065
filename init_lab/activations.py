"""Activation functions of hidden layers (DESIGN §4). The output layer is always softmax.

Each entry builds a Keras layer. Parameters are set explicitly rather than taken
from Keras, whose defaults differ from the literature (leaky ReLU: Keras uses 0.2
for the function and 0.3 for the layer; initlab uses α = 0.01, Maas et al. 2013).
"""

from __future__ import annotations

from typing import Any

from .registry import Choice, Entry, Param, Registry


def _fn_layer(fn_name: str, **fixed: float):
    """A builder for an Activation layer around keras.activations.<fn_name>."""

    def build(params: dict[str, float], name: str) -> Any:
        import keras

        fn = getattr(keras.activations, fn_name)
        kwargs = {**fixed, **params}
        return keras.layers.Activation(lambda x: fn(x, **kwargs), name=name)

    return build


def _leaky_relu(params: dict[str, float], name: str) -> Any:
    import keras

    alpha = params["alpha"]
    return keras.layers.Activation(
        lambda x: keras.activations.leaky_relu(x, negative_slope=alpha), name=name
    )


def _prelu(params: dict[str, float], name: str) -> Any:
    import keras

    return keras.layers.PReLU(alpha_initializer=keras.initializers.Constant(params["alpha_init"]), name=name)


ACTIVATIONS = Registry(
    "activation",
    [
        Entry("sigmoid", "σ(x) = 1/(1+e^-x)", build=_fn_layer("sigmoid")),
        Entry("tanh", "tanh(x)", build=_fn_layer("tanh")),
        Entry("relu", "max(0, x)", build=_fn_layer("relu")),
        Entry(
            "leaky_relu",
            "x if x ≥ 0 else α·x",
            {"alpha": Param(0.01, "slope for x < 0 (Maas et al. 2013)")},
            build=_leaky_relu,
        ),
        Entry(
            "elu",
            "x if x > 0 else α·(e^x − 1)",
            {"alpha": Param(1.0, "saturation value for x → −∞", positive=True)},
            build=_fn_layer("elu"),
        ),
        Entry(
            "selu",
            "λ·(x if x > 0 else α·(e^x − 1)), λ ≈ 1.0507, α ≈ 1.6733 (Klambauer et al. 2017)",
            build=_fn_layer("selu"),
        ),
        Entry("gelu", "x·Φ(x) = x/2·(1 + erf(x/√2)), exact form", build=_fn_layer("gelu", approximate=False)),
        Entry("swish", "x·σ(x) (also called silu)", build=_fn_layer("silu")),
        Entry("silu", "x·σ(x) (also called swish)", build=_fn_layer("silu")),
        Entry("softplus", "log(1 + e^x)", build=_fn_layer("softplus")),
        Entry("softsign", "x/(1 + |x|)", build=_fn_layer("softsign")),
        Entry("linear", "x (no nonlinearity)", build=_fn_layer("linear")),
        Entry(
            "prelu",
            "x if x ≥ 0 else a·x, a learned per unit (He et al. 2015)",
            {"alpha_init": Param(0.25, "initial slope a")},
            build=_prelu,
        ),
    ],
)


def build_activation(choice: Choice, name: str) -> Any:
    """A Keras layer applying the activation of ``choice``."""
    return ACTIVATIONS.entries[choice.name].build(choice.kwargs, name)
