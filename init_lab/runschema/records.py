"""Typed rows and records of a run directory, each with one serializer.

``EpochRow`` / ``StepRow``: a row of epochs.csv / steps.csv, as the engine makes them. ``TrialRecord``: a
trial's trial.json (and, flattened, its summary.csv row). ``Manifest``: the run's manifest.json.
``SweepStatus``: what the manifest says of the sweep. Reading is lenient — a file written by an older
initlab lacks newer keys, and they read as None — and writing keeps the key order files always had.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from typing import Any

from init_lab.catalog.status import TrialStatus
from init_lab.runschema.axes import AXES


class SweepStatus(str, Enum):
    """A sweep as its manifest says: still being written, done, or stopped (resume it)."""

    RUNNING = "running"  # a process is writing it, or one died without saying so (resume it)
    COMPLETED = "completed"  # every trial ended (some may have failed: their records say so)
    INTERRUPTED = "interrupted"  # stopped by Ctrl-C: resume it
    FAILED = "failed"  # stopped by an error that dooms every later trial (a full disk…): resume it

    @classmethod
    def of(cls, value: Any) -> SweepStatus | None:
        """The status a manifest holds, or None for a missing or unknown one."""
        try:
            return cls(value)
        except ValueError:
            return None


def _from(cls, data: dict[str, Any]):
    """An instance of the dataclass ``cls`` from a mapping, ignoring keys it does not know (newer files)."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class EpochRow:
    """One row of epochs.csv: epoch 0 is the initial weights (training figures on a fixed subset, seconds 0)."""

    epoch: int
    loss: float
    accuracy: float
    val_loss: float
    val_accuracy: float
    seconds: float
    learning_rate: float | None = None  # absent in rows saved before rates were packed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EpochRow:
        return _from(cls, data)


@dataclass
class StepRow:
    """One row of steps.csv: the training loss and accuracy at a logged step (``progress``: in epochs)."""

    step: int
    epoch: int
    progress: float
    loss: float
    accuracy: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepRow:
        return _from(cls, data)


# trial.json keys written only once a trial has ended (or has diagnostics, or an LSUV log)
_WHEN_SET = ("packed_with", "group_seconds", "diagnostics", "lsuv")


@dataclass
class TrialRecord:
    """A trial's trial.json: its spec (``describe()`` of its TrialSpec), status, results and timings.

    A pending trial has only its id, index, status and spec. Figures at epoch 0 are the initial weights';
    best, final and epochs-to figures are over trained epochs (≥ 1).
    """

    trial_id: str
    index: int
    status: TrialStatus
    spec: dict[str, Any] = field(default_factory=dict)
    epochs_run: int | None = None
    initial_loss: float | None = None
    initial_val_loss: float | None = None
    initial_val_accuracy: float | None = None
    best_val_accuracy: float | None = None
    best_epoch: int | None = None
    final_val_accuracy: float | None = None
    final_loss: float | None = None
    final_val_loss: float | None = None
    test_loss: float | None = None
    test_accuracy: float | None = None
    epochs_to_threshold: dict[str, int | None] = field(default_factory=dict)
    wall_seconds: float | None = None
    param_count: int | None = None
    device: str | None = None
    error: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    packed_with: int | None = None  # the size of the group it trained in (ended trials)
    group_seconds: float | None = None  # that group's wall time (ended trials)
    diagnostics: dict[str, Any] | None = None  # the layers.csv summary (with diagnostics)
    lsuv: list[dict[str, Any]] | None = None  # LSUV's per-layer log (lsuv initializer)
    pending: bool = field(default=False, repr=False)  # only id, index, status and spec are known

    @classmethod
    def pending_for(cls, trial_id: str, index: int, spec: dict[str, Any]) -> TrialRecord:
        return cls(trial_id, index, TrialStatus.PENDING, spec, pending=True)

    def to_json(self) -> dict[str, Any]:
        """trial.json's content, in the key order it always had."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "pending"}
        data["status"] = self.status.value
        if self.pending:
            return {k: data[k] for k in ("trial_id", "index", "status", "spec")}
        return {k: v for k, v in data.items() if k not in _WHEN_SET or v is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrialRecord:
        """A record as read from trial.json (an older file's missing keys read as None)."""
        record = _from(cls, {**data, "pending": False})
        record.status = TrialStatus.of(data.get("status"))
        record.epochs_to_threshold = dict(data.get("epochs_to_threshold") or {})
        record.spec = dict(data.get("spec") or {})
        return record

    @property
    def ended(self) -> bool:
        return self.status.ended

    def summary_row(self) -> dict[str, Any]:
        """The summary.csv row: the record's figures flattened, with the trial's axes as columns (a record
        from before an axis existed shows the value it meant), its epochs-to figures and diagnostics."""
        data = self.to_json()
        row = {k: v for k, v in data.items() if not isinstance(v, (dict, list))}
        spec = self.spec
        for key in ("initializer", "activation", "seed", "model"):
            row[key] = spec.get(key)
        for axis in AXES:
            row[axis.name] = spec.get(axis.name, axis.before) if spec else None
        row.update(self.epochs_to_threshold)
        row.update(self.diagnostics or {})
        if row.get("error"):
            row["error"] = " ".join(str(row["error"]).split())[:300]
        return row


def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


@dataclass
class Manifest:
    """manifest.json: what ran, where, how, when, and how it stands (one per run directory)."""

    initlab_version: str | None = None
    name: str | None = None
    run_dir: str | None = None
    status: SweepStatus | None = None
    n_trials: int | None = None
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    command: list[str] = field(default_factory=list)
    invocations: list[str] = field(default_factory=list)
    extensions: list[dict[str, Any]] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)
    execution: dict[str, Any] = field(default_factory=dict)
    dataset: dict[str, Any] | None = None  # once the data is loaded: source, shape, classes, sizes
    error: str | None = None  # set when the sweep ends
    counts: dict[str, int] | None = None  # trials by status, set when the sweep ends
    timings: dict[str, Any] | None = None  # the last invocation's seconds by phase (``runschema.timings``)
    _ended: bool = field(default=False, repr=False)  # error and counts are written once it has ended

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
        data["status"] = self.status.value if self.status else None
        if self.dataset is None:
            del data["dataset"]
        if not self._ended:
            del data["error"], data["counts"]
        if self.timings is None:
            del data["timings"]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        manifest = _from(cls, {k: v for k, v in data.items() if not k.startswith("_")})
        manifest.status = SweepStatus.of(data.get("status"))
        manifest._ended = "counts" in data or "error" in data
        return manifest

    def end(self, status: SweepStatus, finished_at: str, error: str | None, counts: dict[str, int]) -> None:
        self.status, self.finished_at, self.error, self.counts, self._ended = status, finished_at, error, counts, True

    @property
    def classes(self) -> int | None:
        """The dataset's number of classes, once known."""
        return (self.dataset or {}).get("classes")
