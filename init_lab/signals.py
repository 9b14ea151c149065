"""Reading per-layer signals out of a Keras model of initlab, and LSUV initialization on it.

Models built by ``models.build_model`` name their kernel layers ``dense_i`` / ``conv_i`` and the
activations that follow ``act_i`` / ``act_conv_i``; the output layer is ``output``. This module
turns one forward+backward pass on the probe batch into the arrays ``diagnostics`` summarizes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .diagnostics import layer_rows
from .train import keras, tf


def _hidden_pairs(model: Any) -> list[tuple[Any, Any]]:
    pairs = []
    for layer in model.layers:
        if layer.name.startswith("dense_"):
            pairs.append((layer, model.get_layer("act_" + layer.name[len("dense_"):])))
        elif layer.name.startswith("conv_"):
            pairs.append((layer, model.get_layer("act_" + layer.name)))
    return pairs


class ModelProbe:
    """A compiled forward/backward pass that returns every hidden layer's signals for one model."""

    def __init__(self, model: Any, activation: str):
        self.activation = activation
        self.pairs = _hidden_pairs(model)
        self.names = [k.name for k, _ in self.pairs]
        outputs = [k.output for k, _ in self.pairs] + [a.output for _, a in self.pairs] + [model.output]
        self.sub = keras.Model(model.inputs, outputs)
        self.kernels = [k.kernel for k, _ in self.pairs]
        n = len(self.pairs)

        @tf.function(reduce_retracing=True)
        def run(x, y):
            with tf.GradientTape() as tape:
                outs = self.sub(x, training=False)
                pres, acts, probs = outs[:n], outs[n : 2 * n], outs[-1]
                loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, probs))
            grads = tape.gradient(loss, acts + self.kernels)
            return pres, acts, grads[:n], grads[n:]

        self._run = run

    def rows(self, epoch: int, x: Any, y: Any) -> list[dict[str, Any]]:
        pres, acts, g_out, g_k = self._run(x, y)
        return layer_rows(
            epoch, self.activation, self.names, [p.numpy() for p in pres], [a.numpy() for a in acts],
            [g.numpy() for g in g_out], [np.asarray(k) for k in self.kernels], [g.numpy() for g in g_k],
        )


def lsuv(model: Any, x: Any, tol: float = 0.1, max_iter: int = 10) -> list[dict[str, Any]]:
    """LSUV (Mishkin & Matas 2016) on an orthogonally initialized model, layer by layer, in place.

    Each kernel layer (hidden and output) is rescaled by 1/√Var(its output) on ``x`` until
    |Var − 1| < tol or ``max_iter`` rescalings. Returns the log: layer, iterations, final variance.
    """
    log = []
    kernel_layers = [layer for layer in model.layers if layer.name.startswith(("dense_", "conv_")) or layer.name == "output"]
    for layer in kernel_layers:
        sub = keras.Model(model.inputs, layer.output)
        iterations = 0
        var = float(tf.math.reduce_variance(sub(x, training=False)))
        while abs(var - 1.0) >= tol and iterations < int(max_iter) and var > 0:
            layer.kernel.assign(layer.kernel / np.sqrt(var))
            iterations += 1
            var = float(tf.math.reduce_variance(sub(x, training=False)))
        log.append({"layer": layer.name, "iterations": iterations, "final_variance": var})
    return log
