"""Fair comparisons at each cell's best value of a swept axis (issue 30): selection on validation only, ties,
missing values, the tuned table against a hand-computed one, the paired statistics of the tuned cells, the CLI's
refusals; and the shipped Glorot & Bengio Table 1 config.

Run directories are planted (config.yaml + trial.json + epochs.csv, as ``load_run`` reads them): no test trains.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from init_lab.catalog.errors import ConfigError
from init_lab.config.grid import expand
from init_lab.config.loading import load_config
from init_lab.report.run import load_run
from init_lab.report.tuned import VALIDATION_METRICS, choice_text
from tests.helpers import REPO, assert_clean_exit, invoke, plant_run, read_csv


def config(lrs=(0.01, 0.1), seeds=(0, 1, 2), inits=("he_normal", "glorot_uniform"), acts=("relu",)) -> str:
    return f"""
name: planted-tuning
dataset: {{name: synthetic}}
model: {{kind: mlp, hidden: [8]}}
grid:
  initializer: [{", ".join(inits)}]
  activation: [{", ".join(acts)}]
  learning_rate: [{", ".join(map(str, lrs))}]
  seed: [{", ".join(map(str, seeds))}]
training: {{epochs: 1, optimizer: sgd}}
device: cpu
"""


def plant(root: Path, text: str, outcome) -> Path:
    """A run directory whose trials hold what ``outcome(spec)`` returns: (validation, test) accuracies of a
    completed trial, a dict of trial.json fields, or None (never started)."""
    def fields(spec):
        got = outcome(spec)
        if isinstance(got, tuple):
            val, test = got
            return {"final_val_accuracy": val, "best_val_accuracy": val, "test_accuracy": test, "final_val_loss": 1 - val}
        return got

    return plant_run(root, text, fields)


# validation and test disagree: for he_normal, lr 0.01 is best on validation and worst on test; glorot_uniform
# the other way round. Per seed s a small shift, the same for every cell (paired).
PLANTED = {  # (initializer, lr) -> (validation, test)
    ("he_normal", 0.01): (0.95, 0.90),
    ("he_normal", 0.1): (0.93, 0.97),
    ("glorot_uniform", 0.01): (0.91, 0.96),
    ("glorot_uniform", 0.1): (0.94, 0.92),
}
SHIFT = [0.0, 0.004, -0.002]


def planted(spec):
    val, test = PLANTED[(spec.init_label, spec.train.learning_rate)]
    return val + SHIFT[spec.seed], test + SHIFT[spec.seed]


def test_selection_uses_validation_only_where_test_disagrees(tmp_path):
    run = load_run(plant(tmp_path / "run", config(), planted))
    for metric in ("best_val_accuracy", "test_accuracy"):
        tuned = run.tuned("learning_rate", metric=metric)
        chosen = dict(zip(tuned.tuning.table["initializer"], tuned.tuning.table["chosen"]))
        assert chosen == {"he_normal": 0.01, "glorot_uniform": 0.1}  # validation's choice, whatever the report metric
        cells = tuned.pivot("test_accuracy").set_index("initializer")["mean"]
        # the tuned cells' test accuracy is that of the validation choice, not the best test value (0.97 / 0.96)
        assert cells["he_normal"] == pytest.approx(0.90 + np.mean(SHIFT))
        assert cells["glorot_uniform"] == pytest.approx(0.92 + np.mean(SHIFT))
    assert tuned.swept == [] and len(tuned.summary) == 6 and set(tuned.epochs["trial_id"]) == set(
        tuned.summary["trial_id"])
    with pytest.raises(ConfigError, match="test set never chooses"):
        run.tuned("learning_rate", by="test_accuracy")


def test_tuned_table_equals_a_hand_computed_one(tmp_path):
    run = load_run(plant(tmp_path / "run", config(), planted))
    table = run.tuned("learning_rate", by="final_val_accuracy").tuning.table
    m = np.mean(SHIFT)
    expected = pd.DataFrame({
        "axis": ["learning_rate"] * 2, "initializer": ["he_normal", "glorot_uniform"], "activation": ["relu"] * 2,
        "chosen": [0.01, 0.1], "by": ["final_val_accuracy"] * 2, "score": [0.95 + m, 0.94 + m], "n": [3, 3],
        "runner_up": [0.1, 0.01], "margin": [0.02, 0.03], "tied": ["", ""],
        "final_val_accuracy@0.01": [0.95 + m, 0.91 + m], "final_val_accuracy@0.1": [0.93 + m, 0.94 + m],
        "n@0.01": [3, 3], "n@0.1": [3, 3],
    })
    pd.testing.assert_frame_equal(table.reset_index(drop=True), expected, check_dtype=False, atol=1e-12)


def test_the_paired_statistics_are_those_of_the_tuned_cells(tmp_path):
    run = load_run(plant(tmp_path / "run", config(), planted)).tuned("learning_rate")
    comparisons = run.comparisons("test_accuracy")
    assert len(comparisons) == 1
    row = comparisons.iloc[0]
    # glorot_uniform @0.1 (0.92 + shift) is best by test; he_normal @0.01 (0.90 + shift) against it: −0.02 every seed
    assert (row["a"], row["b"], row["n"]) == ("he_normal", "glorot_uniform", 3)
    assert row["mean_diff"] == pytest.approx(-0.02)
    assert row["p_value"] == 0.0  # the same difference on every seed
    board = run.leaderboard("test_accuracy")
    assert list(board["learning_rate"]) == [0.1] * 3 + [0.01] * 3  # which value each trial's cell chose


def test_ties_go_to_the_value_listed_first_in_the_config(tmp_path):
    equal = lambda spec: (0.9 + SHIFT[spec.seed], 0.9)  # noqa: E731 — every value scores the same
    for lrs in ((0.1, 0.01), (0.01, 0.1)):
        run = load_run(plant(tmp_path / f"run{lrs[0]}", config(lrs=lrs), equal))
        tuning = run.tuned("learning_rate").tuning
        assert list(tuning.table["chosen"]) == [lrs[0]] * 2
        assert list(tuning.table["tied"]) == [f"{lrs[1]:g}"] * 2
        assert list(tuning.table["margin"]) == [0.0, 0.0]
        assert any("tie" in note for note in tuning.notes)


def test_missing_values_failed_pending_and_empty_cells(tmp_path):
    def outcome(spec):
        if spec.init_label == "glorot_uniform":
            return None  # never started: the cell has no candidate at all
        if spec.train.learning_rate == 0.1 and spec.seed == 0:
            return {"status": "failed", "error": "boom"}  # not a candidate value on this seed
        if spec.train.learning_rate == 0.01 and spec.seed == 2:
            return None
        return planted(spec)

    run = load_run(plant(tmp_path / "run", config(), outcome))
    tuned = run.tuned("learning_rate")
    table = tuned.tuning.table.set_index("initializer")
    he = table.loc["he_normal"]
    # lr 0.01 over seeds 0, 1; lr 0.1 over seeds 1, 2: each candidate's mean is over the seeds that count for it
    assert he["chosen"] == 0.01 and (he["n@0.01"], he["n@0.1"]) == (2, 2)
    assert he["final_val_accuracy@0.01"] == pytest.approx(0.95 + (SHIFT[0] + SHIFT[1]) / 2)
    assert he["final_val_accuracy@0.1"] == pytest.approx(0.93 + (SHIFT[1] + SHIFT[2]) / 2)
    gu = table.loc["glorot_uniform"]
    assert pd.isna(gu["chosen"]) and gu["n"] == 0
    cells = tuned.pivot().set_index("initializer")
    assert cells.loc["glorot_uniform", "n"] == 0 and cells.loc["glorot_uniform", "unfinished"] == 3
    assert any("no trial that counts" in note for note in tuned.tuning.notes)

    # per seed: seed 0 has only lr 0.01, seed 2 only lr 0.1
    per_seed = run.tuned("learning_rate", per_seed=True).tuning.table
    he_seeds = per_seed[per_seed["initializer"] == "he_normal"].set_index("seed")["chosen"]
    assert he_seeds.to_dict() == {0: 0.01, 1: 0.01, 2: 0.1}


def test_a_diverged_rate_never_wins_by_leaving_out_its_seeds(tmp_path):
    def outcome(spec):
        val, test = planted(spec)
        if spec.init_label == "he_normal" and spec.train.learning_rate == 0.1:
            # seed 0 diverged without a validation loss; its other seeds have the best loss of all
            return ({"status": "diverged", "final_val_loss": None, "final_val_accuracy": None} if spec.seed == 0
                    else {"final_val_loss": 0.01, "final_val_accuracy": val, "test_accuracy": test})
        return (val, test)

    run = load_run(plant(tmp_path / "run", config(), outcome))
    table = run.tuned("learning_rate", by="final_val_loss").tuning.table.set_index("initializer")
    assert table.loc["he_normal", "chosen"] == 0.01
    assert table.loc["he_normal", "final_val_loss@0.1"] == math.inf


def test_per_seed_selection_lets_each_seed_choose(tmp_path):
    def outcome(spec):
        val, test = planted(spec)
        if spec.init_label == "he_normal" and spec.train.learning_rate == 0.1 and spec.seed == 1:
            val = 0.99  # seed 1 alone prefers 0.1
        return val, test

    run = load_run(plant(tmp_path / "run", config(), outcome))
    by_mean = run.tuned("learning_rate").tuning.table.set_index("initializer")
    assert by_mean.loc["he_normal", "chosen"] == 0.01  # (0.99 + 0.93 + 0.93)/3 + … is still below 0.95's mean
    tuned = run.tuned("learning_rate", per_seed=True)
    he = tuned.tuning.table[tuned.tuning.table["initializer"] == "he_normal"].set_index("seed")["chosen"]
    assert he.to_dict() == {0: 0.01, 1: 0.1, 2: 0.01}
    pivot = tuned.pivot()
    row = pivot[pivot["initializer"] == "he_normal"].iloc[0]
    assert choice_text(tuned, row) == "lr 0.01/0.1"
    assert choice_text(tuned, row.drop("initializer")) == ""  # never a guess across cells
    kept = tuned.summary[tuned.summary["initializer"] == "he_normal"]
    assert dict(zip(kept["seed"], kept["learning_rate"])) == {0: 0.01, 1: 0.1, 2: 0.01}


def test_report_tune_axis_writes_tuned_csv_and_shows_the_choices(tmp_path):
    root = plant(tmp_path / "run", config(), planted)
    result = invoke("report", root, "--tune-axis", "learning_rate", "--metric", "test_accuracy")
    assert_clean_exit(result, 0)
    assert "each cell at its best learning_rate (chosen by final_val_accuracy)" in result.output
    assert "lr 0.01" in result.output and "lr 0.1" in result.output  # in the pivot cells
    rows = read_csv(root / "report" / "tuned.csv")
    assert [(r["initializer"], float(r["chosen"])) for r in rows] == [("he_normal", 0.01), ("glorot_uniform", 0.1)]
    board = read_csv(root / "report" / "leaderboard.csv")
    assert len(board) == 6 and {float(r["learning_rate"]) for r in board if r["initializer"] == "he_normal"} == {0.01}
    md = (root / "report" / "report.md").read_text()
    assert "Each cell at its best learning\\_rate" in md or "Each cell at its best learning_rate" in md
    # the tuned table on stdout, and an untuned report afterwards leaves no stale tuned.csv
    result = invoke("report", root, "--tune-axis", "learning_rate", "--format", "csv", "--table", "tuned",
                    "--no-files")
    assert_clean_exit(result, 0)
    assert result.stdout.splitlines()[0].startswith("axis,initializer,activation,chosen,by,score")
    assert_clean_exit(invoke("report", root), 0)
    assert not (root / "report" / "tuned.csv").exists()
    assert len(read_csv(root / "report" / "leaderboard.csv")) == 12


@pytest.mark.parametrize(("args", "expected"), [
    (["--tune-axis", "learning_rat"], "did you mean 'learning_rate'"),
    (["--tune-axis", "seed"], "not an axis to tune; tune one of: learning_rate"),
    (["--tune-axis", "batch_size"], "does not sweep batch_size (it has one value); tune one of: learning_rate"),
    (["--tune-axis", "learning_rate", "--tune-by", "test_accuracy"], "test set never chooses"),
    (["--tune-axis", "learning_rate", "--tune-by", "best_val_acc"], "did you mean 'best_val_accuracy'"),
    (["--tune-axis", "learning_rate", "--compare-axis", "learning_rate"], "tuned along learning_rate"),
])
def test_bad_tuning_requests_are_refused_with_what_is_allowed(tmp_path, args, expected):
    root = plant(tmp_path / "run", config(), planted)
    result = invoke("report", root, *args, "--no-files")
    assert_clean_exit(result, 1)
    assert expected.lower() in " ".join(result.output.split()).lower(), result.output


def test_a_run_without_a_swept_axis_has_nothing_to_tune(tmp_path):
    text = config().replace("  learning_rate: [0.01, 0.1]\n", "")
    root = plant(tmp_path / "run", text, lambda spec: (0.9, 0.9))
    result = invoke("report", root, "--tune-axis", "learning_rate", "--no-files")
    assert_clean_exit(result, 1)
    assert "sweeps no axis besides initializer, activation and seed" in result.output
    assert "--tune-by" in invoke("report", root, "--tune-by", "final_val_loss", "--no-files").output


def test_validation_metrics_are_the_only_selectors():
    assert set(VALIDATION_METRICS) == {"best_val_accuracy", "final_val_accuracy", "final_val_loss"}
    assert not any("test" in m for m in VALIDATION_METRICS)


# --- the shipped Table 1 protocol ---------------------------------------------------------------------------------


def test_glorot2010_table1_config_is_the_papers_protocol_and_its_dry_run_estimates_the_time(tmp_path):
    cfg = load_config(REPO / "configs" / "glorot2010_table1.yaml")
    trials = expand(cfg)
    assert {t.arch.hidden for t in trials} == {(1000,) * 5}
    assert {t.init_label for t in trials} == {"glorot2010_standard", "glorot_uniform"}
    assert {t.act_label for t in trials} == {"sigmoid", "tanh", "softsign"}
    assert {(t.train.optimizer, t.train.momentum, t.train.batch_size) for t in trials} == {("sgd", 0.0, 10)}
    assert len(cfg.grid.learning_rate) >= 3
    assert round(60_000 * cfg.dataset.validation_split) == 10_000  # the paper's 50,000 / 10,000 split
    result = invoke("sweep", REPO / "configs" / "glorot2010_table1.yaml", "--dry-run", "--out", tmp_path / "runs")
    assert_clean_exit(result, 0)
    text = " ".join(result.output.split())
    assert "training time: at least" in text and "18 trials" in text
    assert not (tmp_path / "runs").exists()


def test_every_heatmap_names_each_cells_own_choice(tmp_path):
    from init_lab.report import interactive
    from init_lab.report.render import pivot_matrices
    from init_lab.report.verdicts import analyse

    run = load_run(plant(tmp_path / "run", config(), planted)).tuned("learning_rate")
    cells = run.cells("test_accuracy")
    figure = interactive.heatmap_figure(run, analyse(run, "test_accuracy"))
    assert [row[0].split("<br>")[-1] for row in figure["data"][0]["text"]] == ["lr 0.01", "lr 0.1"]
    assert "best learning_rate" in figure["layout"]["title"]["text"]
    (_, matrix), = pivot_matrices(run, cells)
    assert matrix.loc["he_normal", "relu"].endswith("lr 0.01") and matrix.loc["glorot_uniform", "relu"].endswith(
        "lr 0.1")
