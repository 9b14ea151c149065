"""Optimizers of a group of trials: Adam, SGD (momentum) and RMSprop, with their state in plain variables.

Written out (Keras' formulas and defaults) rather than taken from ``keras.optimizers`` so that
their whole state — one slot list per kind, aligned with the model's variables, and the step
counter — is ours to checkpoint and restore exactly, and every update is elementwise: a trial's
update never depends on the other trials of its group.
"""

from __future__ import annotations

from typing import Any

from init_lab.engine.backend import tf

SLOTS = {"adam": ("m", "v"), "sgd": ("momentum",), "rmsprop": ("velocity",)}
ADAM_BETAS, EPSILON, RMS_RHO = (0.9, 0.999), 1e-7, 0.9


class GroupOptimizer:
    """Updates a list of variables from their gradients; ``slots`` and ``step`` are its whole state."""

    def __init__(self, kind: str, learning_rate: float, momentum: float, variables: list[Any]):
        self.kind, self.lr, self.momentum = kind, learning_rate, momentum
        names = SLOTS[kind] if not (kind == "sgd" and momentum == 0) else ()
        self.slots = {n: [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables] for n in names}
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.variables = variables

    def state(self) -> list[Any]:
        """Slot variables in a fixed order (kind by kind, then model order)."""
        return [s for name in sorted(self.slots) for s in self.slots[name]]

    def apply(self, grads: list[Any]) -> None:
        self.step.assign_add(1)
        if self.kind == "adam":
            b1, b2 = ADAM_BETAS
            t = tf.cast(self.step, tf.float32)
            lr = self.lr * tf.sqrt(1 - tf.pow(b2, t)) / (1 - tf.pow(b1, t))
            for w, g, m, v in zip(self.variables, grads, self.slots["m"], self.slots["v"]):
                m.assign_add((g - m) * (1 - b1))
                v.assign_add((tf.square(g) - v) * (1 - b2))
                w.assign_sub(lr * m / (tf.sqrt(v) + EPSILON))
        elif self.kind == "rmsprop":
            for w, g, v in zip(self.variables, grads, self.slots["velocity"]):
                v.assign(RMS_RHO * v + (1 - RMS_RHO) * tf.square(g))
                w.assign_sub(self.lr * g / tf.sqrt(v + EPSILON))
        elif self.slots:  # sgd with momentum
            for w, g, m in zip(self.variables, grads, self.slots["momentum"]):
                m.assign(self.momentum * m - self.lr * g)
                w.assign_add(m)
        else:
            for w, g in zip(self.variables, grads):
                w.assign_sub(self.lr * g)
