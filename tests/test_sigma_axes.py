"""Exact σ_w² and σ_b² as axes (issue 24, items 3–4): the variance_scaling initializer and model.bias_std against
the kernels and biases Keras builds; σ_b = 0 bit-identical to a run without the field; bias_std as a grid axis in
ids, summary, report and API; packed and one-model training agreeing with random biases; the phase diagram's data
and its 6·ξ_c curve."""

from __future__ import annotations

import math

import numpy as np
import pytest

from init_lab.catalog.activations import ACTIVATIONS
from init_lab.catalog.errors import ConfigError
from init_lab.catalog.initializers import INITIALIZERS, TRUNCATED_STD, weight_variance
from init_lab.config.grid import expand
from init_lab.config.loading import config_from_text

from .helpers import TINY, copy_run, invoke, read_csv, run_tables

SHAPE = (400, 600)  # fan_in 400, fan_out 600, fan_avg 500
FANS = {"fan_in": 400, "fan_out": 600, "fan_avg": 500}
BIASED = TINY.replace("model: {kind: mlp, hidden: [16, 16]}", "model: {kind: mlp, hidden: [16, 16], bias_std: 0.3}")


def _kernel(entry: dict, seed: int = 0, layer: int = 0, shape=SHAPE) -> np.ndarray:
    from init_lab.engine.backend import build_initializer

    return np.asarray(build_initializer(INITIALIZERS.resolve(entry), seed, layer)(shape=shape, dtype="float32"),
                      dtype=np.float64)


@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg"])
@pytest.mark.parametrize("distribution", ["normal", "truncated_normal", "uniform"])
def test_variance_scaling_kernels_have_the_exact_variance(mode, distribution):
    scale = 2.5
    entry = {"name": "variance_scaling", "scale": scale, "mode": mode, "distribution": distribution}
    w = _kernel(entry)
    var = scale / FANS[mode]
    assert weight_variance(INITIALIZERS.resolve(entry), SHAPE) == pytest.approx(var, rel=1e-12)
    assert w.std() == pytest.approx(math.sqrt(var), rel=0.01)  # 240,000 draws: the std to ≈ 0.15 %
    assert abs(w.mean()) < 0.01 * math.sqrt(var)
    top = np.abs(w).max() / math.sqrt(var)
    if distribution == "uniform":  # U(−√(3·scale/n), √(3·scale/n))
        assert math.sqrt(3) * 0.999 < top <= math.sqrt(3) * (1 + 1e-6)
    elif distribution == "truncated_normal":  # cut at ±2σ', σ' = σ/.87962566103423978 (Keras' constant)
        assert top <= 2 / TRUNCATED_STD * (1 + 1e-6) and top > 2 / TRUNCATED_STD * 0.99
    else:  # a plain Gaussian: 240,000 draws reach well beyond 2σ' ≈ 2.27σ (P(|z| > 4) ≈ 6e-5)
        assert top > 4.0


def test_variance_scaling_names_defaults_and_errors():
    choice = INITIALIZERS.resolve({"name": "variance_scaling", "scale": 2})
    assert choice.kwargs == {"scale": 2.0, "mode": 0.0, "distribution": 0.0}  # fan_in, a plain Gaussian
    assert choice.label(INITIALIZERS) == "variance_scaling(scale=2)"
    keras_name = INITIALIZERS.resolve({"name": "variance_scaling", "distribution": "truncated_normal"})
    assert keras_name.label(INITIALIZERS) == "variance_scaling(distribution=truncated_normal)"
    # Keras' own spelling of the plain Gaussian is the same choice
    assert INITIALIZERS.resolve({"name": "variance_scaling", "distribution": "untruncated_normal"}) == \
        INITIALIZERS.resolve("variance_scaling")
    with pytest.raises(ValueError, match="fan_avg"):
        INITIALIZERS.resolve({"name": "variance_scaling", "mode": "fan_avgg"})
    with pytest.raises(ValueError, match="> 0"):
        INITIALIZERS.resolve({"name": "variance_scaling", "scale": 0})
    listing = invoke("list", "initializers")
    assert listing.exit_code == 0 and "variance_scaling" in listing.output and ".87962566103423978" in listing.output


def test_bias_std_config_field_and_errors():
    config = config_from_text(BIASED)
    assert {s.bias_std for s in expand(config)} == {0.3}
    assert "sb" not in expand(config)[0].id  # a single σ_b is no axis: ids as before
    with pytest.raises(ConfigError, match="bias_std"):
        config_from_text(BIASED.replace("bias_std: 0.3", "bias_std: -0.1"))
    with pytest.raises(ConfigError, match="bias_std"):
        config_from_text(BIASED.replace("bias_std: 0.3", "bias_sdt: 0.3"))  # did you mean bias_std?


def _specs(text: str):
    return expand(config_from_text(text))


def test_biases_are_drawn_alike_by_keras_and_packed_nets():
    """N(0, σ_b²) biases, seeded like the kernels: the same in the packed MLP and the Keras model of a trial, the same
    for two initializers at one seed, different between seeds and layers; σ_b = 0: exactly 0."""
    from init_lab.engine.nets import KerasNets, PackedMLP

    wide = BIASED.replace("hidden: [16, 16]", "hidden: [2000, 2000]").replace("seed: [0]", "")
    wide = wide.replace("activation: [relu, tanh]", "activation: [relu, tanh]\n  seed: [0, 1]")
    specs = _specs(wide)
    packed = PackedMLP(specs, 64, 10)
    keras_nets = KerasNets(specs, (8, 8), 10)
    for t, spec in enumerate(packed.specs):
        model = keras_nets.models[keras_nets.specs.index(spec)]
        biases = [layer.bias.numpy() for layer in model.layers if hasattr(layer, "bias") and layer.bias is not None]
        assert len(biases) == len(packed.bs) == 3  # two hidden layers and the output layer
        for b_packed, b_keras in zip(packed.bs, biases):
            np.testing.assert_array_equal(b_packed.numpy()[t, 0], b_keras)
        assert biases[0].std() == pytest.approx(0.3, rel=0.05) and abs(biases[0].mean()) < 0.03
    by = {(s.initializer.name, s.activation.name, s.seed): packed.bs[0].numpy()[t, 0] for t, s in enumerate(packed.specs)}
    np.testing.assert_array_equal(by["he_normal", "relu", 0], by["zeros", "tanh", 0])  # same seed ⇒ same biases
    assert not np.array_equal(by["he_normal", "relu", 0], by["he_normal", "relu", 1])
    assert not np.array_equal(packed.bs[0].numpy()[0, 0, :16], packed.bs[1].numpy()[0, 0, :16])
    assert not np.array_equal(packed.bs[0].numpy()[0, 0], packed.ws[0].numpy()[0, 0])
    zero = PackedMLP(_specs(TINY), 64, 10)
    assert all(not b.numpy().any() for b in zero.bs)


def test_conv_layers_draw_biases_too():
    from init_lab.catalog.models import Architecture
    from init_lab.engine.nets import build_keras_model

    spec = _specs(TINY)[0]
    model = build_keras_model(Architecture("mnist_cnn", "cnn"), (28, 28, 1), 10, spec.initializer,
                              spec.activation, 0, 0.2)
    conv = model.get_layer("conv_0").bias.numpy()
    assert conv.shape == (32,) and conv.std() == pytest.approx(0.2, rel=0.35) and conv.any()


def test_zero_bias_std_is_bit_identical_to_a_run_without_the_field(reference_run):
    from pathlib import Path

    from init_lab.catalog.devices import DeviceKind
    from init_lab.run.checkpoints import CheckpointStore

    explicit = TINY.replace("hidden: [16, 16]}", "hidden: [16, 16], bias_std: 0}")
    assert run_tables(reference_run(TINY)) == run_tables(reference_run(explicit))
    old, zero, biased = (config_from_text(t) for t in (TINY, explicit, BIASED))

    def fingerprint(config, spec):
        return CheckpointStore(Path("checkpoints"), config, DeviceKind.CPU).fingerprint(spec)

    for a, b, c in zip(expand(old), expand(zero), expand(biased)):
        # checkpoints saved before the field existed stay valid at σ_b = 0; σ_b > 0 is another computation
        assert fingerprint(old, a) == fingerprint(zero, b) != fingerprint(biased, c)


SWEPT = TINY.replace("activation: [relu, tanh]", "activation: [tanh]\n  bias_std: [0, 0.1]")


def test_bias_std_axis_in_ids_summary_report_and_api(reference_run):
    from init_lab import api
    from init_lab.report.run import load_run
    from init_lab.report.tables import leaderboard, pivot

    run_dir = reference_run(SWEPT)
    ids = sorted(p.name for p in (run_dir / "trials").iterdir())
    assert [i.split("-")[-2] for i in ids] == ["sb0", "sb0.1", "sb0", "sb0.1"]
    summary = read_csv(run_dir / "summary.csv")
    assert [float(r["bias_std"]) for r in summary] == [0.0, 0.1, 0.0, 0.1]
    run = load_run(run_dir)
    assert "bias_std" in run.swept
    assert "bias_std" in leaderboard(run).columns and set(pivot(run)["bias_std"]) == {0.0, 0.1}
    loaded = api.load_run(run_dir)
    assert "bias_std" in loaded.epochs.columns and set(loaded.summary["bias_std"]) == {0.0, 0.1}
    # with σ_b = 0 the trials are the unbiased run's own (ids aside): the same numbers
    plain = run_tables(reference_run(TINY.replace("activation: [relu, tanh]", "activation: [tanh]")))
    swept = run_tables(run_dir)
    assert swept[ids[0]] == plain[next(k for k in plain if k.startswith("000_he_normal-tanh") and "/" not in k)]
    assert swept[ids[1]] != swept[ids[0]]


def test_packed_and_one_model_runs_agree_with_random_biases(reference_run):
    packed, single = run_tables(reference_run(BIASED)), run_tables(reference_run(BIASED, pack=False))
    assert packed.keys() == single.keys()
    for trial in (k for k in packed if "/" not in k):
        for rp, rs in zip(packed[trial], single[trial], strict=True):
            for key in ("loss", "val_loss"):
                assert float(rp[key]) == pytest.approx(float(rs[key]), rel=1e-4), (trial, rp["epoch"], key)


def test_theory_takes_sigma_b2_from_the_config():
    from init_lab.analysis import meanfield as mf
    from init_lab.analysis.theory import stack_tables

    text = TINY.replace("hidden: [16, 16]}", "hidden: [16, 16], bias_std: 0.2236068}")
    rows, _ = stack_tables(config_from_text(text), 0.11)
    assert set(rows["sigma_b2"].round(6)) == {0.05}
    tanh = rows[rows["activation"] == "tanh"].iloc[0]
    assert tanh["critical_sigma_w2"] == pytest.approx(
        mf.critical_sigma_w2(mf.phi(ACTIVATIONS.resolve("tanh")), 0.2236068**2, q0=0.11), rel=1e-6)
    assert 1.7 < tanh["critical_sigma_w2"] < 1.8  # Schoenholz et al. 2017, Fig. 2: ≈ 1.76 at σ_b² = 0.05
    what_if, _ = stack_tables(config_from_text(text), 0.11, sigma_b2=0.0)  # --sigma-b2 still overrides
    assert set(what_if["sigma_b2"]) == {0.0}


PHASE = """
name: tiny-phase
dataset: {name: synthetic, synthetic_train: 300, synthetic_test: 100, validation_split: 0.2}
model: {kind: mlp, width: 8, bias_std: 0.2236068}
grid:
  initializer: [{name: variance_scaling, scale: 1.0}, {name: variance_scaling, scale: 3.0}]
  activation: [tanh]
  depth: [2, 4]
  seed: [0, 1]
training: {epochs: 1, batch_size: 50, optimizer: adam, learning_rate: 0.01, diagnostics: false}
device: cpu
"""


def test_phase_diagram_data_and_its_six_xi_c_curve(reference_run):
    from init_lab.analysis import meanfield as mf
    from init_lab.analysis.theory import input_moment
    from init_lab.report.phase import phase_diagram
    from init_lab.report.run import load_run
    from init_lab.report.tables import entered

    run = load_run(reference_run(PHASE))
    diagram = phase_diagram(run, "best_val_accuracy")
    assert diagram is not None and len(diagram.panels) == 1
    panel = diagram.panels[0]
    assert panel.sigma_b2 == pytest.approx(0.05, rel=1e-6)
    cells = panel.cells.sort_values(["sigma_w2", "depth"])
    assert cells[["sigma_w2", "depth"]].values.tolist() == [[1.0, 2], [1.0, 4], [3.0, 2], [3.0, 4]]
    assert (cells["n"] == 2).all()
    values = entered(run, "best_val_accuracy")
    first = run.summary["trial_id"].str.contains("scale=3") & (run.summary["depth"] == 4)
    assert cells["mean"].iloc[3] == pytest.approx(values[first].mean())
    # the curve: 6·ξ_c from the mean-field fixed point at σ_b² = 0.05, tanh, from the first layer's q
    moment = input_moment("synthetic")[0]
    tanh = mf.phi(run.config.grid.activation[0])
    sb2 = panel.sigma_b2  # 0.2236068²
    for s in (1.0, 3.0):
        fp = mf.fixed_point(tanh, s, sb2, q0=s * moment + sb2)
        row = panel.curve[panel.curve["sigma_w2"] == s].iloc[0]
        assert row["depth_limit"] == pytest.approx(6 * fp.xi_c, rel=1e-9)
    assert panel.critical_sigma_w2 == pytest.approx(mf.critical_sigma_w2(tanh, sb2, q0=moment), rel=1e-9)
    # ordered side: ξ_c = −1/ln χ₁ (c* = 1); the curve peaks at the edge of chaos, far above both ends
    fp1 = mf.fixed_point(tanh, 1.0, sb2, q0=moment + sb2)
    assert panel.curve["xi_c"].iloc[0] == pytest.approx(-1 / math.log(fp1.chi_1), rel=1e-9)
    peak = panel.curve.loc[panel.curve["depth_limit"].idxmax(), "sigma_w2"]
    assert abs(peak - panel.critical_sigma_w2) < 0.05
    assert panel.curve["depth_limit"].max() > 10 * panel.curve["depth_limit"].iloc[[0, -1]].max()



def test_the_report_draws_the_phase_diagram_only_for_its_axes(reference_run, tmp_path):
    from init_lab.report.render import write_report
    from init_lab.report.run import load_run

    run = load_run(copy_run(reference_run(PHASE), tmp_path / "phase"))  # a copy: the reference run is shared
    names = {p.name for p in write_report(run)}
    assert "phase_diagram.png" in names
    page = (run.path / "report" / "report.html").read_text(encoding="utf-8")
    assert 'id="chart-phase"' in page and "6·ξ_c" in page
    assert "phase_diagram.png" in (run.path / "report" / "report.md").read_text(encoding="utf-8")
    plain = load_run(copy_run(reference_run(), tmp_path / "plain"))
    names = {p.name for p in write_report(plain)}
    assert "phase_diagram.png" not in names
    assert "chart-phase" not in (plain.path / "report" / "report.html").read_text(encoding="utf-8")


def test_the_probe_builds_and_predicts_with_the_biases():
    """The probe's networks carry the trial's biases and its theory uses σ_b² = bias_std²: the measured last/first
    pre-activation std ratio of a deep tanh stack at σ_w² = 1 falls in the band predicted at σ_b² = 0.05, where the
    unbiased prediction (the signal decays towards 0) is far off."""
    from init_lab.analysis import meanfield as mf
    from init_lab.run.probe import run_probe

    text = PHASE.replace("depth: [2, 4]", "depth: [12]").replace("width: 8", "width: 256").replace(
        "[{name: variance_scaling, scale: 1.0}, {name: variance_scaling, scale: 3.0}]", "[{name: variance_scaling}]")
    biased = run_probe(config_from_text(text), batch=128, seeds=3, jacobian_examples=0).summary.iloc[0]
    plain = run_probe(config_from_text(text.replace("bias_std: 0.2236068", "bias_std: 0")), batch=128, seeds=3,
                      jacobian_examples=0).summary.iloc[0]
    tanh = mf.phi(ACTIVATIONS.resolve("tanh"))
    assert biased["q_star"] == pytest.approx(mf.fixed_point(tanh, 1.0, 0.2236068**2, q0=1.0).q_star, rel=1e-6)
    assert biased["band_lo"] <= biased["pre_std_ratio"] <= biased["band_hi"]
    assert biased["theory_pre_std_ratio"] > 1.5 * plain["theory_pre_std_ratio"]
    assert biased["pre_std_ratio"] > 1.5 * plain["pre_std_ratio"]
