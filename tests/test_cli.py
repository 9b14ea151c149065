"""The command line end to end, through typer's CliRunner, on tiny data."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from .helpers import REPO, TINY, assert_clean_exit, invoke, read_csv

EPOCH_COLUMNS = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds", "learning_rate"]


@pytest.mark.usefixtures("xla")  # the CLI as users run it
def test_smoke_sweep_writes_the_run_directory(tmp_path):
    out = tmp_path / "runs"
    result = invoke("sweep", REPO / "configs" / "smoke.yaml", "--out", out)
    assert result.exit_code == 0, result.output
    latest = out / "latest"
    assert latest.is_symlink()
    run = latest.resolve()
    assert run.parent == out.resolve() and run.name.endswith("_smoke")
    assert {p.name for p in run.iterdir()} == {"config.yaml", "manifest.json", "summary.csv", "trials", "checkpoints"}

    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["training"]["epochs"] == 2 and config["grid"]["initializer"] == ["he_normal", "zeros"]

    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["counts"] == {"completed": 4}
    assert manifest["environment"]["device"].startswith("cpu")
    assert manifest["environment"]["tensorflow"] and manifest["started_at"] and manifest["finished_at"]

    summary = read_csv(run / "summary.csv")
    assert [r["trial_id"] for r in summary] == [
        "000_he_normal-relu-s0", "001_he_normal-tanh-s0", "002_zeros-relu-s0", "003_zeros-tanh-s0"
    ]
    for row in summary:
        trial_dir = run / "trials" / row["trial_id"]
        assert {p.name for p in trial_dir.iterdir()} == {"trial.json", "epochs.csv", "layers.csv", "steps.csv",
                                                         "step_layers.csv", "histograms.npz"}
        epochs = read_csv(trial_dir / "epochs.csv")
        assert list(epochs[0]) == EPOCH_COLUMNS
        assert [int(e["epoch"]) for e in epochs] == [0, 1, 2]  # 0: the initial weights
        trial = json.loads((trial_dir / "trial.json").read_text())
        assert trial["status"] == "completed" == row["status"]
        for key in ("best_val_accuracy", "best_epoch", "final_val_accuracy", "test_loss", "test_accuracy",
                    "wall_seconds", "param_count"):
            assert trial[key] is not None, key
        assert trial["best_val_accuracy"] == max(float(e["val_accuracy"]) for e in epochs[1:])
        assert trial["initial_loss"] == float(epochs[0]["loss"])
        assert trial["param_count"] == 784 * 32 + 32 + 32 * 32 + 32 + 32 * 10 + 10
    by_id = {r["trial_id"]: r for r in summary}
    # he_normal learns; all-zero weights keep hidden units symmetric and stay near chance
    assert float(by_id["000_he_normal-relu-s0"]["best_val_accuracy"]) > 0.4
    assert float(by_id["002_zeros-relu-s0"]["best_val_accuracy"]) < 0.2
    assert "leaderboard" in result.output and "run directory" in result.output

    # a second sweep moves latest
    again = invoke("sweep", REPO / "configs" / "smoke.yaml", "--out", out, "--name", "second",
                   "--set", "training.epochs=1", "--set", "grid.initializer=[he_normal]")
    assert again.exit_code == 0, again.output
    assert os.readlink(latest).endswith("_second")


def test_validate_and_dry_run_print_the_plan(tmp_path):
    result = invoke("validate", REPO / "configs" / "quickstart.yaml")
    assert result.exit_code == 0, result.output
    assert "16 trials" in result.output and "015_he_normal-selu-s0" in result.output
    result = invoke("sweep", REPO / "configs" / "smoke.yaml", "--dry-run", "--out", tmp_path / "runs",
                    "--set", "grid.seed=[0,1,2]")
    assert result.exit_code == 0, result.output
    assert "12 trials" in result.output and "011_zeros-tanh-s2" in result.output
    assert not (tmp_path / "runs").exists(), "a dry run writes nothing"


@pytest.mark.parametrize("what, expected", [
    ("initializers", "√(6/(fan_in+fan_out))"),
    ("initializers", "σ = √(2/fan_in)"),
    ("activations", "alpha=0.01"),
    ("models", "Conv2D(32,3×3)"),
    ("datasets", "mnist_sample"),
    ("optimizers", "rmsprop"),
])
def test_list(what, expected):
    result = invoke("list", what)
    assert result.exit_code == 0 and expected in result.output


def test_bad_config_is_a_clean_error(write_config):
    path = write_config("grid:\n  initializer: [he_norml]\n  activation: [relu]\n")
    result = invoke("validate", path)
    assert_clean_exit(result, 1)
    assert "Did you mean 'he_normal'?" in result.stderr
    result = invoke("sweep", path)
    assert result.exit_code == 1 and "he_norml" in result.stderr


def test_usage_errors_exit_2(write_config):
    assert invoke("sweep", write_config(), "--device", "tpu").exit_code == 2
    assert invoke("list", "widgets").exit_code == 2
    assert invoke("sweep").exit_code == 2


def test_missing_data_stops_the_sweep_with_a_message(write_config, tmp_path):
    path = write_config("dataset: {name: mnist, path: /nonexistent/mnist}\n"
                        "grid: {initializer: [zeros], activation: [relu]}\ndevice: cpu\n")
    result = invoke("sweep", path, "--out", tmp_path / "runs")
    assert result.exit_code == 1
    assert "dataset 'mnist' not found" in result.stderr and "/nonexistent/mnist" in result.stderr
    # the data is checked before anything is written (issue 25): no run directory, no runs/latest
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_gpu_without_gpu_is_a_clear_error(write_config, tmp_path):
    tf = pytest.importorskip("tensorflow")
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    result = invoke("sweep", write_config(), "--device", "gpu", "--out", tmp_path / "runs")
    assert result.exit_code == 1
    assert "no GPU" in result.stderr and "initlab[gpu]" in result.stderr


def test_live_terminal_display_renders_a_sweep(tmp_path):
    """The rich display (used on terminals) drives a real sweep without errors and shows progress."""
    import io

    from rich.console import Console

    from init_lab.config.loading import config_from_text
    from init_lab.console.progress import RichObserver, make_observer
    from init_lab.run.sweep import run_sweep

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=140)
    observer = make_observer(console)
    assert isinstance(observer, RichObserver)
    result = run_sweep(config_from_text(TINY), out=tmp_path, observer=observer)
    assert result.count("completed") == 4
    text = buf.getvalue()
    assert "trials 4/4" in text and "000_he_normal-relu-s0" in text and "loss" in text


def test_sweep_end_and_report_rank_the_same_way_with_honest_times(tmp_path):
    """One ranking (report.tables.rank): the leaderboard printed at the end of a sweep lists the trials in the
    order `initlab report` does; packed trials show their group's wall time and size, to a tenth of a second."""
    from init_lab.report.run import load_run
    from init_lab.report.tables import leaderboard

    out = tmp_path / "runs"
    swept = invoke("sweep", REPO / "configs" / "smoke.yaml", "--out", out, "--set", "grid.seed=[0, 1]")
    assert swept.exit_code == 0, swept.output
    reported = invoke("report", out / "latest", "--no-files")
    def rows(text):  # (initializer, activation, seed) of each leaderboard row
        return [tuple(c.strip() for c in line.split("│")[2:5]) for line in text.splitlines() if line.startswith("│")]

    at_end = rows(swept.output)
    assert len(at_end) == 8 and at_end == rows(reported.output)[-8:]  # the report prints its pivot first
    board = leaderboard(load_run(out / "latest"))
    assert at_end == [(i, a, str(s)) for i, a, s in board[["initializer", "activation", "seed"]].values]
    assert (board["packed_with"] == 8).all()  # smoke: the 2 × 2 trials of both seeds train as one group
    assert (board["group_seconds"] == board["group_seconds"].round(1)).all()
    record = json.loads(next((out / "latest" / "trials").glob("*/trial.json")).read_text())
    assert record["wall_seconds"] == pytest.approx(record["group_seconds"] / record["packed_with"])


def test_plain_progress_numbers_trials_by_their_grid_place_and_reports_long_epochs():
    """In a log: [n/N] is the trial's id number + 1 of the whole grid, whatever order trials finish in; an epoch
    longer than PLAIN_PROGRESS_SECONDS prints how far it got (and a short one prints nothing extra)."""
    import io

    from rich.console import Console

    from init_lab.catalog import defaults
    from init_lab.catalog.status import TrialStatus
    from init_lab.config.grid import expand
    from init_lab.config.loading import config_from_text
    from init_lab.console.progress import PlainObserver
    from init_lab.runschema.records import EpochRow, TrialRecord

    specs = expand(config_from_text(TINY))  # 000_he_normal-relu … 003_zeros-tanh
    now = [0.0]
    buf = io.StringIO()
    log = PlainObserver(Console(file=buf, width=200), clock=lambda: now[0])
    log.sweep_start(REPO, specs, specs[2:], "cpu")
    log.group_start(specs[2:], 1, 2)
    log.progress(specs[2], 1, 3, 10, 2.0, 0.1)  # 0 s since the last line: nothing
    now[0] = defaults.PLAIN_PROGRESS_SECONDS + 1
    log.progress(specs[2], 1, 5, 10, 1.5, 0.4)
    log.epoch_end(specs[3], EpochRow(epoch=1, loss=1.2, accuracy=0.5, val_loss=1.1, val_accuracy=0.6, seconds=31.0))
    log.trial_end(specs[3], TrialRecord(specs[3].id, 3, TrialStatus.COMPLETED, best_val_accuracy=0.6, best_epoch=1,
                                        test_accuracy=0.6, wall_seconds=31.0))
    lines = buf.getvalue().splitlines()
    assert lines[1].startswith("training 2 trials packed together, 002_zeros-relu-s0 … 003_zeros-tanh-s0")
    assert [line for line in lines if "step" in line] == [
        "  … group of 002_zeros-relu-s0, epoch 1/2: step 5/10, running loss=1.5000 acc=0.4000"]
    assert lines[-2].startswith("[4/4] 003_zeros-tanh-s0 epoch 1/2") and lines[-1].startswith("[4/4] 003_zeros-tanh-s0")
