"""Packed training: many MLP trials of a sweep trained together, as one computation (DESIGN §7).

Trials pack when they share the network shape, the training settings and the seed
(so they see the same batches). Layout for T trials:

* activations are trial-major, (T, batch, h), and every layer is one batched matmul with
  kernels of shape (T, h_in, h_out) — the input batch is shared by all trials. (A single wide
  first-layer matmul (784, T·h₁) was measured no faster here, and its rounding depends on T:
  the batched form gives each trial bit-identical numbers whatever group it trains in, so a
  resumed sweep, regrouped, reproduces an uninterrupted one exactly);
* activations are applied per contiguous slice of trials (trials are ordered by activation);
* each trial's loss is its own batch mean; the sum over trials is differentiated, so every
  trial's gradient is exactly its own, and Adam/SGD/RMSprop update each parameter on its
  own. No clipping or other coupling across trials: a trial that diverges to NaN leaves the
  others' numbers untouched.

Initial weights come from the same Keras initializers and layer seeds as a one-model run,
and the batch order from :func:`train.batch_order`, so a packed trial is the same trial.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from . import defaults
from .diagnostics import layer_rows
from .grid import TrialSpec
from .initializers import build_initializer
from .train import DeviceData, EpochRow, TrialOutcome, batch_order, make_optimizer, tf

NOT_PACKABLE_ACTIVATIONS = {"prelu"}  # learned per-unit slopes: trained one model at a time


def packable(spec: TrialSpec) -> bool:
    return spec.arch.family == "mlp" and spec.activation.name not in NOT_PACKABLE_ACTIVATIONS


def group_key(spec: TrialSpec) -> tuple:
    return (spec.arch.hidden, spec.train, spec.seed)


def plan_groups(specs: list[TrialSpec], pack: bool = True, max_group: int = 0) -> list[list[TrialSpec]]:
    """Trials in execution groups, in grid order of their first member; singletons run one model each."""
    if not pack:
        return [[s] for s in specs]
    groups: dict[tuple, list[TrialSpec]] = {}
    order: list[tuple] = []
    for s in specs:
        key = group_key(s) if packable(s) else ("single", s.index)
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(s)
    out = []
    for key in order:
        members = groups[key]
        size = max_group or len(members)
        out += [members[i : i + size] for i in range(0, len(members), size)]
    return out


def _activation_fn(spec: TrialSpec) -> Callable[[Any], Any]:
    import keras

    name, kw = spec.activation.name, spec.activation.kwargs
    if name == "leaky_relu":
        return lambda x: keras.activations.leaky_relu(x, negative_slope=kw["alpha"])
    if name == "gelu":
        return lambda x: keras.activations.gelu(x, approximate=False)
    if name == "elu":
        return lambda x: keras.activations.elu(x, alpha=kw["alpha"])
    fn = getattr(keras.activations, {"swish": "silu"}.get(name, name))
    return lambda x: fn(x)


class PackedMLP:
    """The variables and forward pass of T same-shaped MLP trials."""

    def __init__(self, specs: list[TrialSpec], input_dim: int, n_classes: int):
        # order by activation so each activation applies to one contiguous slice of trials
        self.specs = sorted(specs, key=lambda s: (s.activation, s.index))
        T = len(self.specs)
        widths = [input_dim, *self.specs[0].arch.hidden, n_classes]
        kernels = [[] for _ in range(len(widths) - 1)]
        for spec in self.specs:
            for layer, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
                init = build_initializer(spec.initializer, spec.seed, layer)
                kernels[layer].append(np.asarray(init(shape=(n_in, n_out), dtype="float32")))
        self.ws = [tf.Variable(np.stack(k), name=f"w{i}") for i, k in enumerate(kernels)]  # (T, in, out)
        self.bs = [tf.Variable(tf.zeros([T, 1, widths[i + 1]]), name=f"b{i}") for i in range(len(kernels))]
        self.variables = [v for pair in zip(self.ws, self.bs) for v in pair]
        self.T = T
        self.slices: list[tuple[int, int, Callable]] = []
        start = 0
        while start < T:
            end = start
            while end < T and self.specs[end].activation == self.specs[start].activation:
                end += 1
            self.slices.append((start, end, _activation_fn(self.specs[start])))
            start = end
        self.param_count = sum(
            n_in * n_out + n_out for n_in, n_out in zip(widths[:-1], widths[1:])
        )  # per trial

    def _act(self, h):
        if len(self.slices) == 1:
            return self.slices[0][2](h)
        return tf.concat([fn(h[s:e]) for s, e, fn in self.slices], axis=0)

    def forward(self, x):
        """(batch, in) → pre-activations and activations of every hidden layer, and logits (T, batch, ·)."""
        pres, acts = [], []
        h = tf.broadcast_to(x[None], [self.T, tf.shape(x)[0], x.shape[-1]])
        for layer, (w, b) in enumerate(zip(self.ws, self.bs)):
            z = _add_bias(tf.matmul(h, w), b)
            if layer == len(self.ws) - 1:
                return pres, acts, z
            h = self._act(z)
            pres.append(z)
            acts.append(h)

    def logits(self, x):
        return self.forward(x)[2]

    def probe_rows(self, epoch: int, x, y) -> dict[str, list[dict[str, Any]]]:
        """Diagnostics rows of every trial on the probe batch (see ``diagnostics``)."""
        with tf.GradientTape() as tape:
            pres, acts, logits = self.forward(x)
            total = tf.reduce_sum(_per_trial(logits, y)[0])
        hidden = self.ws[:-1]
        grads = tape.gradient(total, acts + hidden)
        g_out, g_k = grads[: len(acts)], grads[len(acts) :]
        pres, acts = [p.numpy() for p in pres], [a.numpy() for a in acts]
        g_out, g_k, kernels = [g.numpy() for g in g_out], [g.numpy() for g in g_k], [w.numpy() for w in hidden]
        names = [f"dense_{i}" for i in range(len(hidden))]
        return {
            spec.id: layer_rows(epoch, spec.activation.name, names, [p[t] for p in pres], [a[t] for a in acts],
                                [g[t] for g in g_out], [k[t] for k in kernels], [g[t] for g in g_k])
            for t, spec in enumerate(self.specs)
        }

    def lsuv(self, x) -> dict[str, list[dict[str, Any]]]:
        """LSUV on the lsuv trials of the group (the others are untouched); returns each one's log.

        Layer by layer, for all chosen trials at once: W ← W/√Var(layer output) until |Var − 1| < tol
        or max_iter rescalings; the next layer then sees the rescaled layer's activations.
        """
        chosen = np.array([s.initializer.name == "lsuv" for s in self.specs])
        logs: dict[str, list[dict[str, Any]]] = {s.id: [] for s, c in zip(self.specs, chosen) if c}
        if not chosen.any():
            return logs
        tol = np.array([s.initializer.kwargs.get("tol", 0.0) for s in self.specs])
        max_iter = np.array([int(s.initializer.kwargs.get("max_iter", 0)) for s in self.specs])
        h = tf.broadcast_to(x[None], [self.T, tf.shape(x)[0], x.shape[-1]])
        for layer, (w, b) in enumerate(zip(self.ws, self.bs)):
            iterations = np.zeros(self.T, dtype=int)
            while True:
                z = _add_bias(tf.matmul(h, w), b)
                var = tf.math.reduce_variance(z, axis=[1, 2]).numpy().astype(np.float64)
                todo = chosen & (np.abs(var - 1) >= tol) & (iterations < max_iter) & (var > 0)
                if not todo.any():
                    break
                scale = np.where(todo, 1 / np.sqrt(np.where(var > 0, var, 1)), 1.0).astype(np.float32)
                w.assign(w * scale[:, None, None])
                iterations += todo
            name = f"dense_{layer}" if layer < len(self.ws) - 1 else "output"
            for t, spec in enumerate(self.specs):
                if chosen[t]:
                    logs[spec.id].append({"layer": name, "iterations": int(iterations[t]), "final_variance": float(var[t])})
            h = self._act(z)
        return logs


# Reductions over the batch axis are written as batched matmuls with a ones vector: TensorFlow's
# reduce_sum rounds differently for different numbers of trials, a batched matmul does not. This is
# what makes a trial's numbers independent of the group it trains in (tested).


def _batch_sums(a):
    """(T, B, n) → (T, 1, n): the sum over the batch, as a per-trial matmul."""
    return tf.matmul(tf.ones([tf.shape(a)[0], 1, tf.shape(a)[1]], a.dtype), a)


@tf.custom_gradient
def _add_bias(h, b):
    def grad(dh):
        return dh, _batch_sums(dh)

    return h + b, grad


def _per_trial(logits, labels):
    """Per-trial mean loss (T,) and correct counts (T,) of a batch."""
    y = tf.broadcast_to(labels[None, :], tf.shape(logits)[:2])
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
    correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), y), tf.int32), axis=1)
    mean = _batch_sums(ce[:, :, None])[:, 0, 0] / tf.cast(tf.shape(ce)[1], ce.dtype)
    return mean, correct


def train_group(
    specs: list[TrialSpec],
    data: DeviceData,
    on_epoch: Callable[[TrialSpec, EpochRow], None] | None = None,
    on_progress: Callable[[int, int, int, float, float], None] | None = None,
    progress_chunks: int = 8,
    on_layers: Callable[[TrialSpec, list[dict[str, Any]]], None] | None = None,
) -> dict[str, TrialOutcome]:
    """Train a packed group; returns each trial's outcome, exactly as train_trial would."""
    started = time.perf_counter()
    model = PackedMLP(specs, int(np.prod(data.input_shape)), data.n_classes)
    lsuv_logs = model.lsuv(data.x_probe)
    settings = specs[0].train
    optimizer = make_optimizer(settings)
    optimizer.build(model.variables)
    x, y, n, bs, T = data.x_train, data.y_train, data.n_train, settings.batch_size, model.T
    if len(data.input_shape) > 1:
        raise ValueError("packed training takes flat inputs")
    scalar = tf.TensorSpec([], tf.int32)

    @tf.function(jit_compile=defaults.XLA)
    def step(xb, yb):
        with tf.GradientTape() as tape:
            losses, hits = _per_trial(model.logits(xb), yb)
            total = tf.reduce_sum(losses)
        optimizer.apply_gradients(zip(tape.gradient(total, model.variables), model.variables))
        return losses, hits

    @tf.function(input_signature=[tf.TensorSpec([n], tf.int32), scalar, scalar])
    def train_steps(order, first, count):
        loss_sum = tf.zeros([T])
        correct = tf.zeros([T], tf.int32)
        for i in tf.range(first, first + count):
            start = i * bs
            idx = order[start : tf.minimum(start + bs, n)]
            losses, hits = step(tf.gather(x, idx), tf.gather(y, idx))
            loss_sum += losses * tf.cast(tf.shape(idx)[0], tf.float32)
            correct += hits
        return loss_sum, correct

    @tf.function(input_signature=[tf.TensorSpec([None, *data.input_shape]), tf.TensorSpec([None], tf.int32)])
    def evaluate(xs, ys):
        total = tf.shape(xs)[0]
        loss_sum = tf.zeros([T])
        correct = tf.zeros([T], tf.int32)
        for start in tf.range(0, total, defaults.EVAL_BATCH_SIZE):
            end = tf.minimum(start + defaults.EVAL_BATCH_SIZE, total)
            losses, hits = _per_trial(model.logits(xs[start:end]), ys[start:end])
            loss_sum += losses * tf.cast(end - start, tf.float32)
            correct += hits
        n_eval = tf.cast(total, tf.float32)
        return loss_sum / n_eval, tf.cast(correct, tf.float32) / n_eval

    outcomes = {s.id: TrialOutcome(status="completed", param_count=model.param_count) for s in model.specs}
    position = {s.id: t for t, s in enumerate(model.specs)}
    for spec_id, log in lsuv_logs.items():
        outcomes[spec_id].lsuv = log
    def diagnose(epoch: int, active) -> None:
        if not data.diagnostics:
            return
        rows = model.probe_rows(epoch, data.x_probe, data.y_probe)
        for spec in specs:
            if active[position[spec.id]]:
                outcomes[spec.id].layers += rows[spec.id]
                if on_layers is not None:
                    on_layers(spec, outcomes[spec.id].layers)

    active = np.ones(T, dtype=bool)
    diagnose(0, active)
    steps = math.ceil(n / bs)
    chunk = max(1, math.ceil(steps / max(1, progress_chunks)))
    for epoch in range(1, settings.epochs + 1):
        if not active.any():
            break
        t0 = time.perf_counter()
        order = tf.constant(batch_order(specs[0].seed, epoch, n))
        loss_sum, correct, done = np.zeros(T), np.zeros(T), 0
        for first in range(0, steps, chunk):
            count = min(chunk, steps - first)
            ls, c = train_steps(order, tf.constant(first), tf.constant(count))
            loss_sum += ls.numpy()
            correct += c.numpy()
            done += count
            if on_progress is not None:
                seen = min(done * bs, n)
                live = active & np.isfinite(loss_sum)
                mean_loss = float(loss_sum[live].mean() / seen) if live.any() else math.nan
                on_progress(epoch, done, steps, mean_loss, float(correct[live].mean() / seen) if live.any() else 0.0)
        val_loss, val_acc = (v.numpy() for v in evaluate(data.x_val, data.y_val))
        seconds = time.perf_counter() - t0
        diagnose(epoch, active)
        for spec in specs:  # report in grid order
            t = position[spec.id]
            if not active[t]:
                continue
            row = EpochRow(epoch, float(loss_sum[t] / n), float(correct[t] / n), float(val_loss[t]),
                           float(val_acc[t]), seconds, settings.learning_rate)
            outcomes[spec.id].epochs.append(row)
            if on_epoch is not None:
                on_epoch(spec, row)
            if not (math.isfinite(row.loss) and math.isfinite(row.val_loss)):
                outcomes[spec.id].status = "diverged"
                active[t] = False  # its weights are NaN now; it keeps riding along, touching nothing
    test_loss, test_acc = (v.numpy() for v in evaluate(data.x_test, data.y_test))
    wall = time.perf_counter() - started
    for t, spec in enumerate(model.specs):
        outcome = outcomes[spec.id]
        outcome.wall_seconds = wall / T  # the group's time, shared out
        if outcome.status == "completed":
            outcome.test_loss, outcome.test_accuracy = float(test_loss[t]), float(test_acc[t])
    return outcomes
