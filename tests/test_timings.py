"""Where a sweep's time went (``runschema.timings``): manifest.json's ``timings``, per group and for the
invocation, and the report's table of it. Structure and accounting only: no test here depends on how fast
anything is."""

from __future__ import annotations

import json

import pytest

import init_lab
from init_lab.report.timings import timings_line, timings_table
from init_lab.runschema.timings import PHASES, Timings

from .helpers import TINY, assert_clean_exit, copy_run, invoke

ENGINE = ("build", "initial", "first_window", "evaluation", "snapshots")  # phases every group of TINY has


def test_the_manifest_accounts_for_the_invocation_by_phase(reference_run):
    timings = json.loads((reference_run(TINY) / "manifest.json").read_text())["timings"]
    whole, groups = timings["sweep"], timings["groups"]
    assert set(whole) <= set(PHASES) and all(s >= 0 for s in whole.values())
    assert {"imports", "data", "files", "checkpoints", "other"} <= set(whole)
    assert groups and all(set(ENGINE) <= set(g) for g in groups.values())
    for phase in ENGINE:  # the sweep's engine phases are its groups' (one process: nothing else adds to them)
        assert whole[phase] == round(sum(g[phase] for g in groups.values()), 3) or \
            abs(whole[phase] - sum(g[phase] for g in groups.values())) < 0.002
    assert abs(sum(whole.values()) - timings["wall_seconds"]) < 0.01  # other: the wall time no phase claims


def test_a_phase_never_counts_the_consumers_time():
    clock = Timings()

    def producer():
        with clock.phase("steps"):
            pass
        yield 1

    for _ in producer():
        clock.add("files", 5.0)  # the consumer's work between events
    assert clock.seconds["steps"] < 1.0 and clock.seconds["files"] == 5.0
    assert Timings.from_json(clock.to_json()).seconds.keys() == clock.seconds.keys()
    assert list(Timings({"files": 1.0, "build": 2.0}).to_json()) == ["build", "files"]  # PHASES order


def test_the_report_shows_the_time_by_phase_and_a_resume_records_its_own(reference_run, tmp_path):
    run_dir = copy_run(reference_run(TINY), tmp_path / "run")
    table = timings_table(init_lab.load_run(run_dir))
    assert list(table.columns) == ["phase", "seconds", "share", "what"] and table["share"].between(0, 1).all()
    result = invoke("report", run_dir)
    assert_clean_exit(result, 0)
    assert "time of the last invocation" in result.output
    assert "## Where the time went" in (run_dir / "report" / "report.md").read_text(encoding="utf-8")
    extended = init_lab.resume(run_dir, epochs=3, progress=False)
    groups = extended.manifest.timings["groups"]
    assert groups and all("build" in g for g in groups.values())  # this invocation's groups, trained again


def test_a_run_without_timings_reports_without_them():
    from pathlib import Path

    run = init_lab.load_run(Path(__file__).parent / "fixtures" / "run_a0fc584")
    assert run.manifest.timings is None and timings_table(run) is None and timings_line(run) == ""


def test_the_dry_run_estimate_scales_a_measured_step_to_every_group(monkeypatch):
    import math

    from init_lab.config.grid import expand
    from init_lab.config.loading import config_from_text
    from init_lab.engine import steps
    from init_lab.run import duration
    from init_lab.run.memory import MemoryPlan
    from init_lab.run.plan import plan_groups

    config = config_from_text(TINY, overrides=["grid.width=[16, 32]", "grid.initializer=[he_normal]"])
    memory = MemoryPlan.for_config(config, "cpu", "mlp")
    groups, _ = plan_groups(expand(config), False, memory=memory)  # one model each: 4 groups, two widths
    monkeypatch.setattr(steps, "measure_step", lambda group, shape, classes: 0.5)  # the first group's step
    got = duration.measured_estimate(groups, memory, "cpu")
    steps = math.ceil(memory.data.n_train / 50) * 2  # batch 50, 2 epochs
    per = {g.id: duration._step_macs(g, memory.data) for g in groups}
    assert got.group == groups[0].id and got.step_seconds == 0.5
    assert got.seconds == pytest.approx(sum(0.5 * per[g.id] / per[groups[0].id] * steps for g in groups))
    assert per[groups[1].id] > per[groups[0].id] == per[groups[2].id]  # width 32 costs more than 16, and is scaled so


def test_the_dry_run_prints_a_measured_estimate(write_config):
    result = invoke("sweep", write_config(TINY), "--dry-run")
    assert_clean_exit(result, 0)
    assert "estimate:" in result.output and "measured here" in result.output


def test_durations_read_as_what_they_are():
    from init_lab.run.duration import format_duration

    assert [format_duration(s) for s in (0.0123, 0.34, 9.96, 42.0, 600.0, 10_800.0)] == \
        ["0.012 s", "0.34 s", "10 s", "42 s", "10 min", "3.0 h"]
