"""Building a trial's record (DESIGN §5) from its spec and what it recorded: the derived figures.

The record's type and serializer are ``runschema.records.TrialRecord``; statuses are
:class:`init_lab.catalog.status.TrialStatus`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from init_lab.catalog.status import TrialStatus
from init_lab.config.grid import TrialSpec
from init_lab.runschema.columns import threshold_key
from init_lab.runschema.records import EpochRow, TrialRecord, finite


def now_iso() -> str:
    return datetime.now(UTC).astimezone().isoformat(timespec="seconds")


def pending_record(spec: TrialSpec) -> TrialRecord:
    return TrialRecord.pending_for(spec.id, spec.index, spec.describe())


def trial_record(spec: TrialSpec, status: TrialStatus, epochs: list[EpochRow], thresholds: list[float],
                 **results) -> TrialRecord:
    """The record of a trial with the figures derived from its epochs (best epoch, epochs to thresholds…);
    ``results``: the other TrialRecord fields (test metrics, timings, device, error…).

    Epoch 0 (the initial weights) gives ``initial_loss`` / ``initial_val_loss`` / ``initial_val_accuracy``;
    the best, final and epochs-to figures are over trained epochs (≥ 1).
    """
    init = next((r for r in epochs if r.epoch == 0), None)
    trained = [r for r in epochs if r.epoch != 0]
    reached = [r for r in trained if finite(r.val_accuracy)]
    best = max(reached, key=lambda r: r.val_accuracy, default=None)  # first maximum: earliest best epoch
    last = trained[-1] if trained else None
    return TrialRecord(
        spec.id, spec.index, TrialStatus(status), spec.describe(),
        epochs_run=len(trained),
        initial_loss=init.loss if init else None,
        initial_val_loss=init.val_loss if init else None,
        initial_val_accuracy=init.val_accuracy if init else None,
        best_val_accuracy=best.val_accuracy if best else None,
        best_epoch=best.epoch if best else None,
        final_val_accuracy=last.val_accuracy if last else None,
        final_loss=last.loss if last else None,
        final_val_loss=last.val_loss if last else None,
        epochs_to_threshold={
            threshold_key(t): next((r.epoch for r in reached if r.val_accuracy >= t), None) for t in thresholds},
        **results,
    )
