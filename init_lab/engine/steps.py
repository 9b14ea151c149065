"""How a group's training steps and evaluation passes are compiled (the loop, ``loop``, runs them).

``compile_steps`` gives ``train_steps(order, first, count)`` — per-trial loss sums and correct counts of steps
first … first + count − 1 of an epoch, each trial on its own batch order — and ``evaluate(xs, ys)``. Packed groups with
XLA run a window of steps (one row of steps.csv) as one XLA program; Keras models, and packed groups with XLA off, a
graph loop. Every tf.function is traced without AutoGraph (tracing a packed group took 1.2 s with it). Also here:
each epoch's batch orders, and ``measure_step``, what ``--dry-run``'s estimate is calibrated with.
"""

from __future__ import annotations

import math
import time

import numpy as np

from init_lab.catalog import defaults
from init_lab.engine.backend import tf
from init_lab.engine.data import DeviceData, Recording, batch_order
from init_lab.engine.events import Group
from init_lab.engine.nets import GroupNet, build_net
from init_lab.engine.optim import GroupOptimizer


def batch_orders(net: GroupNet, epoch: int, n: int) -> np.ndarray:
    """(n slices, examples): each trial's own order (the ghost, if any, takes the first trial's)."""
    seeds = [s.seed for s in net.specs]
    orders = {seed: batch_order(seed, epoch, n) for seed in set(seeds)}
    return np.stack([orders[seed] for seed in seeds + seeds[:1] * (net.n - net.T)])


def compile_steps(net: GroupNet, opt: GroupOptimizer, data: DeviceData, bs: int):
    """A run of training steps over a batch order (``train_steps(order, first, count)``: per-trial loss sums and
    correct counts of steps first … first + count − 1 of an epoch), and an evaluation pass (per-trial means)."""
    x, y, n, T = data.x_train, data.y_train, data.n_train, net.T

    # autograph=False everywhere: the loops are written as tf.while_loop, and AutoGraph's conversion of the
    # networks' Python (which has no tensor-dependent control flow) took most of a second of tracing per group
    def step(xb, yb, rows=None):
        with tf.GradientTape() as tape:
            losses, hits = net.losses(xb, yb, training=True, per_trial=True, rows=rows)
            total = tf.reduce_sum(losses)  # each trial's gradient is its own
        opt.apply(tape.gradient(total, net.variables))
        return losses, hits

    window = data.recording.every(math.ceil(n / bs))  # the steps of one call (one row of steps.csv)
    batch = _batch_gather(x, y, [s.seed for s in net.specs], net.n)
    train_steps = (_compiled_windows if net.jit else _graph_windows)(step, batch, net.n, T, n, bs, window)

    @tf.function(input_signature=[tf.TensorSpec([None, *data.input_shape]), tf.TensorSpec([None], tf.int32)],
                 autograph=False)
    def evaluate(xs, ys):
        total = tf.shape(xs)[0]

        def body(start, loss_sum, correct):
            end = tf.minimum(start + defaults.EVAL_BATCH_SIZE, total)
            losses, hits = net.losses(xs[start:end], ys[start:end])
            return start + defaults.EVAL_BATCH_SIZE, loss_sum + losses * tf.cast(end - start, tf.float32), correct + hits

        loss_sum, correct = _loop(0, total, body, T)
        n_eval = tf.cast(total, tf.float32)
        return loss_sum / n_eval, tf.cast(correct, tf.float32) / n_eval

    return train_steps, evaluate


def _batch_gather(x, y, seeds: list[int], slices: int):
    """``batch(idx)``: the examples (slices, batch, …) and labels of a step's indices (slices, batch), each trial's
    own. Trials of one seed share their batch, so its rows are read from the training set once per seed and copied
    to the trials (56 trials of one seed read 22 MB of scattered rows a step before; the step ran 6 % slower than on
    a cached set)."""
    seeds = seeds + seeds[:1] * (slices - len(seeds))  # the ghost, if any, takes the first trial's order
    first: dict[int, int] = {}
    for k, seed in enumerate(seeds):
        first.setdefault(seed, k)  # the slice whose indices stand for its seed's
    firsts = sorted(first.values())
    owners = [firsts.index(first[seed]) for seed in seeds]
    if len(firsts) == slices:
        return lambda idx: (tf.gather(x, idx), tf.gather(y, idx))

    def batch(idx):
        distinct = tf.gather(idx, firsts)  # (seeds, batch)
        return tf.gather(tf.gather(x, distinct), owners), tf.gather(tf.gather(y, distinct), owners)

    return batch


def _compiled_windows(step, batch, slices: int, T: int, n: int, bs: int, window: int):
    """Steps as one XLA computation: up to ``window`` batches in a loop (the loop, the gathers and the steps compiled
    together ran 4 % faster than a graph loop calling a compiled step). The epoch's last, partial batch is padded to
    the others' shape with examples that do not count (``GroupNet.losses``' ``rows``), so it runs in the same program:
    a program of its own, traced and compiled again for the smaller shape, cost 1.1 s a 16-trial MLP group here and
    ≈ 5 s a group of deep_residual.yaml's 61 layers (even loaded from the XLA cache). The per-step losses are summed
    outside XLA, which fuses a multiply-add whose rounding depends on how many trials the group has."""
    steps = -(-n // bs)
    padded = steps * bs  # each trial's order, its first examples appended (repeated if need be) to fill the last batch
    scalar = tf.TensorSpec([], tf.int32)

    @tf.function(input_signature=[tf.TensorSpec([slices, padded], tf.int32), scalar, scalar], jit_compile=True,
                 autograph=False)
    def batches(order, first, end):
        def body(i, per_step, correct):
            rows = tf.minimum(bs, n - i * bs)
            losses, hits = step(*batch(tf.slice(order, [0, i * bs], [slices, bs])), rows)
            return i + 1, tf.tensor_scatter_nd_update(per_step, [[i - first]], losses[None]), correct + hits

        start = (first, tf.zeros([window, T]), tf.zeros([T], tf.int32))
        return tf.while_loop(lambda i, *_: i < end, body, start)[1:]

    last = [None, None]  # the epoch's order and its padded form: padded once an epoch, not at every window

    def train_steps(order, first: int, count: int):
        if last[0] is not order:
            last[:] = [order, tf.tile(order, [1, -(-padded // n)])[:, :padded]]  # repeated where a batch exceeds n
        full_order = last[1]
        end = min(first + count, steps)
        loss_sum, correct = tf.zeros([T]), tf.zeros([T], tf.int32)
        for lo in range(first, end, window):
            hi = min(lo + window, end)
            per_step, hits = batches(full_order, tf.constant(lo), tf.constant(hi))
            correct += hits
            for k in range(hi - lo):
                loss_sum = loss_sum + per_step[k] * float(min(bs, n - (lo + k) * bs))
        return loss_sum, correct

    return train_steps


def _graph_windows(step, batch, slices: int, T: int, n: int, bs: int, window: int):
    """Steps as a graph loop calling the step's graph: Keras models (their XLA step measured slower on CPU) and
    packed groups with XLA off (``INITLAB_XLA=0``)."""
    scalar = tf.TensorSpec([], tf.int32)
    one = tf.function(step, autograph=False)

    @tf.function(input_signature=[tf.TensorSpec([slices, n], tf.int32), scalar, scalar], autograph=False)
    def window(order, first, count):
        def body(i, loss_sum, correct):
            start = i * bs
            idx = order[:, start: tf.minimum(start + bs, n)]  # (slices, batch): each trial's own examples
            losses, hits = one(*batch(idx))
            return i + 1, loss_sum + losses * tf.cast(tf.shape(idx)[1], tf.float32), correct + hits

        return _loop(first, first + count, body, T)

    return lambda order, first, count: window(order, tf.constant(first), tf.constant(count))


def _loop(first, end, body, T: int):
    """Per-trial loss sums (T,) and correct counts (T,) of ``body(i, loss_sum, correct) → (next i, sums, counts)``
    run from ``first`` while i < ``end``."""
    start = (tf.convert_to_tensor(first), tf.zeros([T]), tf.zeros([T], tf.int32))
    return tf.while_loop(lambda i, *_: i < end, body, start)[1:]


def measure_step(group: Group, input_shape: tuple[int, ...], n_classes: int, steps: int = 8,
                 windows: int = 3) -> float:
    """Seconds one training step of ``group`` takes here, measured: the group's networks and optimizer on random
    inputs of the sweep's shape, ``windows`` windows of ``steps`` steps after one that traces and compiles. What
    ``--dry-run``'s estimate is calibrated with (evaluation, diagnostics and compilation are not in it)."""
    bs = group.specs[0].train.batch_size
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((bs * steps, *input_shape), dtype=np.float32))
    y = tf.constant(rng.integers(0, n_classes, bs * steps, dtype=np.int32))
    data = DeviceData(x, y, x[:bs], y[:bs], x[:bs], y[:bs], input_shape, n_classes, "measure", x[:bs], y[:bs],
                      Recording(log_every_steps=steps), x_lsuv=x[:bs])
    net = build_net(group.net, group.specs, input_shape, n_classes)
    settings = net.specs[0].train
    opt = GroupOptimizer(settings.optimizer, net.per_variable([s.train.learning_rate for s in net.specs]),
                         settings.momentum, net.variables)
    train_steps, _ = compile_steps(net, opt, data, bs)
    order = tf.constant(batch_orders(net, 1, bs * steps))
    window = (order, 0, steps)
    train_steps(*window)[0].numpy()  # traces and compiles
    t0 = time.perf_counter()
    for _ in range(windows):
        train_steps(*window)[0].numpy()
    return (time.perf_counter() - t0) / (windows * steps)
