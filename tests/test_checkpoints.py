"""Epoch checkpoints: kill after any epoch and resume where it stopped; extend a finished sweep; refuse changes."""

from __future__ import annotations

import json

import pytest

from init_lab.catalog.errors import RunDirError
from init_lab.config.loading import config_from_text
from init_lab.run.store import resolve_run_dir
from init_lab.run.sweep import resume_sweep, run_sweep

from .helpers import TINY, EventLog, cli, run_tables

PACKED = TINY.replace("epochs: 2", "epochs: 3")  # one packed group of 4 trials
SINGLE = TINY.replace("activation: [relu, tanh]", "activation: [prelu]").replace("initializer: [he_normal, zeros]",
                                                                                   "initializer: [he_normal]")


@pytest.mark.slow
@pytest.mark.usefixtures("xla")
@pytest.mark.parametrize("text,pack", [(PACKED, True), (SINGLE.replace("epochs: 2", "epochs: 3"), False)],
                         ids=["packed-group", "prelu-single"])
def test_sigkill_right_after_a_checkpoint_resumes_at_the_next_epoch(tmp_path, write_config, text, pack):
    cfg = write_config(text)
    flags = [] if pack else ["--no-pack"]
    reference = run_sweep(config_from_text(text, default_name="cfg"), out=tmp_path / "ref", pack=pack)
    out = tmp_path / "runs"
    killed = cli("sweep", cfg, "--out", out, *flags, env={"INITLAB_FAULT_KILL_AFTER_CHECKPOINT": "2"})
    assert killed.returncode == -9, killed.stderr  # SIGKILL right after the epoch-2 checkpoint was written
    resumed = cli("sweep", "--resume", "latest", "--out", out, *flags)
    assert resumed.returncode == 0, resumed.stderr
    assert "continuing after epoch 2" in resumed.stdout
    trained = [line for line in resumed.stdout.splitlines() if " epoch " in line and "/3 loss=" in line]
    assert trained and all(" epoch 3/3 " in line for line in trained), "epochs 1-2 were not trained again"
    run = resolve_run_dir(out / "latest")
    manifest = json.loads((run / "manifest.json").read_text())
    assert set(manifest["execution"]["resumed_groups"].values()) == {2}
    assert manifest["status"] == "completed"
    assert run_tables(run) == run_tables(reference.run_dir)


@pytest.mark.parametrize("text,pack", [(TINY, True), (SINGLE, False)], ids=["packed-group", "prelu-single"])
def test_extending_a_finished_sweep_equals_a_fresh_longer_run(tmp_path, text, pack):
    short = run_sweep(config_from_text(text), out=tmp_path / "short", pack=pack)
    extended = resume_sweep(short.run_dir, overrides=["training.epochs=4"], pack=pack)
    fresh = run_sweep(config_from_text(text, overrides=["training.epochs=4"]), out=tmp_path / "fresh", pack=pack)
    assert extended.count("completed") == fresh.count("completed") == len(fresh.records)
    assert all(r.epochs_run == 4 for r in extended.records)
    assert run_tables(short.run_dir) == run_tables(fresh.run_dir)
    assert [r.test_accuracy for r in extended.records] == [r.test_accuracy for r in fresh.records]
    assert "epochs: 4" in (short.run_dir / "config.yaml").read_text()  # the run now says what it holds
    manifest = json.loads((short.run_dir / "manifest.json").read_text())
    assert manifest["extensions"][-1]["epochs"] == 4 and manifest["execution"]["resumed_groups"]


def test_changes_that_alter_the_computation_are_refused_on_resume(tmp_path):
    first = run_sweep(config_from_text(TINY, overrides=["grid.initializer=[zeros]", "grid.activation=[relu]"]),
                      out=tmp_path)
    for override, field in [("training.learning_rate=0.5", "training.learning_rate: 0.01 in the run, 0.5 now"),
                            ("training.epochs=1", "training.epochs: 2 in the run, 1 now"),
                            ("model.hidden=[8]", "model.hidden")]:
        with pytest.raises(RunDirError, match=field.replace("[", r"\[")):
            resume_sweep(first.run_dir, overrides=[override])
    result = cli("sweep", "--resume", first.run_dir, "--set", "training.optimizer=sgd")
    assert result.returncode == 1 and "training.optimizer" in result.stderr and "Traceback" not in result.stderr
    # fields that do not change what a trial computes may change
    assert resume_sweep(first.run_dir, overrides=["checkpoints.keep_final=false", "device=cpu"]).count("completed") == 1


def test_a_corrupt_checkpoint_restarts_its_trials_with_a_note(tmp_path):
    short = run_sweep(config_from_text(TINY), out=tmp_path / "short")
    (checkpoint,) = (short.run_dir / "checkpoints").glob("*.npz")
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])  # torn
    notes = EventLog()
    extended = resume_sweep(short.run_dir, overrides=["training.epochs=3"], observer=notes)
    assert any("unreadable" in line for line in notes.notices), notes.notices
    assert extended.count("completed") == 4
    fresh = run_sweep(config_from_text(TINY, overrides=["training.epochs=3"]), out=tmp_path / "fresh")
    assert run_tables(short.run_dir) == run_tables(fresh.run_dir)


@pytest.mark.slow
def test_a_state_of_another_model_class_is_not_restored(tmp_path):
    """A packed run extended with --no-pack: the saved packed states do not fit Keras models; restart, say why."""
    short = run_sweep(config_from_text(TINY), out=tmp_path / "short", pack=True)
    observer = EventLog()
    resume_sweep(short.run_dir, overrides=["training.epochs=3"], pack=False, observer=observer)
    assert any("model class" in line for line in observer.notices)
    fresh = run_sweep(config_from_text(TINY, overrides=["training.epochs=3"]), out=tmp_path / "fresh", pack=False)
    assert run_tables(short.run_dir) == run_tables(fresh.run_dir)


@pytest.mark.slow
def test_final_states_can_be_dropped_and_extending_then_retrains(tmp_path):
    text = TINY + "checkpoints: {keep_final: false}\n"
    short = run_sweep(config_from_text(text), out=tmp_path / "short")
    assert not list((short.run_dir / "checkpoints").glob("*.npz"))
    resume_sweep(short.run_dir, overrides=["training.epochs=3"])
    fresh = run_sweep(config_from_text(text, overrides=["training.epochs=3"]), out=tmp_path / "fresh")
    assert run_tables(short.run_dir) == run_tables(fresh.run_dir)
