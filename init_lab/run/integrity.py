"""Damage in a run directory: trial and run files that are missing or cannot be read.

initlab writes every file atomically, so it never leaves a torn one itself; damage comes from outside
(a failing disk, a copy cut short, a hand edit). The readers (``report``, ``load_run``) and a resume
look here, so that a damaged file spoils nothing but its own trial: the report shows the rest and
names what is damaged, a resume trains the damaged trials again (from their newest usable checkpoint:
a finished trial whose tables were lost comes back from its final state, exactly) and keeps the rest.

What counts, per trial: a ``trial.json`` that is not a trial record; one that is missing in a run whose
manifest says it completed; a finished (completed or diverged) trial whose ``epochs.csv`` is missing
or lacks some of its epochs; any table or ``histograms.npz`` that exists but cannot be parsed. Per run:
an unreadable ``manifest.json`` and unreadable checkpoints. Missing files of trials that have not
finished are not damage: a sweep in progress (or killed) leaves them so.
"""

from __future__ import annotations

import csv
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from init_lab.catalog.status import TrialStatus
from init_lab.run.store import CHECKPOINTS_DIR, MANIFEST_FILE, RunStore
from init_lab.runschema.columns import (
    EPOCHS_FILE,
    HISTOGRAMS_FILE,
    LAYERS_FILE,
    STEP_LAYERS_FILE,
    STEPS_FILE,
    TRIAL_FILE,
)
from init_lab.runschema.records import Manifest, TrialRecord

# the columns without which a table is not that table (later columns were added over versions)
REQUIRED_COLUMNS = {
    EPOCHS_FILE: ("epoch", "loss", "accuracy", "val_loss", "val_accuracy"),
    LAYERS_FILE: ("epoch", "layer"),
    STEPS_FILE: ("step", "epoch", "loss"),
    STEP_LAYERS_FILE: ("step", "layer"),
}
CHECKPOINT_META = "meta.json"  # checkpoints.META: the one entry every checkpoint has
STATUSES = {s.value for s in TrialStatus}


@dataclass
class Damage:
    """What is damaged in one run directory: per trial, and the run's own files."""

    trials: dict[str, list[str]] = field(default_factory=dict)  # trial id → what is wrong with its files
    run: list[str] = field(default_factory=list)  # manifest.json, checkpoints/…

    def __bool__(self) -> bool:
        return bool(self.trials or self.run)

    def lines(self) -> list[str]:
        """One line per damaged trial or run file, for a note or a report."""
        return [*self.run, *(f"{tid}: {'; '.join(problems)}" for tid, problems in self.trials.items())]


def read_record(store: RunStore, trial_id: str) -> tuple[TrialRecord | None, str | None]:
    """A trial's trial.json: (record, None); (None, None) where there is none; (None, what is wrong)."""
    path = store.trial_dir(trial_id) / TRIAL_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"{TRIAL_FILE} unreadable ({getattr(exc, 'strerror', None) or type(exc).__name__})"
    try:
        record = json.loads(text)
    except ValueError:
        return None, f"{TRIAL_FILE} is not valid JSON"
    if not isinstance(record, dict) or record.get("status") not in STATUSES:
        return None, f"{TRIAL_FILE} is not a trial record (no valid status)"
    return TrialRecord.from_json(record), None


def trial_problems(store: RunStore, trial_id: str, record: TrialRecord | None, record_problem: str | None,
                   expect_record: bool = False, settled: bool = True) -> list[str]:
    """What is wrong with one trial's files (see the module docstring). ``expect_record``: the run says every
    trial finished, so a missing trial.json is damage too. ``settled``: no writer is in the middle of the run
    (a reader passes False while the manifest says running: a trial retrained from epoch 1 has its new
    epochs.csv written a moment before its new record, so epochs may seem to lack for that moment)."""
    problems = [record_problem] if record_problem else []
    if record is None and record_problem is None and expect_record:
        problems.append(f"{TRIAL_FILE} missing")
    directory = store.trial_dir(trial_id)
    for name in REQUIRED_COLUMNS:
        rows, problem = read_table(directory / name)
        if problem:
            problems.append(problem)
        elif settled and name == EPOCHS_FILE and record is not None and record.status.finished:
            problems += _missing_epochs(rows, record)
    histograms = directory / HISTOGRAMS_FILE
    if histograms.exists() and not _is_zip(histograms):
        problems.append(f"{HISTOGRAMS_FILE} unreadable (not a zip archive)")
    return problems


def _missing_epochs(rows: list[dict[str, str]] | None, record: TrialRecord) -> list[str]:
    """A finished trial's epochs.csv must hold epoch 0 (the initial weights) to its last epoch."""
    if rows is None:
        return [f"{EPOCHS_FILE} missing"]
    try:
        expected = int(record.epochs_run or 0)
        have = {int(r["epoch"]) for r in rows}
    except (TypeError, ValueError):
        return [f"{EPOCHS_FILE} has an epoch that is not a number"]
    lacking = sorted(set(range(expected + 1)) - have)
    if lacking:
        shown = ", ".join(map(str, lacking[:5])) + (" …" if len(lacking) > 5 else "")
        return [f"{EPOCHS_FILE} lacks epoch(s) {shown} of the {expected} its {TRIAL_FILE} records"]
    return []


def read_table(path: Path) -> tuple[list[dict[str, str]] | None, str | None]:
    """A trial's CSV table as rows: (rows, None); (None, None) when missing; (None, what is wrong)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            body = list(reader)
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return None, f"{path.name} unreadable ({getattr(exc, 'strerror', None) or type(exc).__name__})"
    lacking = [c for c in REQUIRED_COLUMNS.get(path.name, ()) if c not in (header or [])]
    if header is None or lacking:
        return None, f"{path.name} unreadable (no {', '.join(lacking) or 'header'} column)"
    short = next((i for i, row in enumerate(body, 2) if len(row) != len(header)), None)
    if short is not None:
        return None, f"{path.name} unreadable (line {short} has {len(body[short - 2])} of {len(header)} fields)"
    return [dict(zip(header, row)) for row in body], None


def read_manifest(store: RunStore) -> tuple[Manifest, str | None]:
    """The run's manifest.json: (manifest, None); an empty Manifest and None where there is none, or what is
    wrong with it."""
    path = store.root / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Manifest(), None
    except (OSError, ValueError) as exc:
        return Manifest(), f"{MANIFEST_FILE} unreadable ({getattr(exc, 'strerror', None) or type(exc).__name__})"
    if not isinstance(manifest, dict):
        return Manifest(), f"{MANIFEST_FILE} unreadable (not a JSON object)"
    return Manifest.from_json(manifest), None


def checkpoint_problems(store: RunStore) -> list[str]:
    """The run's own checkpoints (``RUN/checkpoints/``) that cannot be read: their trials cannot continue
    from them (a resume or an extension trains those trials from epoch 1)."""
    directory = store.root / CHECKPOINTS_DIR
    problems = []
    for path in sorted(directory.glob("*.npz")) if directory.is_dir() else []:
        if not path.exists():
            continue  # replaced or pruned by a sweep writing meanwhile: not damage
        if not _is_zip(path):
            problems.append(f"{CHECKPOINTS_DIR}/{path.name} unreadable (not a zip archive): its trials would "
                            "restart from epoch 1")
            continue
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(z[CHECKPOINT_META].tobytes())
            if not isinstance(meta, dict) or not isinstance(meta.get("trials"), dict):
                raise ValueError("no trial states")
        except FileNotFoundError:
            continue
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            problems.append(f"{CHECKPOINTS_DIR}/{path.name} unreadable ({type(exc).__name__}): its trials would "
                            "restart from epoch 1")
    return problems


def _is_zip(path: Path) -> bool:
    """Whether the file is a whole zip archive (an .npz): its central directory, at the end, reads."""
    try:
        with zipfile.ZipFile(path) as z:
            z.namelist()
        return True
    except FileNotFoundError:
        return True  # deleted meanwhile (a sweep pruning its checkpoints): gone is not damaged
    except (OSError, zipfile.BadZipFile, ValueError, EOFError):
        return False
