"""Per-layer diagnostics, LSUV and `initlab probe`, against hand computations and theory."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from init_lab.analysis.diagnostics import LayerSignals, layer_rows, summarize
from init_lab.config.loading import config_from_text
from init_lab.run.sweep import run_sweep
from init_lab.runschema.columns import LAYER_COLUMNS

from .helpers import TINY, read_csv


def test_layer_rows_by_hand():
    pre = np.array([[-1.0, 2.0, -3.0], [-2.0, 5.0, 1.0]])  # 2 examples, 3 units
    act = np.maximum(pre, 0)
    g_out = np.array([[1.0, -1.0, 1.0], [1.0, 1.0, -1.0]])
    kernel = np.array([[1.0, -1.0, 3.0]])
    g_k = np.array([[2.0, 0.0, 0.0]])
    (row,) = layer_rows(0, "relu", LayerSignals(["dense_0"], [pre], [act], [g_out], [kernel], [g_k]))
    assert row["pre_mean"] == pytest.approx(pre.mean()) and row["pre_std"] == pytest.approx(pre.std())
    assert row["act_mean"] == pytest.approx(8 / 6) and row["act_std"] == pytest.approx(act.std())
    assert row["dead_frac"] == pytest.approx(1 / 3)  # unit 0 is ≤ 0 on both examples
    assert math.isnan(row["saturated_frac"])  # not a saturating activation
    assert math.isnan(row["negative_frac"])  # relu's units are dead, not "negative"
    assert row["grad_out_rms"] == pytest.approx(1.0)
    assert row["grad_kernel_rms"] == pytest.approx(math.sqrt(4 / 3))
    assert row["kernel_std"] == pytest.approx(np.std([1.0, -1.0, 3.0]))
    (tanh_row,) = layer_rows(0, "tanh", LayerSignals(["dense_0"], [pre], [np.tanh(pre)], [g_out], [kernel], [g_k]))
    assert tanh_row["saturated_frac"] == pytest.approx(2 / 6)  # |x| > 2.18: only -3 and 5
    assert math.isnan(tanh_row["dead_frac"]) and math.isnan(tanh_row["negative_frac"])


@pytest.mark.parametrize("activation", ["leaky_relu", "elu", "selu", "prelu"])
def test_negative_regime_is_not_dead(activation):
    pre = np.array([[-1.0, 2.0, -3.0, 0.0], [-2.0, -5.0, 1.0, -1.0]])  # unit 3 touches 0: not strictly negative
    (row,) = layer_rows(0, activation, LayerSignals(["d"], [pre], [pre], [pre], [pre], [pre]))
    assert row["negative_frac"] == pytest.approx(1 / 4)  # unit 0 is < 0 on every example; it still has a gradient
    assert math.isnan(row["dead_frac"]) and math.isnan(row["saturated_frac"])


@pytest.mark.parametrize("activation, x, saturated", [
    ("sigmoid", 4.355, False), ("sigmoid", 4.358, True),  # ln((1+√.95)/(1−√.95)) = 4.3565
    ("tanh", 2.177, False), ("tanh", 2.180, True),
    ("lecun_tanh", 3.266, False), ("lecun_tanh", 3.269, True),
    ("softsign", 3.471, False), ("softsign", 3.473, True),
])
def test_saturation_at_the_registry_threshold(activation, x, saturated):
    pre = np.array([[x, -x], [0.0, 0.0]])
    (row,) = layer_rows(0, activation, LayerSignals(["d"], [pre], [pre], [pre], [pre], [pre]))
    assert row["saturated_frac"] == (0.5 if saturated else 0.0)
    assert math.isnan(row["dead_frac"]) and math.isnan(row["negative_frac"])


def test_conv_units_are_channels_and_a_blank_patch_is_not_dead():
    pre = np.full((2, 4, 4, 3), 1.0)  # (examples, height, width, channels)
    pre[:, :2, :2, :] = -1.0  # a blank patch: every channel ≤ 0 there, in every example
    pre[:, :, :, 1] = -0.5  # channel 1: ≤ 0 at every position of every example
    pre[0, :, :, 2] = -0.5  # channel 2: ≤ 0 everywhere in example 0 only
    (row,) = layer_rows(0, "relu", LayerSignals(["conv_0"], [pre], [np.maximum(pre, 0)], [pre], [pre], [pre]))
    assert row["units"] == 3
    assert row["dead_frac"] == pytest.approx(1 / 3)  # channel 1 only
    (leaky,) = layer_rows(0, "leaky_relu", LayerSignals(["conv_0"], [pre], [pre], [pre], [pre], [pre]))
    assert leaky["negative_frac"] == pytest.approx(1 / 3)
    pre[1, 3, 3, 1] = 0.1  # one positive position in one example brings the channel back
    (row,) = layer_rows(0, "relu", LayerSignals(["conv_0"], [pre], [np.maximum(pre, 0)], [pre], [pre], [pre]))
    assert row["dead_frac"] == 0.0


def test_model_probe_matches_a_numpy_backprop():
    keras = pytest.importorskip("keras")
    from init_lab.analysis.diagnostics import layer_rows
    from init_lab.config.grid import expand
    from init_lab.config.loading import config_from_text
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
    (row,) = layer_rows(0, "tanh", signals)
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
    return read_csv(run_dir / "trials" / trial_id / "layers.csv")


def test_sweeps_record_layers_csv_and_summaries(tmp_path):
    for pack in (True, False):
        result = run_sweep(config_from_text(TINY), out=tmp_path / str(pack), pack=pack)
        rows = layers_of(result.run_dir, "000_he_normal-relu-s0")
        assert list(rows[0]) == LAYER_COLUMNS
        assert [(int(r["epoch"]), int(r["layer"])) for r in rows] == [(e, i) for e in range(3) for i in range(2)]
        record = result.records[0]
        assert record.diagnostics["init_act_std_last_over_first"] > 0
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
    (dead,) = layer_rows(0, "relu", LayerSignals(["d"], [pre], [np.maximum(pre, 0)], [pre], [pre], [pre]))
    assert dead["dead_frac"] == 1.0
    big = np.full((8, 4), 7.0) * np.array([1, -1, 1, -1])
    (sat,) = layer_rows(0, "tanh", LayerSignals(["d"], [big], [np.tanh(big)], [big], [big], [big]))
    assert sat["saturated_frac"] == 1.0
    (sig,) = layer_rows(0, "sigmoid", LayerSignals(["d"], [big], [1 / (1 + np.exp(-big))], [big], [big], [big]))
    assert sig["saturated_frac"] == 1.0


def test_summary_figures():
    rows = [
        {"epoch": 0, "layer": 0, "act_std": 2.0, "grad_out_rms": 1.0, "dead_frac": 0.1, "saturated_frac": math.nan},
        {"epoch": 0, "layer": 1, "act_std": 0.5, "grad_out_rms": 4.0, "dead_frac": 0.3, "saturated_frac": math.nan},
        {"epoch": 1, "layer": 0, "act_std": 1.0, "grad_out_rms": 1.0, "dead_frac": 0.6, "saturated_frac": math.nan},
    ]
    s = summarize(rows)  # rows without negative_frac: recorded before the column existed
    assert s["init_act_std_last_over_first"] == 0.25 and s["init_grad_rms_last_over_first"] == 4.0
    assert s["peak_dead_frac"] == 0.6 and s["peak_saturated_frac"] is None and s["peak_negative_frac"] is None
    rows[1]["negative_frac"] = 0.2
    assert summarize(rows)["peak_negative_frac"] == 0.2


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
        log = record.lsuv
        assert [e["layer"] for e in log] == [f"dense_{i}" for i in range(20)]  # hidden layers only
        assert all(abs(e["final_variance"] - 1) < 0.1 and "skipped" not in e for e in log)
        assert all(0 <= e["iterations"] <= 10 for e in log) and log[0]["iterations"] >= 1


LSUV_NET = """
name: lsuv
model: {kind: mlp, hidden: [64, 16, 48]}
grid: {initializer: [lsuv, {name: lsuv, min_width: 8}, he_normal], activation: [tanh]}
"""


@pytest.mark.parametrize("pack", [True, False])
def test_lsuv_rescales_wide_hidden_layers_only(pack):
    keras = pytest.importorskip("keras")
    from init_lab.catalog.models import net_kind
    from init_lab.config.grid import expand
    from init_lab.engine.nets import build_net

    specs = expand(config_from_text(LSUV_NET))
    x = np.random.default_rng(0).random((256, 20)).astype("float32")  # [0, 1] "pixels"

    def weights(net):
        return {s.id: ws for s, ws in zip(net.specs, net.per_trial(net.variables))}

    net = build_net(net_kind(specs[0].arch, pack), specs, (20,), 10)
    before = weights(net)
    logs = net.lsuv(keras.ops.convert_to_tensor(x))
    after = weights(net)
    default, wide, he = specs
    assert set(logs) == {default.id, wide.id}  # he_normal trials are left alone
    assert all(np.array_equal(a, b) for a, b in zip(before[he.id], after[he.id]))
    # kernels are variables 0, 2, 4, 6 (dense_0, dense_1, dense_2, output); the output layer is never rescaled
    for spec in (default, wide):
        np.testing.assert_array_equal(before[spec.id][6], after[spec.id][6])
        assert [e["layer"] for e in logs[spec.id]] == ["dense_0", "dense_1", "dense_2"]
    # min_width 32: the 16-wide layer keeps its orthogonal init and says why; min_width 8 rescales it
    np.testing.assert_array_equal(before[default.id][2], after[default.id][2])
    assert logs[default.id][1]["iterations"] == 0 and "16 < 32" in logs[default.id][1]["skipped"]
    assert not np.array_equal(before[wide.id][2], after[wide.id][2]) and "skipped" not in logs[wide.id][1]
    for spec, rescaled in ((default, (0, 2)), (wide, (0, 1, 2))):
        w = [np.asarray(a, dtype=np.float64) for a in after[spec.id][0:6:2]]
        h, variances = x.astype(np.float64), []
        for kernel in w:  # biases are 0 at initialization
            z = h @ kernel
            variances.append(z.var())
            h = np.tanh(z)
        for i in rescaled:
            assert abs(variances[i] - 1) < 0.1, (spec.id, i, variances)
            assert logs[spec.id][i]["final_variance"] == pytest.approx(variances[i], rel=1e-3)


def test_lsuv_runs_on_a_training_batch_not_the_probe_batch():
    pytest.importorskip("keras")
    from init_lab.catalog.datasets import make_synthetic, prepare
    from init_lab.catalog.models import NetKind
    from init_lab.config.grid import expand
    from init_lab.engine.data import DeviceData, Recording
    from init_lab.engine.loop import _fresh
    from init_lab.engine.nets import build_net

    prepared = prepare(make_synthetic(300, 50), "mlp", 0.2)
    data = DeviceData.from_prepared(prepared, Recording(diagnostics=False), probe_size=40)
    np.testing.assert_array_equal(np.asarray(data.x_lsuv), prepared.x_train[:40])
    np.testing.assert_array_equal(np.asarray(data.x_probe), prepared.x_val[:40])
    data.x_lsuv = data.x_lsuv * 3.0  # a batch whose statistics differ from the probe batch's
    (spec,) = expand(config_from_text("name: l\nmodel: {kind: mlp, hidden: [32]}\n"
                                      "grid: {initializer: [lsuv], activation: [relu]}"))
    net = build_net(NetKind.KERAS, [spec], data.input_shape, 10)
    _fresh(net, data)
    kernel = np.asarray(net.models[0].get_layer("dense_0").kernel, dtype=np.float64)
    assert abs((np.asarray(data.x_lsuv, dtype=np.float64) @ kernel).var() - 1) < 0.1  # unit variance on it
    assert (np.asarray(data.x_probe, dtype=np.float64) @ kernel).var() < 0.2  # ≈ 1/9 on the probe batch


def test_probe_deep_relu_and_tanh_against_theory():
    from init_lab.run.probe import run_probe

    result = run_probe(config_from_text(DEEP), seeds=2, jacobian_examples=0)
    s = result.summary.set_index("combination")
    he, glorot = s.loc["he_normal + relu"], s.loc["glorot_uniform + relu"]
    # He keeps the signal; Glorot halves the second moment per ReLU layer: (1/2)^(29/2) ≈ 4e-5 in std
    assert he["theory_pre_std_ratio"] == pytest.approx(1.0)
    assert glorot["theory_pre_std_ratio"] == pytest.approx(0.5 ** 14.5, rel=1e-6)
    assert glorot["pre_std_ratio"] < 1e-3 and "signal vanishing" in glorot["flags"]
    assert glorot["vs_theory"] == "within band" and "signal" not in he["flags"]
    # he + relu's two seeds (0.55, 0.40) are both low: their geometric mean falls below the band of a 2-seed mean
    # (sd/√2), a ≈ 1-in-100 draw (over 12 seeds it is 1.03); one seed lies in the one-network band
    assert he["seeds_in_band"] >= 1 and he["band_lo"] < 1 < he["band_hi"]
    # Glorot & Bengio's standard init in the tanh (linear) regime: about 1/3 of the second moment per layer
    std2010 = s.loc["glorot2010_standard + tanh"]
    assert std2010["pre_std_ratio"] < 1e-4 and std2010["vs_theory"] == "within band"
    lsuv = s.loc["lsuv + relu"]  # rescaled on training data, measured on validation data: ≈ 1
    assert 0.5 < lsuv["pre_std_ratio"] < 2 and lsuv["theory_pre_std_ratio"] == pytest.approx(1.0)
    assert result.spectra.empty and "jac_mean_sq" in s.columns


def test_selu_lecun_self_normalizes():
    from init_lab.run.probe import run_probe

    cfg = config_from_text(DEEP, overrides=["grid.initializer=[lecun_normal]", "grid.activation=[selu]"])
    layers = run_probe(cfg, seeds=1, jacobian_examples=0).layers
    deep = layers[layers["layer"] >= 10]
    assert deep["act_mean"].abs().max() < 0.25
    assert deep["act_std"].between(0.75, 1.25).all()


@pytest.mark.slow
def test_runs_recorded_before_negative_frac_still_report(tmp_path):
    import json

    from init_lab.report.plots import diagnostics_plot
    from init_lab.report.render import write_report
    from init_lab.report.run import load_run

    cfg = config_from_text(TINY, overrides=["grid.activation=[relu, leaky_relu]", "grid.initializer=[he_normal]",
                                            "training.epochs=1"])
    result = run_sweep(cfg, out=tmp_path)
    leaky = layers_of(result.run_dir, "001_he_normal-leaky_relu-s0")
    assert all(math.isnan(float(r["dead_frac"])) and 0 <= float(r["negative_frac"]) <= 1 for r in leaky)
    assert 0 <= result.records[1].diagnostics["peak_negative_frac"] <= 1
    assert diagnostics_plot(load_run(result.run_dir)) is not None
    for trial in (result.run_dir / "trials").iterdir():  # as an older initlab wrote them
        rows = read_csv(trial / "layers.csv")
        columns = [c for c in rows[0] if c != "negative_frac"]
        with open(trial / "layers.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        record = json.loads((trial / "trial.json").read_text())
        record["diagnostics"].pop("peak_negative_frac")
        (trial / "trial.json").write_text(json.dumps(record))
    run = load_run(result.run_dir)
    assert "negative_frac" not in run.layers
    assert diagnostics_plot(run) is not None
    assert any(p.name == "diagnostics.png" for p in write_report(run))


def test_layer_rows_keep_their_precision_where_every_value_is_nearly_the_same():
    """A saturated layer (tanh at 5 ± 0.001: activations 0.99991 ± 10⁻⁷): the moments of layers.csv are NumPy's
    two-pass ones to float64 rounding (one pass of sums, E[x²] − E[x]², was 28 % off in act_std)."""
    rng = np.random.default_rng(0)
    pre = (rng.standard_normal((64, 5, 5, 8)) * 1e-3 + 5).astype(np.float32)
    act, grad = np.tanh(pre), (rng.standard_normal(pre.shape) * 1e-4).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 1, 8)).astype(np.float32)
    row = layer_rows(0, "tanh", LayerSignals(["conv"], [pre], [act], [grad], [kernel], [kernel], [grad]))[0]
    units = pre.astype(np.float64).reshape(-1, 8)
    assert row["act_std"] == pytest.approx(act.astype(np.float64).std(), rel=1e-9)
    assert row["pre_std"] == pytest.approx(units.std(), rel=1e-9)
    assert row["channel_var"] == pytest.approx(units.var(axis=0).mean(), rel=1e-9)
    assert row["channel_sq_mean"] == pytest.approx((units.mean(axis=0) ** 2).mean(), rel=1e-12)
