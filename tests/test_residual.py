"""Residual MLPs and normalization (issue 21 a): the packed MLP equals the one-model Keras reference, a trial's numbers
do not depend on its group, BatchNorm's moving averages are checkpointed (resume and extension equal uninterrupted
runs), both are grid axes, the memory estimate counts them, and bad settings are clean config errors."""

from __future__ import annotations

import numpy as np
import pytest

from init_lab.catalog.errors import ConfigError
from init_lab.config.grid import expand
from init_lab.config.loading import config_from_text
from init_lab.run.sweep import resume_sweep, run_sweep

from .helpers import TINY, assert_clean_exit, epoch_values, invoke, read_csv, run_tables

# stem 16, then one block of two layers 16 → 12: its skip needs a projection (16 × 12)
RES = TINY.replace("hidden: [16, 16]", "hidden: [16, 16, 12]").replace(
    "initializer: [he_normal, zeros]", "initializer: [he_normal]")
NORMS = ["model.residual=true", "grid.normalization=[none, batchnorm, layernorm]"]


def test_residual_and_normalization_are_grid_axes_with_ids_and_columns(tmp_path):
    cfg = config_from_text(RES, overrides=["grid.residual=[false, true]", "grid.normalization=[none, batchnorm]"])
    specs = expand(cfg)
    assert [s.id for s in specs[:4]] == ["000_he_normal-relu-resFalse-none-s0", "001_he_normal-relu-resFalse-batchnorm-s0",
                                         "002_he_normal-relu-resTrue-none-s0", "003_he_normal-relu-resTrue-batchnorm-s0"]
    assert [(s.arch.residual, s.arch.normalization) for s in specs[:4]] == [
        (False, "none"), (False, "batchnorm"), (True, "none"), (True, "batchnorm")]
    assert specs[2].arch.blocks[0].projection == (16, 12)
    run = run_sweep(cfg, out=tmp_path)
    assert run.count("completed") == 8
    rows = read_csv(run.run_dir / "summary.csv")
    assert [(r["residual"], r["normalization"]) for r in rows[:4]] == [
        ("False", "none"), ("False", "batchnorm"), ("True", "none"), ("True", "batchnorm")]
    # parameters: Dense layers, the projection where the residual block changes width, BatchNorm's γ and β
    dense = 784 * 16 + 16 + 16 * 16 + 16 + 16 * 12 + 12 + 12 * 10 + 10
    assert [int(r["param_count"]) for r in rows[:4]] == [dense, dense + 2 * 44, dense + 192, dense + 192 + 2 * 44]


@pytest.mark.usefixtures("xla")
def test_packed_residual_normalized_trials_equal_their_keras_models_and_not_their_group(tmp_path):
    cfg = config_from_text(RES, overrides=NORMS)
    packed = run_sweep(cfg, out=tmp_path / "packed")
    assert {r.packed_with for r in packed.records} == {2}  # one group per normalization: relu and tanh pack
    single = run_sweep(cfg, out=tmp_path / "keras", pack=False)
    tp, ts = epoch_values(packed.run_dir), epoch_values(single.run_dir)
    assert tp.keys() == ts.keys() and len(tp) == 6
    for trial in tp:
        for rp, rs in zip(tp[trial], ts[trial], strict=True):
            for key in ("loss", "val_loss"):
                assert rp[key] == pytest.approx(rs[key], rel=1e-4), (trial, rp["epoch"], key)
    # normalization changes the computation (not one trial copied three times)
    assert len({tuple(r["loss"] for r in rows) for rows in tp.values()}) == 6
    # each trial alone, in a group of one (with its XLA ghost), gets the same bits as in its group of two
    whole = run_tables(packed.run_dir)
    for trial, overrides in [("001_he_normal-relu-batchnorm-s0", ["grid.normalization=[batchnorm]", "grid.activation=[relu]"]),
                             ("005_he_normal-tanh-layernorm-s0", ["grid.normalization=[layernorm]", "grid.activation=[tanh]"])]:
        alone = run_sweep(config_from_text(RES, overrides=NORMS + overrides), out=tmp_path / trial)
        assert alone.records[0].packed_with == 1
        (mine,) = [k for k in run_tables(alone.run_dir) if "/" not in k]
        tables = run_tables(alone.run_dir)
        for table in ("", "/layers", "/steps", "/step_layers", "/histograms"):
            assert tables[mine + table] == whole[trial + table], trial + table


@pytest.mark.parametrize("pack", [True, False], ids=["packed", "keras"])
def test_batchnorm_state_is_checkpointed_extension_equals_a_longer_run(tmp_path, pack):
    text = RES.replace("activation: [relu, tanh]", "activation: [relu]")
    over = ["model.residual=true", "model.normalization=batchnorm"]
    short = run_sweep(config_from_text(text, overrides=over), out=tmp_path / "short", pack=pack)
    extended = resume_sweep(short.run_dir, overrides=["training.epochs=4"], pack=pack)
    fresh = run_sweep(config_from_text(text, overrides=over + ["training.epochs=4"]), out=tmp_path / "fresh", pack=pack)
    assert extended.count("completed") == 1 and extended.records[0].epochs_run == 4
    assert run_tables(short.run_dir) == run_tables(fresh.run_dir)  # evaluation reads the restored moving averages
    assert [r.test_accuracy for r in extended.records] == [r.test_accuracy for r in fresh.records]


def test_a_lost_moving_average_would_show(tmp_path):
    """The check above can fail: the validation loss of a BatchNorm net depends on its moving averages."""
    from init_lab.engine.backend import tf
    from init_lab.engine.nets import PackedMLP

    spec = expand(config_from_text(RES, overrides=["model.residual=true", "model.normalization=batchnorm"]))[0]
    net = PackedMLP([spec], 784, 10)
    x = tf.random.stateless_uniform([64, 784], seed=[1, 2])
    y = tf.zeros([64], tf.int32)
    before = net.losses(x, y)[0].numpy()
    net.losses(x, y, training=True)  # a training pass moves the averages
    assert net.losses(x, y)[0].numpy() != before
    assert len(net.buffers) == 6 and all(b.shape[0] == net.n for b in net.buffers)


def test_memory_estimate_counts_projections_norm_parameters_and_moving_averages():
    from init_lab.engine.nets import build_keras_model
    from init_lab.run.memory import DataShape, estimate_group_bytes, layer_sizes

    data = DataShape((784,), 10, 480, 120, 200)
    plain, bn = (expand(config_from_text(RES, overrides=o))[0] for o in
                 (["model.residual=true"], ["model.residual=true", "model.normalization=batchnorm"]))
    model = build_keras_model(bn.arch, (784,), 10, bn.initializer, bn.activation, bn.seed)
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    assert layer_sizes(bn.arch, (784,), 10).params == trainable
    assert sum(int(np.prod(v.shape)) for v in model.non_trainable_variables) == bn.arch.norm_buffers == 88
    grown = estimate_group_bytes([bn], data) - estimate_group_bytes([plain], data)
    assert grown >= 4 * (2 * 88 * 3 + 3 * 88)  # γ, β with gradients and slots, and the moving averages


@pytest.mark.parametrize("overrides,message", [
    (["model.residual=true", "model.hidden=[16, 16]"], "needs 1 + 2·L hidden layers"),
    (["model.residual=true", "model.block_depth=3"], "try depth 4"),
    (["grid.normalization=[batchnrm]"], "Did you mean 'batchnorm'"),
    (["model.block_depth=3"], "needs model.residual: true"),
    (["model.residual=true", "grid.initializer=[lsuv]"], "initializer 'lsuv' rescales a plain network"),
    (["model.kind=mnist_cnn", "model.hidden=null", "grid.normalization=[batchnorm]"],
     "model 'mnist_cnn' is a fixed preset without residual blocks or normalization"),
])
def test_bad_settings_are_clean_config_errors(overrides, message, write_config):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("+", r"\+").replace("·", ".")):
        config_from_text(RES, overrides=overrides)
    result = invoke("validate", write_config(RES), *[a for o in overrides for a in ("--set", o)])
    assert_clean_exit(result, 1)
    assert message in result.output


def test_cli_sweep_report_and_api_frames_carry_both_axes(tmp_path, write_config):
    from init_lab import api

    cfg = write_config(RES.replace("activation: [relu, tanh]", "activation: [relu]"))
    sets = ["--set", "training.epochs=1", "--set", "grid.residual=[false, true]", "--set",
            "grid.normalization=[none, layernorm]"]
    assert_clean_exit(invoke("sweep", cfg, "--out", tmp_path / "runs", *sets), 0)
    assert_clean_exit(invoke("report", tmp_path / "runs" / "latest", "--format", "table"), 0)
    run = api.load_run(tmp_path / "runs" / "latest")
    assert run.swept == ["residual", "normalization"]
    assert run.summary[["residual", "normalization"]].values.tolist() == [
        [False, "none"], [False, "layernorm"], [True, "none"], [True, "layernorm"]]
    assert set(run.layers.groupby(["residual", "normalization"]).groups) == {
        (False, "none"), (False, "layernorm"), (True, "none"), (True, "layernorm")}
    # a layer's pre-activation is after the normalization: LayerNorm's has mean 0 and std ≈ 1 per example at init
    normed = run.layers[(run.layers["normalization"] == "layernorm") & (run.layers["epoch"] == 0)]
    assert np.allclose(normed["pre_std"], 1.0, atol=0.05)


@pytest.mark.slow
@pytest.mark.usefixtures("xla")
def test_sigkill_after_a_checkpoint_resumes_a_batchnorm_group_exactly(tmp_path, write_config):
    from init_lab.run.store import resolve_run_dir

    from .helpers import cli

    text = RES.replace("epochs: 2", "epochs: 3")
    over = ["model.residual=true", "model.normalization=batchnorm"]
    reference = run_sweep(config_from_text(text, overrides=over, default_name="cfg"), out=tmp_path / "ref")
    cfg = write_config(text)
    sets = [a for o in over for a in ("--set", o)]
    killed = cli("sweep", cfg, "--out", tmp_path / "runs", *sets, env={"INITLAB_FAULT_KILL_AFTER_CHECKPOINT": "2"})
    assert killed.returncode == -9, killed.stderr
    resumed = cli("sweep", "--resume", "latest", "--out", tmp_path / "runs")
    assert resumed.returncode == 0, resumed.stderr
    assert "continuing after epoch 2" in resumed.stdout
    assert run_tables(resolve_run_dir(tmp_path / "runs" / "latest")) == run_tables(reference.run_dir)
