"""The configurable conv net (issue 21 b): ``model.kind: cnn`` is a stack of data (catalog.models.cnn_stack) — depth
same-padded convolutions of ``channels``, pools after every ``pool_every``-th, residual blocks and BatchNorm as the
MLP's, a global-average-pool head — on 28×28×1 and 32×32×3 images; it trains, checkpoints and extends exactly, the
memory estimate counts it, and bad settings are clean config errors."""

from __future__ import annotations

import numpy as np
import pytest

from init_lab.catalog.errors import ConfigError
from init_lab.catalog.models import Conv, GlobalAvgPool, Pool
from init_lab.config.grid import expand
from init_lab.config.loading import config_from_text
from init_lab.run.sweep import resume_sweep, run_sweep

from .helpers import assert_clean_exit, invoke, read_csv, run_tables

CNN = """
name: cnn
dataset: {name: synthetic, synthetic_train: 240, synthetic_test: 80, validation_split: 0.25, synthetic_shape: [28, 28]}
model: {kind: cnn, depth: 3, channels: [4, 8, 8], pool_every: 1}
grid: {initializer: [he_normal], activation: [relu, tanh]}
training: {epochs: 2, batch_size: 60, optimizer: adam, learning_rate: 0.01}
device: cpu
"""
COLOUR = CNN.replace("synthetic_shape: [28, 28]", "synthetic_shape: [32, 32, 3]")


def test_the_stack_is_data_from_the_config():
    arch = expand(config_from_text(CNN))[0].arch
    assert arch.layers == (Conv(4, 3, "same"), Pool(2), Conv(8, 3, "same"), Pool(2), Conv(8, 3, "same"), Pool(2),
                           GlobalAvgPool())
    listed = expand(config_from_text(CNN, overrides=["model.pool_every=[2]", "model.channels=6", "model.kernel=5"]))[0]
    assert listed.arch.layers == (Conv(6, 5, "same"), Conv(6, 5, "same"), Pool(2), Conv(6, 5, "same"), GlobalAvgPool())
    assert expand(config_from_text(CNN, overrides=["model.pool_every=0"]))[0].arch.layers.count(Pool(2)) == 0


@pytest.mark.parametrize("text,shape", [(CNN, (28, 28, 1)), (COLOUR, (32, 32, 3))], ids=["28x28x1", "32x32x3"])
def test_keras_model_shapes_and_parameters_match_the_estimate(text, shape):
    from init_lab.engine.nets import build_keras_model
    from init_lab.run.memory import layer_sizes

    for overrides in ([], ["model.depth=5", "model.channels=[4, 4, 8, 8, 8]", "model.pool_every=[1, 3]",
                           "model.residual=true", "model.normalization=batchnorm"], ["model.normalization=layernorm"]):
        spec = expand(config_from_text(text, overrides=overrides))[0]
        model = build_keras_model(spec.arch, shape, 10, spec.initializer, spec.activation, spec.seed)
        assert model.get_layer("conv_0").output.shape[1:3] == shape[:2]  # same padding keeps the image's size
        assert model.get_layer("global_pool").output.shape[-1] == spec.arch.units[-1]
        trainable = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
        assert layer_sizes(spec.arch, shape, 10).params == trainable
        if spec.arch.residual:  # the 4 → 8 block projects its input with a 1×1 convolution; 8 → 8 is the identity
            assert model.get_layer("proj_0").kernel.shape == (1, 1, 4, 8)
            assert [b.projection for b in spec.arch.blocks] == [(4, 8), None]
            assert sum(int(np.prod(v.shape)) for v in model.non_trainable_variables) == spec.arch.norm_buffers


def test_a_residual_block_computes_input_plus_branch():
    """add_b's output is the block's last convolution plus its (pooled) input: checked numerically."""
    from init_lab.engine.backend import keras
    from init_lab.engine.nets import build_keras_model

    spec = expand(config_from_text(CNN, overrides=["model.depth=3", "model.channels=4", "model.pool_every=[1]",
                                                   "model.residual=true"]))[0]
    model = build_keras_model(spec.arch, (28, 28, 1), 10, spec.initializer, spec.activation, spec.seed)
    names = ["conv_0", "conv_2", "add_0"]
    sub = keras.Model(model.inputs, [model.get_layer(n).output for n in names])
    x = np.random.default_rng(0).random((3, 28, 28, 1)).astype("float32")
    stem, last, added = (np.asarray(t) for t in sub([x]))
    pooled = stem.reshape(3, 14, 2, 14, 2, 4).max(axis=(2, 4))
    np.testing.assert_allclose(added, last + pooled, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("text,norm", [(CNN, "batchnorm"), (COLOUR, "batchnorm"), (CNN, "layernorm")],
                         ids=["28x28x1", "32x32x3", "layernorm"])
def test_residual_normalized_cnn_trains_and_extends_exactly(tmp_path, text, norm):
    over = ["model.residual=true", f"model.normalization={norm}", "model.pool_every=[1, 3]", "grid.activation=[relu]"]
    short = run_sweep(config_from_text(text, overrides=over), out=tmp_path / "short")
    assert short.count("completed") == 1
    extended = resume_sweep(short.run_dir, overrides=["training.epochs=3"])
    fresh = run_sweep(config_from_text(text, overrides=over + ["training.epochs=3"]), out=tmp_path / "fresh")
    assert extended.records[0].epochs_run == 3
    assert run_tables(short.run_dir) == run_tables(fresh.run_dir)
    layers = read_csv(next((short.run_dir / "trials").iterdir()) / "layers.csv")
    assert [r["name"] for r in layers if r["epoch"] == "0"] == ["conv_0", "conv_1", "conv_2"]


def test_cnn_through_the_cli(tmp_path, write_config):
    cfg = write_config(CNN)
    assert_clean_exit(invoke("sweep", cfg, "--out", tmp_path / "runs", "--set", "training.epochs=1"), 0)
    listed = invoke("list", "models")
    assert_clean_exit(listed, 0)
    assert "cnn" in listed.output and "GlobalAvgPool" in listed.output


@pytest.mark.parametrize("overrides,message", [
    (["model.channels=[4, 8]"], "model.channels lists 2 convolutions' channels but depth is 3"),
    (["model.pool_every=[4]"], "model.pool_every names convolution 4"),
    (["model.residual=true", "model.pool_every=[2]"], "inside a residual block"),
    (["model.depth=6", "model.channels=4", "model.pool_every=1"], "need images of at least 64×64"),
    (["model.kind=mlp", "model.pool_every=null", "model.channels=null", "model.depth=null"], None),
    (["model.kind=mlp", "model.channels=null", "model.depth=null"], "pool_every: options of model kind 'cnn'"),
])
def test_bad_cnn_settings_are_clean_config_errors(overrides, message, write_config):
    if message is None:  # the control: the same config as an MLP is fine
        config_from_text(CNN, overrides=overrides)
        return
    with pytest.raises(ConfigError):
        config_from_text(CNN, overrides=overrides)
    result = invoke("validate", write_config(CNN), *[a for o in overrides for a in ("--set", o)])
    assert_clean_exit(result, 1)
    assert message in result.output
