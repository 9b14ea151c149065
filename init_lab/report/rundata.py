"""A run directory as read: :class:`RunData` (its tables as DataFrames, its config, manifest and damage), built by
:func:`read_run` — the input of every report module. ``report.run`` adds the analyses on top (``Run``).

Works on finished, running and interrupted runs alike: the trials a run should have come from its
config.yaml (expanded again, which needs no TensorFlow); those without a finished record are rows with
status pending/running, never dropped; damaged files are named (``run.integrity``) and the rest is read.
Every per-trial frame carries the trial's axes (``runschema.axes.ALL``) as columns, so it pivots and
groups without joins. This module and those it imports never import TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd

from init_lab.analysis import histograms
from init_lab.catalog.errors import ConfigError, RunDirError
from init_lab.catalog.status import ENDED, TrialStatus
from init_lab.config.grid import expand
from init_lab.config.loading import config_from_text
from init_lab.config.schema import SweepConfig
from init_lab.run.integrity import Damage, checkpoint_problems, read_manifest, read_record, trial_problems
from init_lab.run.records import pending_record
from init_lab.run.store import RunStore, resolve_run_dir
from init_lab.runschema.axes import ALL, NAMES
from init_lab.runschema.columns import (
    EPOCHS_FILE,
    HISTOGRAMS_FILE,
    LAYERS_FILE,
    STEP_LAYERS_FILE,
    STEPS_FILE,
    TABLES,
    TEXT_COLUMNS,
)
from init_lab.runschema.records import Manifest, SweepStatus

if TYPE_CHECKING:
    from init_lab.run.invocation import Invocation

R = TypeVar("R", bound="RunData")
HISTOGRAM_COLUMNS = ["trial_id", "quantity", "when", "epoch", "step", "progress", "layer", "name", "bin_low",
                     "bin_high", "count"]


@dataclass(repr=False)
class RunData:
    """One run directory as tidy DataFrames: what the report's modules read. ``report.run.Run`` adds the
    analyses (leaderboard, cells, report…) on top; ``read_run`` builds either."""

    path: Path
    config: SweepConfig  # as its config.yaml says (``config.resolved()``: the YAML's form)
    manifest: Manifest  # versions, device, dataset, counts, timings (manifest.json)
    summary: pd.DataFrame  # one row per planned trial (summary.csv columns; pending trials included), grid order
    epochs: pd.DataFrame  # trial × epoch (epoch 0 = the initial weights)
    layers: pd.DataFrame  # trial × epoch × hidden layer: per-layer signals on the probe batch
    steps: pd.DataFrame  # trial × logged step: training loss and accuracy every k steps
    step_layers: pd.DataFrame  # trial × logged step × hidden layer, the first epoch(s)
    swept: list[str]  # grid axes other than initializer/activation/seed that take several values
    init_order: list[str]
    act_order: list[str]
    thresholds: list[float]
    damage: Damage = field(default_factory=Damage)  # damaged files, named; the rest is read
    invocation: Invocation | None = None  # what the process that returned it did (``init_lab.sweep``, ``resume``)
    tuning: Any = None  # a report.tuned.Tuning on the run Run.tuned returns: how its trials were chosen

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def status(self) -> str:
        """The sweep's status: completed, running (or interrupted: resume it), failed…"""
        return self.manifest.status.value if self.manifest.status else "unknown"

    @property
    def ok(self) -> bool:
        """Every trial completed or diverged (a divergence is a result): what ``initlab sweep``'s exit code 0
        says. False when any failed (:attr:`failures`) or has not finished."""
        return all(TrialStatus.of(s).finished for s in self.summary["status"])

    @property
    def failures(self) -> pd.DataFrame:
        """The failed trials (an error, not a result: out of memory, a bug, data) with their errors and axes."""
        failed = self.summary[self.summary["status"] == TrialStatus.FAILED.value]
        return failed.reindex(columns=["trial_id", *[a for a in ALL if a in self.summary], "error"]).reset_index(
            drop=True)

    @property
    def damaged(self) -> list[str]:
        """What is damaged in the run directory, a line per trial or file (``load_run`` reads the rest; a resume
        trains the damaged trials again). Empty for a sound run."""
        return self.damage.lines()

    @property
    def n_finished(self) -> int:
        return int(self.summary["status"].isin(ENDED).sum())

    @property
    def missing(self) -> list[str]:
        return self.summary.loc[~self.summary["status"].isin(ENDED), "trial_id"].tolist()

    @property
    def n_seeds(self) -> int:
        return int(self.summary["seed"].nunique())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, status={self.status!r}, trials={len(self.summary)})"

    def histogram_arrays(self, trial_id: str) -> dict[str, np.ndarray] | None:
        """The trial's histograms.npz (see ``init_lab.analysis.histograms``), or None without one."""
        return histograms.read(RunStore(self.path).trial_file(trial_id, HISTOGRAMS_FILE))

    def histograms(self, trial_id: str | None = None) -> pd.DataFrame:
        """Histogram counts as a tidy frame: one row per trial × quantity (activation / gradient) × snapshot
        (an epoch end, or a logged step) × layer × non-empty bin, with the bin's edges (±inf for the
        under- and overflow bins) and the trial's axes. ``trial_id`` restricts it to one trial."""
        ids = [trial_id] if trial_id is not None else list(self.summary["trial_id"])
        frames = [_histogram_frame(tid, h) for tid in ids if (h := self.histogram_arrays(tid)) is not None]
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=HISTOGRAM_COLUMNS)
        return _with_axes(frame, self.summary)



def read_run(path: str | Path, runs: str | Path, cls: type[R]) -> R:
    """A run directory — a path, or 'latest' (under ``runs``) — as a ``cls`` (``RunData`` or its subclass
    ``report.run.Run``); RunDirError if it is not one. Works on finished, interrupted and running sweeps
    (unfinished trials are rows with status pending/running)."""
    root = resolve_run_dir(path, runs)
    store = RunStore(root)
    try:
        config = config_from_text(store.read_config_text(), str(store.config_path))
    except ConfigError as exc:
        raise RunDirError(f"{root}: its config.yaml cannot be read ({exc}).") from None
    specs = expand(config)
    manifest, manifest_problem = read_manifest(store)
    damage = Damage(run=[manifest_problem] if manifest_problem else [])
    rows: list[dict[str, Any]] = []
    frames: dict[str, list[pd.DataFrame]] = {name: [] for name in TABLES}
    for spec in specs:
        record, problem = read_record(store, spec.id)
        problems = trial_problems(store, spec.id, record, problem,
                                  expect_record=manifest.status == SweepStatus.COMPLETED,
                                  settled=manifest.status != SweepStatus.RUNNING)
        if problems:
            damage.trials[spec.id] = problems
        rows.append((record or pending_record(spec)).summary_row())  # an unreadable record: pending
        unreadable = {p.split()[0] for p in problems if "unreadable" in p}  # such tables are left out, not guessed at
        for name in TABLES:
            frame = None if name in unreadable else _read_table(store.trial_file(spec.id, name))
            if frame is not None:
                frame.insert(0, "trial_id", spec.id)
                frames[name].append(frame)
    summary = pd.DataFrame(rows)
    for col in summary.columns:
        if col not in TEXT_COLUMNS:
            summary[col] = pd.to_numeric(summary[col], errors="coerce")
    tables = {
        name: _with_axes(pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["trial_id", *TABLES[name]]),
                         summary)
        for name, parts in frames.items()
    }
    return cls(
        path=root, config=config, manifest=manifest, summary=summary,
        epochs=tables[EPOCHS_FILE], layers=tables[LAYERS_FILE], steps=tables[STEPS_FILE],
        step_layers=tables[STEP_LAYERS_FILE],
        swept=[a for a in NAMES if getattr(config.grid, a) and len(getattr(config.grid, a)) > 1],
        init_order=list(dict.fromkeys(s.init_label for s in specs)),
        act_order=list(dict.fromkeys(s.act_label for s in specs)),
        thresholds=list(config.training.thresholds),
        damage=Damage(damage.trials, damage.run + checkpoint_problems(store)),
    )


def _read_table(path: Path) -> pd.DataFrame | None:
    """A trial's CSV table, or None when missing, empty or unreadable (the record still reports the trial)."""
    if not path.is_file():
        return None
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError, UnicodeDecodeError):
        return None
    return frame if len(frame) else None


def _with_axes(frame: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (with a trial_id column) with each trial's axes as columns after trial_id."""
    axes = [a for a in ALL if a in summary.columns and a not in frame.columns]  # epochs.csv has learning_rate
    if frame.empty:
        return pd.DataFrame(columns=["trial_id", *axes, *[c for c in frame.columns if c != "trial_id"]])
    merged = frame.merge(summary[["trial_id", *axes]], on="trial_id", how="left")
    return merged[["trial_id", *axes, *[c for c in frame.columns if c != "trial_id"]]]


def _histogram_frame(trial_id: str, h: dict[str, np.ndarray]) -> pd.DataFrame:
    """One trial's histograms.npz as tidy rows (non-empty bins only)."""
    parts = []
    for quantity, when, counts_key, edges_key in (("activation", "epoch", "epoch_act", "act_edges"),
                                                  ("gradient", "epoch", "epoch_grad", "grad_edges"),
                                                  ("activation", "step", "step_act", "act_edges")):
        counts = h[counts_key]  # (snapshots, layers, bins + 2)
        if counts.size == 0:
            continue
        edges = np.concatenate([[-np.inf], h[edges_key], [np.inf]])
        snap, layer, b = np.nonzero(counts)
        epoch = h["epoch"][snap] if when == "epoch" else h["step_epoch"][snap]
        parts.append(pd.DataFrame({
            "trial_id": trial_id, "quantity": quantity, "when": when, "epoch": epoch,
            "step": pd.array(h["step"][snap] if when == "step" else [pd.NA] * len(snap), dtype="Int64"),
            "progress": h["step_progress"][snap] if when == "step" else epoch.astype(float),
            "layer": layer, "name": np.asarray(h["layers"])[layer], "bin_low": edges[b], "bin_high": edges[b + 1],
            "count": counts[snap, layer, b],
        }))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=HISTOGRAM_COLUMNS)
