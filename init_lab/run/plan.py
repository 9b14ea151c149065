"""Execution groups: which trials train together, and from which saved state.

Trials pack into one group when one model class can train them as one computation: same network
shape, same batch size, optimizer and momentum, same model class — and, on a resume, the same saved
epoch. Seed and learning rate may differ: each trial draws its own batches (a gather per trial from
its own permutation) and steps with its own learning rate. A trial's numbers do not depend on its
group, so groups may differ from run to run (a resume regroups whatever is left) without changing
any result — which is also what lets a group too large for the memory budget be cut into smaller
ones (:func:`split_to_budget`, against the estimate of ``memory.MemoryPlan``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import asdict

from init_lab.catalog.initializers import BRANCH_SCALE
from init_lab.catalog.models import NetKind, net_kind
from init_lab.config.grid import TrialSpec
from init_lab.engine.events import Group
from init_lab.run.capacity import format_bytes
from init_lab.run.checkpoints import CheckpointStore
from init_lab.run.memory import MemoryPlan


def _key(spec: TrialSpec, net: NetKind, epoch: int) -> tuple:
    if net != NetKind.PACKED_MLP:
        return ("single", spec.index)
    # per-trial in a packed group: seed (its own batch order) and learning rate; epochs are the sweep's
    settings = asdict(spec.train) | {"epochs": None, "learning_rate": None}
    a = spec.arch  # the network's shape: widths, residual blocks and normalization
    # Fixup and SkipInit add learned scalars to every branch: their trials pack with their own kind only
    scalars = spec.initializer.name if spec.initializer.name in BRANCH_SCALE else None
    return (net, a.hidden, a.residual, a.block_depth, a.normalization, scalars, tuple(sorted(settings.items())), epoch)


def _group_id(specs: list[TrialSpec], epoch: int) -> str:
    digest = hashlib.sha256(("|".join(s.id for s in specs) + f"@{epoch}").encode()).hexdigest()[:8]
    return f"g{specs[0].index:04d}-{digest}"


def plan_groups(
    specs: list[TrialSpec], pack: bool = True, checkpoints: CheckpointStore | None = None,
    memory: MemoryPlan | None = None,
) -> tuple[list[Group], list[str]]:
    """Trials in execution groups (in grid order of their first member), with saved states attached;
    with a ``memory`` plan, groups larger than its budget are cut to fit.

    Returns the groups and one line per trial whose saved state could not be used, or that alone
    needs more than the budget (it runs anyway).
    """
    notices: list[str] = []
    keyed: dict[tuple, list[TrialSpec]] = {}
    for spec in specs:
        net = net_kind(spec.arch, pack)
        epoch = 0
        if checkpoints is not None:
            epoch, why = checkpoints.latest(spec.id, net)
            if why:
                notices.append(f"{spec.id}: {why}; it restarts from epoch 1")
        keyed.setdefault(_key(spec, net, epoch) + (net, epoch), []).append(spec)
    groups = []
    for key, members in keyed.items():
        net, epoch = key[-2], key[-1]
        start = checkpoints.load([s.id for s in members]) if epoch and checkpoints is not None else None
        if epoch and start is None:
            notices.append(f"{len(members)} trial(s) from {members[0].id}: saved state unreadable; restarting")
            epoch = 0
        groups.append(Group(_group_id(members, epoch), net, members, start))
    if memory is not None:
        groups = split_to_budget(groups, memory.group_budget, memory.group_bytes)
        notices += _too_large([g for g in groups if not memory.fits(g)], memory)
    return groups, notices


def _too_large(singles: list[Group], memory: MemoryPlan) -> list[str]:
    """One line for the trials that alone need more than the budget leaves them (they run anyway)."""
    if not singles:
        return []
    largest = max(memory.group_bytes(g) for g in singles)
    who = singles[0].specs[0].id if len(singles) == 1 else f"{len(singles)} trials (first {singles[0].specs[0].id})"
    return [f"{who}: alone about {format_bytes(largest)}, more than the memory budget of "
            f"{format_bytes(memory.budget)} leaves beside the data and runtime ({format_bytes(memory.fixed_bytes)}); running anyway "
            "(out of memory, a trial fails: a smaller batch or model, or a larger resources.memory, helps)"]


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


def resume_from_latest(group: Group, checkpoints: CheckpointStore) -> Group:
    """The group continued from its members' newest saved states, if they share one epoch (a retried task)."""
    checkpoints.refresh()  # re-read: an earlier attempt of this task may have written since
    live = [s for s in group.specs if not checkpoints.diverged(s.id)]  # diverged ones were recorded already
    if not live:
        return group
    epochs = {checkpoints.latest(s.id, group.net) for s in live}
    if len(epochs) != 1:
        return group
    (epoch, why), = epochs
    if not epoch or why:
        return group
    start = checkpoints.load([s.id for s in live])
    return Group(group.id, group.net, live, start) if start else group
