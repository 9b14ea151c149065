"""Optimizers of a group of trials: Adam, SGD (momentum) and RMSprop, with their state in plain variables.

Written out (Keras' formulas and defaults) rather than taken from ``keras.optimizers`` so that
their whole state — one slot list per kind, aligned with the model's variables, and the step
counter — is ours to checkpoint and restore exactly, and every update is elementwise: a trial's
update never depends on the other trials of its group.

The learning rate is per trial: one rate per variable, a (n, 1, …) tensor for a variable stacked over
the trials of a packed group, a scalar for a variable one trial owns (``GroupNet.per_variable``). An
elementwise product with a broadcast rate rounds exactly like one with a scalar, so a trial steps the
same whatever rates its neighbours have.

Which slots each optimizer keeps, its constants and its formula are the registry's (``catalog.optimizers``).
"""

from __future__ import annotations

from typing import Any

from init_lab.catalog.optimizers import ADAM_BETAS, EPSILON, RMS_RHO, slot_names
from init_lab.engine.backend import tf


class GroupOptimizer:
    """Updates a list of variables from their gradients; ``slots`` and ``step`` are its whole state."""

    def __init__(self, kind: str, rates: list[Any], momentum: float, variables: list[Any]):
        self.kind, self.rates, self.momentum = kind, rates, momentum
        self.slots = {n: [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
                      for n in slot_names(kind, momentum)}
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.variables = variables

    def reset(self, rates: list[Any]) -> None:
        """A fresh state (step 0, zero slots) with ``rates`` in this optimizer's rate variables (``engine.programs``)."""
        self.step.assign(0)
        for slots in self.slots.values():
            for s in slots:
                s.assign(tf.zeros_like(s))
        for variable, rate in zip(self.rates, rates):
            variable.assign(rate)

    def apply(self, grads: list[Any]) -> None:
        self.step.assign_add(1)
        if self.kind == "adam":
            b1, b2 = ADAM_BETAS
            t = tf.cast(self.step, tf.float32)
            root, denominator = tf.sqrt(1 - tf.pow(b2, t)), 1 - tf.pow(b1, t)
            for w, g, m, v, rate in zip(self.variables, grads, self.slots["m"], self.slots["v"], self.rates):
                m.assign_add((g - m) * (1 - b1))
                v.assign_add((tf.square(g) - v) * (1 - b2))
                lr = rate * root / denominator  # Keras' order of operations: (lr·√(1−β₂ᵗ)) / (1−β₁ᵗ)
                w.assign_sub(lr * m / (tf.sqrt(v) + EPSILON))
        elif self.kind == "rmsprop":
            for w, g, v, rate in zip(self.variables, grads, self.slots["velocity"], self.rates):
                v.assign(RMS_RHO * v + (1 - RMS_RHO) * tf.square(g))
                w.assign_sub(rate * g / tf.sqrt(v + EPSILON))
        elif self.slots:  # sgd with momentum
            for w, g, m, rate in zip(self.variables, grads, self.slots["momentum"], self.rates):
                m.assign(self.momentum * m - rate * g)
                w.assign_add(m)
        else:
            for w, g, rate in zip(self.variables, grads, self.rates):
                w.assign_sub(rate * g)
