"""Grid expansion and model shapes."""

from __future__ import annotations

import pytest

from init_lab.config.grid import expand, sanitize
from init_lab.config.loading import config_from_text


def test_expansion_order_ids_and_count():
    cfg = config_from_text(
        "grid:\n  initializer: [he_normal, {name: random_normal, stddev: 0.01}]\n"
        "  activation: [relu, tanh]\n  seed: [0, 1]\n"
    )
    trials = expand(cfg)
    assert len(trials) == 8
    assert [t.id for t in trials[:3]] == ["000_he_normal-relu-s0", "001_he_normal-relu-s1", "002_he_normal-tanh-s0"]
    assert trials[4].id == "004_random_normal_stddev=0.01-relu-s0"
    assert len({t.id for t in trials}) == 8


def test_swept_axes_change_the_architecture_and_settings():
    cfg = config_from_text(
        "model: {kind: mlp, hidden: [64, 64]}\n"
        "grid:\n  initializer: [he_normal]\n  activation: [relu]\n  depth: [1, 3]\n  learning_rate: [0.1, 1e-3]\n"
    )
    trials = expand(cfg)
    assert [(t.arch.hidden, t.train.learning_rate) for t in trials] == [
        ((64,), 0.1), ((64,), 0.001), ((64, 64, 64), 0.1), ((64, 64, 64), 0.001)
    ]
    assert trials[1].id == "001_he_normal-relu-d1-lr0.001-s0"


@pytest.mark.parametrize("bad", ["../../etc/passwd", "a/b\\c", "x\x00y\n", "..", "", "ünïcode name"])
def test_sanitize_makes_safe_names(bad):
    out = sanitize(bad)
    assert out and "/" not in out and "\\" not in out and ".." not in out
    assert all(c.isascii() and c.isprintable() for c in out)
    assert len(sanitize("x" * 500)) <= 80


def test_presets_and_cnn_stack():
    keras = pytest.importorskip("keras")
    from init_lab.catalog.activations import ACTIVATIONS
    from init_lab.catalog.initializers import INITIALIZERS
    from init_lab.catalog.models import resolve_architecture
    from init_lab.engine.nets import build_keras_model as build_model

    he, relu = INITIALIZERS.resolve("he_normal"), ACTIVATIONS.resolve("relu")
    assert resolve_architecture("glorot2010").hidden == (1000,) * 5
    assert resolve_architecture("mlp_500x2").hidden == (500, 500)
    assert resolve_architecture("deep_mlp").hidden == (256,) * 30
    assert resolve_architecture("mlp", depth=3, width=7).hidden == (7, 7, 7)

    cnn = build_model(resolve_architecture("mnist_cnn"), (28, 28, 1), 10, he, relu, 0)
    kinds = [type(layer).__name__ for layer in cnn.layers if type(layer).__name__ != "Activation"]
    assert kinds == ["InputLayer", "Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Conv2D", "Flatten", "Dense", "Dense"]
    assert cnn.layers[-1].name == "output"  # logits: softmax is applied in the loss
    convs = [layer for layer in cnn.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [(c.filters, c.kernel_size) for c in convs] == [(32, (3, 3)), (64, (3, 3)), (64, (3, 3))]
    assert cnn.count_params() == 93322  # the classic TensorFlow MNIST CNN
    assert cnn.output_shape == (None, 10)

    mlp = build_model(resolve_architecture("mlp", hidden=[256, 256]), (784,), 10, he, relu, 0)
    assert mlp.count_params() == 784 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10


def test_same_seed_same_initial_weights_whatever_the_activation():
    pytest.importorskip("keras")
    import numpy as np

    from init_lab.catalog.activations import ACTIVATIONS
    from init_lab.catalog.initializers import INITIALIZERS
    from init_lab.catalog.models import resolve_architecture
    from init_lab.engine.nets import build_keras_model as build_model

    arch = resolve_architecture("mlp", hidden=[32, 32])
    he = INITIALIZERS.resolve("he_normal")
    a = build_model(arch, (784,), 10, he, ACTIVATIONS.resolve("relu"), 5).get_weights()
    b = build_model(arch, (784,), 10, he, ACTIVATIONS.resolve("tanh"), 5).get_weights()
    c = build_model(arch, (784,), 10, he, ACTIVATIONS.resolve("relu"), 6).get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])
    assert not np.array_equal(a[2][:32, :32], a[0][:32, :32])  # layers do not share a draw
