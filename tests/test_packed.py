"""Packed training is the same training: same initial weights, same batches, same numbers; no coupling."""

from __future__ import annotations

import numpy as np
import pytest

from init_lab.config.grid import expand
from init_lab.config.loading import config_from_text
from init_lab.engine.nets import PackedMLP
from init_lab.run.plan import plan_groups
from init_lab.run.sweep import run_sweep

from .helpers import epoch_values, read_csv, run_tables

pytestmark = pytest.mark.usefixtures("xla")  # the production step: packed vs one-model, groups, seeds, rates

GRID = """
name: packed
dataset: {name: synthetic, synthetic_train: 800, synthetic_test: 200, validation_split: 0.25}
model: {kind: mlp, hidden: [24, 16]}
grid:
  initializer: [he_normal, {name: random_normal, stddev: 1.0}, orthogonal]
  activation: [relu, tanh, {name: leaky_relu, alpha: 0.2}, elu, gelu, selu, sigmoid, swish]
training: {epochs: 3, batch_size: 64, optimizer: adam, learning_rate: 0.003}
device: cpu
"""


def test_groups_follow_shape_and_settings_not_seed_or_learning_rate():
    cfg = config_from_text(GRID, overrides=["grid.seed=[0, 1]", "grid.activation=[relu, prelu]",
                                            "grid.learning_rate=[0.003, 0.01]"])
    groups = [g.specs for g in plan_groups(expand(cfg))[0]]
    assert [len(g) for g in groups] == [24]  # seeds and learning rates pack: each trial its own batches and rate
    assert {s.seed for s in groups[0]} == {0, 1} and {s.train.learning_rate for s in groups[0]} == {0.003, 0.01}
    apart = config_from_text(GRID, overrides=["grid.batch_size=[32, 64]", "grid.depth=[1, 2]"])
    assert sorted(len(g.specs) for g in plan_groups(expand(apart))[0]) == [24] * 4  # shapes and batch sizes do not
    assert [len(g.specs) for g in plan_groups(expand(cfg), pack=False)[0]] == [1] * 24


def test_same_initial_weights_as_one_model_per_trial():
    keras = pytest.importorskip("keras")  # noqa: F841
    from init_lab.engine.nets import build_keras_model as build_model

    specs = expand(config_from_text(GRID))[:6]
    packed = PackedMLP(specs, 784, 10)
    for t, spec in enumerate(packed.specs):
        single = build_model(spec.arch, (784,), 10, spec.initializer, spec.activation, spec.seed).get_weights()
        kernels = [w for w in single if w.ndim == 2]
        for layer in range(3):
            np.testing.assert_array_equal(packed.ws[layer].numpy()[t], kernels[layer])


def test_trials_share_a_kernel_draw_only_where_it_is_the_same_draw():
    """A group draws a kernel once for trials of one initializer and seed (whatever their activations), but an
    activation-matched initializer's gain differs by activation: each trial's kernels are those it gets alone."""
    cfg = config_from_text(GRID, overrides=["grid.initializer=[he_normal, matched]", "grid.activation=[relu, tanh]",
                                            "grid.seed=[0, 1]"])
    specs = expand(cfg)
    packed = PackedMLP(specs, 784, 10)
    for t, spec in enumerate(packed.specs):
        alone = PackedMLP([spec], 784, 10)
        for layer in range(3):
            np.testing.assert_array_equal(packed.ws[layer].numpy()[t], alone.ws[layer].numpy()[0])
    by = {(s.initializer.name, s.activation.name, s.seed): t for t, s in enumerate(packed.specs)}
    w0 = packed.ws[0].numpy()
    np.testing.assert_array_equal(w0[by["he_normal", "relu", 0]], w0[by["he_normal", "tanh", 0]])
    assert not np.array_equal(w0[by["matched", "relu", 0]], w0[by["matched", "tanh", 0]])
    assert not np.array_equal(w0[by["he_normal", "relu", 0]], w0[by["he_normal", "relu", 1]])


@pytest.mark.slow
def test_packed_epochs_equal_one_model_runs(reference_run):
    packed, single = reference_run(GRID), reference_run(GRID, pack=False)
    records = {run: read_csv(run / "summary.csv") for run in (packed, single)}
    assert [r["status"] for r in records[packed]] == [r["status"] for r in records[single]] == ["completed"] * 24
    tp, ts = epoch_values(packed), epoch_values(single)
    assert tp.keys() == ts.keys()
    for trial in tp:
        for rp, rs in zip(tp[trial], ts[trial], strict=True):
            for key in ("loss", "val_loss"):
                # N(0,1) weights put some trials in a chaotic regime (loss ≈ 30) where float rounding
                # differences between the two implementations grow through training: a wider band there
                rel = 1e-4 if rs[key] < 10 else 1e-3
                assert rp[key] == pytest.approx(rs[key], rel=rel, abs=1e-6), (trial, rp["epoch"], key)
            for key in ("accuracy", "val_accuracy"):
                assert rp[key] == pytest.approx(rs[key], abs=0.005), (trial, rp["epoch"], key)
    acc_p = np.array([float(r["test_accuracy"]) for r in records[packed]])
    acc_s = np.array([float(r["test_accuracy"]) for r in records[single]])
    assert np.abs(acc_p - acc_s).mean() < 0.002


def test_a_diverging_trial_does_not_change_the_others(tmp_path):
    base = GRID.replace("optimizer: adam, learning_rate: 0.003", "optimizer: sgd, learning_rate: 0.5")
    calm = config_from_text(base, overrides=["grid.activation=[relu]",
                                             "grid.initializer=[he_normal, glorot_uniform, {name: random_normal, stddev: 1.0}]"])
    wild = config_from_text(base, overrides=["grid.activation=[relu]",
                                             "grid.initializer=[he_normal, glorot_uniform, {name: random_normal, stddev: 1.0e+6}]"])
    a = run_sweep(calm, out=tmp_path / "calm")
    b = run_sweep(wild, out=tmp_path / "wild")
    assert b.records[2].status == "diverged" and a.records[2].status != "diverged"
    assert b.records[0].packed_with == 3
    ta, tb = run_tables(a.run_dir), run_tables(b.run_dir)
    for trial in ("000_he_normal-relu-s0", "001_glorot_uniform-relu-s0"):
        for table in ("", "/layers", "/steps", "/step_layers", "/histograms"):
            assert ta[trial + table] == tb[trial + table], trial + table  # bit for bit
    assert [r.test_accuracy for r in a.records[:2]] == [r.test_accuracy for r in b.records[:2]]


def test_a_trial_gets_the_same_bits_whatever_group_it_trains_in(tmp_path, reference_run):
    """Resume regroups the unfinished trials: their numbers must not depend on the group."""
    whole = reference_run(GRID)
    part = run_sweep(config_from_text(GRID, overrides=["grid.initializer=[he_normal]",
                                                       "grid.activation=[relu, tanh, elu]"]), out=tmp_path / "part")
    tw, tp = run_tables(whole), run_tables(part.run_dir)
    assert read_csv(whole / "summary.csv")[0]["packed_with"] == "24" and part.records[0].packed_with == 3
    for mine, theirs in [("000_he_normal-relu-s0", "000_he_normal-relu-s0"), ("001_he_normal-tanh-s0",
                         "001_he_normal-tanh-s0"), ("002_he_normal-elu-s0", "003_he_normal-elu-s0")]:
        for table in ("", "/layers", "/steps", "/step_layers", "/histograms"):
            assert tp[mine + table] == tw[theirs + table], mine + table


MIXED = GRID.replace("activation: [relu, tanh, {name: leaky_relu, alpha: 0.2}, elu, gelu, selu, sigmoid, swish]",
                     "activation: [relu, {name: leaky_relu, alpha: 0.2}, {name: elu, alpha: 0.5}, prelu]")


@pytest.mark.slow
def test_learned_slopes_pack_without_touching_their_neighbours(tmp_path):
    """PReLU's slopes belong to the PReLU trials alone: leaky ReLU / ELU neighbours keep their own α, every
    trial gets the same bits as alone, and packed PReLU equals the Keras PReLU model."""
    cfg = config_from_text(MIXED, overrides=["grid.initializer=[he_normal]"])
    mixed = run_sweep(cfg, out=tmp_path / "mixed")
    assert mixed.records[0].packed_with == 4 and mixed.count("completed") == 4
    tm = epoch_values(mixed.run_dir)
    for i, act in enumerate(["relu", "{name: leaky_relu, alpha: 0.2}", "{name: elu, alpha: 0.5}", "prelu"]):
        alone = run_sweep(config_from_text(MIXED, overrides=["grid.initializer=[he_normal]", f"grid.activation=[{act}]"]),
                          out=tmp_path / f"alone{i}")
        (trial,) = epoch_values(alone.run_dir).values()
        assert trial == tm[mixed.records[i].trial_id], act
    keras_prelu = run_sweep(config_from_text(MIXED, overrides=["grid.initializer=[he_normal]", "grid.activation=[prelu]"]),
                            out=tmp_path / "keras", pack=False)
    (reference,) = epoch_values(keras_prelu.run_dir).values()
    for rp, rk in zip(tm[mixed.records[3].trial_id], reference, strict=True):
        assert rp["loss"] == pytest.approx(rk["loss"], rel=1e-4)


SEEDS_RATES = GRID.replace("initializer: [he_normal, {name: random_normal, stddev: 1.0}, orthogonal]",
                           "initializer: [he_normal, orthogonal]\n  seed: [0, 1]\n  learning_rate: [0.003, 0.02]")


@pytest.mark.slow
def test_packed_across_seeds_and_learning_rates_equals_one_model_runs(tmp_path):
    """One group holds every seed and learning rate; each trial equals its Keras model trained alone
    (per-epoch losses within 1e-4 relative) and its own group of one, bit for bit."""
    cfg = config_from_text(SEEDS_RATES, overrides=["grid.activation=[relu, tanh, elu]"])
    packed = run_sweep(cfg, out=tmp_path / "packed")
    assert {r.packed_with for r in packed.records} == {24}
    single = run_sweep(cfg, out=tmp_path / "single", pack=False)
    tp, ts = epoch_values(packed.run_dir), epoch_values(single.run_dir)
    for trial in tp:
        for rp, rs in zip(tp[trial], ts[trial], strict=True):
            assert rp["learning_rate"] == rs["learning_rate"]
            for key in ("loss", "val_loss"):
                assert rp[key] == pytest.approx(rs[key], rel=1e-4), (trial, rp["epoch"], key)
    # different seeds and rates really train differently (not one trial copied 8 times)
    losses = {tuple(r["loss"] for r in rows) for trial, rows in tp.items() if "he_normal-relu" in trial}
    assert len(losses) == 4
    for trial, overrides in [("he_normal-relu-lr0.02-s1", ["grid.activation=[relu]"]),
                             ("orthogonal-elu-lr0.003-s0", ["grid.activation=[elu]"])]:
        init = trial.split("-")[0]
        lr, seed = trial.split("-lr")[1].split("-s")
        alone = run_sweep(config_from_text(GRID, overrides=overrides + [f"grid.initializer=[{init}]",
                                                                         f"training.learning_rate={lr}",
                                                                         f"grid.seed=[{seed}]"]),
                          out=tmp_path / trial)
        (rows,) = epoch_values(alone.run_dir).values()
        (packed_rows,) = [v for k, v in tp.items() if k.endswith(trial)]
        assert rows == packed_rows, trial  # bit for bit: the group does not matter


@pytest.mark.parametrize("seeds, slices", [([3, 5, 3, 5, 7], 5), ([4], 2), ([1, 1, 1], 3), ([0, 1, 2], 3)])
def test_each_trial_gets_its_own_seeds_batch_rows_read_once_per_seed(seeds, slices):
    """The step's batch gather: trials sharing a seed share their batch (read once, then copied); the ghost slice of
    a lone trial takes the first trial's; each slice's examples and labels are those its own indices name."""
    from init_lab.engine.backend import tf
    from init_lab.engine.steps import _batch_gather

    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((40, 3)).astype(np.float32))
    y = tf.constant(np.arange(40, dtype=np.int32))
    per_seed = {seed: rng.permutation(40)[:6] for seed in set(seeds)}
    owned = seeds + seeds[:1] * (slices - len(seeds))
    idx = np.stack([per_seed[seed] for seed in owned]).astype(np.int32)
    xb, yb = _batch_gather(x, y, seeds, slices)(tf.constant(idx))
    np.testing.assert_array_equal(xb.numpy(), x.numpy()[idx])
    np.testing.assert_array_equal(yb.numpy(), idx)
