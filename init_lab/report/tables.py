"""A run's tables: leaderboard, initializer × activation pivot, comparison; the value each trial enters every
statistic with (``entered``), the one ranking (``rank``) and the one number formatter (``fmt``).

They take a :class:`init_lab.report.rundata.RunData` (a run directory as read, finished or not: pending and
running trials are rows too, never dropped). This module and those it imports never import TensorFlow.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from init_lab.catalog.datasets import N_CLASSES
from init_lab.catalog.errors import ConfigError, unknown_name_message
from init_lab.catalog.status import ENDED

if TYPE_CHECKING:
    from init_lab.report.rundata import RunData

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
# metrics in which a diverged trial without a value of its own enters the statistics at chance (see ``entered``)
ACCURACY_METRICS = frozenset({"best_val_accuracy", "final_val_accuracy", "test_accuracy"})


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
    df = rank(run.summary, metric, higher)
    for col in ("wall_seconds", "group_seconds"):
        if col in df:
            df[col] = df[col].round(1)  # timings: tenths of a second, not false precision
    tuned = [run.tuning.axis] if getattr(run, "tuning", None) is not None else []  # each cell's chosen value
    columns = ["rank", "trial_id", "initializer", "activation", *run.swept, *tuned, "seed", "status", "initial_loss",
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
    return 1.0 / int(run.manifest.classes or N_CLASSES)


def _recorded(run: RunData, metric: str) -> pd.Series:
    """Each trial's recorded ``metric`` where it is a finite number, else NaN."""
    if metric not in run.summary:
        return pd.Series(math.nan, index=run.summary.index)
    value = pd.to_numeric(run.summary[metric], errors="coerce").astype(float)
    return value.where(np.isfinite(value))


def _chance_entries(run: RunData, metric: str) -> pd.Series:
    """Per trial: True where a diverged trial enters ``metric`` at chance (an accuracy it has no value of)."""
    if metric not in ACCURACY_METRICS:
        return pd.Series(False, index=run.summary.index)
    return (run.summary["status"] == "diverged") & _recorded(run, metric).isna()


def entered(run: RunData, metric: str) -> pd.Series:
    """The value each trial enters every statistic of ``metric`` with (pivot, cells, heatmap, comparisons), aligned
    with ``run.summary``; NaN where the trial does not count (``ENTRY_RULE``): completed trials at their recorded
    value, diverged ones at theirs or, for an accuracy without one, at chance; failed and unfinished trials never."""
    value = _recorded(run, metric).mask(_chance_entries(run, metric), chance_accuracy(run))
    return value.where(run.summary["status"].isin(("completed", "diverged")))


def pivot(run: RunData, metric: str = "best_val_accuracy") -> pd.DataFrame:
    """Initializer × activation (× swept axes) aggregate of ``metric`` over seeds, of the values ``entered`` gives.

    Columns: the keys, then mean, std (ddof=1; empty for a single seed), n (trials that count), n_trials, and
    counts of diverged trials (``diverged_at_chance`` of them entered at chance) and of failed and unfinished
    trials in the cell.
    """
    check_metric(metric, run.thresholds)
    keys = [*run.swept, "initializer", "activation"]
    df = run.summary.assign(_value=entered(run, metric), _chance=_chance_entries(run, metric).astype(int))
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
    left = a.summary[[*keys, "status", metric]].rename(columns={"status": "status_a", metric: "a"})
    right = b.summary[[*keys, "status", metric]].rename(columns={"status": "status_b", metric: "b"})
    merged = left.merge(right, on=keys, how="outer", indicator=True)
    merged["delta"] = merged["b"] - merged["a"]
    merged["in"] = merged["_merge"].map({"both": "both", "left_only": "A only", "right_only": "B only"}).astype(str)
    return merged.drop(columns="_merge")
