"""The Python API: initlab from a notebook or a script, with pandas DataFrames in and out.

    import init_lab
    run = init_lab.sweep({"grid": {"initializer": ["glorot_uniform", "he_normal"], "activation": ["relu", "tanh"]}})
    run.summary.pivot_table(index="initializer", columns="activation", values="best_val_accuracy")
    run.epochs                      # trial × epoch, with each trial's initializer, activation, seed, … as columns
    init_lab.load_run("latest")     # any run directory, finished, interrupted or still running

The same validation, messages and files as the command line: a bad config raises
:class:`init_lab.catalog.errors.ConfigError` with the text ``initlab sweep`` prints, and
:meth:`Run.report` writes what ``initlab report`` writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from init_lab.catalog import defaults
from init_lab.catalog.status import FINISHED, TrialStatus
from init_lab.config.schema import SweepConfig, config_from_dict, load_config
from init_lab.config.shipped import resolve_config
from init_lab.report import tables
from init_lab.run.recorder import Observer

ConfigLike = SweepConfig | Mapping[str, Any] | str | Path
AXES = ["initializer", "activation", "seed", "depth", "width", "optimizer", "learning_rate", "batch_size",
        "bias_std"]


@dataclass(repr=False)
class Run:
    """One run directory as tidy DataFrames, read when loaded (:meth:`refresh` reads it again).

    Every per-trial frame carries the trial's axes (initializer, activation, seed, and depth, width,
    optimizer, learning_rate, batch_size, bias_std) as columns, so it pivots and groups without joins.
    """

    path: Path
    config: dict[str, Any]  # the resolved config (config.yaml)
    manifest: dict[str, Any]  # versions, device, dataset, counts, timings (manifest.json)
    summary: pd.DataFrame  # one row per planned trial (summary.csv columns; pending trials included)
    epochs: pd.DataFrame  # trial × epoch (epoch 0 = the initial weights)
    layers: pd.DataFrame  # trial × epoch × hidden layer: per-layer signals on the probe batch
    steps: pd.DataFrame  # trial × logged step: training loss and accuracy every k steps
    step_layers: pd.DataFrame  # trial × logged step × hidden layer, the first epoch(s)
    _data: tables.RunData

    @property
    def status(self) -> str:
        """The sweep's status: completed, running (or interrupted: resume it), failed…"""
        return str(self.manifest.get("status", "unknown"))

    @property
    def ok(self) -> bool:
        """Every trial completed or diverged (a divergence is a result): what ``initlab sweep``'s exit code 0
        says. False when any failed (:attr:`failures`) or has not finished."""
        return bool(self.summary["status"].isin(FINISHED).all())

    @property
    def failures(self) -> pd.DataFrame:
        """The failed trials (an error, not a result: out of memory, a bug, data) with their errors and axes."""
        failed = self.summary[self.summary["status"] == TrialStatus.FAILED.value].reindex(
            columns=["trial_id", *[a for a in AXES if a in self.summary.columns], "error"])
        return failed.reset_index(drop=True)

    @property
    def damaged(self) -> list[str]:
        """What is damaged in the run directory, a line per trial or file (``load_run`` reads the rest; a resume
        trains the damaged trials again). Empty for a sound run."""
        return self._data.damage.lines()

    @property
    def name(self) -> str:
        return self.path.name

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, status={self.status!r}, trials={len(self.summary)})"

    def refresh(self) -> Run:
        """Read the run directory again (a run that is still going has more rows now)."""
        return load_run(self.path)

    def histograms(self, trial_id: str | None = None) -> pd.DataFrame:
        """Histogram counts as a tidy frame: one row per trial × quantity (activation / gradient) × snapshot
        (an epoch end, or a logged step) × layer × non-empty bin, with the bin's edges (±inf for the
        under- and overflow bins) and the trial's axes. ``trial_id`` restricts it to one trial."""
        ids = [trial_id] if trial_id is not None else list(self.summary["trial_id"])
        frames = [_histogram_frame(tid, h) for tid in ids if (h := self._data.histograms(tid)) is not None]
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=HISTOGRAM_COLUMNS)
        return _with_axes(frame, self.summary)

    def leaderboard(self, metric: str = "best_val_accuracy") -> pd.DataFrame:
        """Trials ranked by ``metric`` — the ranking of ``initlab report`` and of the sweep's end —, with
        ``vs_best``: the trial's cell against its group's best initializer (best, tied with best, behind best)."""
        from init_lab.report import verdicts

        return verdicts.marked_leaderboard(self._data, verdicts.analyse(self._data, metric))

    def pivot(self, metric: str = "best_val_accuracy") -> pd.DataFrame:
        """Initializer × activation (× swept axes): mean, std and n of ``metric`` over seeds."""
        return tables.pivot(self._data, metric)

    def cells(self, metric: str = "best_val_accuracy", axis: str = defaults.COMPARE_AXIS,
              baseline: str | None = None) -> pd.DataFrame:
        """report/cells.csv: per cell (every axis but the seed), n, mean, std, the 95 % CI of the mean (t; BCa
        bootstrap from 6 seeds), and its standing against its group's best (``best``, ``tied_with_best``,
        ``vs_best``, ``p_holm_vs_best``, ``diff_to_best``); groups are the cells that differ in ``axis`` only."""
        from init_lab.report import verdicts

        return verdicts.analyse(self._data, metric, axis, baseline).cells

    def comparisons(self, metric: str = "best_val_accuracy", axis: str = defaults.COMPARE_AXIS,
                    baseline: str | None = None) -> pd.DataFrame:
        """report/comparisons.csv: each cell against its group's best (or ``baseline``, a value of ``axis``),
        paired by seed: n, mean_diff = a − b, its 95 % CI, the paired-t p-value, the Holm-adjusted p over all of
        them, P(a better than b), the min detectable difference (80 % power); then the group's other axes."""
        from init_lab.report import verdicts

        return verdicts.analyse(self._data, metric, axis, baseline).comparisons_table

    def report(self, metric: str = "best_val_accuracy", plots: bool = True, axis: str = defaults.COMPARE_AXIS,
               baseline: str | None = None) -> list[Path]:
        """Write the report files of ``initlab report`` into RUN/report/; returns their paths."""
        from init_lab.report.render import write_report
        from init_lab.report.verdicts import analyse

        return write_report(self._data, metric, plots=plots, verdicts=analyse(self._data, metric, axis, baseline))

    def _repr_html_(self) -> str:  # a notebook shows a run as its status and leaderboard
        from init_lab.report.render import html_table, status_line

        board = self.leaderboard().drop(columns=["error"], errors="ignore").head(10)
        import html

        return f"<p><b>{html.escape(self.name)}</b>: {html.escape(status_line(self._data))}</p>" + html_table(board)


HISTOGRAM_COLUMNS = ["trial_id", "quantity", "when", "epoch", "step", "progress", "layer", "name", "bin_low",
                     "bin_high", "count"]


def load_run(path: str | Path = "latest", runs: str | Path = defaults.RUNS_DIR) -> Run:
    """A run directory — a path, or 'latest' (under ``runs``) — as a :class:`Run`. Works on finished,
    interrupted and running sweeps (unfinished trials are rows with status pending/running)."""
    data = tables.load_run(path, runs)
    summary = data.trials
    return Run(
        path=data.root,
        config=yaml.safe_load((data.root / "config.yaml").read_text(encoding="utf-8")),
        manifest=data.manifest,
        summary=summary,
        epochs=_with_axes(data.epochs, summary),
        layers=_with_axes(data.layers, summary),
        steps=_with_axes(data.steps, summary),
        step_layers=_with_axes(data.step_layers, summary),
        _data=data,
    )


def sweep(config: ConfigLike, *, out: str | Path = defaults.RUNS_DIR, overrides: list[str] | None = None,
          progress: bool | str = "auto", raise_on_failure: bool = False, **options: Any) -> Run:
    """Run a sweep and return it as a :class:`Run`.

    ``config``: a dict (as the YAML would be), a YAML path or a shipped config's name (``"quickstart"``), or
    a validated config. ``overrides``: the CLI's ``--set`` strings (``["training.epochs=1"]``).
    ``progress``: "auto" (a rich display in a terminal, a
    progress bar in Jupyter, lines elsewhere), True, or False (silent). Other options as ``initlab sweep``:
    ``name``, ``device`` ("auto", "cpu", "gpu"), ``pack`` (bool), ``executor`` ("local", "ray"), ``address``,
    ``yes`` (run a sweep whose memory or time estimate is too large for this machine: otherwise refused).

    Trials that fail (an error: out of memory, a bug) are recorded and the sweep goes on; the returned run
    says so (:attr:`Run.ok`, :attr:`Run.failures`). ``raise_on_failure=True`` raises
    :class:`init_lab.catalog.errors.TrialsFailedError` instead (its ``run_dir`` is complete), as the CLI
    exits 1. Diverged trials are results, not failures.
    """
    from init_lab.run.sweep import run_sweep

    cfg = _config(config, overrides)
    result = run_sweep(cfg, out=out, observer=_observer(progress), **options)
    failed = result.failure_error()
    if raise_on_failure and failed is not None:
        raise failed
    return load_run(result.run_dir)


def probe(config: ConfigLike, *, overrides: list[str] | None = None, batch: int = defaults.PROBE_SIZE,
          seeds: int | None = None, jacobian_examples: int = defaults.JACOBIAN_EXAMPLES,
          device: str | None = None) -> dict[str, pd.DataFrame]:
    """``initlab probe`` as DataFrames: {"summary": per combination against theory, "layers": per seed and
    layer, "spectra": Jacobian singular values}."""
    from init_lab.engine.backend import setup_device
    from init_lab.run.probe import run_probe

    cfg = _config(config, overrides)
    setup_device(device or cfg.device, cfg.training.deterministic)
    result = run_probe(cfg, batch, seeds, jacobian_examples)
    return {"summary": result.summary, "layers": result.layers, "spectra": result.spectra}


def compare(run_a: Run | str | Path, run_b: Run | str | Path, metric: str = "best_val_accuracy") -> pd.DataFrame:
    """The trials two runs share (same initializer, activation, seed, shared swept values) side by side:
    columns a, b, delta = b − a, and where each trial was found."""
    a, b = (r._data if isinstance(r, Run) else tables.load_run(r) for r in (run_a, run_b))
    return tables.comparison(a, b, metric)


def compare_paired(run_a: Run | str | Path, run_b: Run | str | Path, metric: str = "best_val_accuracy") -> pd.DataFrame:
    """A − B paired trial by trial (the trials :func:`compare` lines up), per cell and over all shared trials:
    comparisons.csv's columns (n, mean_diff, its 95 % CI, p, Holm's p, P(A better), min detectable), as
    ``initlab report A B`` writes to comparisons_<B>.csv."""
    from init_lab.report.verdicts import analyse_runs

    a, b = (r._data if isinstance(r, Run) else tables.load_run(r) for r in (run_a, run_b))
    return analyse_runs(a, b, metric).comparisons_table


def _config(config: ConfigLike, overrides: list[str] | None) -> SweepConfig:
    if isinstance(config, SweepConfig):
        # resolved() is the form config.yaml holds and reads back (grid entries as names or {name, param: …})
        return config if not overrides else config_from_dict(config.resolved(), "<config>", overrides)
    if isinstance(config, (str, Path)):
        return load_config(resolve_config(config).path, overrides)  # a path, or a shipped config's name
    return config_from_dict(config, "<dict>", overrides)


def _observer(progress: bool | str) -> Observer:
    from rich.console import Console

    from init_lab.console import NotebookObserver, PlainObserver, make_observer

    if progress is False:
        return Observer()
    if progress not in (True, "auto"):
        raise ValueError(f"progress must be 'auto', True or False, not {progress!r}")
    if _in_notebook():
        return NotebookObserver()
    return make_observer(Console(stderr=True)) if progress == "auto" else PlainObserver(Console(stderr=True))


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and shell.__class__.__name__ == "ZMQInteractiveShell"  # Jupyter's kernel


def _with_axes(frame: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (with a trial_id column) with each trial's axes as columns after trial_id."""
    axes = [a for a in AXES if a in summary.columns and a not in frame.columns]  # epochs.csv has learning_rate
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
