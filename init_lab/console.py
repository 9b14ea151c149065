"""What the sweep shows at the terminal: the plan, live progress, the leaderboard.

On a terminal, a rich live display (trials done/total with ETA, the current trial
with its epoch, live loss/accuracy); elsewhere (pipes, CI, log files) plain lines,
one per epoch and per trial. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from .grid import TrialSpec
from .sweep import Observer, SweepResult

STATUS_STYLE = {"completed": "green", "diverged": "bold red", "failed": "bold red", "running": "yellow", "pending": "dim"}


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None or x == "":
        return "—"
    if isinstance(x, float):
        if not math.isfinite(x):
            return str(x)
        return f"{x:.{digits}f}"
    return str(x)


def _hms(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def trial_line(record: dict[str, Any]) -> str:
    status = record.get("status")
    parts = [f"{status:<9}", f"best val {_fmt(record.get('best_val_accuracy'))} (epoch {_fmt(record.get('best_epoch'))})"]
    if record.get("test_accuracy") is not None:
        parts.append(f"test {_fmt(record['test_accuracy'])}")
    if record.get("wall_seconds") is not None:
        parts.append(f"{record['wall_seconds']:.1f}s")
    if record.get("error"):
        parts.append(f"error: {' '.join(str(record['error']).split())[:200]}")
    return "  ".join(parts)


class PlainObserver(Observer):
    """One line per epoch and per trial: for logs, pipes and CI."""

    def __init__(self, console: Console):
        self.console = console
        self.t0 = time.perf_counter()
        self.done = 0
        self.total = 0
        self.position = 0

    def _print(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def sweep_start(self, run_dir: Path, trials: list[TrialSpec], todo: list[TrialSpec], device: str) -> None:
        self.total = len(todo)
        kept = len(trials) - len(todo)
        extra = f", {kept} already finished" if kept else ""
        self._print(f"sweep: {len(trials)} trials ({len(todo)} to run{extra}) on {device} → {run_dir}")

    def data_loaded(self, source: str, n_train: int, n_val: int, n_test: int, seconds: float) -> None:
        self._print(f"data: {source}: {n_train} train / {n_val} validation / {n_test} test ({seconds:.1f}s)")

    def trial_start(self, spec: TrialSpec, position: int, total: int) -> None:
        self.position = position

    def epoch_end(self, spec: TrialSpec, row: dict[str, Any]) -> None:
        self._print(
            f"[{self.position}/{self.total}] {spec.id} epoch {row['epoch']}/{spec.train.epochs} "
            f"loss={_fmt(row['loss'])} acc={_fmt(row['accuracy'])} val_loss={_fmt(row['val_loss'])} "
            f"val_acc={_fmt(row['val_accuracy'])} ({row['seconds']:.1f}s)"
        )

    def trial_end(self, spec: TrialSpec, record: dict[str, Any]) -> None:
        self.done += 1
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / self.done * (self.total - self.done)
        self._print(f"[{self.position}/{self.total}] {spec.id} {trial_line(record)}  (ETA {_hms(eta)})")


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

    def trial_start(self, spec: TrialSpec, position: int, total: int) -> None:
        if self.current is not None:
            self.bars.remove_task(self.current)
        self.current = self.bars.add_task(Text(spec.id, overflow="ellipsis").plain, total=spec.train.epochs, info="starting…")

    def progress(self, spec: TrialSpec, epoch: int, step: int, steps: int, loss: float, acc: float) -> None:
        done = epoch - 1 + step / steps
        self.bars.update(
            self.current, completed=done, info=f"epoch {epoch}/{spec.train.epochs}  loss {loss:.4f}  acc {acc:.4f}"
        )
        self.bars.update(self.overall, completed=self.epochs_done + done)

    def trial_end(self, spec: TrialSpec, record: dict[str, Any]) -> None:
        self.epochs_done += spec.train.epochs
        self.trials_done += 1
        self.bars.update(self.overall, completed=self.epochs_done, description=f"trials {self.trials_done}/{self.n_todo}")
        style = STATUS_STYLE.get(record.get("status"), "")
        self.console.print(Text(f"{spec.id}  ", style="bold") + Text(trial_line(record), style=style))

    def close(self) -> None:
        if self.current is not None:
            self.bars.remove_task(self.current)
            self.current = None
        self.bars.stop()

    def sweep_end(self, result: SweepResult) -> None:
        self.close()


def make_observer(console: Console) -> Observer:
    return RichObserver(console) if console.is_terminal else PlainObserver(console)


# --- tables ---------------------------------------------------------------------------


def plan_table(trials: list[TrialSpec], limit: int | None = None) -> Table:
    swept = sorted({k for s in trials for k in s.axes})
    table = Table(title=f"{len(trials)} trials", show_lines=False)
    for col in ["#", "trial id", "initializer", "activation", *swept, "seed", "model"]:
        table.add_column(col, overflow="fold")
    shown = trials if limit is None else trials[:limit]
    for s in shown:
        table.add_row(
            str(s.index), s.id, s.init_label, s.act_label, *(_fmt(s.axes[k], 6) for k in swept), str(s.seed), s.arch.label
        )
    if limit is not None and len(trials) > limit:
        table.add_row("…", f"{len(trials) - limit} more", *[""] * (5 + len(swept)))
    return table


def _sort_key(record: dict[str, Any]):
    order = {"completed": 0, "diverged": 1, "running": 2, "failed": 3, "pending": 4}
    best = record.get("best_val_accuracy")
    return (order.get(record.get("status"), 5), -(best if isinstance(best, (int, float)) and math.isfinite(best) else -1))


def leaderboard_table(records: list[dict[str, Any]], title: str = "leaderboard (best validation accuracy)") -> Table:
    table = Table(title=title)
    for col, justify in [
        ("rank", "right"), ("trial", "left"), ("initializer", "left"), ("activation", "left"), ("seed", "right"),
        ("status", "left"), ("best val acc", "right"), ("epoch", "right"), ("test acc", "right"),
        ("final loss", "right"), ("time", "right"),
    ]:
        table.add_column(col, justify=justify, overflow="fold")
    for rank, r in enumerate(sorted(records, key=_sort_key), 1):
        spec = r.get("spec", {})
        status = r.get("status", "?")
        table.add_row(
            str(rank), r.get("trial_id", "?"), str(spec.get("initializer")), str(spec.get("activation")),
            str(spec.get("seed")), Text(status, style=STATUS_STYLE.get(status, "")), _fmt(r.get("best_val_accuracy")),
            _fmt(r.get("best_epoch")), _fmt(r.get("test_accuracy")), _fmt(r.get("final_loss")),
            f"{r['wall_seconds']:.1f}s" if r.get("wall_seconds") is not None else "—",
        )
    return table
