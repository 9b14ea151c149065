"""One writer per run directory (issue 25): the lock, second writers refused, a SIGKILL leaves no stale lock,
readers never blocked and never shown a half-written run."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import time

import pytest
import yaml

from init_lab.catalog.errors import RunDirError, RunLockedError
from init_lab.config.loading import config_from_text
from init_lab.run import lock as lock_module
from init_lab.run.lock import LOCK_FILE, RunLock, read_holder
from init_lab.run.store import resolve_run_dir
from init_lab.run.sweep import resume_sweep, run_sweep

from .helpers import CLI, TINY, EventLog, cli, invoke, run_tables

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def wait_for_holder(run_dir, proc: subprocess.Popen, timeout: float = 120.0) -> dict:
    """Wait until ``proc`` holds the run directory's lock (it wrote its pid into the lock file)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        holder = read_holder(run_dir)
        if holder.get("pid") == proc.pid:
            return holder
        if proc.poll() is not None:
            pytest.fail(f"the writer exited ({proc.returncode}) before it was seen holding the lock: "
                        f"{proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.05)
    pytest.fail("the writer never took the lock")


# --- the lock itself ---------------------------------------------------------------------------------


def test_a_second_writer_is_refused_at_once_naming_the_holder(tmp_path):
    with RunLock(tmp_path, ["initlab", "sweep", "--resume", "latest"]) as held:
        assert held.held and (tmp_path / LOCK_FILE).is_file()
        started = time.perf_counter()
        with pytest.raises(RunLockedError) as info:
            RunLock(tmp_path, "initlab report").acquire()  # another open file: refused as another process is
        assert time.perf_counter() - started < 1.0  # at once: no waiting for the holder
        message = str(info.value)
        assert f"pid {os.getpid()} on host {socket.gethostname()}" in message
        assert "`initlab sweep --resume latest`" in message and "since " in message
        assert "--no-files" in message and "wait for it to finish" in message
        assert info.value.holder["pid"] == os.getpid()
    assert not (tmp_path / LOCK_FILE).exists()  # released: a finished run directory looks as before
    RunLock(tmp_path).acquire().release()  # and free again


def test_a_lock_file_left_by_a_dead_holder_is_not_a_lock(tmp_path):
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": 999999, "host": "elsewhere", "command": "killed"}))
    with RunLock(tmp_path, "next") as held:
        assert held.held and read_holder(tmp_path)["command"] == "next"


def test_a_file_system_without_locks_is_a_clear_error_unless_told_to_go_without(tmp_path, monkeypatch):
    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(lock_module.fcntl, "flock", no_locks)
    with pytest.raises(RunDirError, match="no working locks.*NFS.*INITLAB_NO_LOCK=1") as info:
        RunLock(tmp_path).acquire()
    assert not isinstance(info.value, RunLockedError)
    # a new sweep refused so leaves nothing behind
    with pytest.raises(RunDirError, match="no working locks"):
        run_sweep(config_from_text(TINY), out=tmp_path / "runs")
    assert list((tmp_path / "runs").iterdir()) == []
    # the documented fallback: no lock, and a note saying so
    monkeypatch.setenv("INITLAB_NO_LOCK", "1")
    log = EventLog()
    result = run_sweep(config_from_text(TINY, overrides=["training.epochs=1"]), out=tmp_path / "runs", observer=log)
    assert result.ok and any("without its lock (INITLAB_NO_LOCK=1)" in n for n in log.notices)


def test_a_resume_of_a_run_being_written_is_refused_before_it_reads_or_writes(tmp_path, reference_run):
    from .helpers import copy_run

    run = copy_run(reference_run(), tmp_path / "run")
    before = (run / "config.yaml").read_text()
    with RunLock(run, "initlab sweep cfg.yaml"):
        with pytest.raises(RunLockedError, match="initlab sweep cfg.yaml"):
            resume_sweep(run, overrides=["training.epochs=3"])
    assert (run / "config.yaml").read_text() == before


def test_a_report_writing_files_is_a_writer_and_a_report_to_the_terminal_is_a_reader(tmp_path, reference_run):
    from init_lab import load_run

    from .helpers import copy_run

    run = copy_run(reference_run(), tmp_path / "run")
    with RunLock(run, "initlab sweep --resume latest"):
        printed = invoke("report", run, "--no-files")  # reads: never blocked
        assert printed.exit_code == 0, printed.output
        assert "he_normal" in printed.output and not (run / "report").exists()
        refused = invoke("report", run)
        assert refused.exit_code == 1
        assert "being written by another process" in refused.stderr and "initlab sweep --resume latest" in refused.stderr
        assert not (run / "report").exists() or not list((run / "report").iterdir())
        with pytest.raises(RunLockedError):
            load_run(run).report(plots=False)  # the API's report is a writer too; load_run is a reader
    assert invoke("report", run).exit_code == 0 and (run / "report" / "report.html").is_file()


# --- real processes -------------------------------------------------------------------------------


@pytest.mark.slow
def test_two_concurrent_resumes_the_second_refused_the_first_intact(tmp_path):
    run = run_sweep(config_from_text(TINY), out=tmp_path / "runs").run_dir  # 2 epochs
    first = subprocess.Popen(CLI + ["sweep", "--resume", str(run), "--set", "training.epochs=6"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        wait_for_holder(run, first)
        second = cli("sweep", "--resume", run, "--set", "training.epochs=4", timeout=120)
        assert second.returncode == 1, second.stderr
        assert f"pid {first.pid}" in second.stderr and "being written by another process" in second.stderr
        assert "training.epochs=6" in second.stderr and "Traceback" not in second.stderr
        _, stderr = first.communicate(timeout=600)
    finally:
        first.kill()
    assert first.returncode == 0, stderr
    assert yaml.safe_load((run / "config.yaml").read_text())["training"]["epochs"] == 6
    reference = run_sweep(config_from_text(TINY, overrides=["training.epochs=6"]), out=tmp_path / "reference")
    assert run_tables(run) == run_tables(reference.run_dir)  # the first writer's work, whole: nothing of the second
    assert not (run / LOCK_FILE).exists()


@pytest.mark.slow
def test_sigkill_of_the_lock_holder_leaves_no_lock_and_a_resume_finishes(tmp_path):
    run = run_sweep(config_from_text(TINY), out=tmp_path / "runs").run_dir
    holder = subprocess.Popen(CLI + ["sweep", "--resume", str(run), "--set", "training.epochs=6"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)
    wait_for_holder(run, holder)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=60)
    assert read_holder(run)["pid"] == holder.pid  # its lock file is still there, naming the dead holder…
    done = cli("sweep", "--resume", run, "--set", "training.epochs=6", timeout=600)
    assert done.returncode == 0, done.stderr  # …but the kernel released the lock itself: not refused
    reference = run_sweep(config_from_text(TINY, overrides=["training.epochs=6"]), out=tmp_path / "reference")
    assert run_tables(run) == run_tables(reference.run_dir)
    assert not (run / LOCK_FILE).exists()


@pytest.mark.slow
def test_readers_see_a_consistent_run_while_a_sweep_writes_it(tmp_path, write_config):
    from init_lab import load_run

    out = tmp_path / "runs"
    sweep = subprocess.Popen(CLI + ["sweep", str(write_config(TINY.replace("epochs: 2", "epochs: 60"))),
                                    "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True, env=ENV)
    try:
        deadline = time.time() + 120
        while not (out / "latest").exists() and time.time() < deadline and sweep.poll() is None:
            time.sleep(0.05)
        run_dir = resolve_run_dir(out / "latest")
        wait_for_holder(run_dir, sweep)
        reads, growing = 0, set()
        printed = None
        while sweep.poll() is None:
            run = load_run(run_dir)  # a reader: never blocked by the writer's lock
            assert run.damaged == [], run.damaged  # never a torn file, nor one a writer left half-done
            assert set(run.summary["status"]) <= {"pending", "running", "completed"}
            for tid, rows in run.epochs.groupby("trial_id"):
                assert list(rows["epoch"]) == list(range(len(rows))), tid  # whole tables: epoch 0 on, no gaps
                growing.add(len(rows))
            if printed is None:  # a report to the terminal, as a separate process, while the sweep runs
                printed = cli("report", run_dir, "--no-files", "--format", "json", timeout=120)
            reads += 1
        _, stderr = sweep.communicate(timeout=60)
    finally:
        sweep.kill()
    assert sweep.returncode == 0, stderr
    assert printed.returncode == 0, printed.stderr
    assert {r["trial_id"] for r in json.loads(printed.stdout)} == set(load_run(run_dir).summary["trial_id"])
    assert reads >= 3 and len(growing) >= 2, (reads, growing)  # it did read a run in progress, several times
    final = load_run(run_dir)
    assert final.ok and final.damaged == [] and set(final.epochs.groupby("trial_id").size()) == {61}


@pytest.mark.slow
def test_two_concurrent_sweeps_into_one_out_get_distinct_runs_and_a_consistent_latest(tmp_path, write_config):
    cfg = write_config(TINY.replace("epochs: 2", "epochs: 1"))
    out = tmp_path / "runs"
    procs = [subprocess.Popen(CLI + ["sweep", str(cfg), "--out", str(out)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, env=ENV) for _ in range(2)]
    for p in procs:
        _, stderr = p.communicate(timeout=600)
        assert p.returncode == 0, stderr
    runs = sorted(d for d in out.iterdir() if d.name != "latest" and not d.name.startswith("."))
    assert len(runs) == 2 and runs[0].name != runs[1].name
    latest = resolve_run_dir(out / "latest")
    assert latest in {r.resolve() for r in runs}
    for r in runs:
        manifest = json.loads((r / "manifest.json").read_text())
        assert manifest["status"] == "completed" and manifest["counts"] == {"completed": 4}
        assert not (r / LOCK_FILE).exists()
    assert run_tables(runs[0]) == run_tables(runs[1])
    assert not list(out.glob(".latest*"))
