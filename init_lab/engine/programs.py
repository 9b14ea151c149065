"""A group's network, optimizer and compiled passes, built once per structure and reused across a sweep's groups.

Keras groups hold one trial each (a CNN, or an MLP not packed). Every group used to trace its model's training
step, evaluation and probe functions and, Keras' session cleared, have TensorFlow instantiate them again: for the
32-layer CNN of ``delta_orthogonal_cnn.yaml`` ≈ 2 s a trial of first window and epoch 0, against 16 training
steps of 52 ms in a 1,024-image run. A later group whose trials have the same structure — architecture,
activation, the initializer's extra layers (Fixup, SkipInit), input shape, training settings but the learning
rate — trains in the first one's model, optimizer and traces: its own initial values (built exactly as before,
from its initializer and seed) are assigned to that model's variables, the optimizer state is zeroed and its
learning rates set, so it computes what a model of its own would (the same graph on the same values: tests
compare the tables); and the session is cleared only where a new structure is built.

The programs live with the sweep's data (``DeviceData.programs``) and are dropped with it; at most
``defaults.PROGRAM_CACHE_ENTRIES`` structures are kept, whose variables and optimizer state come to at most
``defaults.PROGRAM_CACHE_BYTES`` in all (a large model's tracing is small beside its training, and the memory plan
counts one group's state: what is kept beyond it stays small). Packed MLP groups are built afresh (their trials and shapes differ from group to group).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from init_lab.catalog import defaults
from init_lab.catalog.initializers import BRANCH_SCALE
from init_lab.catalog.models import NetKind
from init_lab.engine.backend import tf
from init_lab.engine.data import DeviceData
from init_lab.engine.events import Group
from init_lab.engine.nets import GroupNet, build_net
from init_lab.engine.optim import GroupOptimizer
from init_lab.engine.steps import compile_steps

STRUCTURAL_INITIALIZERS = frozenset(BRANCH_SCALE)  # Fixup and SkipInit add layers (scalars, biases), not just values


@dataclass
class Compiled:
    """What the loop trains a group with."""

    net: GroupNet
    opt: GroupOptimizer
    train_steps: Callable
    evaluate: Callable


def compiled_group(group: Group, data: DeviceData) -> Compiled:
    """The group's network with its initial values, a fresh optimizer state and the compiled passes: reused from
    an earlier group of the same structure where one is kept (``data.programs``)."""
    key = structure(group, data)
    kept = data.programs.get(key) if key is not None else None
    # Keras' clear_session empties TensorFlow's kernel cache: a kept structure's step, instantiated again, took
    # 1.3 s of the 32-layer CNN's 1.4 s first window. So it is cleared only where a new structure is built.
    net = build_net(group.net, group.specs, data.input_shape, data.n_classes, clear_session=kept is None)
    settings = net.specs[0].train
    rates = net.per_variable([s.train.learning_rate for s in net.specs])  # per trial: they pack across rates
    if key is None:
        opt = GroupOptimizer(settings.optimizer, rates, settings.momentum, net.variables)
        return Compiled(net, opt, *compile_steps(net, opt, data, settings.batch_size))
    if kept is not None and kept.net.same_shapes(net):
        kept.net.take(net)
        kept.opt.reset(rates)
        return kept
    # learning rates as variables: a later group of this structure sets its own without a new trace
    opt = GroupOptimizer(settings.optimizer, [tf.Variable(r, trainable=False) for r in rates], settings.momentum,
                         net.variables)
    compiled = Compiled(net, opt, *compile_steps(net, opt, data, settings.batch_size))
    _keep(data.programs, key, compiled)
    return compiled


def _keep(programs: dict[str, Compiled], key: str, compiled: Compiled) -> None:
    """Keep ``compiled`` for later groups, dropping the oldest structures while more than the cache's entries or
    bytes would be kept; one whose state alone exceeds the bytes is not kept."""
    size = _state_bytes(compiled.net, compiled.opt)
    if defaults.PROGRAM_CACHE_ENTRIES < 1 or size > defaults.PROGRAM_CACHE_BYTES:
        return
    while programs and (len(programs) >= defaults.PROGRAM_CACHE_ENTRIES or
                        sum(_state_bytes(c.net, c.opt) for c in programs.values()) + size > defaults.PROGRAM_CACHE_BYTES):
        programs.pop(next(iter(programs)))
    programs[key] = compiled


def structure(group: Group, data: DeviceData) -> str | None:
    """What the compiled passes of a Keras group depend on besides variable values; None for a packed group."""
    if group.net != NetKind.KERAS:
        return None
    per_trial = [(s.arch, s.activation, s.initializer.name if s.initializer.name in STRUCTURAL_INITIALIZERS else None,
                  sorted((asdict(s.train) | {"learning_rate": None, "epochs": None}).items())) for s in group.specs]
    return repr((per_trial, data.input_shape, data.n_classes))


def _state_bytes(net: GroupNet, opt: GroupOptimizer) -> int:
    tensors = list(net.variables) + list(net.buffers) + [s for slots in opt.slots.values() for s in slots]
    return int(sum(np.prod(t.shape) * tf.as_dtype(t.dtype).size for t in tensors))
