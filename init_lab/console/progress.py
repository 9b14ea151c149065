"""What a sweep shows at the terminal while it runs: the progress observers, and ``make_observer`` to pick one.

On a terminal, a rich live display (trials done/total with ETA, the current trial
with its epoch, live loss/accuracy); elsewhere (pipes, CI, log files) plain lines,
one per epoch and per trial; in a notebook, an HTML progress bar.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from init_lab.catalog import defaults
from init_lab.config.grid import TrialSpec
from init_lab.console.styles import STATUS_STYLE
from init_lab.report.tables import fmt
from init_lab.run.observer import Observer
from init_lab.run.sweep import Invocation
from init_lab.runschema.records import EpochRow, TrialRecord


def _hms(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def trial_line(record: TrialRecord) -> str:
    parts = [f"{record.status.value:<9}", f"best val {fmt(record.best_val_accuracy)} (epoch {fmt(record.best_epoch)})"]
    if record.test_accuracy is not None:
        parts.append(f"test {fmt(record.test_accuracy)}")
    if record.wall_seconds is not None:
        parts.append(f"{record.wall_seconds:.1f}s")
    if record.error:
        parts.append(f"error: {' '.join(str(record.error).split())[:200]}")
    return "  ".join(parts)


class PlainObserver(Observer):
    """One line per epoch and per trial, for logs, pipes and CI: ``[4/12]`` is the trial's place in the grid (its
    id number + 1, of all the grid's trials), whatever order groups finish in; a long epoch says how far it got at
    least every ``defaults.PLAIN_PROGRESS_SECONDS``."""

    def __init__(self, console: Console, clock=time.perf_counter):
        self.console, self.clock = console, clock
        self.t0 = clock()
        self.done = 0
        self.todo = 0  # trials this invocation trains (for the ETA)
        self.grid = 0  # trials of the whole grid (the counter's denominator)
        self.said = self.t0  # when the last line was printed

    def _print(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)
        self.said = self.clock()

    def _place(self, spec: TrialSpec) -> str:
        return f"[{spec.index + 1}/{self.grid}]"

    def sweep_start(self, run_dir: Path, trials: list[TrialSpec], todo: list[TrialSpec], device: str) -> None:
        self.todo, self.grid = len(todo), len(trials)
        kept = len(trials) - len(todo)
        extra = f", {kept} already finished" if kept else ""
        self._print(f"sweep: {len(trials)} trials ({len(todo)} to run{extra}) on {device} → {run_dir}")

    def data_loaded(self, source: str, n_train: int, n_val: int, n_test: int, seconds: float) -> None:
        self._print(f"data: {source}: {n_train} train / {n_val} validation / {n_test} test ({seconds:.1f}s)")

    def group_start(self, specs: list[TrialSpec], position: int, total: int, start_epoch: int = 0) -> None:
        resumed = f", continuing after epoch {start_epoch}" if start_epoch else ""
        if len(specs) > 1:
            self._print(f"training {len(specs)} trials packed together, {specs[0].id} … {specs[-1].id} "
                        f"({specs[0].arch.label}{resumed})")
        elif start_epoch:
            self._print(f"{self._place(specs[0])} {specs[0].id}: continuing after epoch {start_epoch}")

    def progress(self, spec: TrialSpec, epoch: int, step: int, steps: int, loss: float, acc: float) -> None:
        if self.clock() - self.said >= defaults.PLAIN_PROGRESS_SECONDS and step < steps:
            # the recorder reports a group's progress under its first trial; loss and accuracy: the live trials' mean
            self._print(f"  … group of {spec.id}, epoch {epoch}/{spec.train.epochs}: step {step}/{steps}, "
                        f"running loss={fmt(loss)} acc={fmt(acc)}")

    def notice(self, message: str) -> None:
        self._print(f"note: {message}")

    def epoch_end(self, spec: TrialSpec, row: EpochRow) -> None:
        self._print(
            f"{self._place(spec)} {spec.id} epoch {row.epoch}/{spec.train.epochs} "
            f"loss={fmt(row.loss)} acc={fmt(row.accuracy)} val_loss={fmt(row.val_loss)} "
            f"val_acc={fmt(row.val_accuracy)} ({row.seconds:.1f}s)"
        )

    def trial_end(self, spec: TrialSpec, record: TrialRecord) -> None:
        self.done += 1
        elapsed = self.clock() - self.t0
        eta = elapsed / self.done * max(self.todo - self.done, 0)
        self._print(f"{self._place(spec)} {spec.id} {trial_line(record)}  (ETA {_hms(eta)})")


class RichObserver(Observer):
    """A live display: overall bar in epochs with ETA, current trial with live loss/accuracy."""

    def __init__(self, console: Console):
        self.console = console
        self.bars = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.overall = None
        self.current = None
        self.epochs_done = 0.0
        self.trials_done = 0
        self.n_todo = 0
        self.weight = 1

    def sweep_start(self, run_dir: Path, trials: list[TrialSpec], todo: list[TrialSpec], device: str) -> None:
        kept = len(trials) - len(todo)
        extra = f", {kept} already finished" if kept else ""
        self.console.print(
            Text.assemble(("sweep", "bold"), f": {len(trials)} trials ({len(todo)} to run{extra}) on {device} → {run_dir}")
        )
        self.n_todo = len(todo)
        self.bars.start()
        self.overall = self.bars.add_task(
            f"trials 0/{len(todo)}", total=sum(s.train.epochs for s in todo) or 1, info="epochs"
        )

    def data_loaded(self, source: str, n_train: int, n_val: int, n_test: int, seconds: float) -> None:
        self.console.print(
            Text.assemble(("data", "bold"), f": {source}: {n_train} train / {n_val} validation / {n_test} test ({seconds:.1f}s)")
        )

    def group_start(self, specs: list[TrialSpec], position: int, total: int, start_epoch: int = 0) -> None:
        label = specs[0].id if len(specs) == 1 else f"{len(specs)} trials packed ({specs[0].arch.label}, seed {specs[0].seed})"
        self._current_task(label, specs[0].train.epochs, len(specs))

    def notice(self, message: str) -> None:
        self.console.print(Text.assemble(("note", "bold yellow"), f": {message}"), highlight=False)

    def _current_task(self, description: str, epochs: int, weight: int) -> None:
        if self.current is not None:
            self.bars.remove_task(self.current)
        self.weight = weight  # trials advancing together
        self.current = self.bars.add_task(description, total=epochs, info="starting…")

    def progress(self, spec: TrialSpec, epoch: int, step: int, steps: int, loss: float, acc: float) -> None:
        done = epoch - 1 + step / steps
        self.bars.update(
            self.current, completed=done, info=f"epoch {epoch}/{spec.train.epochs}  loss {loss:.4f}  acc {acc:.4f}"
        )
        self.bars.update(self.overall, completed=self.epochs_done + done * self.weight)

    def trial_end(self, spec: TrialSpec, record: TrialRecord) -> None:
        self.epochs_done += spec.train.epochs
        self.trials_done += 1
        self.bars.update(self.overall, completed=self.epochs_done, description=f"trials {self.trials_done}/{self.n_todo}")
        style = STATUS_STYLE.get(record.status.value, "")
        self.console.print(Text(f"{spec.id}  ", style="bold") + Text(trial_line(record), style=style))

    def close(self) -> None:
        if self.current is not None:
            self.bars.remove_task(self.current)
            self.current = None
        self.bars.stop()

    def sweep_end(self, result: Invocation) -> None:
        self.close()


class NotebookObserver(Observer):
    """A progress bar in a Jupyter notebook: one HTML <progress> element, updated in place (IPython's display
    handles; no widget extension needed), with the current trial, epoch, step and running loss."""

    def __init__(self):
        from IPython.display import HTML, display

        self._html, self.handle = HTML, display(HTML("starting…"), display_id=True)
        self.total = self.done = 0
        self.t0 = time.perf_counter()
        self.run_dir = ""

    def _show(self, line: str) -> None:
        import html

        bar = f'<progress value="{self.done}" max="{max(self.total, 1)}" style="width:40%"></progress>'
        head = f"{self.done}/{self.total} trials, {_hms(time.perf_counter() - self.t0)}"
        self.handle.update(self._html(f"<div>{bar} {head}<br><code>{html.escape(line)}</code></div>"))

    def sweep_start(self, run_dir: Path, trials: list[TrialSpec], todo: list[TrialSpec], device: str) -> None:
        self.total, self.run_dir = len(todo), str(run_dir)
        self._show(f"{len(todo)} trials to run on {device} → {run_dir}")

    def progress(self, spec: TrialSpec, epoch: int, step: int, steps: int, loss: float, acc: float) -> None:
        self._show(f"{spec.id}: epoch {epoch}/{spec.train.epochs}, step {step}/{steps}, loss {fmt(loss)}, acc {fmt(acc)}")

    def trial_end(self, spec: TrialSpec, record: TrialRecord) -> None:
        self.done += 1
        self._show(f"{spec.id} {trial_line(record)}")

    def sweep_end(self, result: Any) -> None:
        self._show(f"done: {self.run_dir}")


def make_observer(console: Console) -> Observer:
    return RichObserver(console) if console.is_terminal else PlainObserver(console)
