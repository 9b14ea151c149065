"""The memory estimate: what an execution group needs, and :class:`MemoryPlan`, which holds it against the budget.

No TensorFlow here (``--dry-run`` uses all of it, and starts no TensorFlow): the estimate is arithmetic on the trial
specs and the dataset's nominal shape; the budget is ``capacity``'s; groups are cut to fit it in ``plan``.

The estimate of one group of T trials (float32 and int32: 4 bytes a number), with P parameters and S
optimizer slots per trial (``catalog.optimizers``: Adam's m and v, …), batch size B, D input
numbers and A layer outputs per example (every hidden layer's, ``Architecture.layers``, and the classes:
an MLP's widths, the CNN's convolutions, pools and dense layer), W of them in the widest layer,
E = EVAL_BATCH_SIZE examples (or the largest evaluated set, if smaller), Q = PROBE_SIZE probe examples,
N training examples::

    bytes = 4 × ( T × ( P × (2 + S)              weights, gradients, optimizer slots
                      + 2 × P × (1 + S)          numpy snapshots of weights and slots (each epoch's checkpoint,
                                                 and the previous one, kept to retry from)
                      + B × (D + 1)              the trial's own gathered batch, inputs and labels
                      + 3 × B × A                activations kept for the backward pass (pre-activation,
                                                 activation) and their gradients
                      + E × (D + 2 × W)          one evaluation batch: the input broadcast to every trial, and
                                                 the widest layer's pre-activations and activations (forward
                                                 only: a layer's input is freed once the next is computed)
                      + 4 × Q × (D + A)          with diagnostics: the probe pass, forward and backward, its
                                                 per-layer signals copied to numpy
                      + N )                      the epoch's batch order
                + min(N, INIT_TRAIN_EXAMPLES) × D )   epoch 0's training subset

A residual or normalized MLP (``Architecture.residual``, ``normalization``) adds to P its blocks' projections and its
normalization's scales and shifts, to A the values each hidden layer keeps beyond its Dense output and activation (two
per unit with normalization: its normalized and centred values; one per unit at a block's last layer: the skip's sum),
and per trial 3 × BatchNorm's moving means and variances (the live ones and the two snapshots).
T counts the ghost copy a lone packed trial gets under XLA (``nets.PackedMLP``). PReLU slopes (a few
hundred numbers), TensorFlow's op workspace and XLA's buffers are not counted: ``MEMORY_FRACTION``
leaves room for them. What every group shares (``MemoryPlan.fixed_bytes``: the data of
:func:`estimate_data_bytes` and, against host RAM, its NumPy copy and ``TF_RUNTIME_BYTES``) is resident
for the whole sweep, so a group gets the budget minus that. Checked against peak RSS on CPU (bundled MNIST
sample, 784-256-256-10, Adam, batch 128, groups of 8 and 32 in separate processes): 26.7 MiB a trial
estimated (21.6 without diagnostics), 26.6 MiB measured (19.3); TensorFlow and XLA's compilation
took a fixed ~0.15 GiB more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

from init_lab.catalog import defaults
from init_lab.catalog.datasets import model_input_shape
from init_lab.catalog.devices import DeviceKind
from init_lab.catalog.models import Architecture, Conv, Dense, NetKind, branch_scalars, trace
from init_lab.catalog.optimizers import slot_names
from init_lab.config.grid import TrialSpec
from init_lab.config.schema import SweepConfig
from init_lab.engine.events import Group
from init_lab.run.capacity import budget_and_source

NUMBER_BYTES = 4  # float32 and int32
PROBE_PASSES = 4  # the probe pass keeps forward and backward signals of every layer, then copies them to numpy


@dataclass(frozen=True)
class DataShape:
    """The dataset as the estimate sees it: example shape, classes and split sizes."""

    input_shape: tuple[int, ...]
    n_classes: int
    n_train: int
    n_val: int
    n_test: int

    @classmethod
    def from_config(cls, config: SweepConfig, family: str) -> DataShape:
        """The dataset's image shape, classes and nominal sizes from the config, before anything is loaded
        (``catalog.datasets.DATASETS``; synthetic: its configured shape, classes and sizes)."""
        d = config.dataset
        train, test = d.sizes
        train, test = min(train, d.train_size or train), min(test, d.test_size or test)
        n_val = int(round(train * d.validation_split))
        return cls(model_input_shape(d.image_shape, family), d.classes, train - n_val, n_val, test)


class NetSize(NamedTuple):
    """One trial's network in numbers: parameters, layer outputs per example (all, and the widest layer's)."""

    params: int
    outputs: int
    widest: int


def layer_sizes(arch: Architecture, input_shape: tuple[int, ...], n_classes: int) -> NetSize:
    """One trial's parameters and layer outputs per example, layer by layer as ``nets.build_keras_model`` builds
    them (tests compare the counts): its hidden layers, then the output layer."""
    params, outputs, kernels = 0, [], []
    for layer, shape in trace((*arch.layers, Dense(n_classes)), input_shape):
        params += layer.params(shape)
        outputs.append(math.prod(layer.output(shape)))
        if isinstance(layer, (Dense, Conv)):
            kernels.append(outputs[-1])  # the hidden kernel layers' outputs, in the order blocks count them
    # residual blocks and normalization: projections and scales/shifts; the normalized, centred and summed values kept
    params += arch.projection_params + arch.norm_params
    hidden = kernels[:-1]
    kept = (2 * sum(hidden) if arch.normalization != "none" else 0) + sum(hidden[b.last] for b in arch.blocks)
    return NetSize(params, sum(outputs) + kept, max(outputs))


def estimate_group_bytes(specs: list[TrialSpec], data: DataShape, diagnostics: bool = True,
                         net: NetKind = NetKind.PACKED_MLP) -> int:
    """Peak memory one execution group needs beyond the shared data: the module docstring's formula.

    Every member has the same shape and batch settings (that is what packs them), so the first speaks for all.
    """
    spec = specs[0]
    params, outputs, widest = layer_sizes(spec.arch, data.input_shape, data.n_classes)
    params += branch_scalars(spec.arch, spec.initializer.name)  # Fixup's / SkipInit's learned scalars
    slots = len(slot_names(spec.train.optimizer, spec.train.momentum))
    d, batch = math.prod(data.input_shape), min(spec.train.batch_size, data.n_train)
    subset = min(data.n_train, defaults.INIT_TRAIN_EXAMPLES)
    evaluated = min(defaults.EVAL_BATCH_SIZE, max(data.n_val, data.n_test, subset))
    per_trial = (
        params * (2 + slots) + 2 * params * (1 + slots)
        + batch * (d + 1) + 3 * batch * outputs
        + evaluated * (d + 2 * widest)
        + (PROBE_PASSES * defaults.PROBE_SIZE * (d + outputs) if diagnostics else 0)
        + data.n_train
        + 3 * spec.arch.norm_buffers
    )
    ghost = net == NetKind.PACKED_MLP and len(specs) == 1 and defaults.XLA
    return NUMBER_BYTES * ((len(specs) + ghost) * per_trial + subset * d)


def estimate_data_bytes(data: DataShape) -> int:
    """The shared dataset tensors, resident for the whole sweep: every split's inputs and labels, and the
    probe and LSUV batches."""
    d, probe = math.prod(data.input_shape), defaults.PROBE_SIZE
    examples = data.n_train + data.n_val + data.n_test
    return NUMBER_BYTES * (examples * (d + 1) + probe * (2 * d + 1))


@dataclass(frozen=True)
class MemoryPlan:
    """A budget, and what estimating a group needs: the data's shape and whether diagnostics run."""

    budget: int
    data: DataShape
    diagnostics: bool = True
    source: str = ""  # how the budget was chosen
    host: bool = True  # the budget is host RAM (CPU), not device memory (GPU)

    @classmethod
    def for_config(cls, config: SweepConfig, device: str, family: str) -> MemoryPlan:
        budget, source = budget_and_source(device, config.resources.memory)
        return cls(budget, DataShape.from_config(config, family), config.training.diagnostics, source,
                   host=DeviceKind.of(device) is DeviceKind.CPU)

    @property
    def data_bytes(self) -> int:
        return estimate_data_bytes(self.data)

    @property
    def fixed_bytes(self) -> int:
        """What every group shares, resident for the whole sweep: the data's tensors and, in host RAM, also
        the prepared NumPy arrays they were made from and TensorFlow's own runtime (``TF_RUNTIME_BYTES``). On a
        CPU-only process the tensors adopt the float32 arrays without a copy (``engine.data``): counting both errs
        on the safe side by the data's size (0.22 GB of full MNIST)."""
        return self.data_bytes + (self.data_bytes + defaults.TF_RUNTIME_BYTES if self.host else 0)

    @property
    def group_budget(self) -> int:
        """What one group may use: the budget less what is shared."""
        return self.budget - self.fixed_bytes

    def group_bytes(self, group: Group) -> int:
        return estimate_group_bytes(group.specs, self.data, self.diagnostics, group.net)

    def fits(self, group: Group) -> bool:
        return self.group_bytes(group) <= self.group_budget

    def record(self, groups: list[Group]) -> dict[str, Any]:
        """For the manifest: the budget, its source, the data's and each group's estimate."""
        return {"budget_bytes": self.budget, "budget": self.source, "data_bytes": self.data_bytes,
                "fixed_bytes": self.fixed_bytes, "group_bytes": [self.group_bytes(g) for g in groups]}
