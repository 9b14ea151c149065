"""Exit status that tells the truth (issue 25): 0 when every trial completed or diverged (a divergence is a
result), 1 when any failed (an error), the failures listed at the end; the API's Run says the same."""

from __future__ import annotations

import pytest

import init_lab
from init_lab.catalog.errors import TrialsFailedError

from .helpers import TINY, assert_clean_exit, cli, invoke

# he_normal trains; N(0, 50²) weights through linear units blow up under SGD at 0.1: NaN in epoch 1
MIXED = """
name: mixed
dataset: {name: synthetic, synthetic_train: 600, synthetic_test: 200, validation_split: 0.2}
model: {kind: mlp, hidden: [16, 16]}
grid:
  initializer: [he_normal, {name: random_normal, stddev: 50}]
  activation: [linear]
training: {epochs: 2, batch_size: 50, optimizer: sgd, learning_rate: 0.1}
device: cpu
"""
TWO = TINY.replace("initializer: [he_normal, zeros]", "initializer: [he_normal]")  # 000 trains, 001 fails below


@pytest.fixture
def one_trial_fails(monkeypatch):
    """The second trial of the grid raises as its network is built (the others train): a bug, or bad data."""
    from init_lab.engine import programs

    real = programs.build_net

    def flaky(kind, specs, *args, **kwargs):
        if len(specs) > 1:
            raise ValueError("packed group refuses")  # so its trials train one at a time
        if specs[0].index == 1:
            raise ValueError("boom: a bad shape")
        return real(kind, specs, *args, **kwargs)

    monkeypatch.setattr(programs, "build_net", flaky)


def test_completed_and_diverged_trials_exit_0(write_config, tmp_path):
    result = invoke("sweep", write_config(MIXED), "--out", tmp_path / "runs")
    assert_clean_exit(result, 0)
    assert "2 trials (1 completed, 1 diverged)" in result.output
    assert "failed" not in result.stderr


def test_a_failed_trial_exits_1_listing_the_failures_after_the_leaderboard(write_config, tmp_path, one_trial_fails):
    result = invoke("sweep", write_config(TWO), "--out", tmp_path / "runs")
    assert_clean_exit(result, 1)
    assert "2 trials (1 completed, 1 failed)" in result.output  # the sweep went on and printed its leaderboard
    assert "1 of 2 trials failed:" in result.stderr
    assert "001_he_normal-tanh-s0: ValueError: boom: a bad shape" in result.stderr
    assert "--retry-failed" in result.stderr
    run = init_lab.load_run(tmp_path / "runs" / "latest")
    assert list(run.summary["status"]) == ["completed", "failed"]


def test_a_resume_that_keeps_a_failure_still_exits_1_and_retrying_it_successfully_exits_0(
        write_config, tmp_path, monkeypatch, one_trial_fails):
    from init_lab.engine import programs

    out = tmp_path / "runs"
    assert invoke("sweep", write_config(TWO), "--out", out).exit_code == 1
    kept = invoke("sweep", "--resume", "latest", "--out", out)
    assert_clean_exit(kept, 1)
    assert "001_he_normal-tanh-s0" in kept.stderr
    monkeypatch.undo()  # the cause is fixed
    monkeypatch.setattr(programs, "build_net", programs.build_net)
    retried = invoke("sweep", "--resume", "latest", "--out", out, "--retry-failed")
    assert_clean_exit(retried, 0)


def test_the_api_says_what_failed_and_raises_on_request(tmp_path, one_trial_fails):
    run = init_lab.sweep(TWO_DICT, out=tmp_path / "a", progress=False)
    assert not run.ok
    assert list(run.failures["trial_id"]) == ["001_he_normal-tanh-s0"]
    assert run.failures["error"][0] == "ValueError: boom: a bad shape"
    assert {"initializer", "activation", "seed"} <= set(run.failures.columns)
    with pytest.raises(TrialsFailedError, match="1 of 2 trials failed") as info:
        init_lab.sweep(TWO_DICT, out=tmp_path / "b", progress=False, raise_on_failure=True)
    assert info.value.failures == {"001_he_normal-tanh-s0": "ValueError: boom: a bad shape"}
    assert init_lab.load_run(info.value.run_dir).summary["status"].tolist() == ["completed", "failed"]  # whole run


def test_the_api_counts_a_divergence_as_a_result(tmp_path):
    import yaml

    run = init_lab.sweep(yaml.safe_load(MIXED), out=tmp_path, progress=False, raise_on_failure=True)
    assert run.ok and run.failures.empty
    assert sorted(run.summary["status"]) == ["completed", "diverged"]


@pytest.mark.slow
def test_every_trial_failing_in_a_real_process_exits_1(write_config, tmp_path):
    """The issue's case: every trial out of memory (here injected), and the process must not exit 0."""
    result = cli("sweep", write_config(TINY), "--out", tmp_path / "runs", env={"INITLAB_FAULT_OOM_ABOVE": "0"},
                 timeout=600)
    assert result.returncode == 1, result.stderr
    assert "4 of 4 trials failed:" in result.stderr and "MemoryError: injected" in result.stderr
    assert "out of memory with this trial alone" in result.stderr and "Traceback" not in result.stderr


TWO_DICT = {
    "name": "two",
    "dataset": {"name": "synthetic", "synthetic_train": 600, "synthetic_test": 200, "validation_split": 0.2},
    "model": {"kind": "mlp", "hidden": [16, 16]},
    "grid": {"initializer": ["he_normal"], "activation": ["relu", "tanh"]},
    "training": {"epochs": 2, "batch_size": 50, "optimizer": "adam", "learning_rate": 0.01},
    "device": "cpu",
}
