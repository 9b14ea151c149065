"""Memory-aware groups: what an execution group needs, what the machine allows, and groups cut to fit.

No TensorFlow here (``--dry-run`` uses all of it, and starts no TensorFlow): the estimate is arithmetic on the trial specs and
the dataset's nominal shape, the budget comes from the config, ``/proc/meminfo`` or ``nvidia-smi``.

The estimate of one group of T trials (float32 and int32: 4 bytes a number), with P parameters and S
optimizer slots per trial (Adam 2, RMSprop 1, SGD with momentum 1, plain SGD 0), batch size B, D input
numbers and A layer outputs per example (MLP: its hidden widths and the classes; the CNN: every
convolution's and pooling's output, the dense layer and the classes), W of them in the widest layer,
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
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from init_lab.catalog import defaults
from init_lab.catalog.datasets import model_input_shape
from init_lab.catalog.errors import ConfigError
from init_lab.catalog.models import CNN_CONVS, CNN_DENSE, Architecture, NetKind
from init_lab.config.grid import TrialSpec
from init_lab.config.schema import SweepConfig, parse_memory
from init_lab.engine.events import Group

NUMBER_BYTES = 4  # float32 and int32
SLOT_COUNT = {"adam": 2, "rmsprop": 1, "sgd": 1}  # optimizer slots per variable (engine.optim.SLOTS); sgd: with momentum
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


def _mlp_size(hidden: tuple[int, ...], inputs: int, n_classes: int) -> NetSize:
    """Dense layers, each with a bias: the MLPs, and the CNN's head."""
    widths = [inputs, *hidden, n_classes]
    return NetSize(sum(i * o + o for i, o in zip(widths[:-1], widths[1:])), sum(widths[1:]), max(widths[1:]))


def _cnn_size(input_shape: tuple[int, ...], n_classes: int) -> NetSize:
    """The MNIST CNN layer by layer, as ``nets.build_keras_model`` builds it (tests compare the counts)."""
    h, w, c = input_shape
    params, outputs = 0, []
    for filters, pool in CNN_CONVS:
        h, w = h - 2, w - 2
        params += 9 * c * filters + filters
        outputs.append(h * w * filters)
        c = filters
        if pool:
            h, w = h // 2, w // 2
            outputs.append(h * w * c)
    dense = _mlp_size((CNN_DENSE,), h * w * c, n_classes)
    return NetSize(params + dense.params, sum(outputs) + dense.outputs, max(*outputs, dense.widest))


def layer_sizes(arch: Architecture, input_shape: tuple[int, ...], n_classes: int) -> NetSize:
    """One trial's parameters and layer outputs per example, from its architecture."""
    if arch.family == "cnn":
        return _cnn_size(input_shape, n_classes)
    return _mlp_size(arch.hidden, math.prod(input_shape), n_classes)


def optimizer_slots(optimizer: str, momentum: float) -> int:
    """Slot variables per model variable: Adam's m and v, RMSprop's velocity, SGD's momentum (if any)."""
    return 0 if optimizer == "sgd" and momentum == 0 else SLOT_COUNT[optimizer]


def estimate_group_bytes(specs: list[TrialSpec], data: DataShape, diagnostics: bool = True,
                         net: NetKind = NetKind.PACKED_MLP) -> int:
    """Peak memory one execution group needs beyond the shared data: the module docstring's formula.

    Every member has the same shape and batch settings (that is what packs them), so the first speaks for all.
    """
    spec = specs[0]
    params, outputs, widest = layer_sizes(spec.arch, data.input_shape, data.n_classes)
    slots = optimizer_slots(spec.train.optimizer, spec.train.momentum)
    d, batch = math.prod(data.input_shape), min(spec.train.batch_size, data.n_train)
    subset = min(data.n_train, defaults.INIT_TRAIN_EXAMPLES)
    evaluated = min(defaults.EVAL_BATCH_SIZE, max(data.n_val, data.n_test, subset))
    per_trial = (
        params * (2 + slots) + 2 * params * (1 + slots)
        + batch * (d + 1) + 3 * batch * outputs
        + evaluated * (d + 2 * widest)
        + (PROBE_PASSES * defaults.PROBE_SIZE * (d + outputs) if diagnostics else 0)
        + data.n_train
    )
    ghost = net == NetKind.PACKED_MLP and len(specs) == 1 and defaults.XLA
    return NUMBER_BYTES * ((len(specs) + ghost) * per_trial + subset * d)


def estimate_data_bytes(data: DataShape) -> int:
    """The shared dataset tensors, resident for the whole sweep: every split's inputs and labels, and the
    probe and LSUV batches."""
    d, probe = math.prod(data.input_shape), defaults.PROBE_SIZE
    examples = data.n_train + data.n_val + data.n_test
    return NUMBER_BYTES * (examples * (d + 1) + probe * (2 * d + 1))


# --- the budget -------------------------------------------------------------------------------


def _meminfo(field: str) -> int | None:
    """A field of /proc/meminfo in bytes; None off Linux or if unreadable."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_headroom() -> int | None:
    """What the container's memory limit leaves (cgroup v2), where there is one."""
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current") as f:
            used = int(f.read().strip())
    except (OSError, ValueError):
        return None
    return None if limit == "max" else max(0, int(limit) - used)


def host_available_bytes() -> int:
    """Host RAM this process can still use: MemAvailable (Linux), else the physical total; within a
    container's limit."""
    available = _meminfo("MemAvailable")
    if available is None:
        try:
            available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            available = defaults.GPU_MEMORY_FALLBACK  # no way to tell: as modest as the GPU's fallback
    headroom = _cgroup_headroom()
    return min(available, headroom) if headroom is not None else available


def _tensorflow_gpu_bytes_in_use() -> int:
    """What this process's TensorFlow already holds on its first GPU (nvidia-smi counts it as used).
    Only where TensorFlow is imported already: asking would otherwise import and initialise it."""
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return 0
    try:
        return int(tf.config.experimental.get_memory_info("GPU:0")["current"])
    except Exception:  # noqa: BLE001 - no GPU, or a TensorFlow without the call: nothing held
        return 0


def gpu_free_bytes() -> int | None:
    """Free memory of the first visible GPU per nvidia-smi, plus what this process holds there; None if
    nvidia-smi is missing or cannot tell (TensorFlow's public API reports usage, not capacity)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    select = ["-i", visible] if visible and not visible.startswith("MIG") else []
    try:
        text = subprocess.run([smi, *select, "--query-gpu=memory.free", "--format=csv,noheader,nounits"],
                              capture_output=True, text=True, timeout=10, check=True).stdout
        free_mib = int(text.split()[0])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None
    return free_mib * 2**20 + _tensorflow_gpu_bytes_in_use()


def budget_and_source(device: str, setting: Any) -> tuple[int, str]:
    """The budget in bytes and how it was chosen (for --dry-run and the manifest). ``device``: "cpu", "gpu",
    "auto" (a dry run: a GPU if nvidia-smi sees one), or what ``backend.setup_device`` returned;
    ``setting``: ``resources.memory``."""
    try:
        explicit = parse_memory(setting)
    except ValueError as exc:
        raise ConfigError(f"resources.memory: {exc}") from None
    if explicit is not None:
        return explicit, "resources.memory"
    share, fraction = f"{defaults.MEMORY_FRACTION:.0%}", defaults.MEMORY_FRACTION
    free = gpu_free_bytes() if device.startswith("gpu") or device == "auto" else None
    if free is not None:
        return int(free * fraction), f"auto: {share} of free GPU memory"
    if device.startswith("gpu"):
        fallback = defaults.GPU_MEMORY_FALLBACK
        return int(fallback * fraction), f"auto: {share} of {format_bytes(fallback)} (nvidia-smi cannot tell the GPU's)"
    return int(host_available_bytes() * fraction), f"auto: {share} of available host RAM"


def capacity_bytes(device: str) -> tuple[int, str] | None:
    """All the memory this machine has for the sweep — not the budget, a share of it — and what it is; None
    where it cannot tell (a GPU nvidia-smi does not report). A trial estimated above it cannot fit."""
    if device.startswith("gpu"):
        free = gpu_free_bytes()
        return (free, "free GPU memory") if free is not None else None
    return host_available_bytes(), "available host RAM"


def format_bytes(n: float) -> str:
    """1234567 → '1.2 MB' (powers of 1000, as the budget's 'GB')."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} TB"


# --- groups cut to fit ----------------------------------------------------------------------------


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
                   host=not device.startswith("gpu"))

    @property
    def data_bytes(self) -> int:
        return estimate_data_bytes(self.data)

    @property
    def fixed_bytes(self) -> int:
        """What every group shares, resident for the whole sweep: the data's tensors and, in host RAM, also
        the prepared NumPy arrays they were made from and TensorFlow's own runtime (``TF_RUNTIME_BYTES``)."""
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


def _chunks(group: Group, k: int) -> list[Group]:
    """The group cut into k consecutive chunks whose sizes differ by at most one, each with its saved states."""
    n, out, first = len(group.specs), [], 0
    for i in range(k):
        members = group.specs[first: first + n // k + (i < n % k)]
        first += len(members)
        start = {s.id: group.start[s.id] for s in members} if group.start else None
        out.append(Group(f"{group.id}-m{i + 1}", group.net, members, start))
    return out


def _largest_fitting(group: Group, budget: int, estimate: Callable[[Group], int]) -> int:
    """The most members (≥ 1) whose group fits: bisection, as the estimate grows with the group's size."""
    low, high = 1, len(group.specs)
    while low < high:
        mid = (low + high + 1) // 2
        if estimate(Group(group.id, group.net, group.specs[:mid])) <= budget:
            low = mid
        else:
            high = mid - 1
    return low


def split_to_budget(groups: list[Group], budget: int, estimate: Callable[[Group], int]) -> list[Group]:
    """Every group whose estimate exceeds the budget cut into the fewest equal-sized chunks that fit, in
    order, keeping members' saved states; chunk ids are the group's with ``-m1``, ``-m2``… A single trial
    that alone exceeds the budget stays (it cannot be cut; ``MemoryPlan.fits`` tells)."""
    out: list[Group] = []
    for group in groups:
        if len(group.specs) == 1 or estimate(group) <= budget:
            out.append(group)
        else:
            out += _chunks(group, math.ceil(len(group.specs) / _largest_fitting(group, budget, estimate)))
    return out
