"""Fair comparisons: every cell at its own best value of one swept axis, chosen on the validation set only.

A comparison of initializers at one shared learning rate measures partly which initializer suits *that* rate.
Glorot & Bengio (2010, §2.3) chose "for each network the learning rate separately to minimize error on the
validation set". :func:`select` does that for any optional axis a run sweeps (``run.swept``): among the trials of
a cell — every axis fixed but the tuned one and the seed — it keeps those of the value with the best *validation*
score, and returns the run restricted to them, a run like any other (the same class as its input; its
leaderboard, pivot, heatmap, cells and paired comparisons are those of the tuned cells) with the selection in
``run.tuning`` (``report/tuned.csv``).

The rules, stated once (``Tuning.notes`` says them in every report):

- **selection metric**: a validation metric only — ``best_val_accuracy``, ``final_val_accuracy`` or
  ``final_val_loss`` (``VALIDATION_METRICS``); the test set never chooses. By default the report's metric when
  it is one of them, else ``final_val_accuracy``: the validation score of the weights the test metric measures.
- **one value per cell, by the seed-mean** (the default; the paper's protocol: one rate per network): the value
  whose mean over its seeds is best; every seed of the cell then uses it, so the cells stay paired by seed.
  ``per_seed=True`` instead chooses each seed's own best value (the cell may mix values; tuned.csv has a row
  per seed), which is optimistic about one more degree of freedom.
- **what enters**: each trial's value by the report's entry rule (``tables.entered``: failed and unfinished
  trials never; diverged ones at their value, or at chance for an accuracy), except that a diverged trial with
  no value of the selection metric (a loss) enters as the worst possible, so a rate that diverges never wins
  by leaving its bad seeds out.
- **missing values**: a value with no trial that counts in the cell (or seed) is not a candidate; a seed-mean
  is over the seeds that count for that value (tuned.csv gives each candidate's n). A cell with no candidate
  keeps its first value's trials, none of which count: it shows as "—".
- **ties**: equal scores (within 1e-12) go to the value listed first in the config's grid; tuned.csv's
  ``tied`` names the others.

Reporting the selection metric itself of the tuned cells is optimistic (it is the maximum of noisy estimates);
a test metric is not, because the test set took no part in the choice. This module never imports TensorFlow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from init_lab.catalog.errors import ConfigError, unknown_name_message
from init_lab.report.tables import check_metric, entered, value_label
from init_lab.runschema.axes import BY_NAME, FIXED, NAMES

if TYPE_CHECKING:
    from init_lab.report.rundata import RunData

VALIDATION_METRICS = ("best_val_accuracy", "final_val_accuracy", "final_val_loss")
DEFAULT_SELECTION = "final_val_accuracy"
TIE_TOLERANCE = 1e-12
TUNED_FILE = "tuned.csv"


@dataclass(frozen=True)
class Tuning:
    """How a tuned run was selected from its run: along which axis, by which validation metric, and per cell
    (or per seed) which value won, with every candidate's score (``table``: tuned.csv)."""

    axis: str
    by: str  # the validation metric that chose
    per_seed: bool  # one value per cell and seed (else one per cell, by the seed-mean)
    table: pd.DataFrame  # tuned.csv: a row per cell (per cell and seed with per_seed)
    notes: tuple[str, ...]


def check_tune_axis(run: RunData, axis: str) -> str:
    """``axis`` if the run sweeps it (several values of an optional axis), else a ConfigError naming those it can."""
    if axis in run.swept:
        return axis
    if axis in FIXED:
        raise ConfigError(f"--tune-axis {axis}: {', '.join(FIXED)} are what the report compares (or pairs by), not "
                          f"an axis to tune; tune one of: {', '.join(run.swept) or 'none (see below)'}."
                          + ("" if run.swept else _NOTHING))
    if not run.swept:
        raise ConfigError(f"--tune-axis {axis}: this run sweeps no axis besides initializer, activation and seed, so "
                          f"there is nothing to tune.{_NOTHING}")
    if axis in NAMES:
        raise ConfigError(f"--tune-axis {axis}: this run does not sweep {axis} (it has one value); tune one of: "
                          f"{', '.join(run.swept)}.")
    raise ConfigError("--tune-axis: " + unknown_name_message("axis", axis, run.swept))


_NOTHING = " Sweep the axis in the config first, e.g. grid.learning_rate: [0.01, 0.03, 0.1]."


def selection_metric(by: str | None, metric: str | None = None) -> str:
    """The validation metric that chooses: ``by``, refused unless a validation metric; by default ``metric`` when it
    is one, else ``DEFAULT_SELECTION``."""
    if by is None:
        return metric if metric in VALIDATION_METRICS else DEFAULT_SELECTION
    if by not in VALIDATION_METRICS:
        why = " (the test set never chooses)" if by.startswith("test") else ""
        raise ConfigError(f"--tune-by{why}: " + unknown_name_message("validation metric", by, VALIDATION_METRICS))
    return by


def select(run: RunData, axis: str = "learning_rate", by: str | None = None, per_seed: bool = False,
           metric: str | None = None) -> RunData:
    """``run`` with each cell at its best value of ``axis`` by the validation metric ``by`` (default: see
    ``selection_metric``; ``metric`` is the report's), per cell by the seed-mean or, with ``per_seed``, per seed.
    The result is a run of the chosen trials (``axis`` no longer among its ``swept``), its selection in
    ``.tuning``. ConfigError for an axis the run does not sweep or a metric that is not a validation one."""
    check_tune_axis(run, axis)
    by = selection_metric(by, metric)
    _, higher = check_metric(by, run.thresholds)
    summary = run.summary
    score = _scores(run, by, higher)
    order = {v: i for i, v in enumerate(getattr(run.config.grid, axis))}  # ties: the config's order
    keys = [a for a in run.swept if a != axis] + ["initializer", "activation"]
    group_keys = [*keys, "seed"] if per_seed else keys
    rows, kept = [], []
    for key, part in summary.assign(_score=score).groupby(group_keys, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        candidates = _candidates(part, axis, order)
        row = dict(zip(group_keys, key))
        row.update(_choose(candidates, higher))
        row["by"] = by
        rows.append(row)
        chosen = row["chosen"] if row["chosen"] is not None else min(part[axis], key=lambda v: order.get(v, 0))
        kept.append(part.index[part[axis] == chosen])
    selected = np.sort(np.concatenate(kept)) if kept else np.array([], dtype=int)
    table = _table(rows, group_keys, axis, by, order)
    tuning = Tuning(axis=axis, by=by, per_seed=per_seed, table=table, notes=_notes(axis, by, per_seed, table))
    ids = set(summary.loc[selected, "trial_id"])

    def only(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[frame["trial_id"].isin(ids)].reset_index(drop=True) if "trial_id" in frame else frame

    return replace(run, summary=summary.loc[selected].reset_index(drop=True), epochs=only(run.epochs),
                   layers=only(run.layers), steps=only(run.steps), step_layers=only(run.step_layers),
                   swept=[a for a in run.swept if a != axis], tuning=tuning)


def _scores(run: RunData, by: str, higher: bool) -> pd.Series:
    """Each trial's selection score: its entered value; a diverged trial without one the worst possible."""
    value = entered(run, by)
    worst = -math.inf if higher else math.inf
    return value.mask((run.summary["status"] == "diverged") & value.isna(), worst)


def _candidates(part: pd.DataFrame, axis: str, order: dict) -> list[tuple[Any, float, int]]:
    """(value, score — the mean over the seeds that count —, n) of each value with a trial that counts, grid order."""
    out = []
    for value, trials in part.groupby(axis, sort=False):
        counted = trials["_score"].dropna()
        if len(counted):
            out.append((value, float(counted.mean()), len(counted)))
    return sorted(out, key=lambda c: order.get(c[0], len(order)))


def _same(a: float, b: float) -> bool:
    return a == b or math.isclose(a, b, rel_tol=TIE_TOLERANCE, abs_tol=TIE_TOLERANCE)


def _choose(candidates: list[tuple[Any, float, int]], higher: bool) -> dict[str, Any]:
    """The winner among ``candidates`` (grid order breaks ties), the runner-up, and every candidate's score."""
    scores = {f"@{value_label(v)}": s for v, s, _ in candidates}
    ns = {f"n@{value_label(v)}": n for v, _, n in candidates}
    if not candidates:
        return {"chosen": None, "score": math.nan, "n": 0, "runner_up": None, "margin": math.nan, "tied": "",
                **scores, **ns}
    best = max(c[1] for c in candidates) if higher else min(c[1] for c in candidates)
    tied = [c for c in candidates if _same(c[1], best)]
    winner = tied[0]
    rest = sorted((c for c in candidates if c is not winner), key=lambda c: -c[1] if higher else c[1])
    runner = rest[0] if rest else None
    margin = (winner[1] - runner[1]) * (1 if higher else -1) if runner else math.nan
    return {"chosen": winner[0], "score": winner[1], "n": winner[2],
            "runner_up": runner[0] if runner else None,
            "margin": 0.0 if runner and _same(winner[1], runner[1]) else margin,
            "tied": ", ".join(value_label(c[0]) for c in tied[1:]), **scores, **ns}


def _table(rows: list[dict], group_keys: list[str], axis: str, by: str, order: dict) -> pd.DataFrame:
    """tuned.csv: the cell's keys, the chosen value and its score, then each candidate's score and n (grid order)."""
    values = [value_label(v) for v in order]
    columns = [*group_keys, "chosen", "by", "score", "n", "runner_up", "margin", "tied",
               *[f"{by}@{v}" for v in values], *[f"n@{v}" for v in values]]
    frame = pd.DataFrame([{**{k: r[k] for k in r if not k.startswith("@")},
                           **{f"{by}{k}": r[k] for k in r if k.startswith("@")}} for r in rows])
    frame = frame.reindex(columns=columns)
    for v in values:
        frame[f"n@{v}"] = frame[f"n@{v}"].fillna(0).astype(int)
    frame.insert(0, "axis", axis)
    return frame


def _notes(axis: str, by: str, per_seed: bool, table: pd.DataFrame) -> tuple[str, ...]:
    how = ("each seed's own best value (a cell may mix values)" if per_seed
           else "one value per cell: the best mean over its seeds, used for every seed so the cells stay paired")
    notes = [
        f"Tuned along {axis}: every cell at its best {axis} by {by} (validation only; the test set never chooses), "
        f"{how}. Ties go to the value listed first in the config; a value with no trial that counts is no "
        f"candidate; a diverged trial without a {by} counts as the worst. Per-cell choices: report/{TUNED_FILE}.",
        f"The tuned cells' {by} is optimistic (the best of several noisy estimates); their test metrics took no "
        "part in the choice.",
    ]
    if (table["chosen"].isna()).any():
        notes.append(f"{int(table['chosen'].isna().sum())} cell(s) have no trial that counts yet: no {axis} chosen.")
    if (table["tied"].fillna("") != "").any():
        notes.append(f"{int((table['tied'].fillna('') != '').sum())} choice(s) were ties (tuned.csv: tied).")
    return tuple(notes)


def choice_text(run: RunData, row: pd.Series | dict) -> str:
    """What a pivot cell of a tuned run chose, for its heatmap/table text ("lr 0.03"; per seed "lr 0.01/0.03");
    '' for an untuned run or a cell without a choice."""
    tuning = getattr(run, "tuning", None)
    if tuning is None:
        return ""
    match = tuning.table
    for k in (*run.swept, "initializer", "activation"):
        if k not in row:
            return ""  # not a cell's row: never a guess across cells
        match = match[match[k] == row[k]]
    values = [v for v in dict.fromkeys(match["chosen"]) if v is not None and not pd.isna(v)]
    header = BY_NAME[tuning.axis].header
    return f"{header} {'/'.join(value_label(v) for v in values)}" if values else ""


def choices_frame(run: RunData) -> pd.DataFrame:
    """The tuned run's choices, compact (for the report's pages): keys, chosen, score, n, runner-up, margin, tied."""
    t = run.tuning
    keep = [c for c in t.table.columns if c in (*NAMES, *FIXED) and c != t.axis]
    return t.table[[*keep, "chosen", "by", "score", "n", "runner_up", "margin", "tied"]].rename(
        columns={"chosen": f"chosen {t.axis}", "runner_up": "runner-up"})


def check_compare_axis(run: RunData, axis: str) -> str:
    """``axis`` unless it is the axis ``run`` was tuned along (each cell has its own value of it: nothing to compare)."""
    tuning = getattr(run, "tuning", None)
    if tuning is not None and axis == tuning.axis:
        raise ConfigError(f"--compare-axis {axis}: the report is tuned along {axis} (each cell at its own best "
                          f"{axis}), so it cannot compare along it too; compare along one of "
                          f"{', '.join([*run.swept, 'initializer', 'activation'])}.")
    return axis
