"""A sweep's Keras groups of one structure share one model, optimizer and set of traces (``engine.programs``):
each later group takes its own initial values, a fresh optimizer state and its learning rate, and computes
exactly what it computes alone."""

from __future__ import annotations

import pytest

from init_lab.catalog import defaults
from init_lab.config.loading import config_from_text
from init_lab.engine import programs
from init_lab.run.sweep import run_sweep

from .helpers import run_tables

UNPACKED = """
name: keras
dataset: {name: synthetic, synthetic_train: 200, synthetic_test: 40, validation_split: 0.2}
model: {kind: mlp, hidden: [12, 12, 12], residual: true, normalization: batchnorm}
grid:
  initializer: [he_normal, skipinit, glorot_uniform]
  activation: [relu, prelu]
  learning_rate: [0.01, 0.003]
training: {epochs: 2, batch_size: 40, optimizer: adam, log_every_steps: 2}
device: cpu
"""


@pytest.fixture
def compiles(monkeypatch):
    """How many times the sweeps below compile a group's passes."""
    calls = []
    original = programs.compile_steps

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(programs, "compile_steps", counted)
    return calls


def test_groups_of_one_structure_compile_once_and_train_as_they_would_alone(tmp_path, compiles, monkeypatch):
    config = config_from_text(UNPACKED)  # 12 Keras groups (not packed): 2 activations × SkipInit's gate or none
    shared = run_sweep(config, out=tmp_path / "shared", pack=False)
    assert shared.count("completed") == 12
    assert len(compiles) == 4  # relu, prelu × (a plain block, SkipInit's α): the rest reuse those programs
    compiles.clear()
    monkeypatch.setattr(defaults, "PROGRAM_CACHE_ENTRIES", 0)  # every group its own model and traces
    alone = run_sweep(config, out=tmp_path / "alone", pack=False)
    assert len(compiles) == 12
    # weights, BatchNorm's averages, Adam's slots and step, the learning rate: every table bit-identical
    assert run_tables(shared.run_dir) == run_tables(alone.run_dir)


def test_structures_beyond_the_cache_are_rebuilt_oldest_first(tmp_path, compiles, monkeypatch):
    config = config_from_text(UNPACKED.replace("[he_normal, skipinit, glorot_uniform]", "[he_normal, glorot_uniform]"))
    run_sweep(config, out=tmp_path / "kept", pack=False)
    assert len(compiles) == 2  # relu and prelu, each kept for the 3 later groups of its activation
    compiles.clear()
    monkeypatch.setattr(defaults, "PROGRAM_CACHE_ENTRIES", 1)
    run_sweep(config, out=tmp_path / "one", pack=False)
    # grid order (learning rate fastest): relu ×2, prelu ×2, relu ×2, prelu ×2: one kept structure, 4 compiles
    assert len(compiles) == 4


def test_a_model_larger_than_the_cache_allows_is_not_kept(tmp_path, compiles, monkeypatch):
    monkeypatch.setattr(defaults, "PROGRAM_CACHE_BYTES", 1000)  # below these models' few thousand parameters
    config = config_from_text(UNPACKED.replace("[relu, prelu]", "[relu]").replace("[0.01, 0.003]", "[0.01]"))
    run_sweep(config, out=tmp_path / "runs", pack=False)
    assert len(compiles) == 3
