"""ZerO and delta-orthogonal (issue 21 c): the paper's constructions, checked against matrices written out here, the
engine builds them alike in both model classes, they train, and where they are not defined a clean config error."""

from __future__ import annotations

import numpy as np
import pytest

from init_lab.catalog.errors import ConfigError
from init_lab.catalog.initializers import INITIALIZERS, delta_orthogonal_kernel, zero_kernel
from init_lab.config.loading import config_from_text

from .helpers import TINY, assert_clean_exit, invoke
from .test_configurable_cnn import CNN


def test_zero_init_is_the_papers_matrix_for_square_wide_and_tall_layers():
    # Keras kernels are in × out; the paper's W (y = W·x) is out × in, so the kernel is Wᵀ
    np.testing.assert_array_equal(zero_kernel((4, 4)), np.eye(4))  # P_out = P_in: the identity
    wide = np.zeros((3, 6))  # the paper's W for 6 inputs → 3 outputs: I* = [I₃, 0], the first 3 inputs pass
    wide[:, :3] = np.eye(3)
    np.testing.assert_array_equal(zero_kernel((6, 3)), wide.T)
    # 3 inputs → 5 outputs: m = ⌈log₂ 5⌉ = 3, c = 2^(−(3−1)/2) = 1/2, W = c · (rows 0–4, columns 0–2 of H₃)
    h1 = np.array([[1, 1], [1, -1]])
    h3 = np.kron(np.kron(h1, h1), h1)  # Sylvester's H₃, 8 × 8
    tall = 0.5 * h3[:5, :3]
    np.testing.assert_array_equal(zero_kernel((3, 5)), tall.T)
    # 784 → 1000: m = 10, c = 2^(−4.5); every entry of H is ±1, so every weight is ±c
    assert set(np.unique(zero_kernel((784, 1000))).tolist()) == {np.float32(-2.0 ** -4.5), np.float32(2.0 ** -4.5)}
    with pytest.raises(ValueError, match="Dense kernels"):
        zero_kernel((3, 3, 4, 8))


def test_delta_orthogonal_is_zero_off_centre_and_orthogonal_at_the_centre():
    k = delta_orthogonal_kernel((3, 3, 4, 8), seed=3, gain=1.5)
    centre = k[1, 1]
    off = k.copy()
    off[1, 1] = 0
    assert not off.any()
    np.testing.assert_allclose(centre @ centre.T, 1.5**2 * np.eye(4), atol=1e-5)  # orthonormal rows, × gain
    np.testing.assert_allclose(np.linalg.norm(centre, axis=1), 1.5, rtol=1e-5)
    assert not np.array_equal(centre, delta_orthogonal_kernel((3, 3, 4, 8), seed=4, gain=1.5)[1, 1])  # seeded
    dense = delta_orthogonal_kernel((6, 6), seed=0)
    np.testing.assert_allclose(dense.T @ dense, np.eye(6), atol=1e-5)
    np.testing.assert_allclose(delta_orthogonal_kernel((5, 5, 2, 2), seed=0)[2, 2] @
                               delta_orthogonal_kernel((5, 5, 2, 2), seed=0)[2, 2].T, np.eye(2), atol=1e-6)
    with pytest.raises(ValueError, match="c_in ≤ c_out"):
        delta_orthogonal_kernel((3, 3, 8, 4), seed=0)


def test_the_engine_builds_them_in_both_model_classes():
    from init_lab.config.grid import expand
    from init_lab.engine.nets import PackedMLP, build_keras_model

    spec = expand(config_from_text(TINY, overrides=["grid.initializer=[zero_init]", "grid.activation=[relu]"]))[0]
    packed = PackedMLP([spec], 784, 10)
    keras_kernels = [w for w in build_keras_model(spec.arch, (784,), 10, spec.initializer, spec.activation,
                                                  spec.seed).get_weights() if w.ndim == 2]
    for layer, shape in enumerate([(784, 16), (16, 16), (16, 10)]):
        np.testing.assert_array_equal(packed.ws[layer].numpy()[0], zero_kernel(shape))
        np.testing.assert_array_equal(keras_kernels[layer], zero_kernel(shape))
    cnn = expand(config_from_text(CNN, overrides=["grid.initializer=[{name: delta_orthogonal, gain: tanh}]",
                                                  "grid.activation=[tanh]"]))[0]
    model = build_keras_model(cnn.arch, (28, 28, 1), 10, cnn.initializer, cnn.activation, cnn.seed)
    kernel = model.get_layer("conv_1").kernel.numpy()
    np.testing.assert_allclose(kernel[1, 1] @ kernel[1, 1].T, (5 / 3) ** 2 * np.eye(4), atol=1e-5)


def test_they_train_and_are_listed(tmp_path, write_config):
    mlp = write_config(TINY.replace("initializer: [he_normal, zeros]", "initializer: [zero_init]"), "mlp.yaml")
    assert_clean_exit(invoke("sweep", mlp, "--out", tmp_path / "a", "--set", "training.epochs=1"), 0)
    cnn = write_config(CNN.replace("initializer: [he_normal]", "initializer: [delta_orthogonal]"), "cnn.yaml")
    assert_clean_exit(invoke("sweep", cnn, "--out", tmp_path / "b", "--set", "training.epochs=1"), 0)
    listed = invoke("list", "initializers")
    assert_clean_exit(listed, 0)
    for text in ("zero_init", "Zhao et al. 2022", "delta_orthogonal", "Xiao et al. 2018"):
        assert text in listed.output
    assert INITIALIZERS.entries["zero_init"].variance({}, (3, 5)) is None  # deterministic: no iid variance


@pytest.mark.parametrize("text,overrides,message", [
    (CNN, ["grid.initializer=[zero_init]"], "initializer 'zero_init' (ZerO) is built here for Dense kernels only"),
    (CNN, ["grid.initializer=[delta_orthogonal]", "model.channels=[8, 4, 4]"],
     "convolution 2 maps 8 channels to 4"),
    (CNN.replace("synthetic_shape: [28, 28]", "synthetic_shape: [32, 32, 3]"),
     ["grid.initializer=[delta_orthogonal]", "model.channels=[2, 4, 4]"], "convolution 1 maps 3 channels to 2"),
])
def test_where_they_are_not_defined_a_clean_config_error(text, overrides, message, write_config):
    with pytest.raises(ConfigError):
        config_from_text(text, overrides=overrides)
    result = invoke("validate", write_config(text), *[a for o in overrides for a in ("--set", o)])
    assert_clean_exit(result, 1)
    assert message in result.output
