"""The sweep: plan, train every group through an executor, record everything, resume and extend.

Order of work (Hydra's rule: inputs are saved beside outputs before work starts): create the run
directory, write the resolved ``config.yaml``, the manifest and a ``summary.csv`` listing every
trial as pending, point ``runs/latest`` at it; then plan execution groups (continuing each trial
from its newest checkpoint where one fits, cut to the memory budget: ``memory``), run them through
the executor and hand every event to the recorder. A trial that raises is recorded as failed and
the sweep goes on; a problem that dooms every later trial (missing data, unwritable disk) stops the
sweep with one message, keeping what is done — at most the epoch in progress is lost.
"""

from __future__ import annotations

import getpass
import json
import os
import platform
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from init_lab._version import __version__
from init_lab.catalog import defaults
from init_lab.catalog.errors import InitLabError, RunDirError
from init_lab.catalog.status import TrialStatus
from init_lab.config.grid import TrialSpec, expand
from init_lab.config.schema import SweepConfig, config_from_text, config_to_yaml
from init_lab.run.checkpoints import CheckpointStore
from init_lab.run.executors import Executor, LocalExecutor, RayExecutor, check_ray_address, require_ray
from init_lab.run.memory import MemoryPlan
from init_lab.run.plan import plan_groups, trial_fingerprint
from init_lab.run.recorder import Observer, Recorder
from init_lab.run.records import now_iso, pending_record, summary_columns, summary_row
from init_lab.run.store import CHECKPOINTS_DIR, RunStore, create_run_dir, resolve_run_dir, update_latest


@dataclass
class SweepResult:
    run_dir: Path
    records: list[dict[str, Any]]
    status: str
    device: str
    seconds: float
    skipped: list[str] = field(default_factory=list)  # trial ids kept from an earlier, resumed run

    def count(self, status: str) -> int:
        return sum(1 for r in self.records if r.get("status") == status)


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


def run_sweep(config: SweepConfig, *, out: str | Path = defaults.RUNS_DIR, name: str | None = None,
              **options: Any) -> SweepResult:
    """Run a new sweep into a fresh run directory under ``out``. Options: see :class:`Options`."""
    opts = Options(**options)
    if name:
        config = config.model_copy(update={"name": name})
    device = _preflight(config, opts)  # before anything is written: no empty run dirs
    run_dir = create_run_dir(Path(out), config.name)
    store = RunStore(run_dir)
    try:
        store.write_config(config_to_yaml(config))
        update_latest(Path(out), run_dir)
    except OSError as exc:
        raise RunDirError(f"cannot write to {run_dir}: {exc.strerror or exc}.") from exc
    return Sweep(config, store, device, opts).execute()


def resume_sweep(run_dir: str | Path, config: SweepConfig | None = None, *, overrides: list[str] | None = None,
                 runs: str | Path = defaults.RUNS_DIR, **options: Any) -> SweepResult:
    """Finish an interrupted sweep, or extend a finished one to more epochs.

    Completed and diverged trials are kept; the rest continue from their newest checkpoint. ``config``
    (a config file) or ``overrides`` (``--set`` strings applied to the run's own config) may change only
    fields that do not change what trials compute, and ``training.epochs`` upwards (extension).
    """
    opts = Options(**options)
    store = RunStore(resolve_run_dir(run_dir, runs))
    saved_text = store.read_config_text()
    saved = config_from_text(saved_text, str(store.config_path))
    wanted = config if config is not None else config_from_text(saved_text, str(store.config_path), overrides or [])
    check_resume_change(store.root, saved, wanted)
    device = _preflight(wanted, opts)
    if wanted.resolved() != saved.resolved():
        store.write_config(config_to_yaml(wanted))
    return Sweep(wanted, store, device, opts, previous=saved).execute()


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


def _preflight(config: SweepConfig, opts: Options) -> str:
    """Check the executor and set up the device before any file is written; returns the device's name."""
    if opts.executor == "ray":
        require_ray()
        check_ray_address(opts.address)
    elif opts.executor != "local":
        raise InitLabError(f"unknown executor '{opts.executor}' (local or ray).")
    from init_lab.engine.backend import setup_device  # TensorFlow is imported only when something trains

    return setup_device(opts.device or config.device, config.training.deterministic)


class Sweep:
    """One invocation over one run directory: triage, plan, execute, record."""

    def __init__(self, config: SweepConfig, store: RunStore, device: str, opts: Options,
                 previous: SweepConfig | None = None):
        self.config, self.store, self.device, self.opts = config, store, device, opts
        self.trials = expand(config)
        self.extending = previous is not None and config.training.epochs > previous.training.epochs
        self.columns = summary_columns(list(config.training.thresholds))
        self.manifest: dict[str, Any] = {}

    # --- what to do -------------------------------------------------------------------

    def _triage(self) -> tuple[dict[str, dict[str, Any]], list[str]]:
        """Records to keep (finished at the configured epochs) and pending ones for the rest."""
        records, kept = {}, []
        for spec in self.trials:
            old = self.store.read_trial(spec.id)
            status = TrialStatus.of(old.get("status")) if old else TrialStatus.PENDING
            done = status == TrialStatus.DIVERGED or (
                status == TrialStatus.COMPLETED and (old.get("epochs_run") or 0) >= spec.train.epochs)
            if done or (status == TrialStatus.FAILED and not self.opts.retry_failed):
                records[spec.id] = old
                kept.append(spec.id)
            else:
                records[spec.id] = pending_record(spec)
        return records, kept

    def _checkpoint_dir(self) -> Path | None:
        """The run's checkpoints/, or the shared storage a Ray cluster's workers write to (None: none shared)."""
        storage = self.config.checkpoints.storage
        if storage:
            return Path(storage).expanduser().resolve() / self.store.root.name
        if self.opts.executor == "ray" and self.opts.address:
            return None  # remote workers cannot see this directory
        return self.store.root / CHECKPOINTS_DIR

    def _executor(self, checkpoint_dir: Path | None) -> Executor:
        if self.opts.executor == "ray":
            res = self.config.resources
            shared = str(checkpoint_dir) if checkpoint_dir is not None else None
            return RayExecutor(config_to_yaml(self.config), self.opts.address, res.cpus, res.gpus, shared)
        return LocalExecutor(self._load_data)

    def _load_data(self) -> Any:
        from init_lab.engine.data import DeviceData, Recording, load_prepared

        t0 = time.perf_counter()
        prepared = load_prepared(self.config.dataset, self.trials[0].arch.family)
        data = DeviceData.from_prepared(prepared, Recording.from_config(self.config.training))
        self.manifest["dataset"] = {"source": prepared.source, **data.sizes()}
        self.store.write_manifest(self.manifest)
        sizes = data.sizes()
        self.opts.observer.data_loaded(prepared.source, sizes["train"], sizes["validation"], sizes["test"],
                                       time.perf_counter() - t0)
        return data

    # --- doing it ---------------------------------------------------------------------

    def execute(self) -> SweepResult:
        started = time.perf_counter()
        records, kept = self._triage()
        todo = [s for s in self.trials if s.id not in kept]
        checkpoint_dir = self._checkpoint_dir()
        checkpoints = CheckpointStore(checkpoint_dir) if checkpoint_dir is not None else None
        device = ("gpu" if self.config.resources.gpus > 0 else "cpu") if self.opts.executor == "ray" else self.device
        fps = {s.id: trial_fingerprint(self.config, s, device) for s in todo}
        memory = MemoryPlan.for_config(self.config, device, self.trials[0].arch.family)
        groups, notices = plan_groups(todo, self.opts.pack, checkpoints, fps, memory)  # cut to the memory budget
        self._start_manifest(groups, checkpoint_dir, memory)
        observer = self.opts.observer

        def save_summary() -> None:
            self.store.write_summary(self.columns, (summary_row(records[s.id]) for s in self.trials))

        recorder = Recorder(
            self.store, self.trials, records, thresholds=list(self.config.training.thresholds),
            device=self.device, observer=observer, checkpoints=checkpoints, fingerprints=fps,
            keep_final=self.config.checkpoints.keep_final, on_change=save_summary,
        )
        recorder.total = len(todo)
        executor = None
        try:
            self.store.write_manifest(self.manifest)
            save_summary()
            observer.sweep_start(self.store.root, self.trials, todo, self.device)
            for line in notices + (checkpoints.problems if checkpoints else []):
                observer.notice(line)
            if checkpoint_dir is None and todo:
                observer.notice("no checkpoint storage shared with the Ray workers (set checkpoints.storage): "
                                "a retried or resumed group restarts from epoch 1")
            executor = self._executor(checkpoint_dir) if todo else None
            for event in executor.run(groups) if executor else ():
                recorder.handle(event)
        except KeyboardInterrupt:
            self._finish(records, "interrupted", recorder)
            raise
        except InitLabError as exc:
            self._finish_safely(records, "failed", str(exc), recorder)
            raise
        except OSError as exc:
            self._finish_safely(records, "failed", str(exc), recorder)
            raise RunDirError(
                f"writing to {self.store.root} failed ({exc.strerror or exc}); the sweep stopped. Finished trials "
                f"and epochs are kept: free space or fix permissions, then `initlab sweep --resume {self.store.root}`."
            ) from exc
        except BaseException as exc:  # an unexpected bug: record it, keep what is done, let it surface
            self._finish_safely(records, "failed", f"{type(exc).__name__}: {exc}", recorder)
            raise
        finally:
            if executor is not None:
                executor.close()
        self._finish(records, "completed", recorder)
        result = SweepResult(self.store.root, [records[s.id] for s in self.trials], "completed", self.device,
                             time.perf_counter() - started, kept)
        observer.sweep_end(result)
        return result

    def _start_manifest(self, groups: list, checkpoint_dir: Path | None, memory: MemoryPlan) -> None:
        old = self.store.read_manifest()
        self.manifest = {
            "initlab_version": __version__,
            "name": self.config.name,
            "run_dir": self.store.root.name,
            "status": "running",
            "n_trials": len(self.trials),
            "created_at": old.get("created_at") or now_iso(),
            "started_at": now_iso(),
            "finished_at": None,
            "command": self.opts.command or sys.argv,
            "invocations": old.get("invocations", []) + [now_iso()],
            "extensions": old.get("extensions", []),
            "environment": _environment(self.device),
            "execution": {
                "packed": self.opts.pack, "executor": self.opts.executor, "groups": [len(g.specs) for g in groups],
                "resumed_groups": {g.id: g.start_epoch for g in groups if g.start},
                "checkpoints": str(checkpoint_dir) if checkpoint_dir else None,
                "memory": memory.record(groups),
            },
        }
        if "dataset" in old:
            self.manifest["dataset"] = old["dataset"]
        if self.extending:
            self.manifest["extensions"].append({"epochs": self.config.training.epochs, "at": now_iso()})

    def _finish(self, records: dict[str, dict[str, Any]], status: str, recorder: Recorder,
                error: str | None = None) -> None:
        counts: dict[str, int] = {}
        for r in records.values():
            counts[r.get("status", "pending")] = counts.get(r.get("status", "pending"), 0) + 1
        written = recorder.checkpoint_bytes
        self.manifest["execution"]["checkpoint_writes"] = {
            "count": len(written), "mean_bytes": int(sum(written) / len(written)) if written else 0,
            "seconds": round(recorder.checkpoint_seconds, 3),
        }
        self.manifest.update(status=status, finished_at=now_iso(), error=error, counts=counts)
        self.store.write_manifest(self.manifest)

    def _finish_safely(self, records, status: str, error: str, recorder: Recorder) -> None:
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
