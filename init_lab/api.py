"""The Python API: initlab from a notebook or a script, with pandas DataFrames in and out.

    import init_lab
    run = init_lab.sweep({"grid": {"initializer": ["glorot_uniform", "he_normal"], "activation": ["relu", "tanh"]}})
    run.summary.pivot_table(index="initializer", columns="activation", values="best_val_accuracy")
    run.epochs                      # trial × epoch, with each trial's initializer, activation, seed, … as columns
    init_lab.load_run("latest")     # any run directory, finished, interrupted or still running
    init_lab.resume(run, epochs=20) # finish an interrupted run, or extend a finished one

The same validation, messages, files and orchestration as the command line, which calls these functions:
a bad config raises :class:`init_lab.catalog.errors.ConfigError` with the text ``initlab sweep`` prints, and
:meth:`Run.report` writes what ``initlab report`` writes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from init_lab.catalog import defaults
from init_lab.config.loading import config_from_dict, load_config
from init_lab.config.schema import SweepConfig
from init_lab.config.shipped import resolve_config
from init_lab.report import tables
from init_lab.report.run import Run, load_run
from init_lab.run.observer import Observer

ConfigLike = SweepConfig | Mapping[str, Any] | str | Path
Progress = bool | str | Observer

__all__ = ["Run", "compare", "compare_paired", "load_run", "probe", "resume", "sweep"]


def sweep(config: ConfigLike, *, out: str | Path = defaults.RUNS_DIR, overrides: list[str] | None = None,
          name: str | None = None, device: str | None = None, pack: bool = True, executor: str = "local",
          address: str | None = None, yes: bool = False, confirm: Callable[[str], bool] | None = None,
          progress: Progress = "auto", raise_on_failure: bool = False, command: list[str] | None = None) -> Run:
    """Run a sweep into a new run directory under ``out`` and return it as a :class:`Run`.

    ``config``: a dict (as the YAML would be), a YAML path or a shipped config's name (``"quickstart"``), or
    a validated config. ``overrides``: the CLI's ``--set`` strings (``["training.epochs=1"]``). ``name``: the
    run's name (default: the config's); ``device``: "auto", "cpu" or "gpu" (default: the config's); ``pack``:
    train compatible trials together; ``executor``: "local" or "ray" (``address``: a Ray cluster to join).
    A sweep whose memory or time estimate is too large for this machine is refused unless ``yes`` (or
    ``confirm(message)`` returns True). ``progress``: "auto" (a rich display in a terminal, a progress bar in
    Jupyter, lines elsewhere), True, False (silent), or an :class:`~init_lab.run.observer.Observer`.

    Trials that fail (an error: out of memory, a bug) are recorded and the sweep goes on; the returned run
    says so (:attr:`Run.ok`, :attr:`Run.failures`). ``raise_on_failure=True`` raises
    :class:`init_lab.catalog.errors.TrialsFailedError` instead (its ``run_dir`` is complete), as the CLI
    exits 1. Diverged trials are results, not failures.
    """
    from init_lab.run.sweep import run_sweep

    invocation = run_sweep(_config(config, overrides), out=out, name=name, device=device, pack=pack,
                           executor=executor, address=address, yes=yes, confirm=confirm,
                           observer=_observer(progress), command=command)
    return _finished(invocation, raise_on_failure)


def resume(run: Run | str | Path, *, epochs: int | None = None, retry_failed: bool = False,
           config: ConfigLike | None = None, overrides: list[str] | None = None, runs: str | Path = defaults.RUNS_DIR,
           device: str | None = None, pack: bool = True, executor: str = "local", address: str | None = None,
           yes: bool = False, confirm: Callable[[str], bool] | None = None, progress: Progress = "auto",
           raise_on_failure: bool = False, command: list[str] | None = None) -> Run:
    """Finish an interrupted run (a :class:`Run`, a run directory or 'latest' under ``runs``), or extend a
    finished one to ``epochs``; returns it, read again. Completed and diverged trials are kept, the rest
    continue from their newest checkpoint; ``retry_failed`` reruns failed trials too. ``config`` or
    ``overrides`` may change only what does not change what trials compute (refused otherwise, naming the
    field). Other arguments as :func:`sweep`.
    """
    from init_lab.run.sweep import resume_sweep

    path = run.path if isinstance(run, Run) else run
    wanted = _config(config, None) if config is not None else None
    changes = list(overrides or []) + ([f"training.epochs={epochs}"] if epochs is not None else [])
    if wanted is not None and changes:
        wanted = _config(wanted, changes)
    invocation = resume_sweep(path, wanted, overrides=changes if wanted is None else None, runs=runs,
                              device=device, pack=pack, executor=executor, address=address, yes=yes,
                              confirm=confirm, retry_failed=retry_failed, observer=_observer(progress),
                              command=command)
    return _finished(invocation, raise_on_failure)


def _finished(invocation, raise_on_failure: bool) -> Run:
    """The run an invocation wrote, read back (with what this invocation did), or the failed trials' error."""
    failed = invocation.failure_error()
    if raise_on_failure and failed is not None:
        raise failed
    run = load_run(invocation.run_dir)
    run.invocation = invocation
    return run


def probe(config: ConfigLike, *, overrides: list[str] | None = None, batch: int = defaults.PROBE_SIZE,
          seeds: int | None = None, jacobian_examples: int = defaults.JACOBIAN_EXAMPLES,
          device: str | None = None) -> dict[str, pd.DataFrame]:
    """``initlab probe`` as DataFrames: {"summary": per combination against theory, "layers": per seed and
    layer, "spectra": Jacobian singular values}."""
    from init_lab.run.probe import run_probe

    result = run_probe(_config(config, overrides), batch, seeds, jacobian_examples, device)
    return {"summary": result.summary, "layers": result.layers, "spectra": result.spectra}


def compare(run_a: Run | str | Path, run_b: Run | str | Path, metric: str = "best_val_accuracy") -> pd.DataFrame:
    """The trials two runs share (same initializer, activation, seed, shared swept values) side by side:
    columns a, b, delta = b − a, and where each trial was found."""
    return tables.comparison(_run(run_a), _run(run_b), metric)


def compare_paired(run_a: Run | str | Path, run_b: Run | str | Path, metric: str = "best_val_accuracy") -> pd.DataFrame:
    """A − B paired trial by trial (the trials :func:`compare` lines up), per cell and over all shared trials:
    comparisons.csv's columns (n, mean_diff, its 95 % CI, p, Holm's p, P(A better), min detectable), as
    ``initlab report A B`` writes to comparisons_<B>.csv."""
    from init_lab.report.verdicts import analyse_runs

    return analyse_runs(_run(run_a), _run(run_b), metric).comparisons_table


def _run(run: Run | str | Path) -> Run:
    return run if isinstance(run, Run) else load_run(run)


def _config(config: ConfigLike, overrides: list[str] | None) -> SweepConfig:
    if isinstance(config, SweepConfig):
        # resolved() is the form config.yaml holds and reads back (grid entries as names or {name, param: …})
        return config if not overrides else config_from_dict(config.resolved(), "<config>", overrides)
    if isinstance(config, (str, Path)):
        return load_config(resolve_config(config).path, overrides)  # a path, or a shipped config's name
    return config_from_dict(config, "<dict>", overrides)


def _observer(progress: Progress) -> Observer:
    from rich.console import Console

    from init_lab.console.progress import NotebookObserver, PlainObserver, make_observer

    if isinstance(progress, Observer):
        return progress
    if progress is False:
        return Observer()
    if progress not in (True, "auto"):
        raise ValueError(f"progress must be 'auto', True, False or an Observer, not {progress!r}")
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
