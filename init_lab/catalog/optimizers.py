"""Optimizers (``training.optimizer``): the one registry the config, the engine and the memory estimate read.

Each entry carries its update rule as text, its reference and its slots: the state it keeps per model
variable, which ``engine.optim.GroupOptimizer`` creates and ``run.memory`` counts. The constants are
Keras' defaults; the engine computes with these very numbers. In the formulas g is a variable's gradient,
η the trial's learning rate (``training.learning_rate``), μ ``training.momentum`` and t the step (from 1).
"""

from __future__ import annotations

from init_lab.catalog.registry import Entry, Registry

ADAM_BETAS, EPSILON, RMS_RHO = (0.9, 0.999), 1e-7, 0.9  # Keras' defaults (ε: Adam's and RMSprop's)


def _shown(value: float) -> str:
    return f"{value:g}".replace("e-0", "e-")  # 1e-7, not 1e-07


OPTIMIZERS = Registry(
    "optimizer",
    [
        Entry(
            "adam",
            "m ← β₁·m + (1 − β₁)·g;  v ← β₂·v + (1 − β₂)·g²;  w ← w − η·√(1 − β₂ᵗ)/(1 − β₁ᵗ)·m/(√v + ε)",
            note=f"Keras' defaults β₁ = {_shown(ADAM_BETAS[0])}, β₂ = {_shown(ADAM_BETAS[1])}, ε = {_shown(EPSILON)}",
            reference="Kingma & Ba 2015",
            slots=("m", "v"),
        ),
        Entry(
            "sgd",
            "w ← w − η·g;  with momentum μ > 0: u ← μ·u − η·g;  w ← w + u",
            note="stochastic gradient descent; momentum μ = training.momentum, default 0: plain SGD, no slot",
            reference="Robbins & Monro 1951; momentum: Polyak 1964",
            slots=("momentum",),
            momentum_slots=True,
        ),
        Entry(
            "rmsprop",
            "v ← ρ·v + (1 − ρ)·g²;  w ← w − η·g/√(v + ε)",
            note=f"Keras' defaults ρ = {_shown(RMS_RHO)}, ε = {_shown(EPSILON)}",
            reference="Hinton 2012, Neural Networks for Machine Learning, lecture 6e",
            slots=("velocity",),
        ),
    ],
)


def slot_names(optimizer: str, momentum: float) -> tuple[str, ...]:
    """The slot variables ``optimizer`` keeps per model variable with ``training.momentum`` = ``momentum``."""
    entry = OPTIMIZERS.entries[optimizer]
    return () if entry.momentum_slots and momentum == 0 else entry.slots
