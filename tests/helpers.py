"""Test helpers, one of each: the tiny config, the CLI in and out of process, table readers, run copies,
an import blocker, hostile strings and the one recording observer. Fixtures live in conftest.py."""

from __future__ import annotations

import builtins
import csv
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from init_lab.run.observer import Observer

REPO = Path(__file__).resolve().parents[1]

# 600 synthetic examples (480 train / 120 validation), 2 × 2 combinations, one packed group: a few seconds
TINY = """
name: tiny
dataset: {name: synthetic, synthetic_train: 600, synthetic_test: 200, validation_split: 0.2}
model: {kind: mlp, hidden: [16, 16]}
grid:
  initializer: [he_normal, zeros]
  activation: [relu, tanh]
training: {epochs: 2, batch_size: 50, optimizer: adam, learning_rate: 0.01}
device: cpu
"""

CLI = [sys.executable, "-m", "init_lab.cli"]  # the command line in its own process

# strings that must come out of every report as text, never as markup
HOSTILE = "<script>alert(1)</script>"
HOSTILE_NAME = "he_normal</script><script>alert(1)</script><!--"
HOSTILE_DIR = "run<script>alert(1)<!--x"  # a directory name cannot hold '/', so no '</script>' here


def cli(*args: Any, env: dict[str, str] | None = None, **kwargs: Any) -> subprocess.CompletedProcess:
    """``initlab ARGS`` in a fresh process (unbuffered, text output)."""
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}, **kwargs)


def invoke(*args: Any):
    """``initlab ARGS`` in this process, through typer's CliRunner."""
    from typer.testing import CliRunner

    from init_lab.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def assert_clean_exit(result, code: int) -> None:
    """A CliRunner result that exited with ``code`` through the CLI's own edge: no exception escaped
    (CliRunner catches them, so a traceback never shows in its output and cannot be tested for there)."""
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)


def read_csv(path: str | Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def run_tables(run_dir: str | Path) -> dict[str, list[dict[str, Any]]]:
    """Every trial's epochs.csv (timing column dropped), layers.csv, steps.csv, step_layers.csv and
    histograms.npz, exactly as written: what must be bit-identical across runs, resumes and groupings."""
    out: dict[str, list[dict[str, Any]]] = {}
    for d in sorted((Path(run_dir) / "trials").iterdir()):
        out[d.name] = [{k: v for k, v in r.items() if k != "seconds"} for r in read_csv(d / "epochs.csv")]
        for table in ("layers", "steps", "step_layers"):
            if (d / f"{table}.csv").is_file():
                out[f"{d.name}/{table}"] = read_csv(d / f"{table}.csv")
        if (d / "histograms.npz").is_file():
            with np.load(d / "histograms.npz") as z:
                out[d.name + "/histograms"] = [{k: z[k].tolist() for k in sorted(z.files)}]
    return out


def epoch_values(run_dir: str | Path) -> dict[str, list[dict[str, float]]]:
    """Every trial's epochs.csv as numbers (timing dropped): for comparisons within a tolerance, where two
    implementations (packed and Keras) round differently."""
    return {d.name: [{k: float(v) for k, v in r.items() if k != "seconds"} for r in read_csv(d / "epochs.csv")]
            for d in sorted((Path(run_dir) / "trials").iterdir())}


def copy_run(src: str | Path, dst: str | Path) -> Path:
    """A copy of run directory ``src`` at ``dst`` (a new path), to damage or rewrite freely."""
    shutil.copytree(src, dst)
    return Path(dst)


def block_imports(monkeypatch, *prefixes: str) -> None:
    """Make ``import X`` fail with ImportError for every module named by or under ``prefixes``."""
    real = builtins.__import__

    def blocked(name, *args, **kwargs):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            raise ImportError(f"{name} blocked by the test")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", blocked)


class EventLog(Observer):
    """The observer of the tests: keeps every call in order, as (method, *interesting arguments)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    @property
    def notices(self) -> list[str]:
        return [c[1] for c in self.calls if c[0] == "notice"]

    def group_start(self, specs, position, total, start_epoch=0):
        self.calls.append(("start", specs[0].id, start_epoch))

    def epoch_end(self, spec, row):
        self.calls.append(("epoch", spec.id, row.epoch))

    def trial_end(self, spec, record):
        self.calls.append(("end", spec.id, record.status.value))

    def notice(self, message):
        self.calls.append(("notice", message))


def plant_run(root: Path, text: str, fields: Callable[[Any], dict[str, Any] | None]) -> Path:
    """A run directory of config ``text`` whose trials hold what ``fields(spec)`` returns — trial.json fields over a
    completed one-epoch record (``status`` may say otherwise) — or None (never started): planted values, so every
    statistic has a known answer and no test trains."""
    from init_lab.config.grid import expand
    from init_lab.config.loading import config_from_text
    from init_lab.run.records import pending_record

    root.mkdir(parents=True)
    (root / "trials").mkdir()
    (root / "config.yaml").write_text(text, encoding="utf-8")
    for spec in expand(config_from_text(text)):
        got = fields(spec)
        if got is None:
            continue
        record = {**pending_record(spec).to_json(), "status": "completed", "epochs_run": 1, "best_epoch": 1, **got}
        d = root / "trials" / spec.id
        d.mkdir()
        (d / "trial.json").write_text(json.dumps(record), encoding="utf-8")
        if record["status"] in ("completed", "diverged"):
            (d / "epochs.csv").write_text("epoch,loss,accuracy,val_loss,val_accuracy,seconds\n"
                                          "0,2.3,0.1,2.3,0.1,0.0\n1,0.3,0.9,0.35,0.9,1.0\n", encoding="utf-8")
    manifest = {"status": "completed", "dataset": {"source": "synthetic", "train": 100, "validation": 20, "test": 20},
                "environment": {"device": "cpu"}}
    (root / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return root

