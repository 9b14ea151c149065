"""Shared fixtures: hermetic environment, tiny configs, one smoke run per session."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]

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


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch, tmp_path):
    """No test sees the developer's data dir, and Keras' cache points at an empty folder."""
    monkeypatch.delenv("INITLAB_DATA_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))


@pytest.fixture
def write_config(tmp_path):
    def write(text: str = TINY, name: str = "cfg.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


def run_tables(run_dir: Path) -> dict[str, list[dict[str, str]]]:
    """Every trial's epochs.csv (timing column dropped), layers.csv, steps.csv, step_layers.csv and
    histograms.npz, exactly as written: what must be bit-identical across runs, resumes and groupings."""
    out = {}
    for d in sorted((Path(run_dir) / "trials").iterdir()):
        with open(d / "epochs.csv", newline="") as f:
            out[d.name] = [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]
        for table in ("layers", "steps", "step_layers"):
            if (d / f"{table}.csv").is_file():
                with open(d / f"{table}.csv", newline="") as f:
                    out[f"{d.name}/{table}"] = list(csv.DictReader(f))
        if (d / "histograms.npz").is_file():
            with np.load(d / "histograms.npz") as z:
                out[d.name + "/histograms"] = [{k: z[k].tolist() for k in sorted(z.files)}]
    return out
