"""Where a sweep's time goes: seconds per phase, for each execution group and for the whole invocation.

The engine times its phases per group (``build`` … ``snapshots``) and sends them with ``GroupFinished``;
the driver adds its own (``imports``, ``data``, ``checkpoints``, ``files``) and the rest of the wall time
(``other``: planning, the executor, waiting). manifest.json keeps them under ``timings``; ``initlab
report`` shows them. A phase counts only time the process spent in it: an engine phase never includes
the driver's work between two events.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

# phase → what it is (in the order shown); the engine's phases, then the driver's
PHASES = {
    "build": "networks, optimizer and compiled step functions built",
    "initial": "LSUV, restoring saved states, epoch 0 (the initial weights' loss, accuracy and diagnostics)",
    "first_window": "each group's first window of training steps: tracing and compiling it, then its steps",
    "steps": "the other training steps",
    "step_statistics": "per-layer activation statistics and histograms at logged steps (first epochs)",
    "evaluation": "validation after every epoch, test at the end",
    "diagnostics": "per-layer signals and histograms on the probe batch after every epoch",
    "snapshots": "copying weights and optimizer state out of the networks for checkpoints",
    "imports": "importing TensorFlow (in this process)",
    "data": "reading and preparing the dataset, copying it to the device",
    "checkpoints": "writing checkpoint files",
    "files": "writing the tables, trial records and summary.csv",
    "other": "the rest of the wall time: planning, the executor, Ray, waiting",
}


@dataclass
class Timings:
    """Seconds per phase (``PHASES``), accumulated."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, phase: str, seconds: float) -> None:
        self.seconds[phase] = self.seconds.get(phase, 0.0) + seconds

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the block as ``name`` (never wrap a ``yield``: the consumer's time is not this phase's)."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - t0)

    def merge(self, other: Timings) -> None:
        for name, seconds in other.seconds.items():
            self.add(name, seconds)

    @property
    def total(self) -> float:
        return sum(self.seconds.values())

    def to_json(self) -> dict[str, float]:
        """The phases in ``PHASES`` order, rounded to milliseconds."""
        order = [p for p in PHASES if p in self.seconds] + [p for p in self.seconds if p not in PHASES]
        return {p: round(self.seconds[p], 3) for p in order}

    @classmethod
    def from_json(cls, data: Any) -> Timings:
        if not isinstance(data, dict):
            return cls()
        return cls({k: float(v) for k, v in data.items() if isinstance(v, (int, float))})
