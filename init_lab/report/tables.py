"""Reading a run directory into tables: leaderboard, initializer × activation pivot, comparison.

Works on finished, running and interrupted runs alike: the trials a run should
have come from its config.yaml (expanded again, which needs no TensorFlow);
those without a finished record are shown as pending/running, never dropped.
This module and those it imports never import TensorFlow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from init_lab.analysis import histograms
from init_lab.analysis.diagnostics import LAYER_COLUMNS, STEP_COLUMNS, STEP_LAYER_COLUMNS
from init_lab.catalog.errors import ConfigError, RunDirError, unknown_name_message
from init_lab.catalog.status import ENDED
from init_lab.config.grid import expand
from init_lab.config.schema import config_from_text
from init_lab.run.records import pending_record, summary_row
from init_lab.run.store import (
    EPOCHS_FILE,
    HISTOGRAMS_FILE,
    LAYERS_FILE,
    STEP_LAYERS_FILE,
    STEPS_FILE,
    RunStore,
    resolve_run_dir,
)

# metric -> (label, higher is better)
METRICS: dict[str, tuple[str, bool]] = {
    "best_val_accuracy": ("best validation accuracy", True),
    "final_val_accuracy": ("final validation accuracy", True),
    "test_accuracy": ("test accuracy", True),
    "final_loss": ("final training loss", False),
    "final_val_loss": ("final validation loss", False),
    "initial_loss": ("training loss at initialization (epoch 0)", False),
    "wall_seconds": ("wall time (s)", False),
}
AXES = ["depth", "width", "optimizer", "learning_rate", "batch_size"]
# a trial's CSV tables, and the columns of an empty one (a run without them: old, diagnostics off, pending)
TABLES = {
    EPOCHS_FILE: ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"],
    LAYERS_FILE: LAYER_COLUMNS,
    STEPS_FILE: STEP_COLUMNS,
    STEP_LAYERS_FILE: STEP_LAYER_COLUMNS,
}


@dataclass
class RunData:
    """One run directory as tables."""

    root: Path
    name: str
    trials: pd.DataFrame  # one row per planned trial (summary.csv columns), in grid order
    epochs: pd.DataFrame  # long format: trial_id, epoch, loss, accuracy, val_loss, val_accuracy, ... (0 = init)
    layers: pd.DataFrame  # long format: trial_id + layers.csv columns (empty without diagnostics)
    steps: pd.DataFrame  # long format: trial_id + steps.csv columns (empty in older runs)
    step_layers: pd.DataFrame  # long format: trial_id + step_layers.csv columns (empty without diagnostics)
    swept: list[str]  # grid axes other than initializer/activation/seed that take several values
    init_order: list[str]
    act_order: list[str]
    thresholds: list[float]
    manifest: dict[str, Any]

    @property
    def n_finished(self) -> int:
        return int(self.trials["status"].isin(ENDED).sum())

    @property
    def missing(self) -> list[str]:
        return self.trials.loc[~self.trials["status"].isin(ENDED), "trial_id"].tolist()

    @property
    def n_seeds(self) -> int:
        return int(self.trials["seed"].nunique())

    def histograms(self, trial_id: str) -> dict[str, np.ndarray] | None:
        """The trial's histograms.npz (see ``init_lab.analysis.histograms``), or None without one."""
        return histograms.read(RunStore(self.root).trial_file(trial_id, HISTOGRAMS_FILE))


def metric_names(thresholds: list[float]) -> dict[str, tuple[str, bool]]:
    """Every metric a leaderboard can sort by, including epochs-to-threshold ones."""
    out = dict(METRICS)
    for t in thresholds:
        out[f"epochs_to_{t:g}"] = (f"epochs to {t:.0%} validation accuracy", False)
    return out


def check_metric(metric: str, thresholds: list[float]) -> tuple[str, bool]:
    names = metric_names(thresholds)
    if metric not in names:
        raise ConfigError("--metric: " + unknown_name_message("metric", metric, names))
    return names[metric]


def load_run(path: str | Path, runs: str | Path = "runs") -> RunData:
    """Read a run directory (finished or not); RunDirError if it is not one."""
    root = resolve_run_dir(path, runs)
    store = RunStore(root)
    try:
        config = config_from_text(store.read_config_text(), str(store.config_path))
    except ConfigError as exc:
        raise RunDirError(f"{root}: its config.yaml cannot be read ({exc}).") from None
    specs = expand(config)
    rows: list[dict[str, Any]] = []
    frames: dict[str, list[pd.DataFrame]] = {name: [] for name in TABLES}
    for spec in specs:
        record = store.read_trial(spec.id) or pending_record(spec)
        rows.append(summary_row({**pending_record(spec), **record}))
        for name in TABLES:
            frame = _read_table(store.trial_file(spec.id, name))
            if frame is not None:
                frame.insert(0, "trial_id", spec.id)
                frames[name].append(frame)
    tables = {
        name: pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["trial_id", *TABLES[name]])
        for name, parts in frames.items()
    }
    trials = pd.DataFrame(rows)
    for col in trials.columns:
        if col not in ("trial_id", "status", "initializer", "activation", "model", "optimizer", "error"):
            trials[col] = pd.to_numeric(trials[col], errors="coerce")
    swept = [a for a in AXES if getattr(config.grid, a) and len(getattr(config.grid, a)) > 1]
    return RunData(
        root=root,
        name=root.name,
        trials=trials,
        epochs=tables[EPOCHS_FILE],
        layers=tables[LAYERS_FILE],
        steps=tables[STEPS_FILE],
        step_layers=tables[STEP_LAYERS_FILE],
        swept=swept,
        init_order=list(dict.fromkeys(s.init_label for s in specs)),
        act_order=list(dict.fromkeys(s.act_label for s in specs)),
        thresholds=list(config.training.thresholds),
        manifest=store.read_manifest(),
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


STATUS_ORDER = {"completed": 0, "diverged": 1, "failed": 2, "running": 3, "pending": 4}


def rank(trials: pd.DataFrame, metric: str, higher: bool) -> pd.DataFrame:
    """The one ranking (sweep-end leaderboard and report alike): finished trials with a value of ``metric``,
    best first; then the rest — unfinished or metric-less — by status and grid position. Adds ``rank``."""
    df = trials.copy()
    value = pd.to_numeric(df[metric], errors="coerce") if metric in df else pd.Series(math.nan, index=df.index)
    df["_has"] = (value.notna() & df["status"].isin(ENDED)).map({True: 0, False: 1})
    df["_key"] = -value if higher else value
    df["_status"] = df["status"].map(STATUS_ORDER).fillna(len(STATUS_ORDER))
    df = df.sort_values(["_has", "_key", "_status", "index"], kind="stable").drop(columns=["_has", "_key", "_status"])
    df.insert(0, "rank", range(1, len(df) + 1))
    return df


def leaderboard(run: RunData, metric: str = "best_val_accuracy") -> pd.DataFrame:
    """Trials ranked by ``metric`` (``rank``); unfinished and metric-less trials last, never dropped.

    Times: ``group_seconds`` is the wall time of the group the trial trained in (its own when alone) and
    ``packed_with`` that group's size; ``wall_seconds`` is the group time's even share, kept for ranking.
    """
    _, higher = check_metric(metric, run.thresholds)
    df = rank(run.trials, metric, higher)
    for col in ("wall_seconds", "group_seconds"):
        if col in df:
            df[col] = df[col].round(1)  # timings: tenths of a second, not false precision
    columns = ["rank", "trial_id", "initializer", "activation", *run.swept, "seed", "status", "initial_loss",
               "best_val_accuracy", "best_epoch", "final_val_accuracy", "test_accuracy", "final_loss", "final_val_loss",
               *[f"epochs_to_{t:g}" for t in run.thresholds], "group_seconds", "packed_with", "wall_seconds", "error"]
    if metric not in columns:
        columns.insert(7, metric)
    return df[[c for c in columns if c in df.columns]].reset_index(drop=True)


def pivot(run: RunData, metric: str = "best_val_accuracy") -> pd.DataFrame:
    """Initializer × activation (× swept axes) aggregate of ``metric`` over seeds.

    Columns: the keys, then mean, std (ddof=1; empty for a single seed), n (trials with a
    value), n_trials, and counts of diverged / failed / unfinished trials in the cell.
    """
    check_metric(metric, run.thresholds)
    keys = [*run.swept, "initializer", "activation"]
    df = run.trials
    groups = df.groupby(keys, sort=False, dropna=False)
    out = groups[metric].agg(mean="mean", std="std", n="count").reset_index()
    counts = groups["status"].agg(
        n_trials="size",
        diverged=lambda s: int((s == "diverged").sum()),
        failed=lambda s: int((s == "failed").sum()),
        unfinished=lambda s: int((~s.isin(ENDED)).sum()),
    ).reset_index()
    out = out.merge(counts, on=keys)
    out["initializer"] = pd.Categorical(out["initializer"], run.init_order, ordered=True)
    out["activation"] = pd.Categorical(out["activation"], run.act_order, ordered=True)
    out = out.sort_values(keys).reset_index(drop=True)
    out["initializer"] = out["initializer"].astype(str)
    out["activation"] = out["activation"].astype(str)
    return out


def facets(run: RunData, table: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """Split a pivot into one initializer × activation table per combination of swept axes."""
    if not run.swept:
        return [("", table)]
    out = []
    for values, part in table.groupby(run.swept, sort=False):
        values = values if isinstance(values, tuple) else (values,)
        title = ", ".join(f"{k}={_short(v)}" for k, v in zip(run.swept, values))
        out.append((title, part))
    return out


def _short(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def matrix(part: pd.DataFrame, run: RunData, column: str = "mean") -> pd.DataFrame:
    """A facet as an initializer (rows) × activation (columns) matrix of one column."""
    m = part.pivot(index="initializer", columns="activation", values=column)
    return m.reindex(index=[i for i in run.init_order if i in m.index], columns=[a for a in run.act_order if a in m.columns])


def comparison(a: RunData, b: RunData, metric: str = "best_val_accuracy") -> pd.DataFrame:
    """Trials the two runs share (same initializer, activation, seed and shared swept values), side by side."""
    check_metric(metric, a.thresholds)
    keys = ["initializer", "activation", "seed", *[x for x in a.swept if x in b.swept]]
    left = a.trials[[*keys, "status", metric]].rename(columns={"status": "status_a", metric: "a"})
    right = b.trials[[*keys, "status", metric]].rename(columns={"status": "status_b", metric: "b"})
    merged = left.merge(right, on=keys, how="outer", indicator=True)
    merged["delta"] = merged["b"] - merged["a"]
    merged["in"] = merged["_merge"].map({"both": "both", "left_only": "A only", "right_only": "B only"}).astype(str)
    return merged.drop(columns="_merge")
