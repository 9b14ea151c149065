"""The sweep: plan, run every trial, record everything, resume what was interrupted.

Order of work (Hydra's rule: inputs are saved beside outputs before work starts):
create the run directory, write the resolved ``config.yaml``, the manifest and a
``summary.csv`` listing every trial as pending, point ``runs/latest`` at it; then
load and prepare the data once, and train the trials one by one, writing each
trial's files as it goes. A trial that raises is recorded as failed and the sweep
goes on; a problem that dooms every later trial (missing data, unwritable disk)
stops the sweep with one message, keeping what is done.
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

from . import __version__
from .config import SweepConfig, config_from_text, config_to_yaml
from .datasets import load_dataset, prepare
from .diagnostics import LAYER_COLUMNS, summarize
from .errors import InitLabError, RunDirError
from .grid import TrialSpec, expand
from .records import FINISHED, now_iso, pending_record, summary_columns, summary_row, trial_record
from .store import RunStore, create_run_dir, resolve_run_dir, update_latest


class Observer:
    """Receives progress events; the CLI renders them. Every method is optional."""

    def sweep_start(self, run_dir: Path, trials: list[TrialSpec], todo: list[TrialSpec], device: str) -> None: ...
    def data_loaded(self, source: str, n_train: int, n_val: int, n_test: int, seconds: float) -> None: ...
    def trial_start(self, spec: TrialSpec, position: int, total: int) -> None: ...
    def group_start(self, specs: list[TrialSpec], position: int, total: int) -> None: ...
    def progress(self, spec: TrialSpec, epoch: int, step: int, steps: int, loss: float, acc: float) -> None: ...
    def epoch_end(self, spec: TrialSpec, row: dict[str, Any]) -> None: ...
    def trial_end(self, spec: TrialSpec, record: dict[str, Any]) -> None: ...
    def sweep_end(self, result: SweepResult) -> None: ...


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


def run_sweep(
    config: SweepConfig,
    *,
    out: str | Path = "runs",
    name: str | None = None,
    device: str | None = None,
    observer: Observer | None = None,
    command: list[str] | None = None,
    pack: bool = True,
    executor: str = "local",
    address: str | None = None,
) -> SweepResult:
    """Run a new sweep into a fresh run directory under ``out``.

    ``pack`` trains compatible MLP trials together (see ``packed``); False trains one model per trial.
    """
    if name:
        config = config.model_copy(update={"name": name})
    trials = expand(config)
    _check_executor(executor)
    device_name = _device(device or config.device, config)  # before anything is written: no empty run dirs
    run_dir = create_run_dir(Path(out), config.name)
    store = RunStore(run_dir)
    try:
        store.write_config(config_to_yaml(config))
        update_latest(Path(out), run_dir)
    except OSError as exc:
        raise RunDirError(f"cannot write to {run_dir}: {exc.strerror or exc}.") from exc
    return _execute(config, trials, store, device_name, observer or Observer(), command, False, pack, executor, address)


def resume_sweep(
    run_dir: str | Path,
    config: SweepConfig | None = None,
    *,
    runs: str | Path = "runs",
    device: str | None = None,
    observer: Observer | None = None,
    retry_failed: bool = False,
    command: list[str] | None = None,
    pack: bool = True,
    executor: str = "local",
    address: str | None = None,
) -> SweepResult:
    """Finish an interrupted sweep: completed and diverged trials are kept, the rest run again.

    ``config``, when given, must resolve to the run's own config.yaml.
    """
    root = resolve_run_dir(run_dir, runs)
    store = RunStore(root)
    saved = config_from_text(store.read_config_text(), str(store.config_path))
    if config is not None and config.resolved() != saved.resolved():
        diff = _diff(saved.resolved(), config.resolved())
        raise RunDirError(
            f"{root} was run with a different config ({diff}); resume it without a config "
            "(initlab sweep --resume RUN_DIR), or start a new sweep."
        )
    trials = expand(saved)
    _check_executor(executor)
    device_name = _device(device or saved.device, saved)
    return _execute(saved, trials, store, device_name, observer or Observer(), command, retry_failed, pack, executor,
                    address)


def _check_executor(executor: str) -> None:
    if executor == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise InitLabError("--executor ray needs Ray: pip install 'initlab[ray]'.") from None


def _device(request: str, config: SweepConfig) -> str:
    from . import train  # TensorFlow is imported only when something is trained

    return train.setup_device(request, config.training.deterministic)


def _diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> str:
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            inner = _diff(va, vb, f"{prefix}{key}.")
            if inner:
                return inner
        elif va != vb:
            return f"{prefix}{key}: {json.dumps(va)} in the run, {json.dumps(vb)} now"
    return ""


def _environment(device: str) -> dict[str, Any]:
    import keras
    import numpy
    import tensorflow as tf

    return {
        "initlab": __version__,
        "python": sys.version.split()[0],
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "user": _user(),
        "cpu_count": os.cpu_count(),
        "device": device,
    }


def _user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:  # no user database in some containers
        return None


def _execute(
    config: SweepConfig,
    trials: list[TrialSpec],
    store: RunStore,
    device: str,
    observer: Observer,
    command: list[str] | None,
    retry_failed: bool,
    pack: bool = True,
    executor: str = "local",
    address: str | None = None,
) -> SweepResult:
    from . import train  # TensorFlow is imported only when something is trained
    from .packed import plan_groups

    started = time.perf_counter()
    thresholds = list(config.training.thresholds)
    columns = summary_columns(thresholds)
    records: dict[str, dict[str, Any]] = {}
    skipped: list[str] = []
    for spec in trials:
        old = store.read_trial(spec.id)
        if old and (old.get("status") in FINISHED or (old.get("status") == "failed" and not retry_failed)):
            records[spec.id] = old
            skipped.append(spec.id)
        else:
            records[spec.id] = pending_record(spec)
    manifest = store.read_manifest()
    runs_so_far = manifest.get("invocations", [])
    manifest = {
        "initlab_version": __version__,
        "name": config.name,
        "run_dir": store.root.name,
        "status": "running",
        "n_trials": len(trials),
        "created_at": manifest.get("created_at") or now_iso(),
        "started_at": now_iso(),
        "finished_at": None,
        "command": command or sys.argv,
        "invocations": runs_so_far + [now_iso()],
    }

    def save_summary() -> None:
        store.write_summary(columns, (summary_row(records[s.id]) for s in trials))

    def finish(status: str, error: str | None = None) -> None:
        manifest.update(status=status, finished_at=now_iso(), error=error, counts=_counts(records.values()))
        store.write_manifest(manifest)

    manifest["environment"] = _environment(device)
    todo = [s for s in trials if s.id not in skipped]
    groups = plan_groups(todo, pack)
    manifest["execution"] = {"packed": pack, "groups": [len(g) for g in groups], "executor": executor}
    try:
        store.write_manifest(manifest)
        save_summary()
        observer.sweep_start(store.root, trials, todo, device)
        if executor == "ray" and todo:
            _run_on_ray(config, groups, store, device, thresholds, observer, records, save_summary, address)
        data = None
        if todo and executor != "ray":
            t0 = time.perf_counter()
            ds = config.dataset
            raw = load_dataset(ds.name, ds.path, (ds.synthetic_train, ds.synthetic_test))
            prepared = prepare(
                raw, trials[0].arch.family, ds.validation_split, ds.split_seed, ds.train_size, ds.test_size
            )
            data = train.DeviceData.from_prepared(prepared, diagnostics=config.training.diagnostics)
            manifest["dataset"] = {
                "source": prepared.source,
                "train": len(prepared.y_train),
                "validation": len(prepared.y_val),
                "test": len(prepared.y_test),
            }
            store.write_manifest(manifest)
            observer.data_loaded(
                prepared.source, len(prepared.y_train), len(prepared.y_val), len(prepared.y_test), time.perf_counter() - t0
            )
        position = 1
        for group in groups if executor != "ray" else []:
            if len(group) == 1:
                records[group[0].id] = _run_trial(group[0], data, store, device, thresholds, observer, position, len(todo))
            else:
                records.update(_run_group(group, data, store, device, thresholds, observer, position, len(todo)))
            position += len(group)
            save_summary()
    except KeyboardInterrupt:
        finish("interrupted")
        raise
    except InitLabError as exc:
        finish_safely(finish, "failed", str(exc))
        raise
    except OSError as exc:
        finish_safely(finish, "failed", str(exc))
        raise RunDirError(
            f"writing to {store.root} failed ({exc.strerror or exc}); the sweep stopped. Finished trials are "
            f"kept: free space or fix permissions, then `initlab sweep --resume {store.root}`."
        ) from exc
    except BaseException as exc:  # an unexpected bug: record it, keep what is done, let it surface
        finish_safely(finish, "failed", f"{type(exc).__name__}: {exc}")
        raise
    finish("completed")
    result = SweepResult(store.root, [records[s.id] for s in trials], "completed", device, time.perf_counter() - started, skipped)
    observer.sweep_end(result)
    return result


def finish_safely(finish, status: str, error: str) -> None:
    try:
        finish(status, error)
    except OSError:
        pass  # the disk that failed may refuse the manifest too; the trial files already say what is done


def _counts(records) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in records:
        counts[r.get("status", "pending")] = counts.get(r.get("status", "pending"), 0) + 1
    return counts


def _run_trial(
    spec: TrialSpec,
    data: Any,
    store: RunStore,
    device: str,
    thresholds: list[float],
    observer: Observer,
    position: int,
    total: int,
) -> dict[str, Any]:
    from . import train

    started_at = now_iso()
    rows: list[dict[str, Any]] = []
    _start(spec, store, device, thresholds, started_at)
    observer.trial_start(spec, position, total)

    def on_epoch(row: train.EpochRow) -> None:
        rows.append(vars(row).copy())
        store.write_epochs(spec.id, train.EPOCH_COLUMNS, rows)  # epochs so far survive a crash
        observer.epoch_end(spec, rows[-1])

    def on_progress(epoch: int, step: int, steps: int, loss: float, acc: float) -> None:
        observer.progress(spec, epoch, step, steps, loss, acc)

    def on_layers(rows: list[dict[str, Any]]) -> None:
        store.write_layers(spec.id, LAYER_COLUMNS, rows)

    t0 = time.perf_counter()
    try:
        outcome = train.train_trial(spec, data, on_epoch=on_epoch, on_progress=on_progress, on_layers=on_layers)
    except (KeyboardInterrupt, InitLabError, OSError):
        raise
    except Exception as exc:  # a trial's own failure (bad shape, out of memory...) must not stop the sweep
        outcome = train.TrialOutcome(
            status="failed", error=f"{type(exc).__name__}: {exc}", wall_seconds=time.perf_counter() - t0
        )
    return _finish(spec, outcome, rows, store, device, thresholds, observer, started_at, 1)


def _run_group(
    specs: list[TrialSpec],
    data: Any,
    store: RunStore,
    device: str,
    thresholds: list[float],
    observer: Observer,
    position: int,
    total: int,
) -> dict[str, dict[str, Any]]:
    """Train a packed group; if the group as a whole fails, fall back to one model per trial."""
    from . import train
    from .packed import train_group

    started_at = now_iso()
    rows: dict[str, list[dict[str, Any]]] = {s.id: [] for s in specs}
    for spec in specs:
        _start(spec, store, device, thresholds, started_at)
    observer.group_start(specs, position, total)

    def on_epoch(spec: TrialSpec, row: train.EpochRow) -> None:
        rows[spec.id].append(vars(row).copy())
        store.write_epochs(spec.id, train.EPOCH_COLUMNS, rows[spec.id])
        observer.epoch_end(spec, rows[spec.id][-1])

    def on_progress(epoch: int, step: int, steps: int, loss: float, acc: float) -> None:
        observer.progress(specs[0], epoch, step, steps, loss, acc)

    def on_layers(spec: TrialSpec, layer_rows: list[dict[str, Any]]) -> None:
        store.write_layers(spec.id, LAYER_COLUMNS, layer_rows)

    try:
        outcomes = train_group(specs, data, on_epoch=on_epoch, on_progress=on_progress, on_layers=on_layers)
    except (KeyboardInterrupt, InitLabError, OSError):
        raise
    except Exception:  # e.g. out of memory for the packed model: train the members one by one
        return {
            s.id: _run_trial(s, data, store, device, thresholds, observer, position + i, total)
            for i, s in enumerate(specs)
        }
    return {
        spec.id: _finish(spec, outcomes[spec.id], rows[spec.id], store, device, thresholds, observer, started_at,
                         len(specs))
        for spec in specs
    }


def _start(spec: TrialSpec, store: RunStore, device: str, thresholds: list[float], started_at: str) -> None:
    """Mark a trial running (a run left so was interrupted: resume restarts it) with an empty table."""
    from . import train

    store.write_trial(spec.id, {**trial_record(spec, "running", [], thresholds, device=device), "started_at": started_at})
    store.write_epochs(spec.id, train.EPOCH_COLUMNS, [])


def _finish(spec, outcome, rows, store, device, thresholds, observer, started_at, packed_with) -> dict[str, Any]:
    """Write a finished trial's record (its tables are already written) and report it."""
    record = trial_record(
        spec, outcome.status, rows, thresholds, test_loss=outcome.test_loss, test_accuracy=outcome.test_accuracy,
        param_count=outcome.param_count, wall_seconds=outcome.wall_seconds, device=device, started_at=started_at,
        finished_at=now_iso(), error=outcome.error,
    )
    if packed_with > 1:
        record["packed_with"] = packed_with
    _add_signals(record, outcome)
    store.write_trial(spec.id, record)
    observer.trial_end(spec, record)
    return record


def _run_on_ray(config, groups, store, device, thresholds, observer, records, save_summary, address) -> None:
    """Every group as a Ray task; the driver writes each result as it arrives."""
    from . import train
    from .config import config_to_yaml
    from .executors import RayExecutor

    res = config.resources
    ray_exec = RayExecutor(address, res.cpus, res.gpus)
    started_at = now_iso()
    try:
        for group in groups:
            for spec in group:
                _start(spec, store, device, thresholds, started_at)
        request = "gpu" if res.gpus > 0 else "cpu"
        for group, outcomes in ray_exec.run(config_to_yaml(config), groups, request):
            for spec in group:
                o = outcomes[spec.id]
                rows = [vars(r).copy() for r in o.epochs]
                store.write_epochs(spec.id, train.EPOCH_COLUMNS, rows)
                if o.layers:
                    store.write_layers(spec.id, LAYER_COLUMNS, o.layers)
                records[spec.id] = _finish(spec, o, rows, store, f"ray: {request}", thresholds, observer, started_at,
                                           len(group))
            save_summary()
    finally:
        ray_exec.close()


def _add_signals(record: dict[str, Any], outcome: Any) -> None:
    """Diagnostics summary and LSUV log into a trial record."""
    if outcome.layers:
        record["diagnostics"] = summarize(outcome.layers)
    if outcome.lsuv is not None:
        record["lsuv"] = outcome.lsuv
