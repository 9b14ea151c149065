"""Per-layer diagnostics, LSUV and `initlab probe`, against hand computations and theory."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from init_lab.analysis.diagnostics import LAYER_COLUMNS, layer_rows, summarize
from init_lab.cli import app
from init_lab.config.schema import config_from_text
from init_lab.run.sweep import run_sweep

from .conftest import TINY


def test_layer_rows_by_hand():
    pre = np.array([[-1.0, 2.0, -3.0], [-2.0, 5.0, 1.0]])  # 2 examples, 3 units
    act = np.maximum(pre, 0)
    g_out = np.array([[1.0, -1.0, 1.0], [1.0, 1.0, -1.0]])
    kernel = np.array([[1.0, -1.0, 3.0]])
    g_k = np.array([[2.0, 0.0, 0.0]])
    (row,) = layer_rows(0, "relu", ["dense_0"], [pre], [act], [g_out], [kernel], [g_k])
    assert row["pre_mean"] == pytest.approx(pre.mean()) and row["pre_std"] == pytest.approx(pre.std())
    assert row["act_mean"] == pytest.approx(8 / 6) and row["act_std"] == pytest.approx(act.std())
    assert row["dead_frac"] == pytest.approx(1 / 3)  # unit 0 is ≤ 0 on both examples
    assert math.isnan(row["saturated_frac"])  # not a saturating activation
    assert row["grad_out_rms"] == pytest.approx(1.0)
    assert row["grad_kernel_rms"] == pytest.approx(math.sqrt(4 / 3))
    assert row["kernel_std"] == pytest.approx(np.std([1.0, -1.0, 3.0]))
    (tanh_row,) = layer_rows(0, "tanh", ["dense_0"], [pre], [np.tanh(pre)], [g_out], [kernel], [g_k])
    assert tanh_row["saturated_frac"] == pytest.approx(2 / 6)  # |x| > 2.18: only -3 and 5
    assert math.isnan(tanh_row["dead_frac"])


def test_model_probe_matches_a_numpy_backprop():
    keras = pytest.importorskip("keras")
    from init_lab.analysis.diagnostics import layer_rows
    from init_lab.config.grid import expand
    from init_lab.config.schema import config_from_text
    from init_lab.engine.nets import KerasNets

    rng = np.random.default_rng(0)
    (spec,) = expand(config_from_text(
        "name: p\nmodel: {kind: mlp, hidden: [5]}\ngrid: {initializer: [he_normal], activation: [tanh]}"))
    net = KerasNets([spec], (4,), 3)
    model = net.models[0]
    w1, b1 = rng.normal(size=(4, 5)), rng.normal(size=5) * 0.1
    w2, b2 = rng.normal(size=(5, 3)), rng.normal(size=3) * 0.1
    model.set_weights([w1, b1, w2, b2])
    x = rng.normal(size=(6, 4)).astype("float32")
    y = np.array([0, 1, 2, 0, 1, 2], dtype="int32")
    signals = net.probe(keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(y))[spec.id]
    (row,) = layer_rows(0, "tanh", *signals)
    z = x @ w1 + b1
    h = np.tanh(z)
    logits = h @ w2 + b2
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    d_logits = (p - np.eye(3)[y]) / len(y)
    d_h = d_logits @ w2.T
    d_w1 = x.T @ (d_h * (1 - h**2))
    assert row["pre_std"] == pytest.approx(z.std(), rel=1e-5)
    assert row["act_mean"] == pytest.approx(h.mean(), rel=1e-4, abs=1e-6)
    assert row["grad_out_rms"] == pytest.approx(np.sqrt(np.mean(d_h**2)), rel=1e-4)
    assert row["grad_kernel_rms"] == pytest.approx(np.sqrt(np.mean(d_w1**2)), rel=1e-4)
    assert row["kernel_std"] == pytest.approx(w1.std(), rel=1e-5)


def layers_of(run_dir, trial_id):
    with open(run_dir / "trials" / trial_id / "layers.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_sweeps_record_layers_csv_and_summaries(tmp_path):
    for pack in (True, False):
        result = run_sweep(config_from_text(TINY), out=tmp_path / str(pack), pack=pack)
        rows = layers_of(result.run_dir, "000_he_normal-relu-s0")
        assert list(rows[0]) == LAYER_COLUMNS
        assert [(int(r["epoch"]), int(r["layer"])) for r in rows] == [(e, i) for e in range(3) for i in range(2)]
        record = result.records[0]
        assert record["diagnostics"]["init_act_std_last_over_first"] > 0
        zeros = layers_of(result.run_dir, "002_zeros-relu-s0")
        assert all(float(r["act_std"]) == 0 for r in zeros)
        assert all(float(r["dead_frac"]) == 1.0 for r in zeros)  # all-zero pre-activations: never active


def test_packed_and_single_diagnostics_agree(tmp_path):
    a = run_sweep(config_from_text(TINY), out=tmp_path / "a", pack=True).run_dir
    b = run_sweep(config_from_text(TINY), out=tmp_path / "b", pack=False).run_dir
    for trial in ("000_he_normal-relu-s0", "001_he_normal-tanh-s0"):
        for ra, rb in zip(layers_of(a, trial), layers_of(b, trial), strict=True):
            for key in ("pre_std", "act_std", "grad_out_rms", "grad_kernel_rms", "kernel_std"):
                assert float(ra[key]) == pytest.approx(float(rb[key]), rel=1e-3), (trial, key)


def test_forced_dead_and_saturated_layers():
    pre = np.full((8, 4), -0.5)
    (dead,) = layer_rows(0, "relu", ["d"], [pre], [np.maximum(pre, 0)], [pre], [pre], [pre])
    assert dead["dead_frac"] == 1.0
    big = np.full((8, 4), 7.0) * np.array([1, -1, 1, -1])
    (sat,) = layer_rows(0, "tanh", ["d"], [big], [np.tanh(big)], [big], [big], [big])
    assert sat["saturated_frac"] == 1.0
    (sig,) = layer_rows(0, "sigmoid", ["d"], [big], [1 / (1 + np.exp(-big))], [big], [big], [big])
    assert sig["saturated_frac"] == 1.0


def test_summary_figures():
    rows = [
        {"epoch": 0, "layer": 0, "act_std": 2.0, "grad_out_rms": 1.0, "dead_frac": 0.1, "saturated_frac": math.nan},
        {"epoch": 0, "layer": 1, "act_std": 0.5, "grad_out_rms": 4.0, "dead_frac": 0.3, "saturated_frac": math.nan},
        {"epoch": 1, "layer": 0, "act_std": 1.0, "grad_out_rms": 1.0, "dead_frac": 0.6, "saturated_frac": math.nan},
    ]
    s = summarize(rows)
    assert s["init_act_std_last_over_first"] == 0.25 and s["init_grad_rms_last_over_first"] == 4.0
    assert s["peak_dead_frac"] == 0.6 and s["peak_saturated_frac"] is None


DEEP = """
name: deep
dataset: {name: synthetic, synthetic_train: 400, synthetic_test: 100}
model: {kind: deep_mlp, depth: 30, width: 256}
grid:
  initializer: [he_normal, glorot_uniform, glorot2010_standard, lsuv]
  activation: [relu, tanh]
device: cpu
"""


def test_lsuv_reaches_its_tolerance_and_logs_it(tmp_path):
    cfg = config_from_text(DEEP, overrides=["grid.initializer=[lsuv]", "grid.activation=[relu]", "training.epochs=1",
                                            "model.depth=20", "model.width=64"])
    for pack in (True, False):
        record = run_sweep(cfg, out=tmp_path / str(pack), pack=pack).records[0]
        log = record["lsuv"]
        assert [e["layer"] for e in log] == [f"dense_{i}" for i in range(20)] + ["output"]
        assert all(abs(e["final_variance"] - 1) < 0.1 for e in log)
        assert all(0 <= e["iterations"] <= 10 for e in log) and log[0]["iterations"] >= 1


def test_probe_deep_relu_matches_theory(tmp_path, write_config):
    from init_lab.run.probe import run_probe

    result = run_probe(config_from_text(DEEP))
    s = result.summary.set_index("combination")
    he, glorot = s.loc["he_normal + relu"], s.loc["glorot_uniform + relu"]
    # He keeps the signal; Glorot halves the second moment per ReLU layer: (1/2)^(29/2) ≈ 4e-5 in std
    assert 0.3 < he["pre_std_last_over_first"] < 3
    assert he["theory_pre_std_last_over_first"] == pytest.approx(1.0)
    assert glorot["theory_pre_std_last_over_first"] == pytest.approx(0.5 ** 14.5, rel=1e-6)
    assert glorot["pre_std_last_over_first"] < 1e-3
    assert abs(math.log10(glorot["pre_std_last_over_first"] / glorot["theory_pre_std_last_over_first"])) < 0.7
    assert "activations vanish" in glorot["flags"] and "vanish" not in he["flags"]
    # Glorot & Bengio's standard init in the tanh (linear) regime: about 1/3 of the second moment per layer
    std2010 = s.loc["glorot2010_standard + tanh"]
    assert std2010["pre_std_last_over_first"] < 1e-4
    lsuv = s.loc["lsuv + relu"]
    assert 0.5 < lsuv["pre_std_last_over_first"] < 2

    result = CliRunner().invoke(app, ["probe", str(write_config(DEEP)), "--out", str(tmp_path / "p")])
    assert result.exit_code == 0, result.output
    assert "he_normal" in result.output and "vanish" in result.output
    (probe_dir,) = (tmp_path / "p").iterdir()
    assert {p.name for p in probe_dir.iterdir()} == {"probe_layers.csv", "probe_summary.csv", "probe.png"}
    assert (probe_dir / "probe.png").stat().st_size > 20_000


def test_selu_lecun_self_normalizes():
    from init_lab.run.probe import run_probe

    cfg = config_from_text(DEEP, overrides=["grid.initializer=[lecun_normal]", "grid.activation=[selu]"])
    layers = run_probe(cfg).layers
    deep = layers[layers["layer"] >= 10]
    assert deep["act_mean"].abs().max() < 0.25
    assert deep["act_std"].between(0.75, 1.25).all()
