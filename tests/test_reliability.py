"""Reliability: kill -9 at random moments and resume, Ctrl-C, failures, full disks, concurrency."""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import threading
import time
from datetime import datetime

import pytest

from init_lab.catalog.errors import RunDirError
from init_lab.config.loading import config_from_text
from init_lab.run import store
from init_lab.run.store import create_run_dir, resolve_run_dir, update_latest
from init_lab.run.sweep import resume_sweep, run_sweep

from .helpers import CLI, TINY, EventLog, assert_clean_exit, cli, invoke, read_csv, run_tables


def _checkpoints(run_root):
    """(path, inode, mtime) of every group checkpoint on disk now: a rewrite (temp file + rename) changes it."""
    found = set()
    for p in run_root.glob("*/checkpoints/*.npz"):
        try:
            st = p.stat()
        except FileNotFoundError:  # replaced between the listing and the stat
            continue
        found.add((p, st.st_ino, st.st_mtime_ns))
    return found


@pytest.mark.slow
@pytest.mark.usefixtures("xla")
def test_kill_9_at_random_moments_then_resume_gives_the_uninterrupted_result(tmp_path, write_config, reference_run):
    """SIGKILL a sweep process at a random moment after each new epoch checkpoint, resume each time; the end
    result equals an uninterrupted run. Every kill lands in training (after a checkpoint, before the end).

    CI runs a short version; INITLAB_KILL_ROUNDS=30 runs a long one.
    """
    rounds = int(os.environ.get("INITLAB_KILL_ROUNDS", "4"))
    text = TINY.replace("epochs: 2", f"epochs: {2 * rounds + 2}") + "  # 8 trials\n"
    text = text.replace("activation: [relu, tanh]", "activation: [relu, tanh]\n  seed: [0, 1]")
    cfg_path = write_config(text)
    reference = reference_run(text)

    out = tmp_path / "runs"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    rng = random.Random(int(os.environ.get("INITLAB_KILL_SEED", "0")))
    kills = 0
    for _ in range(rounds):
        cmd = CLI + (["sweep", "--resume", "latest"] if (out / "latest").exists() else ["sweep", str(cfg_path)])
        seen = _checkpoints(out)
        proc = subprocess.Popen(cmd + ["--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        deadline = time.time() + 120
        while proc.poll() is None and not (_checkpoints(out) - seen) and time.time() < deadline:
            time.sleep(0.02)  # until this process has written a checkpoint of its own
        time.sleep(rng.uniform(0.0, 0.3))  # then anywhere in the epochs that follow (or during the write)
        if proc.poll() is not None:
            assert proc.returncode == 0, proc.stderr.read().decode()
            break  # it finished first: nothing left to kill
        proc.kill()
        proc.wait()
        if proc.returncode == 0:
            break  # it finished between the last look and the kill
        assert proc.returncode == -9, proc.stderr.read().decode()
        kills += 1
    assert kills >= min(2, rounds), f"only {kills} kills landed in training"
    cmd = CLI + (["sweep", "--resume", "latest"] if (out / "latest").exists() else ["sweep", str(cfg_path)])
    done = subprocess.run(cmd + ["--out", str(out)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr

    run = resolve_run_dir(out / "latest")
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["counts"] == {"completed": 8}
    assert len(manifest["invocations"]) == kills + 1 + (kills < rounds)  # every kill was a real, resumed process
    ids = [r["trial_id"] for r in read_csv(run / "summary.csv")]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 8  # every trial exactly once
    for d in (run / "trials").iterdir():
        visible = {p.name for p in d.iterdir() if not p.name.startswith(".")}
        assert visible == {"trial.json", "epochs.csv", "layers.csv", "steps.csv", "step_layers.csv", "histograms.npz"}
        assert all(p.name.endswith(".tmp") for p in d.iterdir() if p.name.startswith("."))
        assert json.loads((d / "trial.json").read_text())["status"] == "completed"
    # every table and histogram, steps.csv included: no duplicated or missing steps after the kills
    assert run_tables(run) == run_tables(reference), f"after {kills} kills the tables differ from an uninterrupted run"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_stops_cleanly_with_exit_130_and_says_how_to_resume(tmp_path, write_config, sig):
    """Ctrl-C, or a scheduler's SIGTERM (the CLI's handler turns it into the same clean stop). 400 epochs: a sweep
    of 40 (0.02 s each) once finished on a loaded CI machine before the signal arrived. A Ctrl-C that landed inside
    TensorFlow's tf.constant once ended this sweep with SIGSEGV (-11): run.interrupts holds it to the next event."""
    cfg_path = write_config(TINY.replace("epochs: 2", "epochs: 400"))
    out = tmp_path / "runs"
    proc = subprocess.Popen(CLI + ["sweep", str(cfg_path), "--out", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline, started = time.time() + 120, False
    while time.time() < deadline and proc.poll() is None:  # wait until the first trial has written an epoch
        epochs = list(out.glob("*/trials/*/epochs.csv"))
        if epochs and len(epochs[0].read_text().splitlines()) > 2:
            started = True
            break
        time.sleep(0.2)
    running = proc.poll() is None
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert started and running, f"epoch 1 written: {started}; still running at the signal: {running}\n{stdout[-2000:]}"
    assert proc.returncode == 130, f"{stderr}\n{stdout[-2000:]}"
    # a real process: an escaped exception would print its traceback here
    assert "interrupted" in stderr and "--resume" in stderr and "Traceback" not in stderr
    run = resolve_run_dir(out / "latest")
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    for d in (run / "trials").iterdir():
        record = json.loads((d / "trial.json").read_text())  # every file complete and parseable
        assert record["status"] in ("running", "pending")  # stopped mid-training: none finished, none failed
    resumed = cli("sweep", "--resume", run, "--set", "training.epochs=3")
    assert resumed.returncode == 1 and "training.epochs" in resumed.stderr  # 400 planned: fewer is refused


def test_retry_failed_through_the_command_line(tmp_path, write_config, monkeypatch):
    """A failed trial stays failed on a plain --resume, and trains again with --resume --retry-failed."""
    from init_lab.engine import programs

    real = programs.build_net

    def fails_for_trial_2(kind, specs, *args, **kwargs):
        if any(s.index == 2 for s in specs):
            raise ValueError("boom")
        return real(kind, specs, *args, **kwargs)

    monkeypatch.setattr(programs, "build_net", fails_for_trial_2)
    out = tmp_path / "runs"
    first = invoke("sweep", write_config(), "--out", out, "--no-pack")
    assert first.exception is None or isinstance(first.exception, SystemExit), repr(first.exception)
    assert "1 failed" in first.output
    monkeypatch.setattr(programs, "build_net", real)
    kept = invoke("sweep", "--resume", "latest", "--out", out, "--no-pack")
    assert_clean_exit(kept, first.exit_code)  # a plain resume keeps the failure: the same exit status
    run = resolve_run_dir(out / "latest")
    assert [r["status"] for r in read_csv(run / "summary.csv")] == ["completed", "completed", "failed", "completed"]
    retried = invoke("sweep", "--resume", "latest", "--out", out, "--no-pack", "--retry-failed")
    assert_clean_exit(retried, 0)
    assert [r["status"] for r in read_csv(run / "summary.csv")] == ["completed"] * 4
    assert "4 completed" in retried.output


@pytest.mark.slow
@pytest.mark.parametrize("case", ["one-model", "packed-error", "packed-out-of-memory"])
def test_a_failing_trial_is_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch, case):
    """Trial 1 cannot be built. Alone (one-model); in a packed group that fails for another reason, whose
    trials then train one at a time (packed-error); or in a packed group that runs out of memory, cut in
    halves down to single trials (packed-out-of-memory). Only trial 1 is recorded failed."""
    from init_lab.engine import programs

    real = programs.build_net

    def flaky(kind, specs, *args, **kwargs):
        if len(specs) > 1:
            raise (MemoryError("packed group too large") if case == "packed-out-of-memory" else
                   RuntimeError("packed step failed"))
        if specs[0].index == 1:
            raise ValueError("boom: bad shape")
        return real(kind, specs, *args, **kwargs)

    monkeypatch.setattr(programs, "build_net", flaky)
    log = EventLog()
    pack = case != "one-model"
    result = run_sweep(config_from_text(TINY), out=tmp_path, pack=pack, observer=log)
    assert [r.status for r in result.records] == ["completed", "failed", "completed", "completed"]
    assert result.records[1].error == "ValueError: boom: bad shape"
    assert read_csv(result.run_dir / "summary.csv")[1]["error"] == "ValueError: boom: bad shape"
    expected = {"one-model": [], "packed-error": ["failed (RuntimeError: packed step failed); training its 4 live "
                                                  "trial(s) one at a time, from epoch 1"],
                "packed-out-of-memory": ["ran out of memory", "in groups of 2 and 2", "in groups of 1 and 1"]}[case]
    for words in expected:
        assert any(words in n for n in log.notices), (words, log.notices)
    if case == "one-model":
        assert not log.notices

    # failed trials are kept on resume, and rerun with retry_failed
    assert resume_sweep(result.run_dir).records[1].status == "failed"
    monkeypatch.setattr(programs, "build_net", real)
    assert resume_sweep(result.run_dir, retry_failed=True, pack=pack).records[1].status == "completed"


def test_full_disk_stops_the_sweep_with_one_message_keeping_finished_trials(tmp_path, monkeypatch):
    real = store.atomic_write_text
    calls = {"n": 0}

    def filling_up(path, text):
        if path.name == "trial.json" and json.loads(text)["status"] == "completed":
            calls["n"] += 1
            if calls["n"] == 3:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, text)

    monkeypatch.setattr(store, "atomic_write_text", filling_up)
    with pytest.raises(RunDirError, match="No space left on device.*--resume"):
        run_sweep(config_from_text(TINY), out=tmp_path)
    run = resolve_run_dir(tmp_path / "latest")
    done = [json.loads(p.read_text())["status"] for p in sorted(run.glob("trials/*/trial.json"))]
    assert done[:2] == ["completed", "completed"]
    monkeypatch.setattr(store, "atomic_write_text", real)
    assert resume_sweep(run).count("completed") == 4


def test_unwritable_output_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(RunDirError, match="cannot create output directory"):
        run_sweep(config_from_text(TINY), out=blocker / "runs")


def test_leftover_temp_files_and_corrupt_trial_files_are_tolerated(tmp_path):
    first = run_sweep(config_from_text(TINY), out=tmp_path)
    trial_dir = first.run_dir / "trials" / "000_he_normal-relu-s0"
    (trial_dir / ".trial.json.x1y2.tmp").write_text('{"status": "compl')  # torn temp file of a killed writer
    (first.run_dir / "trials" / "001_he_normal-tanh-s0" / "trial.json").write_text("{ not json")
    resumed = resume_sweep(first.run_dir)
    assert resumed.skipped == ["000_he_normal-relu-s0", "002_zeros-relu-s0", "003_zeros-tanh-s0"]
    assert resumed.count("completed") == 4


def test_concurrent_sweeps_get_distinct_directories_and_a_valid_latest(tmp_path):
    now = datetime(2026, 11, 23, 11, 5, 12)
    made, errors = [], []

    def start():
        try:
            d = create_run_dir(tmp_path, "same", now)
            update_latest(tmp_path, d)
            made.append(d)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len({d.name for d in made}) == 16
    assert (tmp_path / "latest").resolve() in {d.resolve() for d in made}
    assert not list(tmp_path.glob(".latest*"))


def test_run_names_are_sanitized(tmp_path):
    result = run_sweep(config_from_text(TINY, overrides=["training.epochs=1", "grid.initializer=[zeros]",
                                                         "grid.activation=[relu]"]),
                       out=tmp_path, name="../../etc/\x1b[31mevil\nname")
    assert result.run_dir.parent == tmp_path
    assert "/" not in result.run_dir.name and ".." not in result.run_dir.name and "\x1b" not in result.run_dir.name


def test_huge_grid_needs_yes(tmp_path, write_config):
    result = invoke("sweep", write_config(TINY), "--out", tmp_path / "runs", "--max-trials", "3")
    assert_clean_exit(result, 1)
    assert "--yes" in result.stderr and "4 trials" in result.stderr
    assert not (tmp_path / "runs").exists()
