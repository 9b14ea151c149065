"""What every part of one sweep invocation shares, built once by the sweep: the config, its trials, the
device, the run directory's store and the checkpoint store, and the observer."""

from __future__ import annotations

from dataclasses import dataclass, field

from init_lab.config.grid import TrialSpec
from init_lab.config.schema import SweepConfig
from init_lab.run.checkpoints import CheckpointStore
from init_lab.run.observer import Observer
from init_lab.run.store import RunStore


@dataclass(frozen=True)
class SweepContext:
    config: SweepConfig
    trials: list[TrialSpec]  # every trial of the grid, in grid order
    store: RunStore
    device: str  # the device as described for records ("cpu", "gpu:0 (…)")
    checkpoints: CheckpointStore | None  # None: no storage the workers share (Ray with --address)
    observer: Observer = field(default_factory=Observer)

    @property
    def thresholds(self) -> list[float]:
        return list(self.config.training.thresholds)

    @property
    def specs(self) -> dict[str, TrialSpec]:
        return {s.id: s for s in self.trials}
