"""What a sweep checks before it creates or changes a run directory (DESIGN §13): inputs first.

In order: the executor (Ray installed, its cluster reachable), the device (TensorFlow set up on it),
the size of the work against this machine (no trial estimated above all the memory it has; no
training estimated longer than ``defaults.CONFIRM_SECONDS``: such sweeps run only when confirmed, so
a typo is not an hour-long run or a certain out-of-memory), and the data: every file read and checked
and the splits prepared. Each failure raises a domain error before anything is written, so the file
system stays as it was and ``runs/latest`` does not move.

The data loaded here is what the sweep trains on (:class:`Ready` hands it on): it is read once.
With Ray, workers load their own; the driver still reads and checks the files of a local Ray
instance, and leaves a remote cluster's data (and its memory and speed) to the cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from init_lab.catalog import defaults
from init_lab.catalog.devices import DeviceKind
from init_lab.catalog.errors import SweepTooLargeError
from init_lab.catalog.models import net_kind
from init_lab.config.grid import TrialSpec
from init_lab.config.schema import SweepConfig
from init_lab.engine.events import Group
from init_lab.run.capacity import capacity_bytes, format_bytes
from init_lab.run.duration import estimate_seconds, format_duration, throughput
from init_lab.run.executors import Executor, ExecutorKind
from init_lab.run.memory import MemoryPlan
from init_lab.runschema.timings import Timings

Work = list[tuple[TrialSpec, int]]  # each trial still to train, with the epochs it has left


@dataclass
class Ready:
    """What the checks found, for the sweep to use: nothing is looked up twice."""

    device: str  # as ``backend.setup_device`` describes it
    compute: DeviceKind  # the kind of device the trials compute on (a Ray task's, from resources.gpus)
    memory: MemoryPlan
    executor: type[Executor]  # the class ``executor`` names
    data: Any = None  # the prepared data (``catalog.datasets.Prepared``) of a local sweep with work to do
    timings: Timings = field(default_factory=Timings)  # imports (TensorFlow's), data (reading it)


def check(config: SweepConfig, work: Work, *, device: str | None = None, executor: str = "local",
          address: str | None = None, pack: bool = True, yes: bool = False,
          confirm: Callable[[str], bool] | None = None) -> Ready:
    """Every check, in order; raises before anything is written. ``yes``: run a too-large sweep anyway;
    ``confirm``: ask (a terminal's prompt) whether to; neither: refuse it with SweepTooLargeError."""
    executor_class = ExecutorKind.of(executor).executor
    executor_class.check(address)
    timings = Timings()
    with timings.phase("imports"):
        from init_lab.engine.backend import setup_device  # TensorFlow is imported only when something trains

    described = setup_device(device or config.device, config.training.deterministic)
    compute = executor_class.compute_device(config, described)
    family = work[0][0].arch.family if work else "mlp"
    memory = MemoryPlan.for_config(config, compute, family)
    remote = executor_class.remote_workers(address)
    concerns = [] if remote else size_concerns(work, memory, compute, pack)
    if concerns and not yes:
        message = ("this sweep is larger than this machine should run unasked:\n"
                   + "\n".join(f"  - {line}" for line in concerns)
                   + "\nCheck the config (initlab sweep CONFIG --dry-run shows the plan), or pass --yes to run it "
                     "anyway (init_lab.sweep(..., yes=True)).")
        if confirm is None or not confirm(message):
            raise SweepTooLargeError(message)
    ready = Ready(described, compute, memory, executor_class, timings=timings)
    if work and not remote:
        from init_lab.engine.data import load_prepared

        with timings.phase("data"):
            prepared = load_prepared(config.dataset, family)  # reads and checks every file: DataError names it
        ready.data = prepared if executor_class.in_process else None  # workers elsewhere (Ray's) load their own
    return ready


def size_concerns(work: Work, memory: MemoryPlan, device: str, pack: bool = True) -> list[str]:
    """Why ``work`` should not run unasked here: a trial that alone needs more memory than the machine has,
    or training estimated longer than ``defaults.CONFIRM_SECONDS``. Empty when neither."""
    concerns = []
    capacity = capacity_bytes(device)
    if work and capacity is not None:
        sizes = [(memory.group_bytes(Group(s.id, net_kind(s.arch, pack), [s])), s) for s, _ in work]
        need, spec = max(sizes, key=lambda pair: pair[0])
        if need + memory.fixed_bytes > capacity[0]:
            concerns.append(
                f"memory: trial {spec.id} ({spec.arch.label}) alone needs about {format_bytes(need)}, with "
                f"{format_bytes(memory.fixed_bytes)} for the data and runtime, more than the "
                f"{format_bytes(capacity[0])} of {capacity[1]} here: it would run out of memory (the estimate: "
                "init_lab/run/memory.py)")
    seconds = estimate_seconds(work, memory.data, device)
    if seconds > defaults.CONFIRM_SECONDS:
        epochs = sorted({e for _, e in work})
        span = f"{epochs[0]}" if len(epochs) == 1 else f"{epochs[0]}–{epochs[-1]}"
        concerns.append(
            f"time: {len(work)} trial(s) × {span} epoch(s) train for at least {format_duration(seconds)} here (at an "
            f"optimistic {throughput(device) / 1e9:.0f} GFLOP/s; more than {format_duration(defaults.CONFIRM_SECONDS)} "
            "asks first; the estimate: init_lab/run/duration.py)")
    return concerns
