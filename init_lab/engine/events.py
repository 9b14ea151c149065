"""What the engine reports while a group trains: typed events, and the state that checkpoints hold.

The loop (``loop.run_group``) yields these; an executor carries them to the driver, whose recorder
writes files. Events hold plain Python and NumPy data only, so they cross process boundaries (Ray).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from init_lab.analysis.histograms import HistogramLog
from init_lab.catalog.models import NetKind
from init_lab.catalog.status import TrialStatus
from init_lab.config.grid import TrialSpec
from init_lab.runschema.records import EpochRow, StepRow
from init_lab.runschema.timings import Timings


@dataclass
class TrialState:
    """Everything that determines the rest of one trial's run, and what it recorded so far.

    ``arrays`` are the trial's variables followed by its optimizer slots (kind by kind), in the
    order of its model class; ``step`` is the optimizer's step counter. The batch order of every
    epoch is a function of seed and epoch, so nothing else is needed to continue exactly.
    """

    trial_id: str
    net: NetKind
    epoch: int = 0  # epochs done
    status: TrialStatus = TrialStatus.RUNNING  # RUNNING, or DIVERGED once a loss is non-finite
    step: int = 0
    arrays: list[np.ndarray] = field(default_factory=list)
    epochs: list[EpochRow] = field(default_factory=list)  # epochs.csv rows so far (epoch 0 first)
    layers: list[dict[str, Any]] = field(default_factory=list)  # layers.csv rows so far
    lsuv: list[dict[str, Any]] | None = None
    seconds: float = 0.0  # wall time of its group so far
    steps: list[StepRow] = field(default_factory=list)  # steps.csv rows so far
    step_layers: list[dict[str, Any]] = field(default_factory=list)  # step_layers.csv rows so far
    histograms: HistogramLog | None = None  # histograms.npz so far (with diagnostics)

    def without_arrays(self) -> TrialState:
        return replace(self, arrays=[])

    def copy(self) -> TrialState:
        """The state as it is now: the loop goes on appending rows (and histogram snapshots) to the live
        object, and a copy must not grow with it. Lists are copied; rows, arrays and snapshots shared."""
        h = self.histograms
        if h is not None:
            h = replace(h, **{f.name: list(v) for f in fields(h) if isinstance(v := getattr(h, f.name), list)})
        return replace(self, arrays=list(self.arrays), epochs=list(self.epochs), layers=list(self.layers),
                       steps=list(self.steps), step_layers=list(self.step_layers), histograms=h)

    def to_meta(self) -> dict[str, Any]:
        """Everything but the arrays (and histograms), as JSON: a checkpoint's entry for the trial, which
        counts its arrays and says whether histograms were saved beside them."""
        return {
            "net": self.net.value, "epoch": self.epoch, "status": self.status.value, "step": self.step,
            "n_arrays": len(self.arrays), "epochs": [r.to_dict() for r in self.epochs], "layers": self.layers,
            "lsuv": self.lsuv, "seconds": self.seconds, "steps": [r.to_dict() for r in self.steps],
            "step_layers": self.step_layers,
            "histograms": self.histograms is not None,
        }

    @classmethod
    def from_meta(cls, trial_id: str, meta: dict[str, Any], arrays: list[np.ndarray],
                  histograms: HistogramLog | None = None) -> TrialState:
        """The state ``to_meta`` described, with its arrays read back (entries written before steps were
        recorded have no step rows)."""
        return cls(
            trial_id, NetKind(meta["net"]), meta["epoch"], TrialStatus(meta["status"]), meta["step"], arrays,
            [EpochRow.from_dict(r) for r in meta["epochs"]], meta["layers"], meta["lsuv"], meta["seconds"],
            [StepRow.from_dict(r) for r in meta.get("steps", [])], meta.get("step_layers", []), histograms,
        )


@dataclass
class Group:
    """An execution group: trials trained together by one model class, from scratch or from saved states."""

    id: str
    net: NetKind
    specs: list[TrialSpec]
    start: dict[str, TrialState] | None = None  # every member's state at the same epoch, or None

    @property
    def start_epoch(self) -> int:
        return next(iter(self.start.values())).epoch if self.start else 0


@dataclass
class GroupStarted:
    group: str
    trial_ids: list[str]
    start_epoch: int
    param_count: int
    states: dict[str, TrialState]  # what is recorded at the start (epoch-0 diagnostics, LSUV logs)


@dataclass
class Progress:
    group: str
    epoch: int
    step: int
    steps: int
    loss: float  # running mean over the live trials of the group
    accuracy: float


@dataclass
class EpochEnded:
    group: str
    epoch: int
    states: dict[str, TrialState]  # each trial's state after this epoch (arrays dropped where not needed)


@dataclass
class Notice:
    group: str
    message: str


@dataclass
class TrialResult:
    """How a trial ended: its final state, status and test metrics."""

    status: TrialStatus
    state: TrialState | None = None
    test_loss: float | None = None
    test_accuracy: float | None = None
    param_count: int | None = None
    error: str | None = None
    group_size: int = 1
    group_seconds: float = 0.0


@dataclass
class GroupFinished:
    group: str
    results: dict[str, TrialResult]
    timings: Timings = field(default_factory=Timings)  # where this invocation's time for the group went


Event = GroupStarted | Progress | EpochEnded | Notice | GroupFinished
