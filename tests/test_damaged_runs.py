"""Damaged run directories (issue 25): a missing or garbled trial.json, epochs.csv, table, checkpoint or
manifest in an otherwise good run. report and load_run show the rest and name what is damaged; --resume trains
the damaged trials again (from their final checkpoints: the same tables as before) and keeps the others."""

from __future__ import annotations

import json

import pytest

import init_lab
from init_lab.config.loading import config_from_text
from init_lab.run.sweep import resume_sweep, run_sweep

from .helpers import TINY, EventLog, assert_clean_exit, copy_run, invoke, run_tables

TRIAL = "001_he_normal-tanh-s0"


@pytest.fixture
def damaged(tmp_path, reference_run):
    """A copy of the finished tiny run, for a test to damage; and the intact original to compare with."""
    original = reference_run()
    return copy_run(original, tmp_path / "run"), original


def trial_file(run, name, trial=TRIAL):
    return run / "trials" / trial / name


DAMAGE = {
    "trial.json garbled": (lambda run: trial_file(run, "trial.json").write_text('{"status": "compl'),
                           "trial.json is not valid JSON"),
    "trial.json missing": (lambda run: trial_file(run, "trial.json").unlink(), "trial.json missing"),
    "trial.json not a record": (lambda run: trial_file(run, "trial.json").write_text("[1, 2]"),
                                "trial.json is not a trial record"),
    "epochs.csv garbled": (lambda run: trial_file(run, "epochs.csv").write_bytes(b"\xff\xfe\x00garbage\n1,2\n"),
                           "epochs.csv unreadable"),
    "epochs.csv cut short": (lambda run: trial_file(run, "epochs.csv").write_text(
        "\n".join(trial_file(run, "epochs.csv").read_text().splitlines()[:2]) + "\n"),
        "epochs.csv lacks epoch(s) 1, 2 of the 2 its trial.json records"),
    "epochs.csv torn row": (lambda run: trial_file(run, "epochs.csv").write_text(
        trial_file(run, "epochs.csv").read_text()[:-30]), "epochs.csv unreadable (line 4 has"),
    "epochs.csv missing": (lambda run: trial_file(run, "epochs.csv").unlink(), "epochs.csv missing"),
    "layers.csv garbled": (lambda run: trial_file(run, "layers.csv").write_text("nonsense\n"),
                           "layers.csv unreadable (no epoch, layer column)"),
    "histograms.npz garbled": (lambda run: trial_file(run, "histograms.npz").write_bytes(b"not a zip"),
                               "histograms.npz unreadable (not a zip archive)"),
}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_report_and_load_run_show_the_rest_and_name_the_damage(damaged, kind):
    run_dir, original = damaged
    damage, said = DAMAGE[kind]
    damage(run_dir)
    run = init_lab.load_run(run_dir)
    assert len(run.damaged) == 1 and run.damaged[0].startswith(f"{TRIAL}: ") and said in run.damaged[0], run.damaged
    intact = init_lab.load_run(original)
    others = run.summary["trial_id"] != TRIAL
    cols = ["trial_id", "status", "epochs_run", "best_val_accuracy", "test_accuracy", "final_loss"]
    assert run.summary.loc[others, cols].to_dict("records") == intact.summary.loc[others, cols].to_dict("records")
    assert set(run.epochs["trial_id"]) >= set(intact.summary["trial_id"][others])
    result = invoke("report", run_dir, "--no-files")
    assert_clean_exit(result, 0)
    stderr = " ".join(result.stderr.split())
    assert f"damaged: {TRIAL}: {said}" in stderr and "--resume" in stderr
    if kind.startswith("epochs.csv") and "cut short" not in kind:
        assert TRIAL not in set(run.epochs["trial_id"])  # an unreadable table is left out, not guessed at


@pytest.mark.parametrize("kind", ["trial.json garbled", "trial.json missing", "epochs.csv garbled",
                                  "epochs.csv cut short", "epochs.csv missing", "layers.csv garbled",
                                  "histograms.npz garbled"])
def test_resume_trains_the_damaged_trial_again_and_keeps_the_rest(damaged, kind):
    run_dir, original = damaged
    DAMAGE[kind][0](run_dir)
    log = EventLog()
    result = resume_sweep(run_dir, observer=log)
    everyone = {r.trial_id for r in result.records}
    assert result.ok and set(result.skipped) == everyone - {TRIAL}  # the others are kept as they were
    assert any(n.startswith(f"{TRIAL}: ") and "damaged, so it trains again" in n for n in log.notices), log.notices
    assert run_tables(run_dir) == run_tables(original)  # from its final checkpoint: the very same tables
    assert init_lab.load_run(run_dir).damaged == []


def test_a_garbled_manifest_is_named_reported_around_and_rewritten_by_a_resume(damaged):
    run_dir, original = damaged
    (run_dir / "manifest.json").write_text("{ not json")
    run = init_lab.load_run(run_dir)
    assert run.damaged == ["manifest.json unreadable (JSONDecodeError)"]
    assert list(run.summary["status"]) == ["completed"] * 4
    result = invoke("report", run_dir, "--no-files")
    assert_clean_exit(result, 0)
    assert "damaged: manifest.json unreadable" in result.stderr
    log = EventLog()
    resume_sweep(run_dir, observer=log)
    assert any("manifest.json unreadable" in n and "rewritten" in n for n in log.notices)
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "completed"
    assert init_lab.load_run(run_dir).damaged == [] and run_tables(run_dir) == run_tables(original)


def test_a_garbled_checkpoint_is_named_and_an_extension_retrains_its_trials(damaged, tmp_path):
    run_dir, _ = damaged
    (checkpoint,) = (run_dir / "checkpoints").glob("*.npz")
    checkpoint.write_bytes(b"PK\x03\x04 torn")
    run = init_lab.load_run(run_dir)
    assert run.damaged == [f"checkpoints/{checkpoint.name} unreadable (not a zip archive): its trials would restart "
                           "from epoch 1"]
    assert_clean_exit(invoke("report", run_dir, "--no-files"), 0)
    log = EventLog()
    extended = resume_sweep(run_dir, overrides=["training.epochs=3"], observer=log)
    assert extended.ok and any("unreadable" in n for n in log.notices)
    fresh = run_sweep(config_from_text(TINY, overrides=["training.epochs=3"]), out=tmp_path / "fresh")
    assert run_tables(run_dir) == run_tables(fresh.run_dir)


def test_a_trial_killed_before_its_record_is_not_called_damaged(damaged):
    """A sweep in progress (or killed) has trials with tables and no trial.json yet: that is not damage."""
    run_dir, _ = damaged
    trial_file(run_dir, "trial.json").unlink()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    (run_dir / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))
    run = init_lab.load_run(run_dir)
    assert run.damaged == [] and run.summary.set_index("trial_id").loc[TRIAL, "status"] == "pending"
