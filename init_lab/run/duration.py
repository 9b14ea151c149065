"""How long a sweep trains, at least: arithmetic on the trial specs, before anything runs.

A trial's training costs, per epoch, 6 floating-point operations per multiply-add of its network and
training example (2 for the forward pass, about twice that for the backward one), plus a forward pass
over the validation set; then one over the test set. Divided by a throughput chosen optimistic on
purpose (``defaults.CPU_FLOPS_PER_CORE`` per core, or ``defaults.GPU_FLOPS``), that is a lower bound: the
real sweep adds diagnostics, evaluation batches, compilation and whatever the machine does besides.
Sweeps above ``defaults.CONFIRM_SECONDS`` ask first (``preflight``). No TensorFlow here.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass

from init_lab.catalog import defaults
from init_lab.catalog.devices import DeviceKind
from init_lab.catalog.models import Architecture, Dense, trace
from init_lab.config.grid import TrialSpec
from init_lab.engine.events import Group
from init_lab.run.memory import DataShape, MemoryPlan

TRAIN_FLOPS_PER_MAC = 6  # forward 2, backward ≈ 4
EVAL_FLOPS_PER_MAC = 2


def multiply_adds(arch: Architecture, input_shape: tuple[int, ...], n_classes: int) -> int:
    """Multiply-adds of one example's forward pass, layer by layer (``Architecture.layers``, then the output)."""
    return sum(layer.multiply_adds(shape) for layer, shape in trace((*arch.layers, Dense(n_classes)), input_shape))


def trial_flops(spec: TrialSpec, data: DataShape, epochs: int) -> float:
    """Floating-point operations of ``epochs`` epochs of one trial, and its test evaluation."""
    macs = multiply_adds(spec.arch, data.input_shape, data.n_classes)
    per_epoch = TRAIN_FLOPS_PER_MAC * data.n_train + EVAL_FLOPS_PER_MAC * data.n_val
    return float(macs) * (epochs * per_epoch + EVAL_FLOPS_PER_MAC * data.n_test)


def throughput(device: str) -> float:
    """The optimistic FLOP/s of the estimate: ``device`` as ``backend.setup_device`` describes it, or cpu/gpu."""
    if DeviceKind.of(device) is DeviceKind.GPU:
        return defaults.GPU_FLOPS
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return defaults.CPU_FLOPS_PER_CORE * cores


def estimate_seconds(work: Iterable[tuple[TrialSpec, int]], data: DataShape, device: str) -> float:
    """The least time training ``work`` — (trial, epochs still to train) pairs — can take on ``device``."""
    return sum(trial_flops(spec, data, epochs) for spec, epochs in work if epochs > 0) / throughput(device)


def format_duration(seconds: float) -> str:
    if seconds < 10:  # a tiny sweep's estimate: "0 s" read as nothing to do
        return f"{seconds:.2g} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    days = seconds / 86400
    return f"{days:.0f} days" if days < 3650 else f"{days / 365:.3g} years"


@dataclass(frozen=True)
class MeasuredEstimate:
    """Training steps' time for a plan, from one group's step measured on this machine (``engine.steps.measure_step``),
    the other groups scaled by their multiply-adds per step. An estimate: evaluation, diagnostics, compilation
    and files come on top (``initlab report`` shows what they took in a real run)."""

    seconds: float
    group: str  # the group measured
    step_seconds: float  # its measured step


def measured_estimate(groups: list[Group], memory: MemoryPlan, device: str) -> MeasuredEstimate | str | None:
    """Measure the first group's step here and scale to every group's epochs; None for an empty plan, or why it
    was not measured (a first group that does not fit the memory budget is never built)."""
    if not groups:
        return None
    first, data = groups[0], memory.data
    if not memory.fits(first):
        return f"group {first.id} does not fit the memory budget"
    from init_lab.engine.backend import setup_device
    from init_lab.engine.steps import measure_step
    from init_lab.run.interrupts import deferred
    from init_lab.run.retry import is_out_of_memory

    setup_device(device)
    try:
        with deferred():  # Ctrl-C inside TensorFlow's calls can crash the process (run.interrupts)
            measured = measure_step(first, data.input_shape, data.n_classes)
    except Exception as exc:  # the estimate is advice: running out of memory measuring it is not an error
        if not is_out_of_memory(exc):
            raise
        return f"group {first.id} ran out of memory measuring a step"
    per_step = {g.id: _step_macs(g, data) for g in groups}
    seconds = sum(measured * per_step[g.id] / per_step[first.id] * math.ceil(data.n_train / g.specs[0].train.batch_size)
                  * max(0, g.specs[0].train.epochs - g.start_epoch) for g in groups)
    return MeasuredEstimate(seconds, first.id, measured)


def _step_macs(group: Group, data: DataShape) -> float:
    """Multiply-adds of one training step of the group: every trial's forward pass on one batch."""
    return float(sum(multiply_adds(s.arch, data.input_shape, data.n_classes) * s.train.batch_size for s in group.specs))
