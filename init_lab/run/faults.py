"""Fault injection for tests: the one place production code reads the ``INITLAB_FAULT_*`` variables.

Each hook does nothing unless its variable is set; ``tests/conftest.py`` clears every ``INITLAB_FAULT_*``
variable before each test, so a test sets the ones it needs (``monkeypatch.setenv``, or a subprocess's
environment). The variables, what each does and where it acts:

``INITLAB_FAULT_OOM_ABOVE=N`` or ``N:E``
    A group of more than N trials runs out of memory (raises ``MemoryError``) as it starts; with ``:E``,
    at its first progress report inside epoch E instead (mid-epoch). Read by :func:`out_of_memory`, called
    by ``retry.train_group`` (so under every executor); used by tests/test_memory.py and
    tests/test_exit_status.py.
``INITLAB_FAULT_CRASH_ONCE=MARKER``
    A Ray worker exits (``os._exit(1)``) as its task starts, once: it creates the file MARKER, and no later
    task crashes while that file exists. Read by :func:`crash_worker` in ``ray_executor.ray_task``; used by
    tests/test_ray_faults.py.
``INITLAB_FAULT_CRASH_AFTER_EPOCH=E:MARKER``
    A Ray worker exits once right after writing its group's checkpoint of epoch E (the MARKER file, as
    above). Read by :func:`crash_worker` in ``ray_executor.ray_task``; used by tests/test_ray_faults.py.
``INITLAB_FAULT_CRASH_ALWAYS=1``
    Every Ray task's worker exits as it starts, so the task's retries run out. Read by :func:`crash_worker`
    in ``ray_executor.ray_task``; used by tests/test_ray_faults.py.
``INITLAB_FAULT_KILL_AFTER_CHECKPOINT=N``
    The driver SIGKILLs itself right after its N-th checkpoint is on disk (a hard kill mid-sweep). Read by
    :func:`kill_after_checkpoint` in ``recorder.Recorder``; used by tests/test_checkpoints.py.
"""

from __future__ import annotations

import os
import signal

from init_lab.engine.events import Event, Group, Progress

PREFIX = "INITLAB_FAULT_"
OOM_ABOVE = PREFIX + "OOM_ABOVE"
CRASH_ONCE = PREFIX + "CRASH_ONCE"
CRASH_AFTER_EPOCH = PREFIX + "CRASH_AFTER_EPOCH"
CRASH_ALWAYS = PREFIX + "CRASH_ALWAYS"
KILL_AFTER_CHECKPOINT = PREFIX + "KILL_AFTER_CHECKPOINT"


def out_of_memory(group: Group, event: Event | None = None) -> None:
    """``INITLAB_FAULT_OOM_ABOVE``: called as a group starts (``event`` None) and after each of its events."""
    spec = os.environ.get(OOM_ABOVE)
    if not spec:
        return
    above, _, epoch = spec.partition(":")
    if len(group.specs) <= int(above):
        return
    starting = event is None and not epoch
    mid_epoch = isinstance(event, Progress) and epoch and event.epoch == int(epoch) and event.step < event.steps
    if starting or mid_epoch:
        raise MemoryError(f"injected: a group of {len(group.specs)} trials ({OOM_ABOVE}={spec})")


def crash_worker(epoch: int | None = None) -> None:
    """``INITLAB_FAULT_CRASH_ALWAYS`` and ``_CRASH_ONCE`` (``epoch`` None: a task starts), or
    ``_CRASH_AFTER_EPOCH`` (after the checkpoint of ``epoch``): kill this worker process."""
    if epoch is None and os.environ.get(CRASH_ALWAYS) == "1":
        os._exit(1)
    spec = os.environ.get(CRASH_ONCE if epoch is None else CRASH_AFTER_EPOCH)
    if not spec:
        return
    at, _, marker = spec.rpartition(":") if epoch is not None else ("", "", spec)
    if (epoch is None or str(epoch) == at) and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)


def kill_after_checkpoint(count: int) -> None:
    """``INITLAB_FAULT_KILL_AFTER_CHECKPOINT``: SIGKILL this process once its ``count``-th checkpoint is on disk."""
    if os.environ.get(KILL_AFTER_CHECKPOINT) == str(count):
        os.kill(os.getpid(), signal.SIGKILL)
