"""Where groups train: executors behind one interface (Hydra's launcher idea), looked up by kind.

An :class:`Executor` takes execution groups and yields the engine's events as they happen; the
sweep hands every event to its recorder, the only writer of the run directory. Two executors, named
by :class:`ExecutorKind` (the ``--executor`` values), the one table from a name to its class:

* :class:`LocalExecutor` — in this process, one group after another;
* ``ray_executor.RayExecutor`` — each group a Ray task (imported only when asked for: Ray is optional).

Both train a group through ``retry.train_group`` (the retry policy: out of memory, halves; another
failure, one trial at a time). What differs between executors before they run — what to check, where
the trials compute, whether their workers see this machine — is asked of the class, never of its name.

Adding an executor (Dask, say) is one class with ``create`` and ``run`` (and ``close`` if it holds
resources), and one entry in :class:`ExecutorKind`. This module stays light to import (its other
imports are for annotations, or made on first use): the CLI takes its option values from here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from enum import Enum
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from init_lab.catalog.devices import DeviceKind
from init_lab.catalog.errors import InitLabError

if TYPE_CHECKING:
    from init_lab.config.schema import SweepConfig
    from init_lab.engine.events import Event, Group


class Executor(ABC):
    """Runs execution groups, yielding events as they happen."""

    in_process: ClassVar[bool] = True  # trains on the data preflight loaded, on the device set up here

    @classmethod
    @abstractmethod
    def create(cls, config: SweepConfig, *, address: str | None, storage: Path | None,
               load_data: Callable[[], Any]) -> Executor:
        """The executor for a sweep of ``config``: ``address`` a cluster's, ``storage`` the checkpoint directory
        its workers share (None: none), ``load_data`` what loads the data in this process on first need."""

    @classmethod
    def check(cls, address: str | None) -> None:
        """Raise a domain error, before anything is written, where this executor cannot run (at ``address``)."""

    @classmethod
    def remote_workers(cls, address: str | None) -> bool:
        """Whether its workers may be on other machines: they see neither this machine's files nor its memory."""
        return False

    @classmethod
    def compute_device(cls, config: SweepConfig, described: str) -> DeviceKind:
        """The kind of device the trials compute on; ``described``: the device set up here (``setup_device``)."""
        return DeviceKind.of(described)

    @abstractmethod
    def run(self, groups: list[Group]) -> Iterator[Event]: ...

    def close(self) -> None:
        """Release what the executor holds (a cluster connection…)."""


class LocalExecutor(Executor):
    """In this process, one group after another; the data is loaded once, on first need."""

    def __init__(self, load_data: Callable[[], Any]):
        self.load_data = load_data

    @classmethod
    def create(cls, config: SweepConfig, *, address: str | None, storage: Path | None,
               load_data: Callable[[], Any]) -> LocalExecutor:
        return cls(load_data)

    def run(self, groups: list[Group]) -> Iterator[Event]:
        from init_lab.run.interrupts import held
        from init_lab.run.retry import train_group

        if not groups:
            return
        data = self.load_data()
        for group in groups:  # Ctrl-C waits for the group's next event: inside TensorFlow it can crash the process
            yield from held(train_group(group, data))


class ExecutorKind(str, Enum):
    """The executors by name: the values of ``--executor`` and of ``init_lab.sweep(executor=...)``."""

    LOCAL = "local"
    RAY = "ray"

    @classmethod
    def of(cls, name: str) -> ExecutorKind:
        """The kind a name means; an unknown name is a domain error listing the known ones."""
        try:
            return cls(name)
        except ValueError:
            raise InitLabError(f"unknown executor '{name}' ({' or '.join(k.value for k in cls)}).") from None

    @property
    def executor(self) -> type[Executor]:
        """Its class (the module imported on first need)."""
        module, name = _CLASSES[self]
        return getattr(import_module(module), name)


_CLASSES: dict[ExecutorKind, tuple[str, str]] = {  # kind → (module, class)
    ExecutorKind.LOCAL: (__name__, "LocalExecutor"),
    ExecutorKind.RAY: ("init_lab.run.ray_executor", "RayExecutor"),
}
