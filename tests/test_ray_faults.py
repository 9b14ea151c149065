"""--executor ray under faults, with no Ray running beforehand: the executor starts a local instance itself
(its workers inherit the fault switches set here) and stops it at the end. A killed worker is retried;
a retried task continues from its group's checkpoint; retries that run out fail the group's trials."""

from __future__ import annotations

import json

import pytest

ray = pytest.importorskip("ray")

from init_lab.config.loading import config_from_text  # noqa: E402
from init_lab.run.sweep import run_sweep  # noqa: E402

from .helpers import TINY, EventLog, read_csv, run_tables  # noqa: E402

pytestmark = pytest.mark.slow  # each test starts (and stops) its own Ray instance


@pytest.fixture(autouse=True)
def ray_started_by_the_executor():
    """No Ray before the test, none after: the sweep's executor started it and stopped it."""
    assert not ray.is_initialized(), "a Ray instance is already running"
    yield
    assert not ray.is_initialized(), "the executor left the Ray instance it started running"


def test_a_killed_worker_is_retried_and_every_trial_lands_once(tmp_path, monkeypatch, reference_run):
    marker = tmp_path / "crashed-once"
    monkeypatch.setenv("INITLAB_FAULT_CRASH_ONCE", str(marker))
    result = run_sweep(config_from_text(TINY), out=tmp_path / "runs", executor="ray", pack=False)
    assert marker.exists(), "a worker was killed"
    assert result.count("completed") == 4
    ids = [r["trial_id"] for r in read_csv(result.run_dir / "summary.csv")]
    assert len(ids) == len(set(ids)) == 4
    assert run_tables(result.run_dir) == run_tables(reference_run(TINY, pack=False))


def test_a_killed_worker_resumes_its_group_from_the_checkpoint(tmp_path, monkeypatch, reference_run):
    marker = tmp_path / "crashed-after-epoch-1"
    monkeypatch.setenv("INITLAB_FAULT_CRASH_AFTER_EPOCH", f"1:{marker}")
    text = TINY.replace("epochs: 2", "epochs: 3")
    log = EventLog()
    remote = run_sweep(config_from_text(text), out=tmp_path / "ray", executor="ray", observer=log)
    assert marker.exists(), "the worker was killed after its epoch-1 checkpoint"
    assert [c[2] for c in log.calls if c[0] == "start"] == [0, 1], "the retried task continued after epoch 1"
    assert run_tables(remote.run_dir) == run_tables(reference_run(text))


def test_retries_that_run_out_fail_the_groups_trials_and_the_sweep_ends(tmp_path, monkeypatch):
    """Every attempt of every task dies (3 retries each): its trials are recorded failed with Ray's reason,
    and the sweep still finishes, writing every file."""
    monkeypatch.setenv("INITLAB_FAULT_CRASH_ALWAYS", "1")
    cfg = config_from_text(TINY, overrides=["grid.initializer=[he_normal]", "grid.activation=[relu]"])
    result = run_sweep(cfg, out=tmp_path / "runs", executor="ray")
    (record,) = result.records
    assert record.status == "failed" and record.error.startswith("Ray task failed")
    assert "crash" in record.error.lower() or "died" in record.error.lower(), record.error
    trial = json.loads((result.run_dir / "trials" / record.trial_id / "trial.json").read_text())
    assert trial["status"] == "failed" and trial["error"] == record.error
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["counts"] == {"failed": 1}
