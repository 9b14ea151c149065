"""Grid expansion: a validated config → the ordered list of trials, each with a stable id.

Order: initializer, activation, then the optional axes in ``runschema.axes.AXES`` order (depth,
width, optimizer, learning rate, batch size, bias std σ_b, residual, normalization), then seed — the seed varies fastest, so
the trials of one combination sit together. The id ``003_he_normal-relu-lr0.01-s0`` starts with the
trial's position and carries every swept value (each labelled by its axis); ``sanitize`` keeps it
safe as a directory name whatever the config says.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from typing import Any

from init_lab.catalog.activations import ACTIVATIONS
from init_lab.catalog.initializers import INITIALIZERS
from init_lab.catalog.models import Architecture
from init_lab.catalog.registry import Choice
from init_lab.config.schema import SweepConfig
from init_lab.runschema.axes import AXES, BY_NAME

_UNSAFE = re.compile(r"[^A-Za-z0-9._=+-]+")


def sanitize(text: str, max_len: int = 80) -> str:
    """A file-name-safe version of ``text``: no separators, no '..', no control characters, bounded."""
    cleaned = _UNSAFE.sub("_", text).strip("._")
    cleaned = re.sub(r"\.{2,}", ".", cleaned)
    return cleaned[:max_len] or "unnamed"


@dataclass(frozen=True)
class TrainSettings:
    epochs: int
    batch_size: int
    optimizer: str
    learning_rate: float
    momentum: float


@dataclass(frozen=True)
class TrialSpec:
    """Everything that defines one trial."""

    index: int
    id: str
    initializer: Choice
    activation: Choice
    seed: int
    arch: Architecture
    train: TrainSettings
    axes: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)  # swept values, for tables
    bias_std: float = 0.0  # σ_b: the biases' draw N(0, σ_b²) (model.bias_std, or its grid axis)

    @property
    def init_label(self) -> str:
        return self.initializer.label(INITIALIZERS)

    @property
    def act_label(self) -> str:
        return self.activation.label(ACTIVATIONS)

    def describe(self) -> dict[str, Any]:
        """Plain-JSON description (trial.json 'spec', summary.csv columns): every axis's value, and the rest."""
        return {
            "initializer": self.init_label,
            "activation": self.act_label,
            "seed": self.seed,
            "initializer_params": self.initializer.kwargs,
            "activation_params": self.activation.kwargs,
            "model": self.arch.kind,
            "hidden": list(self.arch.hidden),
            "epochs": self.train.epochs,
            "momentum": self.train.momentum,
            **{axis.name: axis.of(self) for axis in AXES},
        }


def expand(config: SweepConfig) -> list[TrialSpec]:
    """All trials of the grid, in a stable order."""
    g, t, m = config.grid, config.training, config.model
    swept = {axis.name: values for axis in AXES if (values := getattr(g, axis.name))}
    n = len(g.initializer) * len(g.activation) * len(g.seed) * math.prod(len(v) for v in swept.values())
    width = max(3, len(str(n - 1)))
    trials: list[TrialSpec] = []
    for init, act, *rest in itertools.product(g.initializer, g.activation, *swept.values(), g.seed):
        values = dict(zip(swept, rest[:-1]))
        seed = rest[-1]
        # where each axis's value changes the computation: the network's shape, σ_b, the training settings
        arch = m.architecture(values.get("depth"), values.get("width"), values.get("residual"),
                              values.get("normalization"))
        settings = TrainSettings(
            epochs=t.epochs,
            batch_size=values.get("batch_size", t.batch_size),
            optimizer=values.get("optimizer", t.optimizer),
            learning_rate=values.get("learning_rate", t.learning_rate),
            momentum=t.momentum,
        )
        parts = [init.label(INITIALIZERS), act.label(ACTIVATIONS)]
        parts += [BY_NAME[k].label(v) for k, v in values.items()]
        parts.append(f"s{seed}")
        index = len(trials)
        trial_id = f"{index:0{width}d}_" + "-".join(sanitize(p, max_len=40) for p in parts)
        trials.append(TrialSpec(index, trial_id, init, act, seed, arch, settings, values,
                                bias_std=float(values.get("bias_std", m.bias_std))))
    return trials

