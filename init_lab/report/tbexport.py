"""Export a run to TensorBoard event files: per trial, per-epoch and per-step scalars, per-layer histograms
of activations and gradients, and the grid as HParams.

Needs the optional ``tensorboard`` package (``pip install 'initlab[tensorboard]'``), and
not TensorFlow: the event files are written with TensorBoard's own protobufs.
"""

from __future__ import annotations

import math
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from init_lab.catalog.errors import InitLabError
from init_lab.report.rundata import RunData
from init_lab.runschema.axes import AXES
from init_lab.runschema.columns import TEXT_COLUMNS

SCALARS = ["loss", "accuracy", "val_loss", "val_accuracy"]
STEP_SCALARS = ["loss", "accuracy"]
# histograms.npz → tags: (tag prefix, counts, edges, the snapshots' TensorBoard steps)
HISTOGRAMS = [
    ("activations", "epoch_act", "act_edges", "epoch"),  # step = epoch, 0 = initialization
    ("gradients", "epoch_grad", "grad_edges", "epoch"),
    ("activations_steps", "step_act", "act_edges", "step"),  # step = global optimizer step
]


def export(run: RunData, logdir: Path) -> int:
    """Write one TensorBoard run per trial under ``logdir``; returns the number of trials written."""
    # TensorBoard imports TensorFlow when it can, unless the module 'tensorboard.compat.notf'
    # exists: then it uses its own stub. Exporting must stay as fast as the rest of the report.
    sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
    try:
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.plugins.hparams import summary_v2 as hp
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError:
        raise InitLabError(
            "--tensorboard needs the tensorboard package: pip install 'initlab[tensorboard]' "
            "(or pip install tensorboard)."
        ) from None

    def event(step: int, summary, wall: float | None = None):
        return event_pb2.Event(wall_time=wall or time.time(), step=step, summary=summary)

    axes = ["initializer", "activation", "seed", *run.swept]
    # an axis set once for the run to other than its old default (model.bias_std): still what these trials ran with
    axes += [a.name for a in AXES if a.name not in axes and a.before is not None and a.name in run.summary
             and (run.summary[a.name].fillna(a.before) != a.before).any()]
    domains = {}
    for axis in axes:
        values = sorted(run.summary[axis].dropna().unique().tolist(), key=str)
        if axis in TEXT_COLUMNS:
            domains[axis] = hp.HParam(axis, hp.Discrete([str(v) for v in values]))
        else:
            domains[axis] = hp.HParam(axis, hp.Discrete([float(v) for v in values]))
    metrics = [hp.Metric(f"epoch/{m}", display_name=m) for m in SCALARS] + [hp.Metric("test/accuracy")]
    logdir = Path(logdir)
    logdir.mkdir(parents=True, exist_ok=True)
    root = EventFileWriter(str(logdir))
    root.add_event(event(0, hp.hparams_config_pb(list(domains.values()), metrics)))
    root.close()

    written = 0
    for trial in run.summary.itertuples(index=False):
        if not (run.epochs["trial_id"] == trial.trial_id).any():
            continue
        writer = EventFileWriter(str(logdir / trial.trial_id))
        values = {}
        for axis in axes:
            v = getattr(trial, axis)
            values[domains[axis]] = str(v) if axis in ("initializer", "activation", "optimizer") else float(v)
        writer.add_event(event(0, hp.hparams_pb(values, trial_id=trial.trial_id)))
        for step, summary in _summaries(run, trial, summary_pb2):
            writer.add_event(event(step, summary))
        writer.close()
        written += 1
    return written


def _summaries(run: RunData, trial: Any, pb: types.ModuleType) -> Iterator[tuple[int, Any]]:
    """One trial's (step, Summary) pairs: epoch scalars and the test accuracy, step scalars, histograms."""

    def scalars(row: Any, names: list[str], prefix: str):
        return pb.Summary(value=[pb.Summary.Value(tag=f"{prefix}/{m}", simple_value=float(getattr(row, m)))
                                 for m in names if math.isfinite(float(getattr(row, m)))])

    rows = run.epochs[run.epochs["trial_id"] == trial.trial_id]
    for row in rows.itertuples(index=False):
        yield int(row.epoch), scalars(row, SCALARS, "epoch")
    if isinstance(trial.test_accuracy, float) and math.isfinite(trial.test_accuracy):
        yield int(rows["epoch"].max()), pb.Summary(value=[pb.Summary.Value(tag="test/accuracy",
                                                                           simple_value=trial.test_accuracy)])
    for row in run.steps[run.steps["trial_id"] == trial.trial_id].itertuples(index=False):
        yield int(row.step), scalars(row, STEP_SCALARS, "step")
    h = run.histogram_arrays(trial.trial_id)
    for prefix, counts, edges, steps in HISTOGRAMS:
        if h is None or not {"layers", counts, edges, steps} <= h.keys():
            continue
        for snap, step in enumerate(h[steps]):
            values = [pb.Summary.Value(tag=f"{prefix}/{name}", histo=pb.HistogramProto(**fields))
                      for layer, name in enumerate(h["layers"])
                      if (fields := histogram_fields(h[counts][snap, layer], h[edges])) is not None]
            if values:
                yield int(step), pb.Summary(value=values)


def histogram_fields(counts: np.ndarray, edges: np.ndarray) -> dict[str, Any] | None:
    """A ``HistogramProto``'s fields for counts [under, bins…, over] over ``edges`` (``analysis.histograms``);
    None when every count is 0.

    TensorBoard reads bucket i as the values up to bucket_limit[i] from bucket_limit[i−1], and draws the
    first non-empty bucket from ``min`` and the last up to ``max`` (``tensorboard.data_compat``). The under-
    and overflow buckets have no outer edge here, so they are given one bin's width. ``min``, ``max``, ``sum``
    and ``sum_squares`` are approximate — bucket edges and centres — as the exact values were binned away.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if not counts.sum():
        return None
    lefts = np.concatenate([[2 * edges[0] - edges[1]], edges])
    rights = np.concatenate([edges, [2 * edges[-1] - edges[-2]]])
    used = np.flatnonzero(counts)
    centres = (lefts + rights) / 2
    return {
        "min": float(lefts[used[0]]),
        "max": float(rights[used[-1]]),
        "num": float(counts.sum()),
        "sum": float(counts @ centres),
        "sum_squares": float(counts @ centres**2),
        "bucket_limit": rights.tolist(),
        "bucket": counts.tolist(),
    }
