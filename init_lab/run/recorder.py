"""The recorder: turns the engine's events into the run directory's files, and tells the observer.

It is the one consumer of events, whichever executor produced them: trial tables as each epoch
ends, trial records as trials start and finish, the summary, and — where the events carry arrays —
the group checkpoints. Nothing here trains or imports TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable

from init_lab.analysis.diagnostics import summarize
from init_lab.catalog.status import TrialStatus
from init_lab.engine.events import (
    EpochEnded,
    Event,
    GroupFinished,
    GroupStarted,
    Notice,
    Progress,
    TrialResult,
    TrialState,
)
from init_lab.run import faults
from init_lab.run.context import SweepContext
from init_lab.run.records import now_iso, trial_record
from init_lab.runschema.columns import EPOCHS_FILE, HISTOGRAMS_FILE, LAYERS_FILE, STEP_LAYERS_FILE, STEPS_FILE
from init_lab.runschema.records import TrialRecord
from init_lab.runschema.timings import Timings


class Recorder:
    """Writes what events say into one run directory; keeps every trial's record in memory."""

    def __init__(self, context: SweepContext, records: dict[str, TrialRecord], on_change: Callable[[], None]):
        self.store, self.records, self.observer = context.store, records, context.observer
        self.specs = context.specs
        self.thresholds, self.device = context.thresholds, context.device
        self.checkpoints, self.keep_final = context.checkpoints, context.config.checkpoints.keep_final
        self.on_change = on_change  # e.g. rewrite summary.csv
        self.started_at: dict[str, str] = {}
        self.ended: set[str] = set()
        self.group_members: dict[str, list[str]] = {}
        self.position, self.total = 1, 0
        self.checkpoint_bytes: list[int] = []  # per checkpoint written (for the manifest)
        self.timings = Timings()  # the driver's own phases: checkpoints, files
        self.group_timings: dict[str, Timings] = {}  # each group's engine phases, as its GroupFinished said
        self.written: dict[tuple[str, str], tuple] = {}  # (trial, file) → (rows, last row) as last written

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
        with self.timings.phase("files"):
            self.on_change()

    def _epoch_ended(self, event: EpochEnded) -> None:
        for tid, state in event.states.items():
            if state.epoch != event.epoch:
                continue  # diverged earlier: nothing new
            self._write_tables(tid, state)
            self.observer.epoch_end(self.specs[tid], state.epochs[-1])
        if self.checkpoints is not None and all(s.arrays for s in event.states.values()):
            with self.timings.phase("checkpoints"):
                self.checkpoint_bytes.append(self.checkpoints.write(event.group, event.states))
            faults.kill_after_checkpoint(len(self.checkpoint_bytes))
        for tid, state in event.states.items():  # a diverged trial is finished now: say so at once
            if state.epoch == event.epoch and state.status == TrialStatus.DIVERGED:
                size = len(event.states)
                self.finish(tid, TrialResult(TrialStatus.DIVERGED, state, group_size=size, group_seconds=state.seconds))
        with self.timings.phase("files"):
            self.on_change()

    def _group_finished(self, event: GroupFinished) -> None:
        self.group_timings.setdefault(event.group, Timings()).merge(event.timings)
        for tid, result in event.results.items():
            if tid not in self.ended:  # diverged trials were finished at their last epoch
                self.finish(tid, result)
        failed = any(r.status == TrialStatus.FAILED for r in event.results.values())
        if self.checkpoints is not None and not self.keep_final and not failed:
            self.checkpoints.remove(event.group)  # a failed trial keeps its state for --retry-failed
        with self.timings.phase("files"):
            self.on_change()

    def finish(self, tid: str, result: TrialResult) -> None:
        """Write a trial's final record (and its tables, for failures that never started)."""
        if result.state is not None:
            self._write_tables(tid, result.state)
        record = self._write_record(tid, result.status, result.state, result)
        self.ended.add(tid)
        self.observer.trial_end(self.specs[tid], record)

    def _write_tables(self, tid: str, state: TrialState) -> None:
        """A trial's tables and histograms as its state has them; one whose rows are those already written (the
        first epochs' step_layers.csv, every epoch after them) is left as it is."""
        with self.timings.phase("files"):
            for name, rows in ((EPOCHS_FILE, state.epochs), (LAYERS_FILE, state.layers), (STEPS_FILE, state.steps),
                               (STEP_LAYERS_FILE, state.step_layers)):
                if (rows or name == EPOCHS_FILE) and self._changed(tid, name, (len(rows), rows[-1] if rows else None)):
                    self.store.write_table(tid, name, rows)
            h = state.histograms
            if h is not None and self._changed(tid, HISTOGRAMS_FILE, (len(h.epoch), len(h.step))):
                self.store.write_trial_bytes(tid, HISTOGRAMS_FILE, h.to_bytes())

    def _changed(self, tid: str, name: str, mark: tuple) -> bool:
        """Whether a file's content differs from what this recorder wrote last (its rows only grow)."""
        key = (tid, name)
        if self.written.get(key) == mark:
            return False
        self.written[key] = mark
        return True

    def _write_record(self, tid: str, status: TrialStatus, state: TrialState | None,
                      result: TrialResult | None = None) -> TrialRecord:
        spec, ended = self.specs[tid], status != TrialStatus.RUNNING
        shared = result is not None and ended  # honest timing: trials packed together share one wall time
        record = trial_record(
            spec, status, state.epochs if state else [], self.thresholds,
            test_loss=result.test_loss if result else None, test_accuracy=result.test_accuracy if result else None,
            param_count=result.param_count if result else None, device=self.device,
            wall_seconds=(result.group_seconds / result.group_size) if shared else None,
            started_at=self.started_at.get(tid, now_iso()), finished_at=now_iso() if ended else None,
            error=result.error if result else None,
            packed_with=result.group_size if shared else None, group_seconds=result.group_seconds if shared else None,
            diagnostics=summarize(state.layers) if state is not None and state.layers else None,
            lsuv=state.lsuv if state is not None else None,
        )
        with self.timings.phase("files"):
            self.store.write_trial(record)
        self.records[tid] = record
        return record
