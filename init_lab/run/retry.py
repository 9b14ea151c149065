"""The retry policy every executor trains a group with: failures stay with the trials at fault.

:func:`train_group` runs the engine's loop over one group. A packed group that runs out of memory
(the plan's estimate can be wrong) is cut in two halves, each retried from its members' last
epoch-end states, recursively; a group that fails otherwise trains its trials one at a time; a
single trial that fails ends as failed, and the other trials go on.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

from init_lab.catalog.status import TrialStatus
from init_lab.config.grid import TrialSpec
from init_lab.engine.events import EpochEnded, Event, Group, GroupFinished, Notice, TrialResult, TrialState
from init_lab.run import faults


def train_group(group: Group, data: Any) -> Iterator[Event]:
    """The engine's loop for one group. A packed group that runs out of memory is cut in two halves, each
    retried from its members' last saved states (recursively); one that fails otherwise is retried one
    trial at a time; a single trial that fails ends as failed (other trials go on)."""
    from init_lab.engine.loop import run_group

    last = dict(group.start or {})  # each trial's state at its newest epoch end: where a retry continues from
    try:
        faults.out_of_memory(group)
        for event in run_group(group, data):
            if isinstance(event, EpochEnded):
                # the loop goes on appending to the live states: a retry must not start with half an epoch
                last.update({tid: state.copy() for tid, state in event.states.items()})
            yield event
            faults.out_of_memory(group, event)
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


def is_out_of_memory(exc: BaseException) -> bool:
    """Python's MemoryError, or TensorFlow's ResourceExhaustedError (named, not imported: no TensorFlow here),
    or another TensorFlow error whose message says the allocator ran out (XLA reports some that way)."""
    if isinstance(exc, MemoryError):
        return True
    tensorflow = [c for c in type(exc).__mro__ if c.__module__.startswith("tensorflow")]
    if any(c.__name__ == "ResourceExhaustedError" for c in tensorflow):
        return True
    return bool(tensorflow) and any(m in str(exc) for m in ("RESOURCE_EXHAUSTED", "OOM when allocating", "Out of memory"))
