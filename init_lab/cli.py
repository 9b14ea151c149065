"""The `initlab` command line (Typer). Each command parses its options, calls the API (``init_lab.api``: a sweep,
a resume) or the library functions the API calls (a report, a probe), and prints; orchestration lives there.

Domain errors become a message on stderr and exit code 1; usage errors exit 2
(Typer/Click); Ctrl-C exits 130 with a note on how to resume. A CONFIG argument
is a file or the name of a shipped config (``initlab configs``). Only
``init_lab/__main__.py`` (``python -m init_lab``) imports this module; TensorFlow
is only imported by commands that train.
"""

from __future__ import annotations

import atexit
import functools
import os
import signal
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from init_lab._version import __version__
from init_lab.catalog import defaults
from init_lab.catalog.errors import InitLabError
from init_lab.catalog.status import TrialStatus
from init_lab.engine import lean_import
from init_lab.run.executors import ExecutorKind
from init_lab.runschema.axes import COMPARABLE


class UsageProblem(InitLabError):
    """A request the CLI refuses (e.g. a huge sweep without --yes)."""

app = typer.Typer(
    name="initlab",
    help="A laboratory for weight-initialization × activation-function experiments on real data.",
    epilog="Examples:\n  initlab sweep quickstart\n  initlab report latest\n"
           "  initlab init my-sweep && initlab sweep my-sweep.yaml",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
out = Console(soft_wrap=False)
if not out.is_terminal and "COLUMNS" not in os.environ:
    out = Console(soft_wrap=False, width=160)  # logs and pipes: wide enough for the leaderboard
err = Console(stderr=True)


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    gpu = "gpu"


class Format(str, Enum):
    table = "table"
    markdown = "markdown"
    csv = "csv"
    json = "json"
    html = "html"


class Listing(str, Enum):
    initializers = "initializers"
    activations = "activations"
    models = "models"
    datasets = "datasets"
    optimizers = "optimizers"


def _clean_errors(fn):
    """Turn domain errors and Ctrl-C into messages and exit codes, never tracebacks."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except InitLabError as exc:
            err.print(Text.assemble(("error: ", "bold red"), str(exc)), soft_wrap=True, highlight=False)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print("\n[yellow]interrupted.[/]", highlight=False)
            raise typer.Exit(130) from None
        except OSError as exc:  # the last line of defence: a file problem is a message, not a traceback
            where = f"{exc.filename}: " if exc.filename else ""
            err.print(Text.assemble(("error: ", "bold red"), f"{where}{exc.strerror or exc}"), soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper


def _version(value: bool) -> None:
    if value:
        out.print(f"initlab {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = None,
) -> None:
    """initlab: sweep initializers × activations, record what happens, report it."""


SetOption = Annotated[
    Optional[list[str]],
    typer.Option("--set", help="Override a config field, e.g. --set training.epochs=1 (repeatable)."),
]
CONFIG_HELP = "a YAML file, or the name of a shipped config (initlab configs)"


def _examples(*lines: str) -> str:
    """A command's help epilog: real command lines, one a line (rich help keeps single line breaks)."""
    return "Examples:\n" + "\n".join(f"  {line}" for line in lines)


def _config_file(config: str) -> Path:
    """CONFIG's file: a path as given (a path always wins), else the shipped config of that name, said on stderr."""
    from init_lab.config.shipped import resolve_config

    found = resolve_config(config)
    if found.shipped:
        note = f"using the shipped config '{found.name}': {found.path}"
        if Path(f"{found.name}.yaml").is_file():
            note += f" (for ./{found.name}.yaml, give the file name)"
        err.print(note, highlight=False, markup=False, soft_wrap=True)
    return found.path


@app.command(epilog=_examples("initlab sweep quickstart --set training.epochs=1", "initlab sweep --resume latest"))
@_clean_errors
def sweep(
    config: Annotated[Optional[str], typer.Argument(help=f"Sweep config: {CONFIG_HELP}. Optional with --resume.",
                                                    show_default=False)] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Where run directories go.")] = Path(defaults.RUNS_DIR),
    name: Annotated[Optional[str], typer.Option("--name", help="Run name (default: the config's name).")] = None,
    device: Annotated[Optional[Device], typer.Option("--device", help="auto, cpu or gpu (default: the config's).")] = None,
    set_: SetOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the expanded plan and stop.")] = False,
    resume: Annotated[
        Optional[str], typer.Option("--resume", help="Finish an interrupted run, or extend a finished one with "
                                    "--set training.epochs=N: RUN_DIR or 'latest'.")
    ] = None,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="With --resume: rerun failed trials too.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Run a large sweep without asking: more trials than "
                                      "--max-trials, or a memory or time estimate too large for this machine.")] = False,
    pack: Annotated[
        bool, typer.Option("--pack/--no-pack", help="Train compatible MLP trials together (default) or one model each.")
    ] = True,
    executor: Annotated[ExecutorKind, typer.Option("--executor", help="local, or ray (trials as Ray tasks).")] = ExecutorKind.LOCAL,
    address: Annotated[
        Optional[str], typer.Option("--address", help="With --executor ray: join this cluster (default: start a local one).")
    ] = None,
    max_trials: Annotated[
        int, typer.Option("--max-trials", min=1, help="Ask before running more trials than this.")
    ] = defaults.CONFIRM_TRIALS,
) -> None:
    """Expand the grid, train every trial, write the run directory, print the leaderboard."""
    from init_lab import api
    from init_lab.config.loading import load_config
    from init_lab.console.progress import make_observer
    from init_lab.run.sweep import plan

    if config is None and resume is None:
        raise typer.BadParameter("give a CONFIG file, or --resume RUN_DIR", param_hint="CONFIG")
    cfg = load_config(_config_file(config), set_ or []) if config is not None else None
    if dry_run:
        if cfg is None:
            raise typer.BadParameter("--dry-run needs a CONFIG file", param_hint="CONFIG")
        _print_plan(cfg, plan(cfg), pack, device.value if device else None)
        return
    if cfg is not None and resume is None:
        _confirm_size(len(plan(cfg)), max_trials, yes)
    observer = make_observer(out)
    options = dict(device=device.value if device else None, progress=observer, command=sys.argv, pack=pack,
                   executor=executor.value, address=address, yes=yes, confirm=_confirm_too_large)
    previous = signal.signal(signal.SIGTERM, _terminate)  # a scheduler's SIGTERM stops as cleanly as Ctrl-C
    try:
        if resume is not None:
            run = api.resume(resume, config=cfg, overrides=None if cfg is not None else set_ or [], runs=out_dir,
                             retry_failed=retry_failed, **options)
        else:
            run = api.sweep(cfg, out=out_dir, name=name, **options)
    except KeyboardInterrupt:
        getattr(observer, "close", lambda: None)()
        err.print(Text.assemble(("\ninterrupted. ", "yellow"), "Finished trials and epochs are saved; continue with ",
                                (f"initlab sweep --resume {resume or 'latest'} --out {out_dir}", "bold")),
                  soft_wrap=True)
        raise typer.Exit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        getattr(observer, "close", lambda: None)()
    _print_sweep_end(run)


def _print_sweep_end(run) -> None:
    """The leaderboard, what this invocation did and where; exit 1 (TrialsFailedError) if a trial failed."""
    _print_final_leaderboard(run)
    done = run.invocation
    counts = ", ".join(f"{done.count(s)} {s.value}" for s in (TrialStatus.COMPLETED, TrialStatus.DIVERGED,
                                                              TrialStatus.FAILED) if done.count(s))
    out.print(f"{len(done.records)} trials ({counts}) in {done.seconds:.1f}s on {done.device}")
    out.print(Text.assemble("run directory: ", (str(run.path), "bold")), soft_wrap=True)
    failed = done.failure_error()
    if failed is not None:  # a failed trial is an error, not a result: exit 1, so CI notices (a divergence is 0)
        raise failed


def _confirm_too_large(message: str) -> bool:
    """Preflight found the sweep too large (memory, time): ask on a terminal; elsewhere refuse (--yes runs it)."""
    if sys.stdin is None or not sys.stdin.isatty():
        return False
    err.print(message, highlight=False, markup=False, soft_wrap=True)
    if typer.confirm("Run it anyway?", default=False):
        return True
    raise typer.Exit(1)  # declined: the message is on the screen already, nothing was written


def _print_final_leaderboard(run) -> None:
    """The sweep-end leaderboard: the report's, ranked by the same function (``tables.rank``), with its tie marks."""
    from init_lab.console.tables import report_leaderboard_table
    from init_lab.report.tables import metric_names

    metric = "best_val_accuracy"
    out.print(report_leaderboard_table(run.leaderboard(metric), metric, metric_names([])[metric][0]))


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt


def _confirm_size(n: int, limit: int, yes: bool) -> None:
    if n <= limit or yes:
        return
    if sys.stdin is not None and sys.stdin.isatty():
        if typer.confirm(f"This sweep has {n} trials (more than --max-trials {limit}). Run them all?", default=False):
            return
        raise typer.Exit(1)
    raise UsageProblem(
        f"this sweep has {n} trials, more than --max-trials {limit}: pass --yes to run them, "
        "or shrink the grid (initlab validate CONFIG shows the plan)."
    )


def _print_plan(cfg, trials, pack: bool = True, device: str | None = None) -> None:
    """The trials, then the execution groups the sweep would train, with their memory estimates."""
    from init_lab.config.grid import sanitize
    from init_lab.console.tables import groups_table, plan_table
    from init_lab.run.duration import estimate_seconds, format_duration, measured_estimate
    from init_lab.run.memory import MemoryPlan
    from init_lab.run.plan import plan_groups
    from init_lab.run.preflight import size_concerns

    out.print(plan_header(cfg, trials), highlight=False, markup=False)
    out.print(plan_table(trials))
    memory = MemoryPlan.for_config(cfg, device or cfg.device, trials[0].arch.family)
    groups, notices = plan_groups(trials, pack, memory=memory)
    out.print(groups_table(groups, memory, limit=100))
    packed = sum(len(g.specs) > 1 for g in groups)
    cut = [g for g in plan_groups(trials, pack)[0] if g not in groups]  # the groups the budget cut
    how = f"{packed} packed group(s), {len(groups) - packed} single model(s)" if packed else (
        "one model per trial" + (" (--no-pack)" if not pack else " (nothing to pack)" if not cut else ""))
    if cut:
        how += f"; the memory budget cut {len(cut)} group(s) of {', '.join(str(len(g.specs)) for g in cut)} trials"
    out.print(f"execution: {how}", highlight=False, markup=False)
    for line in notices:
        out.print(Text.assemble(("note: ", "yellow"), line), soft_wrap=True, highlight=False)
    work = [(s, s.train.epochs) for s in trials]
    seconds = estimate_seconds(work, memory.data, device or cfg.device)
    out.print(f"training time: at least {format_duration(seconds)} here (init_lab/run/duration.py)", highlight=False)
    measured = measured_estimate(groups, memory, device or cfg.device)
    if isinstance(measured, str):
        out.print(f"estimate: not measured ({measured})", highlight=False, markup=False, soft_wrap=True)
    elif measured is not None:
        out.print(f"estimate: {format_duration(measured.seconds)} of training steps, from a step of group "
                  f"{measured.group} measured here ({measured.step_seconds * 1e3:.2f} ms; the other groups scaled by "
                  "their multiply-adds); evaluation, diagnostics, compilation and files come on top", highlight=False,
                  markup=False, soft_wrap=True)
    for line in size_concerns(work, memory, device or cfg.device, pack):
        out.print(Text.assemble(("note: ", "yellow"), line, " — the sweep asks first (or needs --yes)"),
                  soft_wrap=True, highlight=False)
    out.print(f"{len(trials)} trials; run directory name: <timestamp>_{sanitize(cfg.name, 60)}", highlight=False)


def plan_header(cfg, trials) -> str:
    t, d = cfg.training, cfg.dataset
    return (
        f"config '{cfg.name}': dataset {d.name} ({'×'.join(map(str, d.image_shape))}, {d.classes} classes, "
        f"validation split {d.validation_split}), model "
        f"{trials[0].arch.label}, {t.epochs} epochs, batch {t.batch_size}, {t.optimizer} lr {t.learning_rate:g}, "
        f"device {cfg.device}"
    )


class ReportTable(str, Enum):
    leaderboard = "leaderboard"
    cells = "cells"
    comparisons = "comparisons"
    tuned = "tuned"


@app.command(epilog=_examples("initlab report latest", "initlab report latest --format markdown --metric test_accuracy"))
@_clean_errors
def report(
    run_dirs: Annotated[list[str], typer.Argument(help="RUN_DIR or 'latest'; give two to compare them.")],
    metric: Annotated[str, typer.Option("--metric", help="Sort/aggregate by: best_val_accuracy, test_accuracy, "
                                        "final_loss, final_val_loss, epochs_to_0.9, wall_seconds, …")] = "best_val_accuracy",
    fmt: Annotated[Format, typer.Option("--format", help="How the leaderboard goes to stdout.")] = Format.table,
    runs_dir: Annotated[Path, typer.Option("--runs", help="Where 'latest' is looked up.")] = Path(defaults.RUNS_DIR),
    no_files: Annotated[bool, typer.Option("--no-files", help="Print only; write nothing under RUN_DIR/report/.")] = False,
    top: Annotated[Optional[int], typer.Option("--top", min=1, help="Show only the first N leaderboard rows.")] = None,
    tensorboard: Annotated[
        Optional[Path], typer.Option("--tensorboard", help="Also write TensorBoard event files (scalars, HParams) here.")
    ] = None,
    compare_axis: Annotated[str, typer.Option(
        "--compare-axis", help="Verdicts compare the cells that differ in this axis only: "
        f"{', '.join(COMPARABLE)}.")] = defaults.COMPARE_AXIS,
    baseline: Annotated[Optional[str], typer.Option(
        "--baseline", help="Compare each cell with this value of the compared axis (default: its group's best).")]
        = None,
    table_: Annotated[ReportTable, typer.Option(
        "--table", help="Which table --format csv/json/markdown prints: the leaderboard (with two runs, the shared "
        "trials), the cells (n, mean, std, CI, ties) or the paired comparisons.")] = ReportTable.leaderboard,
    tune_axis: Annotated[Optional[str], typer.Option(
        "--tune-axis", help="Compare every cell at its own best value of this swept axis (e.g. learning_rate), "
        "chosen on the validation set only; writes report/tuned.csv.")] = None,
    tune_by: Annotated[Optional[str], typer.Option(
        "--tune-by", help="The validation metric that chooses: best_val_accuracy, final_val_accuracy or "
        "final_val_loss (default: --metric when it is one, else final_val_accuracy).")] = None,
    tune_per_seed: Annotated[bool, typer.Option(
        "--tune-per-seed", help="Let each seed choose its own best value (default: one value per cell, the best "
        "seed-mean).")] = False,
    select: Annotated[Optional[list[str]], typer.Option(
        "--select", help="Combinations the figures draw, instead of the default rule (per activation the best, the "
        "worst and the Glorot/He/LeCun initializers): INIT+ACT, INIT (every activation), ACT (every initializer), "
        "*+ACT; repeat it or separate by commas.")] = None,
) -> None:
    """Leaderboard, initializer × activation heatmap with confidence intervals, paired verdicts over seeds, learning
    curves: in the terminal and as files."""
    from init_lab.report.run import load_run
    from init_lab.report.tables import check_metric
    from init_lab.report.verdicts import analyse

    if len(run_dirs) > 2:
        raise typer.BadParameter("give one RUN_DIR, or two to compare", param_hint="RUN_DIRS")
    runs = [load_run(d, runs_dir) for d in run_dirs]
    run = runs[0]
    label, _ = check_metric(metric, run.thresholds)
    tuning = tune_axis is not None or tune_by is not None or tune_per_seed
    if len(runs) == 2:
        if tuning:
            raise typer.BadParameter("--tune-axis takes one RUN_DIR", param_hint="--tune-axis")
        if select:
            raise typer.BadParameter("--select takes one RUN_DIR", param_hint="--select")
        _report_pair(runs[0], runs[1], metric, label, fmt, table_, no_files)
        return
    if tuning:
        from init_lab.report.tuned import check_compare_axis

        if tune_axis is None:
            raise typer.BadParameter("--tune-by and --tune-per-seed need --tune-axis (e.g. --tune-axis "
                                     "learning_rate)", param_hint="--tune-axis")
        run = run.tuned(tune_axis, by=tune_by, per_seed=tune_per_seed, metric=metric)
        check_compare_axis(run, compare_axis)
    elif table_ == ReportTable.tuned:
        raise typer.BadParameter("--table tuned needs --tune-axis", param_hint="--table")
    verdicts = analyse(run, metric, compare_axis, baseline)
    if select:
        from init_lab.report.selection import for_run

        for_run(run, verdicts, select)  # a name the grid does not hold: the error before any output
    _print_report(run, verdicts, label, fmt, top, table_)
    _print_damage(run)
    if tensorboard is not None:
        from init_lab.report.tbexport import export

        count = export(run, tensorboard)
        err.print(f"TensorBoard: {count} trials written to {tensorboard} (tensorboard --logdir {tensorboard})",
                  highlight=False, markup=False)
    if not no_files:
        from init_lab.report.render import write_report

        written = write_report(run, metric, verdicts=verdicts, select=select)
        where = written[0].parent
        msg = f"report files in {where}: " + ", ".join(p.name for p in written)
        (out if fmt == Format.table else err).print(msg, highlight=False, markup=False, soft_wrap=True)


def _report_pair(a, b, metric: str, label: str, fmt: Format, table_: ReportTable, no_files: bool) -> None:
    """``initlab report A B``: the shared trials and the paired statistics, printed and (unless --no-files) written."""
    from init_lab.report.verdicts import analyse_runs

    if table_ == ReportTable.cells:
        raise typer.BadParameter("--table cells needs one RUN_DIR (two runs give comparisons)", param_hint="--table")
    paired = analyse_runs(a, b, metric)
    _print_comparison(a, b, metric, label, fmt, paired, table_)
    if not no_files:
        from init_lab.report.render import write_comparison

        page, stats_file = write_comparison(a, b, metric)
        for what, path in (("comparison chart", page), ("paired statistics", stats_file)):
            (out if fmt == Format.table else err).print(f"{what}: {path}", highlight=False, markup=False,
                                                        soft_wrap=True)


def _print_damage(run) -> None:
    """Damaged files of the run, named on stderr (the report shows the rest as it is)."""
    for line in run.damage.lines():
        err.print(Text.assemble(("damaged: ", "bold yellow"), line), soft_wrap=True, highlight=False)
    if run.damage.trials:
        err.print(f"initlab sweep --resume {run.path} trains the damaged trials again; the others are kept.",
                  soft_wrap=True, highlight=False, markup=False)


def _write_table(frame, fmt: Format) -> None:
    """One table to stdout as CSV, strict JSON records, or Markdown."""
    from init_lab.report.render import leaderboard_json, md_table

    if fmt == Format.csv:
        sys.stdout.write(frame.to_csv(index=False))
    elif fmt == Format.json:
        sys.stdout.write(leaderboard_json(frame) + "\n")
    else:
        sys.stdout.write(md_table(frame) + "\n")


def _print_caveats(verdicts) -> None:
    """What the verdicts must say even when only a table goes to stdout (e.g. 'one seed: no test'), on stderr."""
    for note in verdicts.caveats:
        err.print(f"note: {note}", highlight=False, markup=False, soft_wrap=True)


def _print_report(run, verdicts, label: str, fmt: Format, top: int | None, table_: ReportTable) -> None:
    from init_lab.console.tables import pivot_tables, report_leaderboard_table, verdicts_lines
    from init_lab.report.render import html_report, status_line
    from init_lab.report.timings import timings_line
    from init_lab.report.verdicts import marked_leaderboard

    board = marked_leaderboard(run, verdicts)
    if fmt == Format.table:
        out.print(f"{run.name}: {status_line(run)}", highlight=False, markup=False, soft_wrap=True)
        if spent := timings_line(run):
            out.print(spent, highlight=False, markup=False, soft_wrap=True)
        if run.tuning is not None:
            from init_lab.console.tables import tuned_table

            out.print(tuned_table(run))
        for table in pivot_tables(run, verdicts):
            out.print(table)
        for line in verdicts_lines(verdicts):
            out.print(line, highlight=False, soft_wrap=True)
        out.print(report_leaderboard_table(board, verdicts.metric, label, top))
    elif fmt == Format.html:
        sys.stdout.write(html_report(run, verdicts.metric, {}, verdicts=verdicts) + "\n")
    else:
        frames = {ReportTable.leaderboard: board if top is None else board.head(top),
                  ReportTable.cells: verdicts.cells, ReportTable.comparisons: verdicts.comparisons_table,
                  ReportTable.tuned: run.tuning.table if run.tuning is not None else None}
        _write_table(frames[table_], fmt)
        _print_caveats(verdicts)
        for note in run.tuning.notes if run.tuning is not None else ():
            err.print(f"note: {note}", highlight=False, markup=False, soft_wrap=True)
    if fmt != Format.table and run.missing:
        err.print(f"note: {status_line(run)}", highlight=False, markup=False, soft_wrap=True)


def _print_comparison(a, b, metric: str, label: str, fmt: Format, paired, table_: ReportTable) -> None:
    from init_lab.report.tables import comparison

    table = comparison(a, b, metric)
    if fmt == Format.table:
        from init_lab.console.tables import comparison_table, verdicts_lines

        out.print(comparison_table(table, a.name, b.name, label))
        for line in verdicts_lines(paired):
            out.print(line, highlight=False, soft_wrap=True)
        return
    _write_table(paired.comparisons_table if table_ == ReportTable.comparisons else table,
                 Format.markdown if fmt == Format.html else fmt)
    _print_caveats(paired)


@app.command(epilog=_examples("initlab probe probe_deep", "initlab probe quickstart --seeds 2 --batch 128"))
@_clean_errors
def probe(
    config: Annotated[str, typer.Argument(help=f"Sweep config ({CONFIG_HELP}): its grid is probed over seeds.")],
    set_: SetOption = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Where the probe's directory goes.")] = Path(defaults.RUNS_DIR),
    batch: Annotated[int, typer.Option("--batch", min=2, help="Probe batch size.")] = defaults.PROBE_SIZE,
    seeds: Annotated[Optional[int], typer.Option(
        "--seeds", min=1, help="Probe this many consecutive seeds from the grid's first one (default: the grid's "
        "seeds, or 5 when it names one).")] = None,
    jacobian_examples: Annotated[int, typer.Option(
        "--jacobian-examples", min=0, help="Probe examples whose Jacobian spectrum is computed (0: none).")]
        = defaults.JACOBIAN_EXAMPLES,
    device: Annotated[Optional[Device], typer.Option("--device", help="auto, cpu or gpu.")] = None,
) -> None:
    """Signal propagation at initialization over seeds, against mean-field theory and its finite-width band."""
    from init_lab.config.loading import load_config
    from init_lab.console.tables import probe_table
    from init_lab.report.plots import jacobian_plot, probe_plot
    from init_lab.run.probe import run_probe

    cfg = load_config(_config_file(config), set_ or [])
    if jacobian_examples > batch:
        raise typer.BadParameter(f"--jacobian-examples {jacobian_examples} exceeds the probe batch ({batch}).")
    result = run_probe(cfg, batch, seeds, jacobian_examples, device.value if device else None)
    out.print(f"probe of '{cfg.name}' at initialization on {batch} examples of {result.source}, "
              f"seeds {', '.join(map(str, result.seeds))}", highlight=False, markup=False)
    out.print(probe_table(result.summary))
    title = f"at initialization — {cfg.name}"
    files = {
        "probe_layers.csv": result.layers.to_csv(index=False),
        "probe_summary.csv": result.summary.to_csv(index=False),
        "probe.png": probe_plot(result.layers, f"Signal propagation {title}"),
    }
    if not result.spectra.empty:
        files["probe_spectra.csv"] = result.spectra.to_csv(index=False)
        files["jacobian.png"] = jacobian_plot(result.spectra, f"Input–output Jacobian spectrum {title}")
    from init_lab.report.spp import spp_plot

    if (spp := spp_plot(result.layers, f"Signal-propagation plot {title}")) is not None:
        files["probe_spp.png"] = spp
    _write_side_dir(out_dir, f"{cfg.name}-probe", files)


def _write_side_dir(out_dir: Path, name: str, files: dict[str, str | bytes]) -> None:
    """A probe's or theory's own directory under ``out_dir`` (no trials; ``runs/latest`` untouched), and its files."""
    from init_lab.run.store import create_run_dir, write_files

    target = create_run_dir(out_dir, name)
    (target / "trials").rmdir()
    written = write_files(target, files)
    out.print(f"files: {', '.join(str(f) for f in written)}", highlight=False, markup=False, soft_wrap=True)


@app.command(epilog=_examples("initlab theory probe_deep", "initlab theory quickstart --input-moment 1"))
@_clean_errors
def theory(
    config: Annotated[str, typer.Argument(help=f"Sweep config ({CONFIG_HELP}): its initializers, activations "
                                          "and shapes.")],
    set_: SetOption = None,
    input_moment: Annotated[Optional[float], typer.Option(
        "--input-moment", min=0.0, help="Mean of x² per input feature that the first layer sees (default: the "
        "dataset's known value, 1 for standardized inputs).")] = None,
    sigma_b2: Annotated[Optional[float], typer.Option("--sigma-b2", min=0.0, help="Bias variance σ_b² for every row "
        "(default: each trial's model.bias_std², 0 where the config sets none: initlab's biases start at 0).")]
        = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Where theory.csv and theory.png go.")] = Path(defaults.RUNS_DIR),
) -> None:
    """Mean-field theory without data or TensorFlow: critical σ_w², fixed point q*, χ₁, depth scales, ratios."""
    from init_lab.analysis.theory import input_moment as default_moment
    from init_lab.analysis.theory import stack_tables
    from init_lab.config.loading import load_config
    from init_lab.console.tables import theory_table
    from init_lab.report.plots import theory_plot

    cfg = load_config(_config_file(config), set_ or [])
    moment, source = (input_moment, "--input-moment") if input_moment is not None else \
        default_moment(cfg.dataset.name, cfg.dataset.standardize)
    rows, layers = stack_tables(cfg, moment, sigma_b2)
    shown = f"{sigma_b2:g} (--sigma-b2)" if sigma_b2 is not None else \
        ", ".join(f"{v:g}" for v in dict.fromkeys(rows["sigma_b2"])) + " (the config's bias_std²)"
    out.print(f"mean-field theory of '{cfg.name}': input second moment {moment:g} ({source}), σ_b² = {shown}",
              highlight=False, markup=False)
    out.print(theory_table(rows))
    files = {"theory.csv": rows.to_csv(index=False), "theory_layers.csv": layers.to_csv(index=False)}
    plot = theory_plot(layers, f"Mean-field propagation over depth — {cfg.name}")
    if plot is not None:
        files["theory.png"] = plot
    _write_side_dir(out_dir, f"{cfg.name}-theory", files)


@app.command(epilog=_examples("initlab validate quickstart", "initlab validate mnist --set 'grid.seed=[0, 1, 2]'"))
@_clean_errors
def validate(
    config: Annotated[str, typer.Argument(help=f"Sweep config: {CONFIG_HELP}.")],
    set_: SetOption = None,
) -> None:
    """Check a config and print the expanded plan, without running anything."""
    from init_lab.config.loading import load_config
    from init_lab.run.sweep import plan

    cfg = load_config(_config_file(config), set_ or [])
    _print_plan(cfg, plan(cfg))
    out.print("[green]config is valid.[/]")


@app.command("configs", epilog=_examples("initlab configs"))
@_clean_errors
def configs_() -> None:
    """The sweep configs shipped with initlab: give a name wherever a CONFIG goes."""
    from init_lab.config.shipped import description, shipped_configs, shipped_dir

    table = Table(title="shipped configs")
    table.add_column("name", style="bold")
    table.add_column("description")
    for name, path in shipped_configs().items():
        table.add_row(name, description(path) or "—")
    table.caption = f"in {shipped_dir()}; copy one to edit with: initlab init NAME --from CONFIG"
    out.print(table)


@app.command("init", epilog=_examples("initlab init", "initlab init deep-relu --from he2015"))
@_clean_errors
def init(
    name: Annotated[str, typer.Argument(help="The new config's name: writes NAME.yaml in the current directory.")]
        = defaults.STARTER_NAME,
    source: Annotated[str, typer.Option("--from", help=f"Start from this config: {CONFIG_HELP}.")]
        = defaults.STARTER_FROM,
    force: Annotated[bool, typer.Option("--force", help="Overwrite NAME.yaml if it exists.")] = False,
) -> None:
    """Write a commented starter config into the current directory, valid as written, to edit and run."""
    from init_lab.config.shipped import resolve_config
    from init_lab.config.starter import check_target, starter_file, starter_text
    from init_lab.run.store import atomic_write_text

    stem, target = starter_file(name, Path.cwd())
    check_target(target, force)
    found = resolve_config(source)
    label = f"the shipped config '{found.name}'" if found.shipped else str(found.path)
    atomic_write_text(target, starter_text(stem, found.path, label, target.name))
    out.print(Text.assemble("wrote ", (target.name, "bold"), f" (from {label}). Next: ",
                            (f"initlab validate {target.name}", "bold"), ", then ",
                            (f"initlab sweep {target.name}", "bold")), soft_wrap=True)


@app.command("list", epilog=_examples("initlab list initializers", "initlab list activations"))
@_clean_errors
def list_(what: Annotated[Listing, typer.Argument(help="What to list.")]) -> None:
    """Show the available initializers, activations, models, datasets or optimizers, with formulas and defaults."""
    from init_lab.catalog.activations import ACTIVATIONS
    from init_lab.catalog.datasets import DATASETS
    from init_lab.catalog.initializers import INITIALIZERS
    from init_lab.catalog.models import MODEL_KINDS
    from init_lab.catalog.optimizers import OPTIMIZERS

    table = Table(title=what.value, show_lines=True)
    if what in (Listing.initializers, Listing.activations):
        registry = INITIALIZERS if what == Listing.initializers else ACTIVATIONS
        table.add_column("name", style="bold")
        table.add_column("definition")
        table.add_column("parameters (default)")
        for entry in registry.entries.values():
            params = ", ".join(f"{k}={p.shown(p.default)}: {p.doc}" for k, p in entry.params.items()) or "—"
            formula = entry.formula + (f"\n[dim]{entry.note}[/]" if entry.note else "")
            table.add_row(entry.name, formula, params)
        if what == Listing.initializers:
            table.caption = "fan_in/fan_out: Dense (in, out); Conv2D k_h·k_w·c_in / k_h·k_w·c_out. Biases start at 0."
        else:
            table.caption = "Hidden layers only; the output layer is softmax. Parameterise in a grid: {name: leaky_relu, alpha: 0.2}"
    elif what == Listing.datasets:
        for column in ("name", "description", "image", "classes", "train / test", "sources (in order)"):
            table.add_column(column, style="bold" if column == "name" else None)
        for d in DATASETS.values():
            table.add_row(d.name, d.description, d.shape_label, str(d.classes), f"{d.sizes[0]:,} / {d.sizes[1]:,}",
                          Text(d.sources))  # plain text: "initlab[digits]" is no markup
        table.caption = ("Pixels are scaled to [0, 1]; dataset.standardize: per pixel (grey), per channel (colour). "
                         "train_size / test_size keep a stratified subset. Synthetic: its defaults shown.")
    else:
        items = {
            Listing.models: {k: m.description for k, m in MODEL_KINDS.items()},
            Listing.optimizers: {k: f"{o.formula}\n[dim]{o.note} ({o.reference})[/]" for k, o in OPTIMIZERS.entries.items()},
        }[what]
        table.add_column("name", style="bold")
        table.add_column("description")
        for key, text in items.items():
            table.add_row(key, text)
    out.print(table)


def main() -> None:
    """The console script. A process that imported TensorFlow ends right after its exit handlers ran and its output
    was flushed (``os._exit``), skipping the interpreter's teardown of TensorFlow: that took ~1 s of a 14 s sweep.
    Its Keras is imported without the integrations initlab never uses (``engine.lean_import``)."""
    lean_import.skip_unused()
    try:
        app()  # standalone mode: ends in SystemExit
    except SystemExit as end:
        if "tensorflow" not in sys.modules:
            raise
        code = end.code
        if isinstance(code, str):  # what SystemExit itself would do with a message
            sys.stderr.write(code + "\n")
        atexit._run_exitfuncs()  # Ray's shutdown, logging's flush: everything registered still runs
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code if isinstance(code, int) else 0 if code is None else 1)


if __name__ == "__main__":
    main()
