"""The Ray executor: each execution group one Ray task, its events streamed back as it trains.

A task asks for the config's ``resources`` (CPUs, a GPU share) and is retried on worker loss. Tasks
send their events through a Ray queue, so per-epoch progress reaches the driver while they run.
Where checkpoints live on storage the workers share (a local Ray instance, or
``checkpoints.storage``), a task writes its group's checkpoint each epoch and a retried task
continues from it; otherwise a retried task restarts its group. Ray itself is optional: it is
imported only when a :class:`RayExecutor` is checked for or created.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from init_lab.catalog.devices import DeviceKind
from init_lab.catalog.errors import InitLabError
from init_lab.catalog.status import TrialStatus
from init_lab.config.loading import config_to_yaml
from init_lab.config.schema import SweepConfig
from init_lab.engine.events import EpochEnded, Event, Group, GroupFinished, TrialResult
from init_lab.run import faults
from init_lab.run.executors import Executor
from init_lab.run.retry import train_group

RAY_CONNECT_TIMEOUT = 10.0  # seconds to reach a Ray address before giving up with a message

_WORKER_DATA: dict[str, Any] = {}  # per worker process: dataset config → device data


def _worker_data(config: Any, family: str) -> Any:
    from init_lab.engine.data import load_device_data

    key = config.dataset.model_dump_json() + family + config.training.model_dump_json()
    if key not in _WORKER_DATA:
        _WORKER_DATA.clear()
        _WORKER_DATA[key] = load_device_data(config, family)
    return _WORKER_DATA[key]


def ray_task(config_text: str, group: Group, storage: str | None, queue: Any, device: DeviceKind) -> int:
    """Body of a Ray task: train one group, sending events to the driver's queue; returns the events sent."""
    from init_lab.config.loading import config_from_text
    from init_lab.engine.backend import setup_device
    from init_lab.run.checkpoints import CheckpointStore
    from init_lab.run.plan import resume_from_latest

    faults.crash_worker()
    config = config_from_text(config_text)
    setup_device(device.value, config.training.deterministic)
    checkpoints = CheckpointStore(Path(storage), config, device) if storage else None
    if checkpoints is not None:
        group = resume_from_latest(group, checkpoints)
    sent = 0
    for event in train_group(group, _worker_data(config, group.specs[0].arch.family)):
        if isinstance(event, EpochEnded):
            if checkpoints is not None:
                checkpoints.write(event.group, event.states)
            faults.crash_worker(event.epoch)
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

    in_process = False  # workers load their own data, on the device their resources share asks for

    def __init__(self, config_text: str, address: str | None, cpus: float, gpus: float, storage: str | None,
                 max_retries: int = 3):
        ray = self.ray = require_ray()
        check_ray_address(address)
        self.config_text, self.storage = config_text, storage
        self.device = DeviceKind.for_share(gpus)
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

    @classmethod
    def create(cls, config: SweepConfig, *, address: str | None, storage: Path | None,
               load_data: Callable[[], Any]) -> RayExecutor:
        res = config.resources
        return cls(config_to_yaml(config), address, res.cpus, res.gpus, str(storage) if storage is not None else None)

    @classmethod
    def check(cls, address: str | None) -> None:
        require_ray()
        check_ray_address(address)

    @classmethod
    def remote_workers(cls, address: str | None) -> bool:
        return bool(address)  # a cluster's address; without one, a local Ray instance on this machine

    @classmethod
    def compute_device(cls, config: SweepConfig, described: str) -> DeviceKind:
        return DeviceKind.for_share(config.resources.gpus)

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
