"""The MNIST CNN end to end on tiny data: it trains, records per-layer diagnostics and histograms for its
conv and dense layers, checkpoints and resumes (tables identical to an uninterrupted run), and reports."""

from __future__ import annotations

import json

import numpy as np
import pytest

from init_lab.config.loading import config_from_text
from init_lab.run.sweep import resume_sweep, run_sweep

from .helpers import assert_clean_exit, copy_run, invoke, read_csv, run_tables

pytestmark = pytest.mark.slow  # convolutions on CPU: the slowest tiny trials of the suite

CNN = """
name: cnn
dataset: {name: synthetic, synthetic_train: 250, synthetic_test: 50, validation_split: 0.2}
model: {kind: mnist_cnn}
grid:
  initializer: [he_normal, glorot_uniform]
  activation: [relu]
training: {epochs: 2, batch_size: 50, optimizer: adam, learning_rate: 0.003, log_every_steps: 2}
device: cpu
"""
HIDDEN = 4  # conv 32, conv 64, conv 64, dense 64: the layers the grid's activation applies to


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory):
    return run_sweep(config_from_text(CNN), out=tmp_path_factory.mktemp("cnn")).run_dir


def test_a_cnn_trial_trains_and_records_every_file(cnn_run):
    summary = read_csv(cnn_run / "summary.csv")
    assert [r["status"] for r in summary] == ["completed", "completed"]
    for row in summary:
        trial = cnn_run / "trials" / row["trial_id"]
        assert {p.name for p in trial.iterdir()} == {"trial.json", "epochs.csv", "layers.csv", "steps.csv",
                                                    "step_layers.csv", "histograms.npz"}
        epochs = read_csv(trial / "epochs.csv")
        assert [int(e["epoch"]) for e in epochs] == [0, 1, 2]
        assert all(np.isfinite(float(e["loss"])) for e in epochs)
        record = json.loads((trial / "trial.json").read_text())
        # Conv(3·3·1·32) + Conv(3·3·32·64) + Conv(3·3·64·64) + Dense(3·3·64 → 64) + Dense(64 → 10), with biases
        assert record["param_count"] == 320 + 18_496 + 36_928 + 36_928 + 650
        assert record["test_accuracy"] is not None
        layers = read_csv(trial / "layers.csv")
        assert [(int(r["epoch"]), int(r["layer"])) for r in layers] == [(e, i) for e in range(3) for i in range(HIDDEN)]
        assert all(float(r["pre_std"]) > 0 and float(r["grad_kernel_rms"]) > 0 for r in layers)
        dead = [float(r["dead_frac"]) for r in layers]
        assert all(0 <= d <= 1 for d in dead)  # per channel in conv layers
        with np.load(trial / "histograms.npz") as h:
            assert h["epoch_act"].shape[:2] == (3, HIDDEN) and h["epoch_grad"].shape[:2] == (3, HIDDEN)
            assert (h["epoch_act"].sum(axis=-1) > 0).all()  # every snapshot of every layer counted something
        assert read_csv(trial / "step_layers.csv")


def test_a_cnn_sweep_extended_equals_a_longer_fresh_one(cnn_run, tmp_path):
    """The CNN's checkpoint (Keras weights and optimizer state) restores exactly: 2 epochs then 1 more = 3."""
    short = copy_run(cnn_run, tmp_path / "short")
    extended = resume_sweep(short, overrides=["training.epochs=3"])
    assert extended.count("completed") == 2 and all(r.epochs_run == 3 for r in extended.records)
    manifest = json.loads((short / "manifest.json").read_text())
    assert set(manifest["execution"]["resumed_groups"].values()) == {2}  # continued after epoch 2, not retrained
    fresh = run_sweep(config_from_text(CNN, overrides=["training.epochs=3"]), out=tmp_path / "fresh")
    assert run_tables(short) == run_tables(fresh.run_dir)


def test_a_cnn_run_reports(cnn_run, tmp_path):
    run = copy_run(cnn_run, tmp_path / "run")
    result = invoke("report", run)
    assert_clean_exit(result, 0)
    assert "he_normal" in result.output and "glorot_uniform" in result.output
    files = {p.name for p in (run / "report").iterdir()}
    assert {"report.html", "report.md", "leaderboard.csv", "heatmap.png", "learning_curves.png"} <= files
    assert "conv" in (run / "report" / "report.md").read_text().lower() or "cnn" in (run / "report" / "report.md").read_text()
