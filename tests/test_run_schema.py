"""The run schema (``init_lab.runschema``): every grid axis declared once and used everywhere, the typed records
round-trip their files, and a run directory written before the schema existed (``fixtures/run_a0fc584``:
main at a0fc584, 2 initializers × 2 activations × 2 learning rates, 2 epochs, final checkpoints kept) still
loads, reports, resumes and extends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import init_lab
from init_lab.catalog.errors import ConfigError
from init_lab.config.grid import expand
from init_lab.config.loading import config_from_text
from init_lab.report.verdicts import analyse
from init_lab.run.integrity import read_manifest, read_record
from init_lab.run.store import RunStore
from init_lab.runschema import axes
from init_lab.runschema.columns import summary_columns
from init_lab.runschema.records import EpochRow, Manifest, StepRow, SweepStatus, TrialRecord

from .helpers import TINY, assert_clean_exit, copy_run, invoke, read_csv, run_tables

FIXTURE = Path(__file__).parent / "fixtures" / "run_a0fc584"
AXIS_VALUES = {"depth": [1, 2], "width": [4, 8], "optimizer": ["adam", "sgd"], "learning_rate": [0.01, 0.003],
               "batch_size": [25, 50], "bias_std": [0.0, 0.1], "residual": [False, True],
               "normalization": ["none", "batchnorm"]}
# what an axis's values need of the tiny config: residual blocks need 1 + 2·L hidden layers (a stem, then blocks of 2)
AXIS_NEEDS = {"residual": ["model.hidden=[16, 16, 16]"]}


def test_every_axis_has_two_sample_values_here():
    assert set(AXIS_VALUES) == set(axes.NAMES)  # a new axis gets its row in the test below


@pytest.mark.parametrize("axis", axes.AXES, ids=lambda a: a.name)
def test_one_entry_makes_an_axis_of_the_grid_the_ids_the_files_and_the_report(axis, tmp_path):
    values = AXIS_VALUES[axis.name]
    config = config_from_text(TINY, overrides=[f"grid.{axis.name}={json.dumps(values)}", "grid.initializer=[he_normal]",
                                               "grid.activation=[relu]", *AXIS_NEEDS.get(axis.name, [])])
    trials = expand(config)
    assert [axis.of(t) for t in trials] == values  # the value reaches the trial's computation
    assert [t.id.split("-")[2] for t in trials] == [axis.label(v) for v in values]  # and its id
    assert axis.name in summary_columns([]) and axis.name in axes.COMPARABLE and axis.name in axes.ALL
    assert [t.describe()[axis.name] for t in trials] == values  # trial.json's spec, summary.csv's column
    with pytest.raises(ConfigError, match=f"grid.{axis.name}"):  # validated as a grid axis: no duplicates
        config_from_text(TINY, overrides=[f"grid.{axis.name}=[{json.dumps(values[0])}, {json.dumps(values[0])}]"])


def test_typed_records_write_the_files_they_read(tmp_path):
    store = RunStore(FIXTURE)
    for spec in expand(config_from_text(store.read_config_text())):
        record, problem = read_record(store, spec.id)
        assert problem is None and record.status == "completed"
        on_disk = json.loads((FIXTURE / "trials" / spec.id / "trial.json").read_text())
        assert record.to_json() == on_disk  # the same keys, in the same order, with the same values
        assert TrialRecord.from_json(record.to_json()) == record
    manifest, problem = read_manifest(store)
    assert problem is None and manifest.status == SweepStatus.COMPLETED
    assert manifest.to_json() == json.loads((FIXTURE / "manifest.json").read_text())
    assert Manifest.from_json({}).status is None  # an older or empty manifest reads, with nothing known
    row = EpochRow(1, 0.5, 0.8, 0.6, 0.75, 1.0, 0.01)
    assert EpochRow.from_dict(row.to_dict()) == row and EpochRow.from_dict({**row.to_dict(), "new": 1}) == row
    assert StepRow.from_dict(StepRow(3, 1, 0.5, 0.4, 0.9).to_dict()) == StepRow(3, 1, 0.5, 0.4, 0.9)


def test_a_run_written_before_the_schema_loads_and_reports(tmp_path):
    run = init_lab.load_run(FIXTURE)
    on_disk = read_csv(FIXTURE / "summary.csv")
    assert run.status == "completed" and run.ok and run.damaged == [] and run.swept == ["learning_rate"]
    assert list(run.summary["trial_id"]) == [r["trial_id"] for r in on_disk]
    assert list(run.summary["learning_rate"]) == [float(r["learning_rate"]) for r in on_disk]
    assert list(run.summary["best_val_accuracy"]) == [float(r["best_val_accuracy"]) for r in on_disk]
    assert {"initializer", "activation", "learning_rate", "bias_std"} <= set(run.epochs.columns)
    assert len(run.epochs) == 8 * 3 and len(analyse(run).cells) == 8
    copy = copy_run(FIXTURE, tmp_path / "old")
    result = invoke("report", copy)
    assert_clean_exit(result, 0)
    assert (copy / "report" / "report.md").is_file() and "8 of 8 trials finished" in result.output


def test_a_run_written_before_the_schema_resumes_and_extends_from_its_checkpoints(tmp_path):
    old = copy_run(FIXTURE, tmp_path / "old")
    before = run_tables(old)
    (old / "trials" / "005_zeros-relu-lr0.003-s0" / "trial.json").unlink()  # an interrupted sweep's state
    manifest = json.loads((old / "manifest.json").read_text())
    (old / "manifest.json").write_text(json.dumps({**manifest, "status": "interrupted"}))
    resumed = init_lab.resume(old, progress=False)
    assert resumed.ok and resumed.invocation.skipped == [t for t in resumed.summary["trial_id"]
                                                         if not t.startswith("005")]
    assert run_tables(old) == before  # the trial that lost its record came back from its final checkpoint
    extended = init_lab.resume(old, epochs=3, progress=False)
    assert extended.ok and (extended.summary["epochs_run"] == 3).all()
    assert extended.manifest.extensions and extended.manifest.execution["resumed_groups"]  # from the old checkpoint
    after = run_tables(old)
    for trial, rows in before.items():
        if "/" not in trial:  # epochs.csv: epochs 0–2 exactly as they were, epoch 3 new
            assert after[trial][:3] == rows and [r["epoch"] for r in after[trial]] == ["0", "1", "2", "3"]
