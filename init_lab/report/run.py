"""A run directory as one object: :class:`Run`, read by :func:`load_run` — the API's result, what ``initlab
sweep`` ranks at its end, what ``initlab report`` reports. It is the run's data (``report.rundata.RunData``,
which every report module reads) with the analyses on top: leaderboard, pivot, cells, comparisons, the tuned
run and the report files. This module sits above the rest of the report package (which imports
``rundata``, never this): its analyses are imported when first used, so ``load_run`` stays light.
"""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from init_lab.catalog import defaults
from init_lab.report.rundata import RunData, read_run


class Run(RunData):
    """One run directory as tidy DataFrames, read when loaded (:meth:`refresh` reads it again), with its analyses."""

    def refresh(self) -> Run:
        """Read the run directory again (a run that is still going has more rows now); a tuned run is tuned again."""
        run = load_run(self.path)
        t = self.tuning
        return run if t is None else run.tuned(t.axis, by=t.by, per_seed=t.per_seed)

    def tuned(self, axis: str = "learning_rate", by: str | None = None, per_seed: bool = False,
              metric: str | None = None) -> Run:
        """This run with every cell at its own best value of ``axis`` (a swept axis), chosen by a validation metric
        only — ``by``: best_val_accuracy, final_val_accuracy or final_val_loss; default ``metric`` when it is one of
        them, else final_val_accuracy —, one value per cell by the seed-mean (``per_seed``: each seed its own).
        A Run of the chosen trials (leaderboard, pivot, cells, comparisons, report of the tuned cells); its
        ``tuning.table`` is report/tuned.csv: per cell the chosen value and every candidate's score and n. Rules
        for ties and missing values: ``init_lab.report.tuned``. ConfigError for an axis the run does not sweep."""
        from init_lab.report.tuned import select

        return select(self, axis, by=by, per_seed=per_seed, metric=metric)

    def leaderboard(self, metric: str = "best_val_accuracy") -> pd.DataFrame:
        """Trials ranked by ``metric`` — the ranking of ``initlab report`` and of the sweep's end —, with
        ``vs_best``: the trial's cell against its group's best initializer (best, tied with best, behind best)."""
        from init_lab.report import verdicts

        return verdicts.marked_leaderboard(self, verdicts.analyse(self, metric))

    def pivot(self, metric: str = "best_val_accuracy") -> pd.DataFrame:
        """Initializer × activation (× swept axes): mean, std and n of ``metric`` over seeds."""
        from init_lab.report import tables

        return tables.pivot(self, metric)

    def cells(self, metric: str = "best_val_accuracy", axis: str = defaults.COMPARE_AXIS,
              baseline: str | None = None) -> pd.DataFrame:
        """report/cells.csv: per cell (every axis but the seed), n, mean, std, the 95 % CI of the mean (t; BCa
        bootstrap from ``BOOTSTRAP_MIN_N`` seeds), and its standing against its group's best (``best``,
        ``tied_with_best``, ``vs_best``, ``p_holm_vs_best``, ``diff_to_best``); groups are the cells that differ
        in ``axis`` only."""
        from init_lab.report import verdicts

        return verdicts.analyse(self, metric, axis, baseline).cells

    def comparisons(self, metric: str = "best_val_accuracy", axis: str = defaults.COMPARE_AXIS,
                    baseline: str | None = None) -> pd.DataFrame:
        """report/comparisons.csv: each cell against its group's best (or ``baseline``, a value of ``axis``),
        paired by seed: n, mean_diff = a − b, its 95 % CI, the paired-t p-value, the Holm-adjusted p over all of
        them, P(a better than b), the min detectable difference (80 % power); then the group's other axes."""
        from init_lab.report import verdicts

        return verdicts.analyse(self, metric, axis, baseline).comparisons_table

    def report(self, metric: str = "best_val_accuracy", plots: bool = True, axis: str = defaults.COMPARE_AXIS,
               baseline: str | None = None, select: str | list[str] | None = None) -> list[Path]:
        """Write the report files of ``initlab report`` into RUN/report/; returns their paths. ``select``: the
        combinations the figures draw, as ``initlab report --select`` ('he_normal+relu', 'he_normal', 'relu',
        '*+tanh'; a list or one comma-separated string); default: the rule of ``report.selection``."""
        from init_lab.report.render import write_report
        from init_lab.report.verdicts import analyse

        return write_report(self, metric, plots=plots, verdicts=analyse(self, metric, axis, baseline), select=select)

    def _repr_html_(self) -> str:  # a notebook shows a run as its status and leaderboard
        from init_lab.report.render import html_table, status_line

        board = self.leaderboard().drop(columns=["error"], errors="ignore").head(10)
        return f"<p><b>{html.escape(self.name)}</b>: {html.escape(status_line(self))}</p>" + html_table(board)


def load_run(path: str | Path = "latest", runs: str | Path = defaults.RUNS_DIR) -> Run:
    """A run directory — a path, or 'latest' (under ``runs``) — as a :class:`Run`; RunDirError if it is not one.
    Works on finished, interrupted and running sweeps (unfinished trials are rows with status pending/running)."""
    return read_run(path, runs, Run)
