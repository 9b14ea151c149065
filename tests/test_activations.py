"""Activation definitions against their formulas, written out in NumPy."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from init_lab.catalog.activations import ACTIVATIONS
from init_lab.catalog.registry import NegativeSide

keras = pytest.importorskip("keras")

X = np.linspace(-6, 6, 241).astype(np.float32)
ERF = np.vectorize(math.erf)
SELU_L, SELU_A = 1.0507009873554805, 1.6732632423543772

FORMULAS = {
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "tanh": np.tanh,
    "lecun_tanh": lambda x: 1.7159 * np.tanh(2 * x / 3),  # LeCun et al. 1998, "Efficient BackProp" §4.4
    "relu": lambda x: np.maximum(0, x),
    "leaky_relu": lambda x: np.where(x >= 0, x, 0.01 * x),
    "elu": lambda x: np.where(x > 0, x, np.exp(x) - 1),
    "selu": lambda x: SELU_L * np.where(x > 0, x, SELU_A * (np.exp(x) - 1)),
    "gelu": lambda x: 0.5 * x * (1 + ERF(x / math.sqrt(2))),
    "swish": lambda x: x / (1 + np.exp(-x)),
    "silu": lambda x: x / (1 + np.exp(-x)),
    "softplus": lambda x: np.log1p(np.exp(x)),
    "softsign": lambda x: x / (1 + np.abs(x)),
    "linear": lambda x: x,
    "prelu": lambda x: np.where(x >= 0, x, 0.25 * x),  # learned slope, initialised to 0.25
}


def apply(spec, x=X):
    choice = ACTIVATIONS.resolve(spec)
    from init_lab.engine.nets import activation_layer

    layer = activation_layer(choice, "act")
    return np.asarray(layer(x[None, :]))[0]


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_definition(name):
    np.testing.assert_allclose(apply(name), FORMULAS[name](X.astype(np.float64)), rtol=1e-5, atol=1e-6)


def test_every_activation_has_a_formula_test():
    assert set(ACTIVATIONS.names()) == set(FORMULAS)


def test_leaky_relu_default_slope_is_001_not_keras_default():
    assert ACTIVATIONS.resolve("leaky_relu").kwargs == {"alpha": 0.01}
    assert apply("leaky_relu", np.array([-10.0], np.float32))[0] == pytest.approx(-0.1)


@pytest.mark.parametrize("alpha", [0.2, 0.3])
def test_parameterised_leaky_relu_and_elu(alpha):
    x = np.array([-2.0, 3.0], np.float32)
    np.testing.assert_allclose(apply({"name": "leaky_relu", "alpha": alpha}, x), [-2 * alpha, 3.0], rtol=1e-6)
    np.testing.assert_allclose(apply({"name": "elu", "alpha": alpha}, x), [alpha * (math.exp(-2) - 1), 3.0], rtol=1e-6)


def test_gelu_is_the_exact_erf_form_not_the_tanh_approximation():
    x = np.array([-1.5], np.float32)
    exact = 0.5 * -1.5 * (1 + math.erf(-1.5 / math.sqrt(2)))
    assert apply("gelu", x)[0] == pytest.approx(exact, rel=1e-6)


NUMPY_OPS = SimpleNamespace(
    sigmoid=lambda x: 1 / (1 + np.exp(-x)), tanh=np.tanh, relu=lambda x: np.maximum(x, 0), abs=np.abs, exp=np.exp,
    where=np.where, elu=lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))), softplus=lambda x: np.logaddexp(0, x),
    selu=lambda x: SELU_L * np.where(x > 0, x, SELU_A * np.expm1(np.minimum(x, 0))), erf=ERF,
)


def test_saturation_thresholds_are_the_5_percent_points_of_the_derivative():
    # the values of the closed forms (issue 11: sigmoid is 4.3565, not the 4.3596 once typed in)
    expected = {"sigmoid": 4.3565, "tanh": 2.1783, "lecun_tanh": 3.2674, "softsign": 3.4721}
    thresholds = {name: e.saturation for name, e in ACTIVATIONS.entries.items() if e.saturation is not None}
    assert thresholds == pytest.approx(expected, abs=1e-4)
    assert thresholds["lecun_tanh"] == pytest.approx(1.5 * math.atanh(math.sqrt(0.95)), rel=1e-12)
    grid = np.linspace(-8, 8, 16001)
    for name, x0 in thresholds.items():  # φ′ by central differences, independently of the derivations
        peak = derivative(name, grid).max()
        assert derivative(name, np.array([x0, -x0])) / peak == pytest.approx([0.05, 0.05], rel=1e-4), name


def derivative(name: str, x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    entry = ACTIVATIONS.entries[name]
    return (entry.fn(x + h, NUMPY_OPS, {}) - entry.fn(x - h, NUMPY_OPS, {})) / (2 * h)


def test_negative_side_of_the_relu_family():
    sides = {name: e.negative_side for name, e in ACTIVATIONS.entries.items() if e.negative_side is not None}
    assert sides == {"relu": NegativeSide.DEAD, "leaky_relu": NegativeSide.NEGATIVE_REGIME,
                     "elu": NegativeSide.NEGATIVE_REGIME, "selu": NegativeSide.NEGATIVE_REGIME,
                     "prelu": NegativeSide.NEGATIVE_REGIME}


def test_prelu_slopes_are_one_per_channel_in_the_cnn():
    from init_lab.catalog.initializers import INITIALIZERS
    from init_lab.catalog.models import resolve_architecture
    from init_lab.engine.nets import LearnedActivation, build_keras_model

    arch = resolve_architecture("mnist_cnn", None, None, None)
    model = build_keras_model(arch, (28, 28, 1), 10, INITIALIZERS.resolve("he_normal"),
                              ACTIVATIONS.resolve("prelu"), seed=0)
    slopes = {layer.name: tuple(layer.alpha.shape) for layer in model.layers if isinstance(layer, LearnedActivation)}
    # shared over the spatial axes, as He et al. 2015 do: one slope per channel, 0.25 at initialization
    assert slopes == {"act_conv_0": (32,), "act_conv_1": (64,), "act_conv_2": (64,), "act_0": (64,)}
    assert all(np.all(np.asarray(layer.alpha) == 0.25) for layer in model.layers if isinstance(layer, LearnedActivation))
