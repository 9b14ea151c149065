"""The recorder: turns the engine's events into the run directory's files, and tells the observer.

It is the one consumer of events, whichever executor produced them: trial tables as each epoch
ends, trial records as trials start and finish, the summary, and — where the events carry arrays —
the group checkpoints. Nothing here trains or imports TensorFlow.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from init_lab.analysis.diagnostics import LAYER_COLUMNS, STEP_COLUMNS, STEP_LAYER_COLUMNS, summarize
from init_lab.catalog.status import TrialStatus
from init_lab.config.grid import TrialSpec
from init_lab.engine.events import (
    EPOCH_COLUMNS,
    EpochEnded,
    Event,
    GroupFinished,
    GroupStarted,
    Notice,
    Progress,
    TrialResult,
    TrialState,
)
from init_lab.run.checkpoints import CheckpointStore
from init_lab.run.records import now_iso, trial_record
from init_lab.run.store import HISTOGRAMS_FILE, STEP_LAYERS_FILE, STEPS_FILE, RunStore


def _fault_after_checkpoint(count: int) -> None:
    """Fault injection for tests: SIGKILL this process right after its n-th checkpoint is on disk."""
    if os.environ.get("INITLAB_FAULT_KILL_AFTER_CHECKPOINT") == str(count):
        os.kill(os.getpid(), signal.SIGKILL)


class Observer:
    """Receives progress events; the CLI renders them. Every method is optional."""

    def sweep_start(self, run_dir: Path, trials: list[TrialSpec], todo: list[TrialSpec], device: str) -> None: ...
    def data_loaded(self, source: str, n_train: int, n_val: int, n_test: int, seconds: float) -> None: ...
    def group_start(self, specs: list[TrialSpec], position: int, total: int, start_epoch: int) -> None: ...
    def progress(self, spec: TrialSpec, epoch: int, step: int, steps: int, loss: float, acc: float) -> None: ...
    def epoch_end(self, spec: TrialSpec, row: dict[str, Any]) -> None: ...
    def trial_end(self, spec: TrialSpec, record: dict[str, Any]) -> None: ...
    def notice(self, message: str) -> None: ...
    def sweep_end(self, result: Any) -> None: ...


class Recorder:
    """Writes what events say into one run directory; keeps every trial's record in memory."""

    def __init__(self, store: RunStore, trials: list[TrialSpec], records: dict[str, dict[str, Any]], *,
                 thresholds: list[float], device: str, observer: Observer, checkpoints: CheckpointStore | None,
                 fingerprints: dict[str, str], keep_final: bool, on_change: Callable[[], None]):
        self.store, self.records, self.observer = store, records, observer
        self.specs = {s.id: s for s in trials}
        self.thresholds, self.device = thresholds, device
        self.checkpoints, self.fingerprints, self.keep_final = checkpoints, fingerprints, keep_final
        self.on_change = on_change  # e.g. rewrite summary.csv
        self.started_at: dict[str, str] = {}
        self.ended: set[str] = set()
        self.group_members: dict[str, list[str]] = {}
        self.position, self.total = 1, 0
        self.checkpoint_bytes: list[int] = []  # per checkpoint written (for the manifest)
        self.checkpoint_seconds = 0.0

    def handle(self, event: Event) -> None:
        if isinstance(event, Progress):
            first = self.group_members[event.group][0]
            self.observer.progress(self.specs[first], event.epoch, event.step, event.steps, event.loss, event.accuracy)
        elif isinstance(event, GroupStarted):
            self._group_started(event)
        elif isinstance(event, EpochEnded):
            self._epoch_ended(event)
        elif isinstance(event, GroupFinished):
            self._group_finished(event)
        elif isinstance(event, Notice):
            self.observer.notice(event.message)

    def _group_started(self, event: GroupStarted) -> None:
        self.group_members[event.group] = event.trial_ids
        specs = [self.specs[t] for t in event.trial_ids]
        for tid, state in event.states.items():
            self.started_at.setdefault(tid, now_iso())
            self.ended.discard(tid)
            self._write_tables(tid, state)
            self._write_record(tid, TrialStatus.RUNNING, state)
        self.observer.group_start(specs, self.position, self.total, event.start_epoch)
        self.position += len(specs)
        self.on_change()

    def _epoch_ended(self, event: EpochEnded) -> None:
        for tid, state in event.states.items():
            if state.epoch != event.epoch:
                continue  # diverged earlier: nothing new
            self._write_tables(tid, state)
            self.observer.epoch_end(self.specs[tid], state.epochs[-1])
        if self.checkpoints is not None and all(s.arrays for s in event.states.values()):
            fps = {tid: self.fingerprints[tid] for tid in event.states}
            t0 = time.perf_counter()
            self.checkpoint_bytes.append(self.checkpoints.write(event.group, event.states, fps))
            self.checkpoint_seconds += time.perf_counter() - t0
            _fault_after_checkpoint(len(self.checkpoint_bytes))
        for tid, state in event.states.items():  # a diverged trial is finished now: say so at once
            if state.epoch == event.epoch and state.status == TrialStatus.DIVERGED:
                size = len(event.states)
                self.finish(tid, TrialResult(TrialStatus.DIVERGED, state, group_size=size, group_seconds=state.seconds))
        self.on_change()

    def _group_finished(self, event: GroupFinished) -> None:
        for tid, result in event.results.items():
            if tid not in self.ended:  # diverged trials were finished at their last epoch
                self.finish(tid, result)
        failed = any(r.status == TrialStatus.FAILED for r in event.results.values())
        if self.checkpoints is not None and not self.keep_final and not failed:
            self.checkpoints.remove(event.group)  # a failed trial keeps its state for --retry-failed
        self.on_change()

    def finish(self, tid: str, result: TrialResult) -> None:
        """Write a trial's final record (and its tables, for failures that never started)."""
        if result.state is not None:
            self._write_tables(tid, result.state)
        record = self._write_record(tid, result.status, result.state, result)
        self.ended.add(tid)
        self.observer.trial_end(self.specs[tid], record)

    def _write_tables(self, tid: str, state: TrialState) -> None:
        self.store.write_epochs(tid, EPOCH_COLUMNS, state.epochs)
        if state.layers:
            self.store.write_layers(tid, LAYER_COLUMNS, state.layers)
        if state.steps:
            self.store.write_table(tid, STEPS_FILE, STEP_COLUMNS, state.steps)
        if state.step_layers:
            self.store.write_table(tid, STEP_LAYERS_FILE, STEP_LAYER_COLUMNS, state.step_layers)
        if state.histograms is not None:
            self.store.write_trial_bytes(tid, HISTOGRAMS_FILE, state.histograms.to_bytes())

    def _write_record(self, tid: str, status: TrialStatus, state: TrialState | None,
                      result: TrialResult | None = None) -> dict[str, Any]:
        spec, ended = self.specs[tid], status != TrialStatus.RUNNING
        record = trial_record(
            spec, status, state.epochs if state else [], self.thresholds,
            test_loss=result.test_loss if result else None, test_accuracy=result.test_accuracy if result else None,
            param_count=result.param_count if result else None, device=self.device,
            wall_seconds=(result.group_seconds / result.group_size) if result and ended else None,
            started_at=self.started_at.get(tid, now_iso()), finished_at=now_iso() if ended else None,
            error=result.error if result else None,
        )
        if result is not None and ended:  # honest timing: trials packed together share one wall time
            record["packed_with"] = result.group_size
            record["group_seconds"] = result.group_seconds
        if state is not None and state.layers:
            record["diagnostics"] = summarize(state.layers)
        if state is not None and state.lsuv is not None:
            record["lsuv"] = state.lsuv
        self.store.write_trial(tid, record)
        self.records[tid] = record
        return record
