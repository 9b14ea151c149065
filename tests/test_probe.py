"""`initlab probe` over seeds against mean-field theory, the Jacobian spectrum, and `initlab theory`."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from init_lab.cli import app
from init_lab.config.loading import load_config
from init_lab.config.schema import SweepConfig
from init_lab.run.probe import combinations, probe_seeds, run_probe

from .helpers import assert_clean_exit

runner = CliRunner()

DEEP = {
    "name": "deep",
    "dataset": {"name": "mnist_sample"},
    "model": {"kind": "mlp", "depth": 30, "width": 128},
    "grid": {"initializer": ["lecun_normal", "he_normal", "glorot_normal"],
             "activation": ["tanh", "softsign", "selu", "gelu", "relu"], "seed": [0, 1, 2]},
}


@pytest.fixture(scope="module")
def deep(tmp_path_factory):
    path = tmp_path_factory.mktemp("deep") / "deep.yaml"
    path.write_text(yaml.safe_dump(DEEP))
    result = run_probe(load_config(path, []), batch=128, jacobian_examples=2)
    return result.summary.set_index("combination"), result


@pytest.mark.slow
def test_measured_ratios_fall_in_the_theory_band_over_seeds(deep):
    summary, _ = deep
    assert len(summary) == 15 and (summary["seeds"] == 3).all()
    for combo, r in summary.iterrows():
        # the geometric mean over 3 seeds lies in the ≈95 % band of one network: a wide margin
        assert r["vs_theory"] == "within band", (combo, r["pre_std_ratio"], r["band_lo"], r["band_hi"])
        spread = math.exp(2 * r["noise_sd"])
        assert r["theory_act_std_ratio"] / spread < r["act_std_ratio"] < r["theory_act_std_ratio"] * spread, combo
        assert r["theory_grad_rms_ratio"] / spread**2 < r["grad_rms_ratio"] < r["theory_grad_rms_ratio"] * spread**2, combo
        assert r["theory_jac_mean_sq"] / spread**4 < r["jac_mean_sq"] < r["theory_jac_mean_sq"] * spread**4, combo


def test_flags_compare_with_the_finite_width_band(deep):
    summary, _ = deep
    assert "signal exploding" in summary.loc["he_normal + selu", "flags"]  # ≈ 30× at depth 30: not "ok"
    assert "signal" not in summary.loc["he_normal + relu", "flags"]  # He et al.: preserved, within noise
    assert "signal vanishing" in summary.loc["glorot_normal + relu", "flags"]
    assert "signal vanishing" in summary.loc["lecun_normal + tanh", "flags"]  # 0.37: shrinks beyond noise
    he_relu = summary.loc["he_normal + relu"]
    assert he_relu["band_lo"] < 1 < he_relu["band_hi"] and he_relu["theory_pre_std_ratio"] == pytest.approx(1.0)


def test_probe_layers_carry_every_seed_and_the_theory(deep):
    _, result = deep
    layers = result.layers
    assert sorted(layers["seed"].unique()) == [0, 1, 2]
    one = layers[(layers["combination"] == "he_normal + relu") & (layers["seed"] == 1)].sort_values("layer")
    assert len(one) == 30 and one["theory_pre_std_ratio"].iloc[0] == pytest.approx(1.0)
    assert {"dead_frac", "negative_frac", "theory_act_std_ratio", "theory_grad_rms_ratio"} <= set(layers.columns)
    spectra = result.spectra
    assert len(spectra[spectra["combination"] == "he_normal + relu"]) == 3 * 2 * 128  # seeds × examples × min(h, 784)


def test_seeds_default_to_five_when_the_grid_has_one():
    one = SweepConfig.model_validate({"name": "s", "grid": {"initializer": ["he_normal"], "activation": ["relu"], "seed": [3]}})
    assert probe_seeds(one) == [3, 4, 5, 6, 7]
    assert probe_seeds(one, 2) == [3, 4]
    many = SweepConfig.model_validate({"name": "s", "grid": {"initializer": ["he_normal"], "activation": ["relu"], "seed": [1, 9]}})
    assert probe_seeds(many) == [1, 9]
    assert [s.seed for s in combinations(one, [3, 4])] == [3, 4]


@pytest.mark.parametrize("activation", ["tanh", "prelu"])
def test_packed_jacobian_equals_autodiff(activation):
    """The packed chain product against TensorFlow's batch_jacobian of the same trial as a Keras model."""
    from init_lab.engine.backend import tf
    from init_lab.engine.nets import KerasNets, PackedMLP

    config = SweepConfig.model_validate({"name": "j", "model": {"kind": "mlp", "hidden": [24, 16, 16]},
                                         "grid": {"initializer": ["orthogonal", "he_normal"], "activation": [activation]}})
    specs = combinations(config, [0])
    x = tf.constant(np.random.default_rng(0).random((3, 784), dtype=np.float32))
    packed = PackedMLP(specs, 784, 10).jacobian(x)
    keras = KerasNets(specs, (784,), 10).jacobian(x)
    for s in specs:  # log singular values (analysis.jacobian.Spectrum)
        assert packed[s.id].log_s.shape == (3, 16)
        np.testing.assert_allclose(np.exp(packed[s.id].log_s), np.exp(keras[s.id].log_s), rtol=2e-4, atol=1e-6)


def test_probe_cli_writes_spectra_and_refuses_impossible_options(tmp_path, write_config):
    cfg = write_config(yaml.safe_dump({"name": "p", "model": {"kind": "mlp", "depth": 4, "width": 32},
                        "grid": {"initializer": ["he_normal", "zeros"], "activation": ["relu"]}}))
    r = runner.invoke(app, ["probe", str(cfg), "--out", str(tmp_path / "runs"), "--batch", "16", "--seeds", "2"])
    assert r.exit_code == 0, r.output
    assert "seeds 0, 1" in r.output and "no theory: zero weights" in r.output
    run = next((tmp_path / "runs").iterdir())
    assert {"probe.png", "jacobian.png", "probe_spectra.csv", "probe_summary.csv"} <= {p.name for p in run.iterdir()}
    summary = pd.read_csv(run / "probe_summary.csv")
    assert set(summary["seeds"]) == {2}
    bad = runner.invoke(app, ["probe", str(cfg), "--batch", "8", "--jacobian-examples", "9"])
    assert bad.exit_code != 0 and "exceeds the probe batch" in bad.output


def test_theory_cli_prints_critical_variances(tmp_path, write_config):
    """(That it imports no TensorFlow is checked in test_imports.)"""
    cfg = write_config(yaml.safe_dump({"name": "t", "model": {"kind": "mlp", "depth": 10, "width": 64},
                        "grid": {"initializer": ["he_normal", "lecun_normal", "constant"], "activation": ["relu", "tanh"]}}))
    done = runner.invoke(app, ["theory", str(cfg), "--out", str(tmp_path / "out")])
    assert_clean_exit(done, 0)
    assert "critical" in done.output.lower()
    rows = pd.read_csv(next((tmp_path / "out").iterdir()) / "theory.csv")
    crit = rows.groupby("activation")["critical_sigma_w2"].first()
    assert crit["relu"] == pytest.approx(2.0, rel=1e-6) and crit["tanh"] == pytest.approx(1.0, rel=1e-6)
    he_relu = rows[(rows["initializer"] == "he_normal") & (rows["activation"] == "relu")].iloc[0]
    assert he_relu["chi_1"] == pytest.approx(1.0) and he_relu["pre_std_ratio"] == pytest.approx(1.0)
    assert "not zero-mean" in rows[rows["initializer"] == "constant"]["note"].iloc[0]
    assert (next((tmp_path / "out").iterdir()) / "theory.png").stat().st_size > 1000


def test_packed_jacobian_of_a_deep_tanh_net_against_the_explicit_float64_svd():
    """The engine's float64 QR accumulation (analysis.jacobian through PackedMLP) against NumPy's SVD of the
    Jacobian written out in float64 from the same kernels and pre-activations."""
    from init_lab.engine.backend import tf
    from init_lab.engine.nets import PackedMLP

    config = SweepConfig.model_validate({"name": "j", "model": {"kind": "mlp", "hidden": [16] * 8},
                                         "grid": {"initializer": ["lecun_normal"], "activation": ["tanh"]}})
    (spec,) = combinations(config, [0])
    net = PackedMLP([spec], 784, 10)
    x = tf.constant(np.random.default_rng(1).random((2, 784), dtype=np.float32))
    spectrum = net.jacobian(x)[spec.id]
    kernels = [np.asarray(w[0], dtype=np.float64) for w in net.ws[:-1]]
    pres = [np.asarray(z[0], dtype=np.float64) for z in net.forward(x)[0]]
    for example in range(2):
        j = kernels[0].T
        for w, z in zip(kernels[1:], pres[:-1]):
            j = w.T @ ((1 - np.tanh(z[example]) ** 2)[:, None] * j)
        s = np.linalg.svd(j, compute_uv=False)
        assert spectrum.rank[example] == 16 and s[0] / s[-1] < 1e10
        np.testing.assert_allclose(np.exp(spectrum.log_s[example]), s, rtol=1e-6)


def test_probe_condition_numbers_are_not_a_float32_floor(deep):
    """float32 Jacobians and eigvalsh of JᵀJ capped s_max/s_min at ≈ 10⁸; the QR accumulation resolves Gaussian
    tanh nets' ≈ 10³⁰⁺ and says ∞ where ReLU's Jacobian is rank-deficient."""
    summary, result = deep
    tanh = summary.loc["lecun_normal + tanh"]
    assert tanh["jac_rank"] == tanh["jac_k"] == 128 and 20 < tanh["log10_condition_min"] <= tanh["log10_condition"]
    relu = summary.loc["he_normal + relu"]
    assert relu["log10_condition"] == math.inf and relu["jac_rank"] < relu["jac_k"]
    spectra = result.spectra[result.spectra["combination"] == "he_normal + relu"]
    assert (spectra["singular_value"] == 0).any() and np.isneginf(spectra["log10_singular_value"]).any()
    assert (summary["seeds_in_band"] <= summary["seeds"]).all()
    assert (summary["mean_band_lo"] >= summary["band_lo"]).all() and (summary["mean_band_hi"] <= summary["band_hi"]).all()


def test_matched_initializer_in_probe_and_theory(tmp_path, write_config):
    from init_lab.analysis import meanfield as mf
    from init_lab.catalog.activations import ACTIVATIONS

    text = yaml.safe_dump({"name": "m", "dataset": {"name": "mnist_sample"}, "model": {"kind": "mlp", "depth": 6, "width": 64},
                           "grid": {"initializer": [{"name": "matched", "base": "normal"}], "activation": ["relu", "gelu"]}})
    result = run_probe(load_config(write_config(text), []), batch=32, seeds=2, jacobian_examples=1)
    summary = result.summary.set_index("combination")
    for name in ("relu", "gelu"):
        row = summary.loc[f"matched + {name}"]
        assert row["sigma_w2"] == pytest.approx(mf.matched_sigma_w2(mf.phi(ACTIVATIONS.resolve(name))))
        assert row["vs_theory"] != "no theory"
    layers = result.layers[(result.layers["combination"] == "matched + gelu") & (result.layers["layer"] == 1)]
    assert (layers["kernel_std"] ** 2 * 64).mean() == pytest.approx(2.3517, rel=0.05)  # Var(W) = 2.35/fan_in
    done = runner.invoke(app, ["theory", str(write_config(text, "m2.yaml")), "--out", str(tmp_path / "t")])
    assert_clean_exit(done, 0)
    rows = pd.read_csv(next((tmp_path / "t").iterdir()) / "theory.csv").set_index("activation")
    assert rows.loc["relu", "sigma_w2"] == pytest.approx(2.0) and rows.loc["gelu", "critical_kind"] == "none"
    assert "edge of chaos, gelu: none" in " ".join(done.output.split())
