"""Training semantics: determinism, paired batch order, divergence, resume."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from init_lab.config.loading import config_from_text
from init_lab.run.sweep import resume_sweep, run_sweep

from .helpers import TINY, read_csv, run_tables


@pytest.mark.usefixtures("xla")
def test_same_config_and_seed_give_identical_tables(tmp_path):
    cfg = config_from_text(TINY)
    a = run_sweep(cfg, out=tmp_path / "a")
    b = run_sweep(cfg, out=tmp_path / "b")
    ta, tb = run_tables(a.run_dir), run_tables(b.run_dir)
    assert len(ta) == 4 * 5 and ta == tb  # 4 trials × 5 tables, byte-identical: every epoch, layer, step, histogram
    assert [r.test_accuracy for r in a.records] == [r.test_accuracy for r in b.records]


@pytest.mark.usefixtures("xla")
@pytest.mark.parametrize("batch", [50, 1000], ids=["last-batch-partial", "batch-over-twice-the-set"])
@pytest.mark.parametrize("norm, rel", [("none", 1e-5), ("batchnorm", 1e-3)])
def test_the_padded_last_batch_counts_its_own_examples_only(tmp_path, monkeypatch, batch, norm, rel):
    """XLA runs an epoch's last, partial batch padded to the batch size (one program a group); the graph loop without
    XLA runs it at its own size. Both train on the same examples: the same numbers, to float rounding — also where
    the batch is more than twice the training set (480 examples), so the padding repeats the order. (With BatchNorm,
    XLA and the graph differ by ≈ 1e-4 whether or not a batch is padded; padding counted in its statistics moves
    the losses by ≈ 1e-2.)"""
    from init_lab.catalog import defaults
    from init_lab.engine.nets import PackedMLP

    cfg = config_from_text(TINY, overrides=[f"training.batch_size={batch}", f"model.normalization={norm}"])
    padded = run_sweep(cfg, out=tmp_path / "xla")
    monkeypatch.setattr(defaults, "XLA", False)
    monkeypatch.setattr(PackedMLP, "jit", False)
    graph = run_sweep(cfg, out=tmp_path / "graph")
    assert padded.count("completed") == graph.count("completed") == 4
    for a, b in zip(padded.records, graph.records, strict=True):
        ea, eb = (read_csv(r.run_dir / "trials" / t.trial_id / "epochs.csv") for r, t in ((padded, a), (graph, b)))
        for ra, rb in zip(ea, eb, strict=True):
            for key in ("loss", "val_loss"):
                assert float(ra[key]) == pytest.approx(float(rb[key]), rel=rel), (a.trial_id, ra["epoch"], key)
            assert float(ra["accuracy"]) == pytest.approx(float(rb["accuracy"]), abs=2 / 480), (a.trial_id, ra["epoch"])


@pytest.mark.parametrize("kind", ["packed-xla", "packed-graph", "keras"])
def test_an_epochs_snapshot_keeps_its_values_while_training_goes_on(monkeypatch, kind):
    """A snapshot (the checkpoint's weights, optimizer slots and BatchNorm averages) holds read-only views of the
    variables' values, not copies: the later steps must leave an earlier epoch's snapshot as it was."""
    from init_lab.catalog.datasets import make_synthetic, prepare
    from init_lab.catalog.models import NetKind
    from init_lab.config.grid import expand
    from init_lab.engine.data import DeviceData, Recording
    from init_lab.engine.events import EpochEnded, Group
    from init_lab.engine.loop import run_group
    from init_lab.engine.nets import PackedMLP

    monkeypatch.setattr(PackedMLP, "jit", kind == "packed-xla")
    specs = expand(config_from_text(TINY, overrides=["training.epochs=3", "model.normalization=batchnorm"]))
    group = Group("g", NetKind.KERAS, specs[:1]) if kind == "keras" else Group("g", NetKind.PACKED_MLP, specs)
    data = DeviceData.from_prepared(prepare(make_synthetic(600, 200), "mlp", 0.2), Recording())
    snapshots = []  # (epoch, the state's arrays, their values when the epoch ended)
    for event in run_group(group, data):
        if isinstance(event, EpochEnded):
            for state in event.states.values():
                snapshots.append((event.epoch, state.arrays, [a.copy() for a in state.arrays]))
    assert {e for e, _, _ in snapshots} == {1, 2, 3} and len(snapshots) == 3 * len(group.specs)
    for epoch, arrays, values in snapshots:
        assert not any(a.flags.writeable for a in arrays)  # views, no copy made
        assert all(np.array_equal(a, v) for a, v in zip(arrays, values, strict=True)), epoch
    first, last = snapshots[0][1], snapshots[-len(group.specs)][1]  # one trial's epoch 1 and epoch 3
    assert not all(np.array_equal(a, b) for a, b in zip(first, last))  # training went on


def test_different_seeds_give_different_results(tmp_path):
    cfg = config_from_text(TINY, overrides=["grid.seed=[0, 1]", "grid.initializer=[he_normal]", "grid.activation=[relu]"])
    result = run_sweep(cfg, out=tmp_path)
    t = run_tables(result.run_dir)
    assert t["000_he_normal-relu-s0"] != t["001_he_normal-relu-s1"]
    assert t["000_he_normal-relu-s0/layers"] != t["001_he_normal-relu-s1/layers"]


def test_batch_order_depends_on_seed_and_epoch_only():
    from init_lab.engine.data import batch_order

    a = batch_order(0, 1, 100)
    assert np.array_equal(a, batch_order(0, 1, 100))
    assert not np.array_equal(a, batch_order(0, 2, 100)) and not np.array_equal(a, batch_order(1, 1, 100))
    assert sorted(a.tolist()) == list(range(100))


def test_diverging_trial_is_recorded_and_the_sweep_goes_on(tmp_path):
    cfg = config_from_text(
        TINY,
        overrides=[
            "grid.initializer=[he_normal]",
            "grid.activation=[relu]",
            "grid.learning_rate=[1.0e+12, 0.1]",
            "training.optimizer=sgd",
            "training.epochs=3",
        ],
    )
    result = run_sweep(cfg, out=tmp_path)
    by_lr = {r.spec["learning_rate"]: r for r in result.records}
    bad, good = by_lr[1e12], by_lr[0.1]
    assert bad.status == "diverged"
    assert bad.test_accuracy is None and bad.epochs_run >= 1
    assert good.status == "completed" and good.epochs_run == 3 and good.test_accuracy > 0.5
    rows = read_csv(result.run_dir / "trials" / bad.trial_id / "epochs.csv")
    assert len(rows) == bad.epochs_run + 1 and bad.epochs_run < 3  # epoch 0 (the init) first
    assert not math.isfinite(float(rows[-1]["loss"]))
    trial = json.loads((result.run_dir / "trials" / bad.trial_id / "trial.json").read_text())
    assert trial["status"] == "diverged"


def test_resume_keeps_finished_trials_and_reruns_the_rest(tmp_path):
    cfg = config_from_text(TINY)
    first = run_sweep(cfg, out=tmp_path)
    trial_dir = first.run_dir / "trials"
    keep = json.loads((trial_dir / "000_he_normal-relu-s0" / "trial.json").read_text())
    # simulate an interruption: one trial was running, one never started
    running = trial_dir / "001_he_normal-tanh-s0" / "trial.json"
    record = json.loads(running.read_text())
    running.write_text(json.dumps({**record, "status": "running"}))
    (trial_dir / "003_zeros-tanh-s0" / "trial.json").unlink()
    resumed = resume_sweep(first.run_dir)
    assert sorted(resumed.skipped) == ["000_he_normal-relu-s0", "002_zeros-relu-s0"]
    assert resumed.count("completed") == 4
    assert json.loads((trial_dir / "000_he_normal-relu-s0" / "trial.json").read_text()) == keep
    assert run_tables(first.run_dir)["001_he_normal-tanh-s0"] == run_tables(run_sweep(cfg, out=tmp_path / "x").run_dir)["001_he_normal-tanh-s0"]


def test_resume_refuses_a_different_config(tmp_path):
    from init_lab.catalog.errors import RunDirError

    cfg = config_from_text(TINY, overrides=["grid.initializer=[zeros]", "grid.activation=[relu]", "training.epochs=1"])
    first = run_sweep(cfg, out=tmp_path)
    other = config_from_text(TINY, overrides=["grid.initializer=[zeros]", "grid.activation=[relu]", "training.epochs=1",
                                              "training.learning_rate=0.02"])
    with pytest.raises(RunDirError, match="training.learning_rate: 0.01 in the run, 0.02 now"):
        resume_sweep(first.run_dir, other)
