"""Verdicts over seeds (DESIGN §12): is A better than B here, or is the difference seed noise?

Trials with the same seed see the same batches in the same order (and, with the same initializer, start from
the same weights), so two cells of the grid are compared *paired by seed*: seed by seed, over the seeds both
cells have. Every report format (terminal, Markdown, HTML, CSV, JSON) and the API take these numbers from here:

- a **cell** (every axis but the seed fixed): n, mean, std and a 95 % confidence interval of the mean — Student's
  t, or SciPy's BCa bootstrap from ``BOOTSTRAP_MIN_N`` values (``mean_interval``);
- a **comparison** of a cell a with its group's best b (the cells that differ in one axis only; or a baseline, or
  the same trials in another run): the paired mean difference a − b and its CI (paired t, or BCa from
  ``BOOTSTRAP_MIN_N`` pairs), the paired-t p-value (``scipy.stats.ttest_rel``), the Holm-adjusted p over every
  comparison of the report, the probability of improvement (Agarwal et al. 2021, over seed pairs), and the smallest
  true difference a paired t-test at α detects with 80 % power at this n and spread (noncentral t,
  ``scipy.stats.nct``) (``paired``); and how many seeds would detect the observed difference (``seeds_needed``, at
  Holm's strictest level α/m, so that the count agrees with the Holm-based verdict);
- the **best** of a group: the highest mean (lowest, for a loss) among its cells with two values or more — a cell
  with one lucky seed is not what the others are measured against — or among all when none has two;
- **ties**: a cell whose Holm-adjusted p against its group's best is ≥ α is tied with the best.

Which trials enter, and at which value, is ``tables.entered`` (failed trials never; diverged ones as results).
SciPy does the statistics; only Holm's step-down and the probability of improvement are written here.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from init_lab.catalog import defaults
from init_lab.catalog.errors import ConfigError, unknown_name_message
from init_lab.report.rundata import RunData
from init_lab.report.tables import (
    ACCURACY_METRICS,
    ENTRY_RULE,
    chance_accuracy,
    check_metric,
    comparison_keys,
    entered,
    leaderboard,
    pivot,
    rank,
    value_label,
)
from init_lab.runschema.axes import COMPARABLE

COMPARISON_COLUMNS = ["metric", "axis", "a", "b", "n", "mean_diff", "ci_low", "ci_high", "p_value", "p_holm",
                      "prob_improvement", "min_detectable"]
CELL_COLUMNS = ["ci_low", "ci_high", "ci_method", "best", "tied_with_best", "vs_best", "p_holm_vs_best",
                "diff_to_best", "at_chance"]
MARKS = {"best": "★", "tied": "≈"}  # on every pivot, heatmap and leaderboard: the group's best, tied with it
MAX_SEEDS_SEARCHED = 10_000  # beyond, "seeds needed" is the normal approximation's (t and normal agree there)


# --- statistics of arrays ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    """A confidence interval: its ends and how it was made ("t": Student's t; "bca": SciPy's BCa bootstrap;
    "": none, with fewer than two values)."""

    low: float
    high: float
    method: str


NO_INTERVAL = Interval(math.nan, math.nan, "")


def mean_interval(values: Sequence[float] | np.ndarray, confidence: float = defaults.CONFIDENCE) -> Interval:
    """The ``confidence`` interval of the mean of ``values``: Student's t below ``BOOTSTRAP_MIN_N`` values, SciPy's
    BCa bootstrap (seeded) from there; none below two values. Values that are all equal give [value, value]."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n < 2:
        return NO_INTERVAL
    from scipy import stats  # here, past the single-seed case: a sweep's leaderboard of one seed never needs SciPy

    mean = float(x.mean())
    if np.ptp(x) == 0:  # no spread: both intervals collapse to the value (and BCa's jackknife would divide by 0)
        return Interval(mean, mean, "t" if n < defaults.BOOTSTRAP_MIN_N else "bca")
    if n >= defaults.BOOTSTRAP_MIN_N:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", stats.DegenerateDataWarning)
            result = stats.bootstrap((x,), np.mean, confidence_level=confidence, method="BCa",
                                     n_resamples=defaults.BOOTSTRAP_RESAMPLES,
                                     rng=np.random.default_rng(defaults.BOOTSTRAP_SEED))
        low, high = (float(v) for v in result.confidence_interval)
        if math.isfinite(low) and math.isfinite(high):
            return Interval(low, high, "bca")
        # a degenerate resampling distribution (a few distinct values): Student's t still applies
    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=stats.sem(x))
    return Interval(float(low), float(high), "t")


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment of m p-values (NaN ones are not tests: left out of m and kept NaN): the i-th
    smallest becomes max over j ≤ i of (m − j + 1)·p_(j), capped at 1 — monotone in p, and never below it."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, math.nan)
    tested = np.flatnonzero(np.isfinite(p))
    m = len(tested)
    if m:
        order = tested[np.argsort(p[tested], kind="stable")]
        out[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return out


def prob_improvement(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, higher: bool = True) -> float:
    """P(a better than b), Agarwal et al. (2021)'s probability of improvement taken over seed pairs: the share of
    pairs (a_i, b_i) — the same seed — where a is better (larger when ``higher``, else smaller), a tie counting
    1/2. Agarwal et al. average over every pair (a_i, b_j) of independent runs; trials of one seed share their
    batches, so here the pairs are the seeds: the chance that a beats b on a new seed."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {a.shape} and {b.shape}")
    if not len(a):
        return math.nan
    diff = a - b if higher else b - a
    return float(np.mean((diff > 0) + 0.5 * (diff == 0)))


@functools.cache
def detectable_effect(n: int, alpha: float = defaults.ALPHA, power: float = defaults.POWER) -> float:
    """The smallest true mean difference, in units of the differences' sd, that a two-sided paired t-test at
    ``alpha`` on ``n`` pairs detects with probability ``power``: δ/√n, where the noncentral t with n − 1 degrees
    of freedom and noncentrality δ falls beyond ±t_crit with probability ``power``. NaN below two pairs."""
    if n < 2:
        return math.nan
    from scipy import optimize, stats

    df = n - 1
    crit = stats.t.ppf(1 - alpha / 2, df)

    def shortfall(delta: float) -> float:
        # the far tail (a significant result of the wrong sign) is < 1e-9 here; SciPy returns NaN for some of its
        # tiniest values, which count as the 0 they are
        wrong_sign = float(np.nan_to_num(stats.nct.cdf(-crit, df, delta), nan=0.0))
        return float(stats.nct.sf(crit, df, delta)) + wrong_sign - power

    high = crit + 1.0
    while shortfall(high) < 0:
        high *= 2
    return optimize.brentq(shortfall, 0.0, high, xtol=1e-10) / math.sqrt(n)


def min_detectable(n: int, sd: float) -> float:
    """The smallest true difference a paired t-test at α = 0.05 detects with 80 % power, given n pairs whose
    differences have standard deviation ``sd`` (taken as the true one)."""
    if n < 2 or not math.isfinite(sd):
        return math.nan
    return detectable_effect(n) * sd


def seeds_needed(diff: float, sd: float, alpha: float = defaults.ALPHA) -> int | None:
    """How many seeds (pairs) a two-sided paired t-test at ``alpha`` needs to detect a true difference ``diff``
    with 80 % power when the differences' sd is ``sd``; None when there is no difference to detect. Beyond
    ``MAX_SEEDS_SEARCHED`` the normal approximation's count (t's is at most a few more)."""
    if not (math.isfinite(diff) and math.isfinite(sd)) or diff == 0:
        return None
    if sd == 0:
        return 2
    from scipy import stats

    effect = abs(diff) / sd
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(defaults.POWER)
    n = max(2, math.ceil((z / effect) ** 2))  # the normal approximation: t needs as many or a few more
    if n > MAX_SEEDS_SEARCHED:
        return n
    while detectable_effect(n, alpha) > effect:
        n += 1
    return n


@dataclass(frozen=True)
class Paired:
    """The paired statistics of a − b over n pairs (seeds both have); NaN where n is too small for them."""

    n: int
    mean_diff: float  # mean of a − b
    ci: Interval  # of the mean difference
    sd_diff: float  # standard deviation (ddof = 1) of the differences
    p_value: float  # paired t-test, two-sided
    prob_improvement: float  # P(a better than b)
    min_detectable: float  # smallest true difference one test at α detects with 80 % power at this n and sd


def paired(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, higher: bool = True) -> Paired:
    """Paired statistics of a − b, where a[i] and b[i] share a seed. ``higher``: whether larger is better (for the
    probability of improvement only: the difference is always a − b). One pair gives its difference and nothing
    else; two or more a CI, a p-value and the power figures."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {a.shape} and {b.shape}")
    n = len(a)
    d = a - b
    mean = float(d.mean()) if n else math.nan
    if n < 2:
        return Paired(n, mean, NO_INTERVAL, math.nan, math.nan, math.nan, math.nan)
    from scipy import stats

    sd = float(d.std(ddof=1))
    if sd == 0:  # t = 0/0 (no difference at all) or ±∞ (the same difference at every seed)
        p = 1.0 if mean == 0 else 0.0
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # SciPy's precision note on nearly equal samples
            p = float(stats.ttest_rel(a, b).pvalue)
    return Paired(n, mean, mean_interval(d), sd, p, prob_improvement(a, b, higher), min_detectable(n, sd))


# --- comparisons of cells ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """Cell a against cell b — its group's best, a baseline, or the same trials in another run —, paired by seed."""

    metric: str
    axis: str  # the axis in which a and b differ ("run" for two runs)
    a: str
    b: str
    fixed: dict[str, Any]  # the values a and b share (the group's other axes)
    stats: Paired
    higher: bool
    p_holm: float = math.nan  # Holm-adjusted over every comparison of the report; NaN without a p-value

    @property
    def tied(self) -> bool | None:
        """Not distinguishable at α after Holm's adjustment; None where no test was possible."""
        return None if not math.isfinite(self.p_holm) else bool(self.p_holm >= defaults.ALPHA)

    @property
    def a_better(self) -> bool:
        """Whether a's mean difference points the good way (larger when higher is better)."""
        return self.stats.mean_diff > 0 if self.higher else self.stats.mean_diff < 0

    def row(self) -> dict[str, Any]:
        """This comparison as a row of comparisons.csv."""
        s = self.stats
        return {"metric": self.metric, "axis": self.axis, "a": self.a, "b": self.b, "n": s.n,
                "mean_diff": s.mean_diff, "ci_low": s.ci.low, "ci_high": s.ci.high, "p_value": s.p_value,
                "p_holm": self.p_holm, "prob_improvement": s.prob_improvement, "min_detectable": s.min_detectable,
                **self.fixed}


def adjust(comparisons: Sequence[Comparison]) -> tuple[Comparison, ...]:
    """The comparisons with their Holm-adjusted p-values, over all of them (those with a p-value)."""
    adjusted = holm([c.stats.p_value for c in comparisons])
    return tuple(replace(c, p_holm=float(p)) for c, p in zip(comparisons, adjusted))


def comparisons_frame(comparisons: Sequence[Comparison], fixed: Sequence[str]) -> pd.DataFrame:
    """comparisons.csv: the issue's columns, then the fixed axes' values."""
    columns = [*COMPARISON_COLUMNS, *fixed]
    return pd.DataFrame([c.row() for c in comparisons], columns=columns)


class _Stated:
    """What a set of comparisons says in every format: its comparisons.csv table and its caveats."""

    comparisons: tuple[Comparison, ...]
    fixed: tuple[str, ...]
    notes: tuple[str, ...]

    @property
    def comparisons_table(self) -> pd.DataFrame:
        return comparisons_frame(self.comparisons, self.fixed)

    @property
    def caveats(self) -> tuple[str, ...]:
        """The notes beyond the two every report states: why there are no p-values, nothing to compare."""
        return self.notes[2:]


@dataclass(frozen=True)
class Verdicts(_Stated):
    """A report's statistics of one metric: its cells and the paired comparisons within their groups."""

    metric: str
    label: str
    higher: bool
    axis: str  # the compared axis: groups are the cells that share every other axis
    fixed: tuple[str, ...]  # the other axes (what a group shares; comparisons.csv's last columns)
    baseline: str | None  # None: each cell against its group's best
    cells: pd.DataFrame  # tables.pivot's columns, then CELL_COLUMNS
    comparisons: tuple[Comparison, ...]  # against the best (or the baseline), Holm-adjusted over all of them
    notes: tuple[str, ...]  # said once: the entry rule, the method, then the caveats ("one seed", …)

    @property
    def tested(self) -> bool:
        """Whether any comparison had two pairs or more (else: no p-values anywhere)."""
        return any(c.stats.n >= 2 for c in self.comparisons)


def check_axis(axis: str) -> str:
    if axis not in COMPARABLE:
        raise ConfigError("--compare-axis: " + unknown_name_message("axis", axis, COMPARABLE))
    return axis


def _by_seed(trials: pd.DataFrame, keys: list[str]) -> dict[tuple, dict[int, float]]:
    """Per cell (a tuple of ``keys`` values), its counted values by seed (the first where a seed repeats)."""
    counted = trials[trials["counted"].notna()]
    out: dict[tuple, dict[int, float]] = {}
    for key, seed, value in zip(zip(*(counted[k] for k in keys)), counted["seed"], counted["counted"]):
        out.setdefault(tuple(key), {}).setdefault(int(seed), float(value))
    return out


def _pairs(a: dict[int, float], b: dict[int, float]) -> tuple[np.ndarray, np.ndarray]:
    shared = sorted(set(a) & set(b))
    return np.array([a[s] for s in shared]), np.array([b[s] for s in shared])


def _groups(table: pd.DataFrame, axis: str, fixed: list[str]) -> list[pd.DataFrame]:
    """The cells that differ in ``axis`` only, in grid order; one cell each when the axis is not in the table."""
    if axis not in table.columns:
        return [table.iloc[[i]] for i in range(len(table))]
    if not fixed:
        return [table]
    return [part for _, part in table.groupby(fixed, sort=False, dropna=False)]


def _ranked(part: pd.DataFrame, higher: bool) -> pd.DataFrame:
    """A group's cells best first by their mean — the report's one ranking (``tables.rank``)."""
    cells = part.assign(status=np.where(part["n"] > 0, "completed", "pending"), index=np.arange(len(part)))
    return rank(cells, "mean", higher)


def _compare(metric: str, higher: bool, table: pd.DataFrame, values: dict, keys: list[str], axis: str,
             fixed: list[str], baseline: str | None) -> tuple[list[Comparison], dict[tuple, tuple | None]]:
    """Each cell against its group's reference (the best, or the ``baseline`` value of the axis); and, per cell,
    the key of its reference (None in a group without one)."""
    comparisons, reference_of = [], {}
    for part in _groups(table, axis, fixed):
        ranked = _ranked(part, higher)
        if baseline is not None:
            ref = ranked[ranked[axis].map(value_label) == baseline]
        else:
            # the best among the cells that can be tested against (two values or more), else among all with one
            ref = ranked[ranked["n"] >= 2].head(1) if (ranked["n"] >= 2).any() else ranked[ranked["n"] > 0].head(1)
        ref_key = tuple(ref.iloc[0][k] for k in keys) if len(ref) and len(part) > 1 else None
        for _, cell in ranked.iterrows():
            key = tuple(cell[k] for k in keys)
            reference_of[key] = ref_key
            if ref_key is None or key == ref_key:
                continue
            a, b = _pairs(values.get(key, {}), values.get(ref_key, {}))
            comparisons.append(Comparison(
                metric=metric, axis=axis, a=value_label(cell[axis]), b=value_label(ref.iloc[0][axis]),
                fixed={k: cell[k] for k in fixed}, stats=paired(a, b, higher), higher=higher))
    return comparisons, reference_of


def _check_baseline(table: pd.DataFrame, axis: str, baseline: str) -> None:
    names = list(dict.fromkeys(table[axis].map(value_label))) if axis in table.columns else []
    if baseline not in names:
        raise ConfigError(f"--baseline: {unknown_name_message(axis, baseline, names)}")


def analyse(run: RunData, metric: str = "best_val_accuracy", axis: str = defaults.COMPARE_AXIS,
            baseline: str | None = None) -> Verdicts:
    """The verdicts of one run: every cell with its CI, and each cell against its group's best (or ``baseline``,
    a value of ``axis``), paired by seed; ties marked against the group's best. ConfigError for an unknown metric,
    axis or baseline."""
    label, higher = check_metric(metric, run.thresholds)
    check_axis(axis)
    keys = [*run.swept, "initializer", "activation"]
    if axis not in keys:  # an axis the run holds one value of: no two cells differ in it, so nothing to compare
        raise ConfigError(f"--compare-axis {axis}: this run does not sweep {axis}; compare along one of "
                          f"{', '.join(keys)}.")
    fixed = [k for k in keys if k != axis]
    table = pivot(run, metric)
    if baseline is not None:
        _check_baseline(table, axis, baseline)
    values = _by_seed(run.summary.assign(counted=entered(run, metric)), keys)
    against_best, best_of = _compare(metric, higher, table, values, keys, axis, fixed, None)
    ties = adjust(against_best)
    if baseline is None:
        comparisons = ties
    else:  # the tie marks stay against each group's best: a family of comparisons of their own
        comparisons = adjust(_compare(metric, higher, table, values, keys, axis, fixed, baseline)[0])
    cells = _cells(run, metric, table, values, keys, axis, ties, best_of)
    return Verdicts(metric=metric, label=label, higher=higher, axis=axis, fixed=tuple(fixed), baseline=baseline,
                    cells=cells, comparisons=comparisons,
                    notes=tuple(_notes(run, metric, axis, fixed, comparisons, baseline, table)))


def _cells(run: RunData, metric: str, table: pd.DataFrame, values: dict, keys: list[str], axis: str,
           ties: Sequence[Comparison], best_of: dict[tuple, tuple | None]) -> pd.DataFrame:
    """The pivot with each cell's CI and its standing against its group's best."""
    fixed = [k for k in keys if k != axis]
    tie_of = {(c.a, tuple(c.fixed[k] for k in fixed)): c for c in ties}
    means = {tuple(r[k] for k in keys): r["mean"] for _, r in table.iterrows()}
    chance = chance_accuracy(run) * defaults.CHANCE_FACTOR if metric in ACCURACY_METRICS else None
    rows = []
    for _, r in table.iterrows():
        key = tuple(r[k] for k in keys)
        ci = mean_interval(list(values.get(key, {}).values()))
        ref = best_of.get(key)
        best = ref is not None and key == ref
        tie = tie_of.get((value_label(r[axis]), tuple(r[k] for k in fixed))) if axis in r else None
        rows.append({
            "ci_low": ci.low, "ci_high": ci.high, "ci_method": ci.method, "best": best,
            "tied_with_best": True if best else (tie.tied if tie is not None else None),
            "vs_best": "best" if best else _standing(tie),
            "p_holm_vs_best": tie.p_holm if tie is not None else math.nan,
            "diff_to_best": r["mean"] - means[ref] if ref is not None else math.nan,
            "at_chance": bool(chance is not None and pd.notna(r["mean"]) and r["mean"] < chance),
        })
    extra = pd.DataFrame(rows, columns=CELL_COLUMNS, index=table.index)
    extra["tied_with_best"] = extra["tied_with_best"].astype(object)
    return pd.concat([table, extra], axis=1)


def _notes(run: RunData, metric: str, axis: str, fixed: list[str], comparisons: Sequence[Comparison],
           baseline: str | None, table: pd.DataFrame) -> list[str]:
    notes = [ENTRY_RULE.format(classes=round(1 / chance_accuracy(run)))]
    within = f"the same {', '.join(fixed)}" if fixed else "the run"
    tests = sum(math.isfinite(c.stats.p_value) for c in comparisons)  # Holm's m: the comparisons with a p-value
    reference = (f"the {axis} {baseline}" if baseline is not None
                 else f"the best {axis} (by mean, among cells with 2 seeds or more)")
    notes.append(
        f"Each cell against {reference} of its group (cells with {within}), paired by seed over the seeds both have: "
        f"the mean difference a − b with its {defaults.CONFIDENCE:.0%} CI (paired t; BCa bootstrap from "
        f"{defaults.BOOTSTRAP_MIN_N} seeds), the paired-t p-value and Holm's adjustment over the {tests} tests "
        f"of this report; P(better): the share of those seeds on which a beats b (ties ½; Agarwal et "
        "al. 2021's probability of improvement, over seed pairs); min_detectable (comparisons.csv): the smallest true difference one "
        f"paired t-test at α = {defaults.ALPHA:g} detects with {defaults.POWER:.0%} power at this n and spread; the "
        f"seeds that would detect a difference: {defaults.POWER:.0%} power at α/m, Holm's strictest level over the m "
        "comparisons, taking the observed difference and spread as the true ones. "
        f"{MARKS['best']}: the group's best; {MARKS['tied']}: tied with it (Holm p ≥ {defaults.ALPHA:g}).")
    if axis not in table.columns or not comparisons:
        notes.append(f"Nothing to compare: {axis} takes one value within each group of this run.")
    elif not any(c.stats.n >= 2 for c in comparisons):
        notes.append("One seed per cell: no test is possible, so there are no p-values and no ties; run more "
                     "seeds to compare (e.g. --set 'grid.seed=[0,1,2]').")
    return notes


# --- the leaderboard's marks -----------------------------------------------------------------------------------


def _standing(tie: Comparison | None) -> str:
    """A cell against its group's best, in words: 'tied with best', 'behind best' (or 'ahead of best': possible
    only over fewer shared seeds than the best has), '' where no test was possible."""
    if tie is None or tie.tied is None:
        return ""
    if tie.tied:
        return "tied with best"
    return "ahead of best" if tie.a_better else "behind best"


def is_true(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_)) and bool(value)


def mark(cell: pd.Series | dict) -> str:
    """The cell's mark on pivots and heatmaps: ★ the group's best, ≈ tied with it, nothing otherwise."""
    if is_true(cell.get("best")):
        return MARKS["best"]
    return MARKS["tied"] if is_true(cell.get("tied_with_best")) else ""


def cell_text(cell: pd.Series | None, newline: str = "\n") -> str:
    """A heatmap cell's text, the same in heatmap.png and report.html (``newline``: "\n" or "<br>"): the mean
    (± std where several seeds), its mark, its diverged/failed count, 'at chance'; "—" without a value."""
    if cell is None or pd.isna(cell["mean"]):
        return "—"
    mean, std = cell["mean"], cell["std"]
    lines = [f"{mean:.3f}" if abs(mean) < 100 else f"{mean:.3g}"]
    if symbol := mark(cell):
        lines[0] += f" {symbol}"
    if not pd.isna(std):
        lines.append(f"±{std:.3f}")
    if bad := cell["diverged"] + cell["failed"]:
        lines.append(f"{int(bad)} div/fail")
    if is_true(cell["at_chance"]):
        lines.append("at chance")
    return newline.join(lines)


def marked_leaderboard(run: RunData, verdicts: Verdicts) -> pd.DataFrame:
    """``tables.leaderboard`` with ``vs_best``: each trial's cell against its group's best ('best', 'tied with
    best', 'behind best', '' where untested) — for the trials that count, so rank 1 against rank 2 by noise reads
    as a tie."""
    board = leaderboard(run, verdicts.metric)
    keys = [*run.swept, "initializer", "activation"]
    words = {tuple(r[k] for k in keys): r["vs_best"] for _, r in verdicts.cells.iterrows()}
    counts = set(run.summary.loc[entered(run, verdicts.metric).notna(), "trial_id"])
    column = [words.get(tuple(r[k] for k in keys), "") if r["trial_id"] in counts else ""
              for _, r in board.iterrows()]
    board.insert(list(board.columns).index("status") + 1, "vs_best", column)
    return board


# --- two runs ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairedRuns(_Stated):
    """Run A against run B, trial by trial (same initializer, activation, seed and shared swept values): per cell
    and over all shared trials, the paired statistics of A − B."""

    metric: str
    label: str
    higher: bool
    a: str
    b: str
    fixed: tuple[str, ...]  # the cell's axes (empty in the row over all shared trials)
    comparisons: tuple[Comparison, ...]  # per cell, then all shared trials; Holm over all of them
    notes: tuple[str, ...]  # as ``Verdicts.notes``


def analyse_runs(a: RunData, b: RunData, metric: str = "best_val_accuracy") -> PairedRuns:
    """A − B over the trials the two runs share, paired trial by trial: per cell of A's grid, then all together."""
    label, higher = check_metric(metric, a.thresholds)
    check_metric(metric, b.thresholds)
    keys = comparison_keys(a, b)
    cell_keys = [k for k in keys if k != "seed"]
    # a swept axis only one run has would match several trials of it to one of the other: the first is kept
    left = a.summary.assign(_a=entered(a, metric))[[*keys, "_a"]].drop_duplicates(keys)
    right = b.summary.assign(_b=entered(b, metric))[[*keys, "_b"]].drop_duplicates(keys)
    both = left.merge(right, on=keys, how="inner").dropna(subset=["_a", "_b"])
    comparisons = []
    for values, part in both.groupby(cell_keys, sort=False):
        values = values if isinstance(values, tuple) else (values,)
        comparisons.append(Comparison(metric=metric, axis="run", a=a.name, b=b.name, fixed=dict(zip(cell_keys, values)),
                                      stats=paired(part["_a"], part["_b"], higher), higher=higher))
    if len(comparisons) > 1:
        comparisons.append(Comparison(metric=metric, axis="run", a=a.name, b=b.name, fixed={},
                                      stats=paired(both["_a"], both["_b"], higher), higher=higher))
    notes = [ENTRY_RULE.format(classes=round(1 / chance_accuracy(a))),
             f"A − B, a trial of A paired with the trial of B of the same {', '.join(keys)}: per cell and over all "
             f"{len(both)} shared trials that count in both, with the {defaults.CONFIDENCE:.0%} CI (paired t; BCa "
             f"bootstrap from {defaults.BOOTSTRAP_MIN_N} pairs), the paired-t p-value and Holm's adjustment over the "
             f"{sum(c.stats.n >= 2 for c in comparisons)} tests."]
    if comparisons and not any(c.stats.n >= 2 for c in comparisons):
        notes.append("One shared seed per cell: no test is possible, so there are no p-values.")
    elif not comparisons:
        notes.append("No trial counts in both runs: nothing to compare.")
    return PairedRuns(metric=metric, label=label, higher=higher, a=a.name, b=b.name, fixed=tuple(cell_keys),
                      comparisons=adjust(comparisons), notes=tuple(notes))

