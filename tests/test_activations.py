"""Activation definitions against their formulas, written out in NumPy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from init_lab.catalog.activations import ACTIVATIONS

keras = pytest.importorskip("keras")

X = np.linspace(-6, 6, 241).astype(np.float32)
ERF = np.vectorize(math.erf)
SELU_L, SELU_A = 1.0507009873554805, 1.6732632423543772

FORMULAS = {
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "tanh": np.tanh,
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
