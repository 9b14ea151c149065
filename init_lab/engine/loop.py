"""The training loop: one loop for every execution group of T ≥ 1 trials, whatever its model class.

A generator: it yields events (``events``) and the caller decides what to write, so the same loop
runs in this process and inside a Ray task. Its steps, in order:

1. build the group's networks (``nets``), optimizer (``optim``) and compiled passes (``steps``), or take
   those of an earlier group of the same structure with this group's initial values (``programs``); either restore every member's
   saved state (resume / extend), or run LSUV where asked and record epoch 0: the initial weights'
   loss and accuracy (training subset, validation set) and diagnostics;
2. each epoch: each trial's batch order is ``batch_order(seed, epoch)`` — a function of its seed and
   the epoch only, so every combination with the same seed sees the same batches (paired comparisons),
   trials of different seeds share a group (each gathers its own batch), and a resumed group
   continues exactly; steps run in windows of k, one compiled call each (``steps``, ``Recording.every``),
   each window a row of steps.csv and, in the first epochs, per-layer activation statistics;
3. evaluate on the fixed validation set, record diagnostics and histograms on the fixed probe batch;
4. divergence rule: a non-finite training or validation loss ends that trial as diverged (it keeps
   riding along with NaN weights, touching nothing: the per-trial losses are summed, so every
   trial's gradient is its own);
5. yield each trial's state (weights, optimizer slots, step, rows so far): the checkpoint;
6. at the end, evaluate the live trials on the test set.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from init_lab.analysis.diagnostics import LayerSignals, layer_rows, step_statistics
from init_lab.analysis.histograms import HistogramLog
from init_lab.catalog import defaults
from init_lab.catalog.status import TrialStatus
from init_lab.engine.backend import tf
from init_lab.engine.data import DeviceData
from init_lab.engine.events import (
    EpochEnded,
    Event,
    Group,
    GroupFinished,
    GroupStarted,
    Notice,
    Progress,
    TrialResult,
    TrialState,
)
from init_lab.engine.nets import GroupNet
from init_lab.engine.optim import GroupOptimizer
from init_lab.engine.programs import compiled_group
from init_lab.engine.steps import batch_orders
from init_lab.runschema.records import EpochRow, StepRow
from init_lab.runschema.timings import Timings

PROGRESS_CHUNKS = 8  # progress reports per epoch


def run_group(group: Group, data: DeviceData) -> Iterator[Event]:
    """Train one execution group, yielding events; exceptions propagate (the executor records them)."""
    started, clock = time.perf_counter(), Timings()
    with clock.phase("build"):
        built = compiled_group(group, data)  # reused from an earlier group of the same structure, where kept
        net, opt, train_steps, evaluate = built.net, built.opt, built.train_steps, built.evaluate
        settings = net.specs[0].train
    with clock.phase("initial"):
        states = _restore(net, opt, group) if group.start else None
    if states is None:
        if group.start:
            yield Notice(group.id, "saved state does not fit this group's networks; restarting it from epoch 1")
        with clock.phase("initial"):
            states = _fresh(net, data)
            _record_start(net, data, evaluate, states)
    first = min(s.epoch for s in states.values())  # 0 unless restored
    yield GroupStarted(group.id, [s.id for s in net.specs], first, net.param_count,
                       {k: v.without_arrays() for k, v in states.items()})
    live = np.array([states[s.id].status == TrialStatus.RUNNING for s in net.specs])
    epoch_seconds: list[float] = []
    for epoch in range(first + 1, settings.epochs + 1):
        if not live.any():
            break
        t0 = time.perf_counter()
        loss_sum, correct = yield from _train_epoch(group.id, net, data, train_steps, epoch, live, states, clock)
        with clock.phase("evaluation"):
            val_loss, val_acc = (v.numpy() for v in evaluate(data.x_val, data.y_val))
        with clock.phase("diagnostics"):
            signals = net.probe(data.x_probe, data.y_probe) if data.diagnostics else {}
        seconds = time.perf_counter() - t0
        epoch_seconds.append(seconds)
        n = data.n_train
        for t, spec in enumerate(net.specs):
            state = states[spec.id]
            state.seconds += seconds
            if not live[t]:
                continue
            row = EpochRow(epoch, float(loss_sum[t] / n), float(correct[t] / n), float(val_loss[t]),
                           float(val_acc[t]), seconds, spec.train.learning_rate)
            state.epochs.append(row)
            if spec.id in signals:
                with clock.phase("diagnostics"):
                    _record_signals(state, spec, epoch, signals[spec.id])
            state.epoch = epoch
            if not (math.isfinite(row.loss) and math.isfinite(row.val_loss)):
                state.status = TrialStatus.DIVERGED
                live[t] = False
        with clock.phase("snapshots"):
            _snapshot(net, opt, states)
        yield EpochEnded(group.id, epoch, {s.id: states[s.id] for s in group.specs})  # grid order
    with clock.phase("evaluation"):
        test_loss, test_acc = (v.numpy() for v in evaluate(data.x_test, data.y_test))
    wall = time.perf_counter() - started  # this invocation: build, restore or LSUV, epochs, test
    epochs_wall = sum(epoch_seconds)  # the part of it already counted in each state's seconds
    results = {}
    for t, spec in enumerate(net.specs):
        state = states[spec.id]
        done = state.status == TrialStatus.RUNNING
        results[spec.id] = TrialResult(
            TrialStatus.COMPLETED if done else state.status, state,
            float(test_loss[t]) if done else None, float(test_acc[t]) if done else None,
            net.param_count, group_size=net.T, group_seconds=state.seconds + wall - epochs_wall,
        )
    yield GroupFinished(group.id, {s.id: results[s.id] for s in group.specs}, clock)  # grid order


def _fresh(net: GroupNet, data: DeviceData) -> dict[str, TrialState]:
    """States at epoch 0: LSUV applied where asked (on a training batch), epoch-0 diagnostics recorded."""
    lsuv = net.lsuv(data.x_lsuv)
    signals = net.probe(data.x_probe, data.y_probe) if data.diagnostics else {}
    states = {}
    for spec in net.specs:
        state = states[spec.id] = TrialState(spec.id, net.kind, lsuv=lsuv.get(spec.id))
        if spec.id in signals:
            state.histograms = HistogramLog.start(signals[spec.id].names, spec.activation)
            _record_signals(state, spec, 0, signals[spec.id])
    return states


def _record_start(net: GroupNet, data: DeviceData, evaluate, states: dict[str, TrialState]) -> None:
    """Epoch 0 of epochs.csv, step 0 of steps.csv and of step_layers.csv: the initial weights, before any step."""
    subset = min(data.n_train, defaults.INIT_TRAIN_EXAMPLES)
    loss, acc = (v.numpy() for v in evaluate(data.x_train[:subset], data.y_train[:subset]))
    val_loss, val_acc = (v.numpy() for v in evaluate(data.x_val, data.y_val))
    for t, spec in enumerate(net.specs):
        state = states[spec.id]
        state.epochs.append(EpochRow(0, float(loss[t]), float(acc[t]), float(val_loss[t]), float(val_acc[t]), 0.0,
                                     spec.train.learning_rate))
        state.steps.append(StepRow(0, 0, 0.0, float(loss[t]), float(acc[t])))
    if data.recording.step_diagnostics_epochs:
        _record_step_signals(net, data, states, np.ones(net.T, dtype=bool), 0, 0, 0.0)


def _record_signals(state: TrialState, spec, epoch: int, signals: LayerSignals) -> None:
    """An epoch end's (or initialization's) layers.csv rows and histograms of one trial."""
    state.layers += layer_rows(epoch, spec.activation.name, signals)
    if state.histograms is not None:
        state.histograms.add_epoch(epoch, signals.acts, signals.grads_pre)


def _record_step_signals(net: GroupNet, data: DeviceData, states: dict[str, TrialState], live: np.ndarray,
                         step: int, epoch: int, progress: float) -> None:
    """Per-layer activation statistics and histograms of the live trials at a logged step (forward only, on
    the probe batch's first ``STEP_PROBE_SIZE`` examples), each layer measured for the trials of one
    activation at once."""
    names, pres, acts = net.activations(data.x_probe[: defaults.STEP_PROBE_SIZE])
    where = {"step": step, "epoch": epoch, "progress": progress}
    per_layer: dict[str, list] = {spec.id: [] for spec in net.specs}
    for members in _by_activation(net.specs):
        spec = net.specs[members[0]]
        edges = states[spec.id].histograms.act_edges
        # contiguous positions (a packed group is ordered by activation; a Keras group has one trial): a view, not
        # the copy a list index makes (5.6 MB of a conv layer's maps at every logged step)
        rows = slice(members[0], members[-1] + 1) if members == list(range(members[0], members[-1] + 1)) else members
        for layer, name in enumerate(names):
            stats, counts, bad = step_statistics(spec.activation.name, pres[layer][rows], acts[layer][rows], edges)
            for k, t in enumerate(members):
                per_layer[net.specs[t].id].append(({**where, "layer": layer, "name": name, **stats[k]}, counts[k], bad[k]))
    for t, spec in enumerate(net.specs):
        if live[t]:
            rows = per_layer[spec.id]
            states[spec.id].step_layers += [row for row, _, _ in rows]
            states[spec.id].histograms.add_step(step, epoch, progress, np.stack([c for _, c, _ in rows]),
                                                np.array([b for _, _, b in rows]))


def _by_activation(specs) -> list[list[int]]:
    """Trial positions grouped by activation choice (same statistics and histogram bins)."""
    groups: dict[Any, list[int]] = {}
    for t, spec in enumerate(specs):
        groups.setdefault(spec.activation, []).append(t)
    return list(groups.values())


def _aligned(net: GroupNet, opt: GroupOptimizer) -> list[list[Any]]:
    """The lists of tensors a state holds, each aligned with the model's variables."""
    return [net.variables] + [opt.slots[name] for name in sorted(opt.slots)]


def _snapshot(net: GroupNet, opt: GroupOptimizer, states: dict[str, TrialState]) -> None:
    per_list = [net.per_trial(tensors) for tensors in _aligned(net, opt)]
    per_list.append(net.per_trial(net.buffers, net.buffer_owners))  # BatchNorm's moving averages, last (if any)
    step = int(opt.step.numpy())
    for t, spec in enumerate(net.specs):
        states[spec.id].arrays = [a for per_trial in per_list for a in per_trial[t]]
        states[spec.id].step = step


def _restore(net: GroupNet, opt: GroupOptimizer, group: Group) -> dict[str, TrialState] | None:
    """Load every member's saved state into the networks and optimizer; None if they do not fit."""
    saved = [group.start.get(s.id) for s in net.specs]
    if any(s is None or s.net != net.kind for s in saved) or len({s.epoch for s in saved}) != 1 \
            or len({s.step for s in saved}) != 1:
        return None
    lists = _aligned(net, opt)
    counts = [len(a) for a in net.per_trial(net.variables)]
    buffers = [len(a) for a in net.per_trial(net.buffers, net.buffer_owners)]
    try:
        for k, tensors in enumerate(lists):
            chunks = []
            for t, state in enumerate(saved):
                if len(state.arrays) != counts[t] * len(lists) + buffers[t]:
                    return None
                chunks.append(state.arrays[k * counts[t]: (k + 1) * counts[t]])
            net.assign(tensors, chunks)
        net.assign(net.buffers, [s.arrays[len(s.arrays) - buffers[t]:] for t, s in enumerate(saved)], net.buffer_owners)
    except ValueError:
        return None
    opt.step.assign(saved[0].step)
    return {s.trial_id: s.copy() for s in saved}  # the group's live states grow; the saved ones stay as they were


def _train_epoch(group_id: str, net: GroupNet, data: DeviceData, train_steps, epoch: int, live: np.ndarray,
                 states: dict[str, TrialState], clock: Timings):
    """One epoch's steps in windows of k (a steps.csv row each); yields progress, returns per-trial loss sums
    and correct counts."""
    n, bs, T = data.n_train, net.specs[0].train.batch_size, net.T
    steps = math.ceil(n / bs)
    every = data.recording.every(steps)
    report = max(1, math.ceil(steps / PROGRESS_CHUNKS))
    step_signals = epoch <= data.recording.step_diagnostics_epochs
    order = tf.constant(batch_orders(net, epoch, n))
    loss_sum, correct, done = np.zeros(T), np.zeros(T), 0
    for first in range(0, steps, every):
        count = min(every, steps - first)
        with clock.phase("first_window" if "first_window" not in clock.seconds else "steps"):
            ls, c = train_steps(order, first, count)
            window_loss, window_correct = ls.numpy(), c.numpy()
        loss_sum += window_loss
        correct += window_correct
        done += count
        examples = min(done * bs, n) - first * bs
        step, progress = (epoch - 1) * steps + done, epoch - 1 + done / steps
        for t, spec in enumerate(net.specs):
            if live[t]:
                states[spec.id].steps.append(StepRow(step, epoch, progress, float(window_loss[t] / examples),
                                                     float(window_correct[t] / examples)))
        if step_signals:
            with clock.phase("step_statistics"):
                _record_step_signals(net, data, states, live, step, epoch, progress)
        if done // report > (done - count) // report or done == steps:  # about PROGRESS_CHUNKS per epoch
            seen = min(done * bs, n)
            ok = live & np.isfinite(loss_sum)
            mean = float(loss_sum[ok].mean() / seen) if ok.any() else math.nan
            yield Progress(group_id, epoch, done, steps, mean, float(correct[ok].mean() / seen) if ok.any() else 0.0)
    return loss_sum, correct
