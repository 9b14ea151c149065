"""Export a run to TensorBoard event files: per-epoch scalars per trial, and the grid as HParams.

Needs the optional ``tensorboard`` package (``pip install 'initlab[tensorboard]'``), and
not TensorFlow: the event files are written with TensorBoard's own protobufs.
"""

from __future__ import annotations

import math
import sys
import time
import types
from pathlib import Path

from init_lab.catalog.errors import InitLabError
from init_lab.report.tables import RunData

SCALARS = ["loss", "accuracy", "val_loss", "val_accuracy"]


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
    domains = {}
    for axis in axes:
        values = sorted(run.trials[axis].dropna().unique().tolist(), key=str)
        if axis in ("initializer", "activation", "optimizer"):
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
    for trial in run.trials.itertuples(index=False):
        rows = run.epochs[run.epochs["trial_id"] == trial.trial_id]
        if rows.empty:
            continue
        writer = EventFileWriter(str(logdir / trial.trial_id))
        values = {}
        for axis in axes:
            v = getattr(trial, axis)
            values[domains[axis]] = str(v) if axis in ("initializer", "activation", "optimizer") else float(v)
        writer.add_event(event(0, hp.hparams_pb(values, trial_id=trial.trial_id)))
        for row in rows.itertuples(index=False):
            summary = summary_pb2.Summary(value=[
                summary_pb2.Summary.Value(tag=f"epoch/{m}", simple_value=float(getattr(row, m)))
                for m in SCALARS if math.isfinite(float(getattr(row, m)))
            ])
            writer.add_event(event(int(row.epoch), summary))
        if isinstance(trial.test_accuracy, float) and math.isfinite(trial.test_accuracy):
            summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag="test/accuracy", simple_value=trial.test_accuracy)])
            writer.add_event(event(int(rows["epoch"].max()), summary))
        writer.close()
        written += 1
    return written
