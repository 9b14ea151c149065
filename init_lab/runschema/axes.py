"""The grid axes: each declared once, with everything the layers above need to know about it.

An axis sweeps one config field: ``grid.learning_rate: [0.1, 0.01]`` gives each trial one of the values in
place of ``training.learning_rate``. Its entry says which field, the type of its values (``grid.X`` is a
list of them, validated like the field), how it labels a trial id (``lr0.01``), its short header in
terminal tables, and what a record written before the axis existed means. The grid expansion, the
summary.csv columns, the report's swept axes, ``--compare-axis``, the API frames' columns and the
terminal tables all read this table: adding an axis is one entry here plus the code where its value
changes the computation (where the trial's network or training reads the field).

initializer, activation and seed are the grid's fixed axes: always present, and in every trial id.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from init_lab.catalog.values import NonNegFloat, NormalizationName, OptimizerName, PosFloat, PosInt


@dataclass(frozen=True)
class Axis:
    """One optional grid axis: ``grid.<name>`` lists values of ``<section>.<name>`` (or of the field it names)."""

    name: str  # grid key, summary.csv column, API frame column
    section: str  # the config section whose field it sweeps ("model", "training")
    value: Any  # type of one value (pydantic annotation): grid.<name> is a non-empty list of distinct ones
    tag: str  # prefix of its value in a trial id: lr + 0.01 → "lr0.01"
    header: str  # short column header in terminal tables
    of: Callable[[Any], Any]  # the value a trial (a config.grid.TrialSpec) has, swept or not
    before: Any = None  # the value meant by a record written before the axis existed
    help: str = ""
    text: bool = False  # its values are names (summary.csv's column stays text when read back), not numbers

    def label(self, value: Any) -> str:
        """The value as it stands in a trial id."""
        return f"{self.tag}{value:g}" if isinstance(value, float) else f"{self.tag}{value}"


FIXED = ("initializer", "activation", "seed")  # always in the grid and in every trial id

# in grid order: the trial id lists swept values in this order, and the seed varies fastest after them
AXES: tuple[Axis, ...] = (
    Axis("depth", "model", PosInt, "d", "depth", lambda s: len(s.arch.hidden),
         help="hidden layers (replaces model.depth / the length of model.hidden)"),
    Axis("width", "model", PosInt, "w", "width", lambda s: s.arch.hidden[0] if s.arch.hidden else None,
         help="units per hidden layer (replaces model.width)"),
    Axis("optimizer", "training", OptimizerName, "", "optimizer", lambda s: s.train.optimizer, text=True),
    Axis("learning_rate", "training", PosFloat, "lr", "lr", lambda s: s.train.learning_rate),
    Axis("batch_size", "training", PosInt, "bs", "batch", lambda s: s.train.batch_size),
    Axis("bias_std", "model", NonNegFloat, "sb", "σ_b", lambda s: s.bias_std, before=0.0,
         help="σ_b: biases drawn from N(0, σ_b²) (replaces model.bias_std)"),
    Axis("residual", "model", bool, "res", "residual", lambda s: s.arch.residual, before=False,
         help="residual blocks of model.block_depth Dense layers around a skip (replaces model.residual)"),
    Axis("normalization", "model", NormalizationName, "", "norm", lambda s: s.arch.normalization, before="none",
         help="none | batchnorm | layernorm before each hidden activation (replaces model.normalization)", text=True),
)
BY_NAME = {a.name: a for a in AXES}
NAMES = tuple(a.name for a in AXES)  # the optional axes, in grid order
ALL = ("initializer", "activation", "seed", *NAMES)  # every axis a trial has: its columns in the API's frames
COMPARABLE = ("initializer", "activation", *NAMES)  # what ``--compare-axis`` may name
