"""Fixup and SkipInit (issue 21 c): a residual net that computes its skip path exactly at init (every branch's output
0), Fixup's per-layer scales, both model classes alike, packing apart from other initializers, and clean errors."""

from __future__ import annotations

import numpy as np
import pytest

from init_lab.catalog.errors import ConfigError
from init_lab.catalog.models import fixup_multiplier
from init_lab.config.grid import expand
from init_lab.config.loading import config_from_text
from init_lab.run.plan import plan_groups
from init_lab.run.sweep import run_sweep

from .helpers import assert_clean_exit, epoch_values, invoke
from .test_configurable_cnn import CNN
from .test_residual import RES

# stem, then L = 3 blocks of m = 2: Fixup's branch scale L^(−1/(2m−2)) = 3^(−1/2)
DEEP = RES.replace("hidden: [16, 16, 12]", "hidden: [16, 16, 16, 16, 16, 16, 16]")
FIXUP = ["model.residual=true", "grid.initializer=[fixup, {name: skipinit, base: he_normal}]"]


def test_fixup_scales_follow_the_paper():
    arch = expand(config_from_text(DEEP, overrides=FIXUP))[0].arch
    assert [fixup_multiplier(arch, k) for k in range(8)] == [1.0] + [3 ** -0.5, 0.0] * 3 + [0.0]  # output: 0
    three = expand(config_from_text(DEEP, overrides=FIXUP + ["model.block_depth=3"]))[0].arch  # L = 2, m = 3
    assert [fixup_multiplier(three, k) for k in range(8)] == [1.0] + [2 ** -0.25] * 2 + [0.0] + [2 ** -0.25] * 2 + [0.0, 0.0]


@pytest.mark.parametrize("init", ["fixup", "{name: skipinit, base: glorot_uniform}"])
def test_the_net_computes_its_skip_path_exactly_at_init(init):
    from init_lab.engine.backend import keras, tf
    from init_lab.engine.nets import PackedMLP, build_keras_model

    specs = expand(config_from_text(DEEP, overrides=["model.residual=true", f"grid.initializer=[{init}]",
                                                     "grid.activation=[relu, tanh]"]))
    x = tf.random.stateless_uniform([32, 784], seed=[3, 4])
    packed = PackedMLP(specs, 784, 10)
    pres = [p.numpy() for p in packed.forward(x)[0]]
    for b in packed.arch.blocks:  # every block's last layer = its input, exactly: the branch adds 0
        np.testing.assert_array_equal(pres[b.last], pres[b.first - 1])
    for spec in specs:
        model = build_keras_model(spec.arch, (784,), 10, spec.initializer, spec.activation, spec.seed)
        sub = keras.Model(model.inputs, [model.get_layer(f"add_{b.index}").output for b in spec.arch.blocks]
                          + [model.get_layer("dense_0").output])
        outs = [np.asarray(o) for o in sub([x])]
        for out in outs[:-1]:
            np.testing.assert_array_equal(out, outs[-1])  # every block passes the stem's output on unchanged
        if spec.initializer.name == "fixup":  # the classifier starts at 0: uniform predictions, loss ln 10
            np.testing.assert_array_equal(np.asarray(model(x)), 0.0)
        else:
            assert np.abs(np.asarray(model(x))).max() > 0


def test_fixup_and_skipinit_train_alike_in_both_classes_and_pack_apart(tmp_path):
    cfg = config_from_text(DEEP, overrides=["model.residual=true", "grid.activation=[relu]",
                                            "grid.initializer=[fixup, skipinit, he_normal]"])
    assert sorted(len(g.specs) for g in plan_groups(expand(cfg))[0]) == [1, 1, 1]  # each kind packs with its own
    packed = run_sweep(cfg, out=tmp_path / "packed")
    single = run_sweep(cfg, out=tmp_path / "keras", pack=False)
    assert packed.count("completed") == 3
    tp, ts = epoch_values(packed.run_dir), epoch_values(single.run_dir)
    for trial in tp:
        for rp, rs in zip(tp[trial], ts[trial], strict=True):
            assert rp["loss"] == pytest.approx(rs["loss"], rel=1e-4), (trial, rp["epoch"])
    fixup = next(r for r in packed.records if "fixup" in r.trial_id)
    assert tp[fixup.trial_id][0]["loss"] == pytest.approx(np.log(10), rel=1e-5)  # zero classifier: ln 10 (float32 sums)
    dense = 784 * 16 + 16 + 6 * (16 * 16 + 16) + 16 * 10 + 10
    assert {r.trial_id.split("-")[0][4:]: r.param_count for r in packed.records} == {
        "fixup": dense + 3 + 6, "skipinit": dense + 3, "he_normal": dense}  # gates, and Fixup's scalar biases
    assert [r.param_count for r in single.records] == [r.param_count for r in packed.records]
    # the gates train: SkipInit's α leaves 0 (its loss moves away from the skip-only net's)
    assert tp[next(r.trial_id for r in packed.records if "skipinit" in r.trial_id)][-1]["loss"] < \
        tp[next(r.trial_id for r in packed.records if "skipinit" in r.trial_id)][0]["loss"]


def test_a_residual_cnn_takes_them_too(tmp_path):
    cfg = config_from_text(CNN, overrides=["model.residual=true", "model.pool_every=[1]",
                                           "grid.initializer=[fixup, skipinit]", "grid.activation=[relu]",
                                           "training.epochs=1"])
    run = run_sweep(cfg, out=tmp_path)
    assert run.count("completed") == 2


@pytest.mark.parametrize("overrides,message", [
    (["grid.initializer=[fixup]"], "initializer 'fixup' initializes residual branches; mlp[3x16] has none"),
    (["grid.initializer=[skipinit]"], "initializer 'skipinit' initializes residual branches"),
    (["model.residual=true", "model.hidden=[16, 16]", "model.block_depth=1", "grid.initializer=[fixup]"],
     "it needs block_depth m ≥ 2"),
    (["model.residual=true", "model.normalization=batchnorm", "grid.initializer=[fixup]"],
     "use normalization: none, or skipinit"),
    (["grid.initializer=[{name: skipinit, base: he_nrmal}]"], "Did you mean 'he_normal'"),
])
def test_clean_errors(overrides, message, write_config):
    text = RES.replace("hidden: [16, 16, 12]", "hidden: [16, 16, 16]")
    with pytest.raises(ConfigError):
        config_from_text(text, overrides=overrides)
    result = invoke("validate", write_config(text), *[a for o in overrides for a in ("--set", o)])
    assert_clean_exit(result, 1)
    assert message in result.output


@pytest.mark.parametrize("pack", [True, False], ids=["packed", "keras"])
def test_their_scalars_are_checkpointed_extension_equals_a_longer_run(tmp_path, pack):
    from init_lab.run.sweep import resume_sweep

    from .helpers import run_tables

    over = ["model.residual=true", "grid.initializer=[fixup]", "grid.activation=[tanh]"]
    short = run_sweep(config_from_text(DEEP, overrides=over), out=tmp_path / "short", pack=pack)
    extended = resume_sweep(short.run_dir, overrides=["training.epochs=3"], pack=pack)
    fresh = run_sweep(config_from_text(DEEP, overrides=over + ["training.epochs=3"]), out=tmp_path / "fresh", pack=pack)
    assert extended.records[0].epochs_run == 3
    assert run_tables(short.run_dir) == run_tables(fresh.run_dir)
