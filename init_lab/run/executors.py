"""Where groups train: executors behind one interface (Hydra's launcher idea).

An :class:`Executor` takes execution groups and yields the engine's events as they happen; the
sweep hands every event to its recorder, the only writer of the run directory. Two executors:

* :class:`LocalExecutor` — in this process, one group after another;
* :class:`RayExecutor` — each group a Ray task with the config's ``resources`` request, retried on
  worker loss. Tasks send their events through a Ray queue, so per-epoch progress reaches the
  driver while they run. Where checkpoints live on storage the workers share (a local Ray
  instance, or ``checkpoints.storage``), a task writes its group's checkpoint each epoch and a
  retried task continues from it; otherwise a retried task restarts its group.

Both train a group through :func:`train_group`: a packed group that runs out of memory is cut in
halves and retried from its members' last epoch-end states (the plan's estimate can be wrong), one
that fails otherwise trains its trials one at a time, so only the trial at fault is recorded failed.

Adding an executor (Dask, say) is one class with ``run`` (and ``close`` if it holds resources).
"""

from __future__ import annotations

import gc
import os
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import fields, replace
from typing import Any

from init_lab.catalog.errors import InitLabError
from init_lab.catalog.status import TrialStatus
from init_lab.config.grid import TrialSpec
from init_lab.engine.events import EpochEnded, Event, Group, GroupFinished, Notice, Progress, TrialResult, TrialState

RAY_CONNECT_TIMEOUT = 10.0  # seconds to reach a Ray address before giving up with a message


def train_group(group: Group, data: Any) -> Iterator[Event]:
    """The engine's loop for one group. A packed group that runs out of memory is cut in two halves, each
    retried from its members' last saved states (recursively); one that fails otherwise is retried one
    trial at a time; a single trial that fails ends as failed (other trials go on)."""
    from init_lab.engine.loop import run_group

    last = dict(group.start or {})  # each trial's state at its newest epoch end: where a retry continues from
    try:
        _fault_oom(group)
        for event in run_group(group, data):
            if isinstance(event, EpochEnded):
                last.update({tid: _settled(state) for tid, state in event.states.items()})
            yield event
            _fault_oom(group, event)
        return
    except Exception as exc:  # a trial's own failure (bad shape, out of memory…) must not stop the sweep
        error, oom = f"{type(exc).__name__}: {exc}", is_out_of_memory(exc)
    # retried out here, once the failed attempt's frames (and the tensors they hold) are released
    if oom:
        gc.collect()
    yield from _retry(group, data, last, error, oom)


def _retry(group: Group, data: Any, last: dict[str, TrialState], error: str, oom: bool) -> Iterator[Event]:
    """After a group failed: its live members again, in halves (out of memory) or one by one, from ``last``."""
    if len(group.specs) == 1:
        spec = group.specs[0]
        alone = "; out of memory with this trial alone: a smaller batch size or model is needed" if oom else ""
        yield GroupFinished(group.id, {spec.id: TrialResult(TrialStatus.FAILED, last.get(spec.id), error=error + alone)})
        return
    live = [s for s in group.specs if s.id not in last or last[s.id].status != TrialStatus.DIVERGED]
    if not live:
        return  # every member diverged: each was recorded at its epoch already
    parts = _halves(live) if oom else [[s] for s in live]
    epoch = max((last[s.id].epoch for s in live if s.id in last), default=0)
    again = "from epoch 1" if not epoch else f"from their states after epoch {epoch}"
    how = f"in groups of {' and '.join(str(len(p)) for p in parts)}" if oom else "one at a time"
    brief = error.splitlines()[0][:200]  # TensorFlow's out-of-memory messages run to pages
    yield Notice(group.id, f"packed group of {len(group.specs)} {'ran out of memory' if oom else 'failed'} ({brief}); "
                           f"training its {len(live)} live trial(s) {how}, {again}")
    for k, members in enumerate(parts, 1):
        start = {s.id: last[s.id] for s in members} if all(s.id in last for s in members) else None
        suffix = f"h{k}" if oom else str(members[0].index)
        yield from train_group(Group(f"{group.id}-{suffix}", group.net, members, start), data)


def _halves(specs: list[TrialSpec]) -> list[list[TrialSpec]]:
    """Two consecutive halves (the first the larger by one, if odd)."""
    middle = (len(specs) + 1) // 2
    return [part for part in (specs[:middle], specs[middle:]) if part]


def _settled(state: TrialState) -> TrialState:
    """The state as it is at its epoch end: the loop goes on appending the next epoch's rows to the live
    object, and a retry must not start with half an epoch recorded. Lists are copied, rows and arrays shared."""
    h = state.histograms
    if h is not None:
        h = replace(h, **{f.name: list(getattr(h, f.name)) for f in fields(h) if isinstance(getattr(h, f.name), list)})
    return replace(state, epochs=list(state.epochs), layers=list(state.layers), steps=list(state.steps),
                   step_layers=list(state.step_layers), histograms=h)


def is_out_of_memory(exc: BaseException) -> bool:
    """Python's MemoryError, or TensorFlow's ResourceExhaustedError (named, not imported: no TensorFlow here),
    or another TensorFlow error whose message says the allocator ran out (XLA reports some that way)."""
    if isinstance(exc, MemoryError):
        return True
    tensorflow = [c for c in type(exc).__mro__ if c.__module__.startswith("tensorflow")]
    if any(c.__name__ == "ResourceExhaustedError" for c in tensorflow):
        return True
    return bool(tensorflow) and any(m in str(exc) for m in ("RESOURCE_EXHAUSTED", "OOM when allocating", "Out of memory"))


def _fault_oom(group: Group, event: Event | None = None) -> None:
    """Fault injection for tests: ``INITLAB_FAULT_OOM_ABOVE=N`` — a group of more than N trials runs out of
    memory as it starts; ``N:E`` — at its first progress report inside epoch E instead (mid-epoch)."""
    spec = os.environ.get("INITLAB_FAULT_OOM_ABOVE")
    if not spec:
        return
    above, _, epoch = spec.partition(":")
    if len(group.specs) <= int(above):
        return
    starting = event is None and not epoch
    mid_epoch = isinstance(event, Progress) and epoch and event.epoch == int(epoch) and event.step < event.steps
    if starting or mid_epoch:
        raise MemoryError(f"injected: a group of {len(group.specs)} trials (INITLAB_FAULT_OOM_ABOVE={spec})")


class Executor(ABC):
    """Runs execution groups, yielding events as they happen."""

    name: str

    @abstractmethod
    def run(self, groups: list[Group]) -> Iterator[Event]: ...

    def close(self) -> None:
        """Release what the executor holds (a cluster connection…)."""


class LocalExecutor(Executor):
    """In this process, one group after another; the data is loaded once, on first need."""

    name = "local"

    def __init__(self, load_data: Callable[[], Any]):
        self.load_data = load_data

    def run(self, groups: list[Group]) -> Iterator[Event]:
        if not groups:
            return
        data = self.load_data()
        for group in groups:
            yield from train_group(group, data)


# --- Ray ------------------------------------------------------------------------------------

_WORKER_DATA: dict[str, Any] = {}  # per worker process: dataset config → device data


def _worker_data(config: Any, family: str) -> Any:
    from init_lab.engine.data import load_device_data

    key = config.dataset.model_dump_json() + family + config.training.model_dump_json()
    if key not in _WORKER_DATA:
        _WORKER_DATA.clear()
        _WORKER_DATA[key] = load_device_data(config, family)
    return _WORKER_DATA[key]


def _fault(epoch: int | None = None) -> None:
    """Fault injection for tests: kill this worker once (at start, or after an epoch's checkpoint), or at
    every start (``INITLAB_FAULT_CRASH_ALWAYS=1``: the task's retries run out)."""
    if epoch is None and os.environ.get("INITLAB_FAULT_CRASH_ALWAYS") == "1":
        os._exit(1)
    spec = os.environ.get("INITLAB_FAULT_CRASH_ONCE" if epoch is None else "INITLAB_FAULT_CRASH_AFTER_EPOCH")
    if not spec:
        return
    at, _, marker = spec.rpartition(":") if epoch is not None else ("", "", spec)
    if (epoch is None or str(epoch) == at) and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)


def ray_task(config_text: str, group: Group, storage: str | None, queue: Any, device: str) -> int:
    """Body of a Ray task: train one group, sending events to the driver's queue; returns the events sent."""
    from pathlib import Path

    from init_lab.config.schema import config_from_text
    from init_lab.engine.backend import setup_device
    from init_lab.run.checkpoints import CheckpointStore
    from init_lab.run.plan import resume_from_latest, trial_fingerprint

    _fault()
    config = config_from_text(config_text)
    setup_device(device, config.training.deterministic)
    fps = {s.id: trial_fingerprint(config, s, device) for s in group.specs}
    checkpoints = CheckpointStore(Path(storage)) if storage else None
    if checkpoints is not None:
        group = resume_from_latest(group, checkpoints, fps)
    sent = 0
    for event in train_group(group, _worker_data(config, group.specs[0].arch.family)):
        if isinstance(event, EpochEnded):
            if checkpoints is not None:
                checkpoints.write(event.group, event.states, fps)
            _fault(event.epoch)
            event = EpochEnded(event.group, event.epoch, {k: v.without_arrays() for k, v in event.states.items()})
        queue.put(event)
        sent += 1
    return sent


def check_ray_address(address: str | None) -> None:
    """Fail fast, naming the address, where a Ray cluster cannot be reached (Ray itself retries for minutes)."""
    if not address or address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise InitLabError(f"--address {address}: expected HOST:PORT (e.g. 10.0.0.5:6379) or ray://HOST:PORT.")
    try:
        socket.create_connection((host, int(port)), timeout=RAY_CONNECT_TIMEOUT).close()
    except OSError as exc:
        raise InitLabError(
            f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}) within {RAY_CONNECT_TIMEOUT:g}s: "
            "is `ray start --head` running there, and is the port open?"
        ) from None


def require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise InitLabError("--executor ray needs Ray: pip install 'initlab[ray]'.") from None
    return ray


class RayExecutor(Executor):
    """Each group one Ray task; events stream back through a queue as tasks run."""

    name = "ray"

    def __init__(self, config_text: str, address: str | None, cpus: float, gpus: float, storage: str | None,
                 max_retries: int = 3):
        ray = self.ray = require_ray()
        check_ray_address(address)
        self.config_text, self.storage = config_text, storage
        self.device = "gpu" if gpus > 0 else "cpu"
        self.started_here = not ray.is_initialized()
        if self.started_here:
            try:
                if address:
                    ray.init(address=address, log_to_driver=False)
                else:
                    ray.init(address="local", include_dashboard=False, log_to_driver=False)
            except Exception as exc:  # noqa: BLE001 - connection problems come in many types
                where = f"the Ray cluster at {address}" if address else "a local Ray instance"
                raise InitLabError(f"cannot start or reach {where}: {exc}") from None
        self.remote = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=max_retries, retry_exceptions=False)(
            ray_task
        )

    def run(self, groups: list[Group]) -> Iterator[Event]:
        from ray.util.queue import Queue

        queue = Queue(actor_options={"num_cpus": 0})
        pending = {self.remote.remote(self.config_text, g, self.storage, queue, self.device): g for g in groups}
        try:
            while pending:
                yield from self._drain(queue)
                done, _ = self.ray.wait(list(pending), num_returns=1, timeout=0.2)
                for ref in done:
                    group = pending.pop(ref)
                    try:
                        self.ray.get(ref)
                    except Exception as exc:  # noqa: BLE001 - retries exhausted: the group's unfinished trials fail
                        yield from self._drain(queue)
                        error = f"Ray task failed: {exc}"  # the recorder fails only trials not yet ended
                        yield GroupFinished(group.id, {s.id: TrialResult(TrialStatus.FAILED, error=error)
                                                       for s in group.specs})
            yield from self._drain(queue)
        finally:
            self.ray.kill(queue.actor)

    @staticmethod
    def _drain(queue: Any) -> Iterator[Event]:
        while not queue.empty():
            yield from queue.get_nowait_batch(queue.qsize())
        time.sleep(0)

    def close(self) -> None:
        if self.started_here:
            self.ray.shutdown()
