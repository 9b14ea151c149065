"""Reading a run directory into tables: leaderboard, initializer × activation pivot, comparison; the value each
trial enters every statistic with (``entered``), and the one number formatter (``fmt``).

Works on finished, running and interrupted runs alike: the trials a run should
have come from its config.yaml (expanded again, which needs no TensorFlow);
those without a finished record are shown as pending/running, never dropped.
This module and those it imports never import TensorFlow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from init_lab.analysis import histograms
from init_lab.analysis.diagnostics import LAYER_COLUMNS, STEP_COLUMNS, STEP_LAYER_COLUMNS
from init_lab.catalog.datasets import N_CLASSES
from init_lab.catalog.errors import ConfigError, RunDirError, unknown_name_message
from init_lab.catalog.status import ENDED
from init_lab.config.grid import expand
from init_lab.config.schema import config_from_text
from init_lab.run.integrity import Damage, checkpoint_problems, read_manifest, read_record, trial_problems
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
AXES = ["depth", "width", "optimizer", "learning_rate", "batch_size", "bias_std"]
# metrics in which a diverged trial without a value of its own enters the statistics at chance (see ``entered``)
ACCURACY_METRICS = frozenset({"best_val_accuracy", "final_val_accuracy", "test_accuracy"})
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
    damage: Damage = field(default_factory=Damage)  # damaged files, named (run.integrity); the rest is read
    config: Any = None  # the run's SweepConfig, as read from its config.yaml (the phase diagram reads its grid)

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
    manifest, manifest_problem = read_manifest(store)
    damage = Damage(run=[manifest_problem] if manifest_problem else [])
    rows: list[dict[str, Any]] = []
    frames: dict[str, list[pd.DataFrame]] = {name: [] for name in TABLES}
    for spec in specs:
        record, problem = read_record(store, spec.id)
        problems = trial_problems(store, spec.id, record, problem, expect_record=manifest.get("status") == "completed",
                                  settled=manifest.get("status") != "running")
        if problems:
            damage.trials[spec.id] = problems
        rows.append(summary_row({**pending_record(spec), **(record or {})}))  # an unreadable record: pending
        unreadable = {p.split()[0] for p in problems if "unreadable" in p}  # such tables are left out, not guessed at
        for name in TABLES:
            if name in unreadable:
                continue
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
        manifest=manifest,
        config=config,
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


def fmt(value: Any, digits: int = 4, signed: bool = False) -> str:
    """The one number formatter of every table and text: '—' for missing values, whole numbers without decimals,
    floats to ``digits`` (``signed``: with a + or − sign, for differences)."""
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if not math.isfinite(value):
            return str(value)
        sign = "+" if signed else ""
        if value.is_integer() and abs(value) < 1e6 and not signed:
            return str(int(value))
        text = f"{value:{sign}.{digits}f}" if abs(value) < 1e4 else f"{value:{sign}.4g}"
        return text.replace("-", "−") if signed else text
    return str(value)


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


ENTRY_RULE = (
    "Which trials count: completed ones at their recorded value; diverged ones (a NaN/inf loss) too — "
    "divergence is a result of the configuration — at their recorded value where they have one, else, for an "
    "accuracy, at chance (1/{classes}), and otherwise left out; failed trials (an error, not a result) and "
    "unfinished ones are left out, and every cell counts them. n is the number of trials that count."
)


def chance_accuracy(run: RunData) -> float:
    """What a network that learned nothing scores: 1 / the number of classes."""
    return 1.0 / int(run.manifest.get("dataset", {}).get("classes") or N_CLASSES)


def _recorded(run: RunData, metric: str) -> pd.Series:
    """Each trial's recorded ``metric`` where it is a finite number, else NaN."""
    if metric not in run.trials:
        return pd.Series(math.nan, index=run.trials.index)
    value = pd.to_numeric(run.trials[metric], errors="coerce").astype(float)
    return value.where(np.isfinite(value))


def _chance_entries(run: RunData, metric: str) -> pd.Series:
    """Per trial: True where a diverged trial enters ``metric`` at chance (an accuracy it has no value of)."""
    if metric not in ACCURACY_METRICS:
        return pd.Series(False, index=run.trials.index)
    return (run.trials["status"] == "diverged") & _recorded(run, metric).isna()


def entered(run: RunData, metric: str) -> pd.Series:
    """The value each trial enters every statistic of ``metric`` with (pivot, cells, heatmap, comparisons), aligned
    with ``run.trials``; NaN where the trial does not count (``ENTRY_RULE``): completed trials at their recorded
    value, diverged ones at theirs or, for an accuracy without one, at chance; failed and unfinished trials never."""
    value = _recorded(run, metric).mask(_chance_entries(run, metric), chance_accuracy(run))
    return value.where(run.trials["status"].isin(("completed", "diverged")))


def pivot(run: RunData, metric: str = "best_val_accuracy") -> pd.DataFrame:
    """Initializer × activation (× swept axes) aggregate of ``metric`` over seeds, of the values ``entered`` gives.

    Columns: the keys, then mean, std (ddof=1; empty for a single seed), n (trials that count), n_trials, and
    counts of diverged trials (``diverged_at_chance`` of them entered at chance) and of failed and unfinished
    trials in the cell.
    """
    check_metric(metric, run.thresholds)
    keys = [*run.swept, "initializer", "activation"]
    df = run.trials.assign(_value=entered(run, metric), _chance=_chance_entries(run, metric).astype(int))
    groups = df.groupby(keys, sort=False, dropna=False)
    out = groups["_value"].agg(mean="mean", std="std", n="count").reset_index()
    counts = groups["status"].agg(
        n_trials="size",
        diverged=lambda s: int((s == "diverged").sum()),
        failed=lambda s: int((s == "failed").sum()),
        unfinished=lambda s: int((~s.isin(ENDED)).sum()),
    ).reset_index()
    out = out.merge(counts, on=keys).merge(groups["_chance"].sum().rename("diverged_at_chance").reset_index(), on=keys)
    out = out[[*keys, "mean", "std", "n", "n_trials", "diverged", "diverged_at_chance", "failed", "unfinished"]]
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
        title = ", ".join(f"{k}={value_label(v)}" for k, v in zip(run.swept, values))
        out.append((title, part))
    return out


def value_label(v: Any) -> str:
    """An axis value as text: 0.001 rather than 0.0010000, names as they are."""
    return f"{v:g}" if isinstance(v, float) else str(v)


def fmt_diff(value: Any, metric: str, signed: bool = True) -> str:
    """A difference of ``metric`` (with its sign unless not ``signed``): accuracies in percentage points
    ('+0.42 pt'), other metrics in their own unit."""
    if value is None or not math.isfinite(float(value)):
        return "—"
    if metric in ACCURACY_METRICS:
        return fmt(float(value) * 100, 2, signed=signed) + " pt"
    return fmt(float(value), 4, signed=signed)


def matrix(part: pd.DataFrame, run: RunData, column: str = "mean") -> pd.DataFrame:
    """A facet as an initializer (rows) × activation (columns) matrix of one column."""
    m = part.pivot(index="initializer", columns="activation", values=column)
    return m.reindex(index=[i for i in run.init_order if i in m.index], columns=[a for a in run.act_order if a in m.columns])


def comparison_keys(a: RunData, b: RunData) -> list[str]:
    """What makes a trial of A and a trial of B the same trial: initializer, activation, seed and the swept axes
    both runs share (the trial id without its grid position, which differs between grids)."""
    return ["initializer", "activation", "seed", *[x for x in a.swept if x in b.swept]]


def comparison(a: RunData, b: RunData, metric: str = "best_val_accuracy") -> pd.DataFrame:
    """Trials the two runs share (same initializer, activation, seed and shared swept values), side by side."""
    check_metric(metric, a.thresholds)
    keys = comparison_keys(a, b)
    left = a.trials[[*keys, "status", metric]].rename(columns={"status": "status_a", metric: "a"})
    right = b.trials[[*keys, "status", metric]].rename(columns={"status": "status_b", metric: "b"})
    merged = left.merge(right, on=keys, how="outer", indicator=True)
    merged["delta"] = merged["b"] - merged["a"]
    merged["in"] = merged["_merge"].map({"both": "both", "left_only": "A only", "right_only": "B only"}).astype(str)
    return merged.drop(columns="_merge")
