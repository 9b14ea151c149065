"""The sweep: plan, train every group through an executor, record everything, resume and extend.

Order of work (Hydra's rule: inputs are saved beside outputs before work starts): check every input
(``preflight``: executor, device, size of the work, the data — read and checked — so that a mistake
leaves no run directory behind); create the run directory and take its lock (``lock``: one writer at
a time); write the resolved ``config.yaml``, the manifest and a ``summary.csv`` listing every trial
as pending, point ``runs/latest`` at it; then plan execution groups (continuing each trial from its
newest checkpoint where one fits, cut to the memory budget: ``memory``), run them through the
executor and hand every event to the recorder. A trial that raises is recorded as failed and the
sweep goes on (and ends in :class:`TrialsFailedError` at the CLI: exit code 1); a problem that dooms
every later trial (unwritable disk) stops the sweep with one message, keeping what is done — at most
the epoch in progress is lost. A resume takes the lock before it reads anything, and trains again
the trials whose files are damaged (``integrity``).
"""

from __future__ import annotations

import getpass
import json
import os
import platform
import shutil
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from init_lab._version import __version__
from init_lab.catalog import defaults
from init_lab.catalog.errors import InitLabError, RunDirError
from init_lab.catalog.status import TrialStatus
from init_lab.config.grid import TrialSpec, expand
from init_lab.config.loading import config_from_text, config_to_yaml
from init_lab.config.schema import SweepConfig
from init_lab.run import integrity, preflight
from init_lab.run.checkpoints import CheckpointStore
from init_lab.run.context import SweepContext
from init_lab.run.executors import Executor
from init_lab.run.invocation import Invocation
from init_lab.run.lock import RunLock
from init_lab.run.memory import MemoryPlan
from init_lab.run.observer import Observer
from init_lab.run.plan import plan_groups
from init_lab.run.recorder import Recorder
from init_lab.run.records import now_iso, pending_record
from init_lab.run.store import CHECKPOINTS_DIR, RunStore, create_run_dir, resolve_run_dir, update_latest
from init_lab.runschema.columns import summary_columns
from init_lab.runschema.records import Manifest, SweepStatus, TrialRecord
from init_lab.runschema.timings import Timings


def plan(config: SweepConfig) -> list[TrialSpec]:
    """The trials a config expands to (what --dry-run and validate print)."""
    return expand(config)


@dataclass
class Options:
    """How to run a sweep (not what it computes: that is the config)."""

    device: str | None = None
    observer: Observer = field(default_factory=Observer)
    command: list[str] | None = None
    pack: bool = True
    executor: str = "local"
    address: str | None = None
    retry_failed: bool = False
    yes: bool = False  # run a sweep that preflight finds too large (memory, time) without asking
    confirm: Callable[[str], bool] | None = None  # asked instead (a terminal's prompt); None: refuse it

    def check(self, config: SweepConfig, work: preflight.Work) -> preflight.Ready:
        return preflight.check(config, work, device=self.device, executor=self.executor, address=self.address,
                               pack=self.pack, yes=self.yes, confirm=self.confirm)

    @property
    def command_line(self) -> list[str]:
        return self.command or sys.argv


def run_sweep(config: SweepConfig, *, out: str | Path = defaults.RUNS_DIR, name: str | None = None,
              **options: Any) -> Invocation:
    """Run a new sweep into a fresh run directory under ``out``. Options: see :class:`Options`.

    Every input is checked first (``preflight``): a mistake raises before the run directory exists."""
    opts = Options(**options)
    if name:
        config = config.model_copy(update={"name": name})
    ready = opts.check(config, [(s, s.train.epochs) for s in expand(config)])  # nothing written before this
    run_dir = create_run_dir(Path(out), config.name)
    lock = RunLock(run_dir, opts.command_line)
    try:
        lock.acquire()  # a new directory, so only a file system without locks refuses: then leave nothing
    except InitLabError:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    with lock:
        store = RunStore(run_dir)
        try:
            store.write_config(config_to_yaml(config))
            update_latest(Path(out), run_dir)
        except OSError as exc:
            raise RunDirError(f"cannot write to {run_dir}: {exc.strerror or exc}.") from exc
        return Sweep(config, store, opts, lock_note=lock.note).execute(ready)


def resume_sweep(run_dir: str | Path, config: SweepConfig | None = None, *, overrides: list[str] | None = None,
                 runs: str | Path = defaults.RUNS_DIR, **options: Any) -> Invocation:
    """Finish an interrupted sweep, or extend a finished one to more epochs.

    Completed and diverged trials are kept; the rest continue from their newest checkpoint, and so do
    trials whose files are damaged. ``config`` (a config file) or ``overrides`` (``--set`` strings applied
    to the run's own config) may change only fields that do not change what trials compute, and
    ``training.epochs`` upwards (extension). Refused at once while another process writes the run.
    """
    opts = Options(**options)
    store = RunStore(resolve_run_dir(run_dir, runs))
    with RunLock(store.root, opts.command_line) as lock:  # before reading: what is read stays true
        saved_text = store.read_config_text()
        saved = config_from_text(saved_text, str(store.config_path))
        wanted = config if config is not None else config_from_text(saved_text, str(store.config_path),
                                                                    overrides or [])
        check_resume_change(store.root, saved, wanted)
        sweep = Sweep(wanted, store, opts, previous=saved, lock_note=lock.note)
        ready = opts.check(wanted, sweep.work())  # before the config is rewritten for an extension
        if wanted.resolved() != saved.resolved():
            store.write_config(config_to_yaml(wanted))
        return sweep.execute(ready)


def check_resume_change(root: Path, saved: SweepConfig, wanted: SweepConfig) -> None:
    """Refuse any change on resume that would alter what trials compute, naming the field."""
    for path, old, new in _differences(saved.resolved(), wanted.resolved()):
        where = ".".join(path)
        if any(where == f or where.startswith(f + ".") for f in defaults.RESUME_MAY_CHANGE):
            continue
        if path == ("training", "epochs") and new >= old:
            continue
        if path == ("training", "epochs"):
            why = f"a resume can only extend a run (it has {old} epochs; fewer would discard trained epochs)"
        else:
            why = "it changes what the trials compute"
        raise RunDirError(
            f"{root} was run with a different config ({where}: {json.dumps(old)} in the run, {json.dumps(new)} now): "
            f"{why}. Resume with the run's own settings (initlab sweep --resume RUN_DIR), extend it with "
            "--set training.epochs=N, or start a new sweep."
        )


def _differences(a: Any, b: Any, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any, Any]]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for key in sorted(set(a) | set(b)) for d in _differences(a.get(key), b.get(key), prefix + (key,))]
    return [] if a == b else [(prefix, a, b)]


class Sweep:
    """One invocation over one run directory: triage, plan, execute, record."""

    def __init__(self, config: SweepConfig, store: RunStore, opts: Options, previous: SweepConfig | None = None,
                 lock_note: str | None = None):
        self.config, self.store, self.opts = config, store, opts
        self.trials = expand(config)
        self.extending = previous is not None and config.training.epochs > previous.training.epochs
        self.columns = summary_columns(list(config.training.thresholds))
        self.context: SweepContext | None = None  # once the checkpoint storage and the device are known
        self.old_manifest, manifest_problem = integrity.read_manifest(store)
        self.notes = [lock_note] if lock_note else []  # shown once the sweep starts
        if manifest_problem:
            self.notes.append(f"{manifest_problem}: rewritten; the run's history before this invocation (created "
                              "at, invocations, extensions) is lost")
        self.damaged: set[str] = set()  # trials whose files are damaged: they train again
        self.found: dict[str, TrialRecord | None] = {}  # each trial's record as found on disk
        self.records, self.kept = self._triage()
        self.manifest = Manifest()
        self.timings = Timings()  # the driver's own phases (imports, data), from preflight on
        self.started = time.perf_counter()
        self.ready: preflight.Ready | None = None

    # --- what to do -------------------------------------------------------------------

    def _triage(self) -> tuple[dict[str, TrialRecord], list[str]]:
        """Records to keep (finished at the configured epochs) and pending ones for the rest — damaged
        trials included, which train again (a note each says why)."""
        records, kept = {}, []
        expect = self.old_manifest.status == SweepStatus.COMPLETED
        for spec in self.trials:
            old, problem = integrity.read_record(self.store, spec.id)
            self.found[spec.id] = old
            damage = integrity.trial_problems(self.store, spec.id, old, problem, expect_record=expect)
            status = old.status if old else TrialStatus.PENDING
            done = status == TrialStatus.DIVERGED or (
                status == TrialStatus.COMPLETED and (old.epochs_run or 0) >= spec.train.epochs)
            if damage:
                self.damaged.add(spec.id)
                self.notes.append(f"{spec.id}: {'; '.join(damage)}: damaged, so it trains again (from its newest "
                                  "usable checkpoint)")
            if not damage and (done or (status == TrialStatus.FAILED and not self.opts.retry_failed)):
                records[spec.id] = old
                kept.append(spec.id)
            else:
                records[spec.id] = pending_record(spec)
        return records, kept

    def work(self) -> preflight.Work:
        """Each trial still to train, with the epochs it has left as far as its record says (a trial
        whose checkpoint turns out unusable restarts: the estimate is a lower bound)."""
        out = []
        for spec in self.trials:
            if spec.id in self.kept:
                continue
            old = self.found[spec.id]
            completed = old is not None and old.status == TrialStatus.COMPLETED and spec.id not in self.damaged
            done = int(old.epochs_run or 0) if completed else 0  # an extension trains only the new epochs
            out.append((spec, max(0, spec.train.epochs - done)))
        return out

    def _checkpoint_dir(self, executor: type[Executor]) -> Path | None:
        """The run's checkpoints/, or the shared storage a Ray cluster's workers write to (None: none shared)."""
        storage = self.config.checkpoints.storage
        if storage:
            return Path(storage).expanduser().resolve() / self.store.root.name
        if executor.remote_workers(self.opts.address):
            return None  # remote workers cannot see this directory
        return self.store.root / CHECKPOINTS_DIR

    def _executor(self, executor: type[Executor], checkpoint_dir: Path | None) -> Executor:
        return executor.create(self.config, address=self.opts.address, storage=checkpoint_dir,
                               load_data=self._load_data)

    def _load_data(self) -> Any:
        from init_lab.engine.data import DeviceData, Recording, load_prepared
        from init_lab.run.interrupts import deferred

        t0 = time.perf_counter()
        ready = self.ready
        with self.timings.phase("data"):
            prepared = ready.data if ready is not None and ready.data is not None else \
                load_prepared(self.config.dataset, self.trials[0].arch.family)  # preflight read it: not again
            with deferred():  # TensorFlow's conversions: Ctrl-C inside them can crash the process (run.interrupts)
                data = DeviceData.from_prepared(prepared, Recording.from_config(self.config.training))
        if ready is not None:
            ready.data = None  # the tensors are what the sweep keeps (the memory plan counts one NumPy copy)
        self.manifest.dataset = {"source": prepared.source, "shape": list(prepared.image_shape),
                                 "classes": prepared.n_classes, **data.sizes()}
        self.store.write_manifest(self.manifest)
        sizes = data.sizes()
        seconds = time.perf_counter() - t0 + (ready.timings.seconds.get("data", 0.0) if ready is not None else 0.0)
        self.opts.observer.data_loaded(prepared.source, sizes["train"], sizes["validation"], sizes["test"], seconds)
        return data

    # --- doing it ---------------------------------------------------------------------

    def execute(self, ready: preflight.Ready) -> Invocation:
        """Train what is left, recording everything; ``ready``: what ``preflight.check`` found."""
        started = time.perf_counter()
        self.ready, self.device = ready, ready.device
        self.timings.merge(ready.timings)
        records, kept = self.records, self.kept
        todo = [s for s in self.trials if s.id not in kept]
        checkpoint_dir = self._checkpoint_dir(ready.executor)
        checkpoints = CheckpointStore(checkpoint_dir, self.config, ready.compute) if checkpoint_dir is not None else None
        memory = ready.memory
        groups, notices = plan_groups(todo, self.opts.pack, checkpoints, memory=memory)  # cut to the memory budget
        self._start_manifest(groups, checkpoint_dir, memory)
        observer = self.opts.observer
        self.context = SweepContext(self.config, self.trials, self.store, self.device, checkpoints, observer)

        def save_summary() -> None:
            self.store.write_summary(self.columns, (records[s.id].summary_row() for s in self.trials))

        recorder = Recorder(self.context, records, on_change=save_summary)
        recorder.total = len(todo)
        executor = None
        try:
            self.store.write_manifest(self.manifest)
            save_summary()
            observer.sweep_start(self.store.root, self.trials, todo, self.device)
            for line in self.notes + notices + (checkpoints.problems if checkpoints else []):
                observer.notice(line)
            if checkpoint_dir is None and todo:
                observer.notice("no checkpoint storage shared with the Ray workers (set checkpoints.storage): "
                                "a retried or resumed group restarts from epoch 1")
            executor = self._executor(ready.executor, checkpoint_dir) if todo else None
            for event in executor.run(groups) if executor else ():
                recorder.handle(event)
        except KeyboardInterrupt:
            self._finish(records, SweepStatus.INTERRUPTED, recorder)
            raise
        except InitLabError as exc:
            self._finish_safely(records, SweepStatus.FAILED, str(exc), recorder)
            raise
        except OSError as exc:
            self._finish_safely(records, SweepStatus.FAILED, str(exc), recorder)
            raise RunDirError(
                f"writing to {self.store.root} failed ({exc.strerror or exc}); the sweep stopped. Finished trials "
                f"and epochs are kept: free space or fix permissions, then `initlab sweep --resume {self.store.root}`."
            ) from exc
        except BaseException as exc:  # an unexpected bug: record it, keep what is done, let it surface
            self._finish_safely(records, SweepStatus.FAILED, f"{type(exc).__name__}: {exc}", recorder)
            raise
        finally:
            if executor is not None:
                executor.close()
        self._finish(records, SweepStatus.COMPLETED, recorder)
        result = Invocation(self.store.root, [records[s.id] for s in self.trials], SweepStatus.COMPLETED, self.device,
                             time.perf_counter() - started, kept)
        observer.sweep_end(result)
        return result

    def _start_manifest(self, groups: list, checkpoint_dir: Path | None, memory: MemoryPlan) -> None:
        old = self.old_manifest  # empty where it was unreadable (a note says so)
        self.manifest = Manifest(
            initlab_version=__version__,
            name=self.config.name,
            run_dir=self.store.root.name,
            status=SweepStatus.RUNNING,
            n_trials=len(self.trials),
            created_at=old.created_at or now_iso(),
            started_at=now_iso(),
            command=self.opts.command or sys.argv,
            invocations=old.invocations + [now_iso()],
            extensions=list(old.extensions),
            environment=_environment(self.device),
            execution={
                "packed": self.opts.pack, "executor": self.opts.executor, "groups": [len(g.specs) for g in groups],
                "resumed_groups": {g.id: g.start_epoch for g in groups if g.start},
                "checkpoints": str(checkpoint_dir) if checkpoint_dir else None,
                "memory": memory.record(groups),
            },
            dataset=old.dataset,
        )
        if self.extending:
            self.manifest.extensions.append({"epochs": self.config.training.epochs, "at": now_iso()})

    def _finish(self, records: dict[str, TrialRecord], status: SweepStatus, recorder: Recorder,
                error: str | None = None) -> None:
        counts: dict[str, int] = {}
        for r in records.values():
            counts[r.status.value] = counts.get(r.status.value, 0) + 1
        written = recorder.checkpoint_bytes
        self.manifest.execution["checkpoint_writes"] = {
            "count": len(written), "mean_bytes": int(sum(written) / len(written)) if written else 0,
            "seconds": round(recorder.timings.seconds.get("checkpoints", 0.0), 3),
        }
        self.manifest.timings = self._timings(recorder)
        self.manifest.end(status, now_iso(), error, counts)
        self.store.write_manifest(self.manifest)

    def _timings(self, recorder: Recorder) -> dict[str, Any]:
        """This invocation's time by phase (``runschema.timings``): the whole sweep's, and each group's."""
        whole = Timings()
        whole.merge(self.timings)
        whole.merge(recorder.timings)
        for group in recorder.group_timings.values():
            whole.merge(group)
        wall = time.perf_counter() - self.started + self.ready.timings.total if self.ready else whole.total
        whole.add("other", max(0.0, wall - whole.total))  # Ray's groups run side by side: then none is left
        return {"wall_seconds": round(wall, 3), "sweep": whole.to_json(),
                "groups": {gid: t.to_json() for gid, t in recorder.group_timings.items()}}

    def _finish_safely(self, records, status: SweepStatus, error: str, recorder: Recorder) -> None:
        try:
            self._finish(records, status, recorder, error)
        except OSError:
            pass  # the disk that failed may refuse the manifest too; the trial files already say what is done


def _environment(device: str) -> dict[str, Any]:
    import numpy

    from init_lab.engine.backend import environment

    return {
        "initlab": __version__, "python": sys.version.split()[0], **environment(), "numpy": numpy.__version__,
        "platform": platform.platform(), "host": socket.gethostname(), "user": _user(), "cpu_count": os.cpu_count(),
        "device": device,
    }


def _user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:  # no user database in some containers
        return None
