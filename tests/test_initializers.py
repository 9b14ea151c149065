"""Every initializer's empirical statistics against the formula of its paper (DESIGN §4).

The expected values are written out here from the formulas, independently of the
registry, on large Dense and Conv2D kernels built through Keras layers, so the fan
computation of Conv2D (k_h·k_w·c_in / k_h·k_w·c_out) is checked too.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from init_lab.catalog.initializers import INITIALIZERS, fans, layer_seed, weight_variance

keras = pytest.importorskip("keras")
from init_lab.engine.backend import build_initializer  # noqa: E402

DENSE = (1000, 500)  # fan_in 1000, fan_out 500
CONV = (3, 3, 64, 128)  # fan_in 576, fan_out 1152


def kernel(name: str, shape: tuple[int, ...], seed: int = 0, **params) -> np.ndarray:
    choice = INITIALIZERS.resolve({"name": name, **params} if params else name)
    init = build_initializer(choice, seed, 0)
    if len(shape) == 2:
        layer = keras.layers.Dense(shape[1], kernel_initializer=init)
        layer.build((None, shape[0]))
    else:
        layer = keras.layers.Conv2D(shape[3], shape[:2], kernel_initializer=init)
        layer.build((None, 32, 32, shape[2]))
    w = np.asarray(layer.kernel.numpy(), dtype=np.float64)
    assert w.shape == shape
    assert np.all(layer.bias.numpy() == 0), "biases start at 0"
    return w


def fan(shape):
    receptive = math.prod(shape[:-2])
    return receptive * shape[-2], receptive * shape[-1]


# name -> (expected std, uniform limit or None, truncated normal?)
def expected(name: str, fan_in: int, fan_out: int):
    return {
        "glorot2010_standard": (math.sqrt(1 / (3 * fan_in)), 1 / math.sqrt(fan_in), False),
        "lecun_normal": (math.sqrt(1 / fan_in), None, True),
        "lecun_uniform": (math.sqrt(1 / fan_in), math.sqrt(3 / fan_in), False),
        "glorot_normal": (math.sqrt(2 / (fan_in + fan_out)), None, True),
        "glorot_uniform": (math.sqrt(2 / (fan_in + fan_out)), math.sqrt(6 / (fan_in + fan_out)), False),
        "he_normal": (math.sqrt(2 / fan_in), None, True),
        "he_uniform": (math.sqrt(2 / fan_in), math.sqrt(6 / fan_in), False),
        "he_normal_fan_out": (math.sqrt(2 / fan_out), None, True),
        "he_uniform_fan_out": (math.sqrt(2 / fan_out), math.sqrt(6 / fan_out), False),
    }[name]


SCALED = ["glorot2010_standard", "lecun_normal", "lecun_uniform", "glorot_normal", "glorot_uniform", "he_normal",
          "he_uniform", "he_normal_fan_out", "he_uniform_fan_out"]


@pytest.mark.parametrize("shape", [DENSE, CONV], ids=["dense", "conv2d"])
@pytest.mark.parametrize("name", SCALED)
def test_variance_scaling_matches_formula(name, shape):
    fan_in, fan_out = fan(shape)
    std, limit, truncated = expected(name, fan_in, fan_out)
    w = kernel(name, shape)
    assert abs(w.mean()) < 0.02 * std
    assert w.std() == pytest.approx(std, rel=0.02), f"{name}: std {w.std():.5f}, formula {std:.5f}"
    if limit is not None:
        assert np.abs(w).max() <= limit + 1e-7
        assert np.abs(w).max() > 0.99 * limit, "a uniform draw this large reaches its limit"
    if truncated:
        # Keras truncates at 2 standard deviations of the underlying (rescaled) normal
        assert np.abs(w).max() <= 2 * std / 0.87962566103423978 + 1e-6


def test_worked_examples_from_design():
    w = kernel("glorot_uniform", (1000, 500))
    assert np.abs(w).max() <= math.sqrt(6 / 1500) + 1e-7
    assert math.sqrt(6 / 1500) == pytest.approx(0.0632, abs=1e-4)
    assert w.std() == pytest.approx(0.0365, abs=0.0005)
    w = kernel("glorot_uniform", (500, 10))
    assert np.abs(w).max() <= 0.1085 + 1e-4 and np.abs(w).max() > 0.1
    w = kernel("he_normal", (1000, 500))
    assert w.std() == pytest.approx(0.0447, abs=0.0005)  # √(2/1000), not 2/√1000 ≈ 0.063


@pytest.mark.parametrize("stddev", [1.0, 0.01])
def test_random_normal(stddev):
    w = kernel("random_normal", DENSE, stddev=stddev)
    assert w.std() == pytest.approx(stddev, rel=0.01)
    assert np.abs(w).max() > 3.5 * stddev, "plain Gaussian: not truncated"


def test_random_normal_default_is_the_naive_unit_gaussian():
    assert kernel("random_normal", DENSE).std() == pytest.approx(1.0, rel=0.01)


def test_random_uniform():
    w = kernel("random_uniform", DENSE, limit=0.3)
    assert np.abs(w).max() <= 0.3 and np.abs(w).max() > 0.299
    assert w.std() == pytest.approx(0.3 / math.sqrt(3), rel=0.01)


def test_zeros_and_constant():
    assert np.all(kernel("zeros", DENSE) == 0)
    assert np.all(kernel("constant", (20, 30), value=0.5) == 0.5)


@pytest.mark.parametrize("shape", [(400, 400), (600, 300), (300, 600), CONV])
@pytest.mark.parametrize("gain", [1.0, 2.0])
def test_orthogonal(shape, gain):
    w = kernel("orthogonal", shape, gain=gain).reshape(-1, shape[-1])
    rows, cols = w.shape
    gram = w.T @ w if rows >= cols else w @ w.T
    np.testing.assert_allclose(gram, gain**2 * np.eye(min(rows, cols)), atol=1e-4)


def test_fans_of_dense_and_conv():
    assert fans((1000, 500)) == (1000, 500)
    assert fans((3, 3, 64, 128)) == (576, 1152)
    assert fans((5, 5, 1, 32)) == (25, 800)


def test_layer_seeds_are_distinct_and_stable():
    seeds = {layer_seed(s, i) for s in range(5) for i in range(30)}
    assert len(seeds) == 150
    assert layer_seed(3, 7) == layer_seed(3, 7)
    a = kernel("he_normal", (50, 50), seed=1)
    b = kernel("he_normal", (50, 50), seed=1)
    c = kernel("he_normal", (50, 50), seed=2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_lsuv_starts_from_an_orthogonal_matrix():
    w = kernel("lsuv", (300, 300))  # the data-driven rescaling happens when a trial starts (test_diagnostics)
    np.testing.assert_allclose(w.T @ w, np.eye(300), atol=1e-4)


@pytest.mark.parametrize("name", ["he_normal", "he_uniform", "he_normal_fan_out", "he_uniform_fan_out"])
@pytest.mark.parametrize("a", [0.25, 1.0])
def test_he_for_leaky_relu_and_prelu(name, a):
    # He et al. 2015 eq. 15: Var = 2/((1 + a²)·n), n = fan_in (or fan_out in the fan_out mode)
    fan_in, fan_out = fan(CONV)
    n = fan_out if name.endswith("fan_out") else fan_in
    std = math.sqrt(2 / ((1 + a * a) * n))
    w = kernel(name, CONV, a=a)
    assert w.std() == pytest.approx(std, rel=0.02)
    if "uniform" in name:
        assert std * math.sqrt(3) * 0.99 < np.abs(w).max() <= std * math.sqrt(3) + 1e-7


def test_he_a_zero_is_plain_he():
    assert np.array_equal(kernel("he_normal", (50, 60), a=0.0), kernel("he_normal", (50, 60)))


@pytest.mark.parametrize("gain, value", [("relu", math.sqrt(2)), ("linear", 1.0), ("tanh", 5 / 3), ("selu", 0.75),
                                         ("sigmoid", 1.0), ("leaky_relu", math.sqrt(2 / (1 + 0.01**2)))])
def test_orthogonal_named_gains_are_pytorchs_calculate_gain(gain, value):
    choice = INITIALIZERS.resolve({"name": "orthogonal", "gain": gain})
    assert choice.kwargs == {"gain": pytest.approx(value, rel=1e-15)}  # a number from here on
    w = kernel("orthogonal", (300, 200), gain=gain)
    np.testing.assert_allclose(w.T @ w, value**2 * np.eye(200), atol=1e-4)


def test_named_gain_label_and_errors():
    from init_lab.catalog.errors import ConfigError
    from init_lab.config.loading import config_from_text, config_to_yaml

    assert INITIALIZERS.resolve({"name": "orthogonal", "gain": "relu"}).label(INITIALIZERS) == "orthogonal(gain=relu)"
    assert INITIALIZERS.resolve({"name": "orthogonal", "gain": 0.5}).label(INITIALIZERS) == "orthogonal(gain=0.5)"
    with pytest.raises(ValueError, match=r"one of the names linear, sigmoid, tanh, relu.*got 'rleu'.*'relu'"):
        INITIALIZERS.resolve({"name": "orthogonal", "gain": "rleu"})
    with pytest.raises(ConfigError, match=r"cfg:3: .*'gain' is a number or one of the names .*selu"):
        config_from_text("name: x\ngrid:\n  initializer: [{name: orthogonal, gain: softmax}]\n  activation: [relu]",
                         "cfg")
    with pytest.raises(ValueError, match="must be a number, got 'relu'"):  # only gains have names
        INITIALIZERS.resolve({"name": "random_normal", "stddev": "relu"})
    config = config_from_text("name: x\ngrid: {initializer: [{name: orthogonal, gain: relu}], activation: [relu]}")
    assert config.grid.initializer[0].kwargs["gain"] == math.sqrt(2)
    again = config_from_text(config_to_yaml(config))
    assert again.grid.initializer == config.grid.initializer  # written out as the number, read back the same


# weight_variance against the empirical variance of the kernels Keras actually builds
VARIANCE_CASES = [
    *((name, shape, {}) for name in SCALED for shape in (DENSE, CONV)),
    *((name, CONV, {"a": 0.5}) for name in ("he_normal", "he_uniform_fan_out")),
    ("random_normal", DENSE, {"stddev": 0.05}),
    ("random_uniform", CONV, {"limit": 0.3}),
    ("zeros", CONV, {}),
    *(("orthogonal", shape, {"gain": g}) for shape in [(600, 300), (300, 600), CONV, (3, 3, 1, 32), (5, 5, 16, 8)]
      for g in (1.0, "relu")),
]


@pytest.mark.parametrize("name, shape, params", VARIANCE_CASES, ids=lambda v: str(v))
def test_weight_variance_matches_the_built_kernels(name, shape, params):
    choice = INITIALIZERS.resolve({"name": name, **params})
    expected = weight_variance(choice, shape)
    w = kernel(name, shape, **params)
    if name == "orthogonal":  # the squares of an orthonormal frame sum to a constant: exact, not statistical
        rows, cols = math.prod(shape[:-1]), shape[-1]
        assert expected == pytest.approx(choice.kwargs["gain"] ** 2 / max(rows, cols), rel=1e-12)
        assert np.mean(w**2) == pytest.approx(expected, rel=1e-5)
    elif name == "zeros":
        assert expected == 0.0 and np.all(w == 0)
    else:
        assert w.var() == pytest.approx(expected, rel=0.04), f"{name}{shape}: {w.var():.3g} vs {expected:.3g}"


def test_weight_variance_of_orthogonal_conv_is_keras_flattening_not_fans():
    choice = INITIALIZERS.resolve("orthogonal")
    assert weight_variance(choice, (3, 3, 1, 32)) == 1 / 32  # max(9, 32); fans would say max(9, 288)
    assert weight_variance(choice, CONV) == 1 / 576  # max(576, 128); fans would say 1/1152
    assert weight_variance(choice, (1000, 500)) == 1 / 1000 and weight_variance(choice, (500, 1000)) == 1 / 1000


def test_weight_variance_is_none_where_no_variance_describes_the_draw():
    assert weight_variance(INITIALIZERS.resolve("constant"), DENSE) is None  # not zero-mean
    assert weight_variance(INITIALIZERS.resolve("lsuv"), DENSE) is None  # set by the data
    assert weight_variance(INITIALIZERS.resolve("matched"), DENSE) is None  # needs the activation's σ_w²
    assert weight_variance(INITIALIZERS.resolve("fixup"), DENSE) is None  # depends on the layer's place in its block
    assert weight_variance(INITIALIZERS.resolve("zero_init"), DENSE) is None  # deterministic
    assert weight_variance(INITIALIZERS.resolve("skipinit"), DENSE) == 2 / DENSE[0]  # its base's: he_normal
    assert all(weight_variance(INITIALIZERS.resolve(n), DENSE) is not None for n in INITIALIZERS.names()
               if n not in ("constant", "lsuv", "matched", "fixup", "zero_init"))


@pytest.mark.parametrize(("activation", "base", "sigma_w2"), [
    ("relu", "normal", 2.0), ("gelu", "normal", 2.3517), ("swish", "uniform", 2.8108), ("selu", "normal", 1.0)])
def test_matched_kernels_have_one_over_the_activations_second_moment(activation, base, sigma_w2):
    """matched: Var = 1/(fan_in·E[φ(z)²]) for the trial's activation (ReLU: He's 2/fan_in), normal or uniform."""
    from init_lab.catalog.activations import ACTIVATIONS

    choice = INITIALIZERS.resolve({"name": "matched", "base": base})
    init = build_initializer(choice, 0, 0, ACTIVATIONS.resolve(activation))
    layer = keras.layers.Dense(DENSE[1], kernel_initializer=init)
    layer.build((None, DENSE[0]))
    w = np.asarray(layer.kernel.numpy(), dtype=np.float64)
    assert w.var() == pytest.approx(sigma_w2 / DENSE[0], rel=0.02)
    if base == "uniform":
        assert np.abs(w).max() == pytest.approx(math.sqrt(3 * sigma_w2 / DENSE[0]), rel=1e-3)
    with pytest.raises(ValueError, match="activation"):
        build_initializer(choice, 0, 0)


def test_every_registered_initializer_is_tested():
    tested = set(SCALED) | {"random_normal", "random_uniform", "zeros", "constant", "orthogonal", "lsuv", "matched",
                            "variance_scaling",  # variance_scaling: tests/test_sigma_axes.py
                            "fixup", "skipinit", "zero_init", "delta_orthogonal"}  # tests/test_branch_inits.py, test_new_initializers.py
    assert set(INITIALIZERS.names()) == tested
