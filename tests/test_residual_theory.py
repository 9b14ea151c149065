"""The residual length map (issue 21 e): Yang & Schoenholz 2017's one-layer map, its m-layer extension (derived in
analysis/residual.py) against closed forms and against a simulated wide network, and the probe comparing with it."""

from __future__ import annotations

import numpy as np
import pytest

from init_lab.analysis import meanfield as mf
from init_lab.analysis.residual import residual_length_map
from init_lab.catalog.registry import Choice

RELU, TANH = mf.phi(Choice("relu")), mf.phi(Choice("tanh"))


@pytest.mark.parametrize("m", [1, 2, 3])
def test_relu_closed_forms(m):
    """ReLU: E[φ(√q z)²] = q/2, so an m-layer branch adds σ_1²···σ_m²·q/2^m: q' = q·(1 + Π σ_j²/2)."""
    blocks = [(1 + m * b, m * (b + 1)) for b in range(4)]
    sigma = [1.0] + [1.5] * (4 * m)
    q = residual_length_map(RELU, blocks, sigma, 0.0, {}, 1.0, np.array([0.7]))
    stream = [q[0, 0]] + [q[last, 0] for _, last in blocks]
    np.testing.assert_allclose(np.diff(np.log(stream)), np.log(1 + (1.5 / 2) ** m), rtol=1e-9)
    he = residual_length_map(RELU, blocks, [2.0] * (1 + 4 * m), 0.0, {}, 1.0, np.array([1.0]))
    np.testing.assert_allclose([he[last, 0] for _, last in blocks], [2.0, 4.0, 8.0, 16.0], rtol=1e-9)  # He: ×2
    gated = residual_length_map(TANH, blocks, sigma, 0.0, {}, 0.0, np.array([0.7]))  # SkipInit's α = 0
    np.testing.assert_allclose([gated[last, 0] for _, last in blocks], 0.7)


def _simulate(f, m: int, blocks: int, sigma_w2: float, sigma_b2: float, width: int, q0: float, seed: int) -> np.ndarray:
    """A wide pre-activation residual MLP in NumPy, Gaussian weights: each hidden layer's measured second moment."""
    rng = np.random.default_rng(seed)
    h = rng.standard_normal((64, width)) * np.sqrt(q0)  # the first layer's output, second moment q0
    out = [np.mean(h**2)]
    for _ in range(blocks):
        y = h
        for j in range(m):
            w = rng.standard_normal((width, width)) * np.sqrt(sigma_w2 / width)
            y = f(y) @ w + rng.standard_normal(width) * np.sqrt(sigma_b2)
            if j < m - 1:
                out.append(np.mean(y**2))
        h = h + y
        out.append(np.mean(h**2))
    return np.array(out)


@pytest.mark.parametrize("f,name", [(RELU, "relu"), (TANH, "tanh")])
@pytest.mark.parametrize("m", [1, 2])
def test_the_map_matches_a_simulated_wide_network(f, name, m):
    blocks, sigma_w2, sigma_b2, q0 = 6, 1.7, 0.05, 0.8
    spans = [(1 + m * b, m * (b + 1)) for b in range(blocks)]
    theory = residual_length_map(f, spans, [sigma_w2] * (1 + m * blocks), sigma_b2, {}, 1.0, np.array([q0]))[:, 0]
    measured = np.mean([_simulate(f, m, blocks, sigma_w2, sigma_b2, 2048, q0, s) for s in range(8)], axis=0)
    # width 2048, 8 networks: ReLU's finite-width log-variance, ≈ 5·Σ 1/n per network (Hanin & Rolnick 2018), leaves
    # its mean within a few per cent at 12 layers; tanh's is far smaller
    np.testing.assert_allclose(measured, theory, rtol=0.04)
    assert theory[-1] > 2 * theory[0]  # the residual stream grows: the check is not of a flat line


def test_the_probe_compares_a_residual_net_with_its_map():
    import yaml

    import init_lab

    from .test_residual import RES

    text = RES.replace("hidden: [16, 16, 12]", "hidden: [128, 128, 128, 128, 128]")
    result = init_lab.probe(yaml.safe_load(text), overrides=["model.residual=true", "grid.activation=[relu]",
                                             "grid.initializer=[he_normal, skipinit]"],
                            seeds=3, jacobian_examples=0)
    summary = result["summary"].set_index("initializer")
    assert summary.loc["he_normal", "theory_pre_std_ratio"] == pytest.approx(2.0, rel=1e-6)  # √(2·2): two He blocks
    assert summary.loc["he_normal", "vs_theory"] == "within band"
    assert summary.loc["skipinit", "theory_pre_std_ratio"] == pytest.approx(1.0)
    assert summary.loc["skipinit", "pre_std_ratio"] == pytest.approx(1.0, abs=1e-6)  # the skip path, exactly


def test_a_delta_orthogonal_cnn_follows_the_fully_connected_theory_in_the_probe():
    """Xiao et al. 2018: same padding, no pooling, only the centre tap — every position sees an orthogonal map, so the
    fully-connected length map (run per example and position) predicts the conv net; a Gaussian init gets no theory."""
    import yaml

    import init_lab

    from .test_configurable_cnn import CNN

    config = yaml.safe_load(CNN.replace("synthetic_shape: [28, 28]", "synthetic_shape: [12, 12]"))
    result = init_lab.probe(config, overrides=[
        "model.depth=8", "model.channels=32", "model.pool_every=0", "grid.activation=[tanh]",
        "grid.initializer=[{name: delta_orthogonal, gain: 1.0}, {name: delta_orthogonal, gain: 1.5}, he_normal]"],
        seeds=2, jacobian_examples=0)
    summary = result["summary"]
    delta = summary[summary["initializer"].str.startswith("delta_orthogonal")]
    assert list(delta["vs_theory"]) == ["within band", "within band"]
    np.testing.assert_allclose(delta["pre_std_ratio"], delta["theory_pre_std_ratio"], rtol=0.03)
    assert delta["theory_pre_std_ratio"].iloc[1] > 2 * delta["theory_pre_std_ratio"].iloc[0]  # gain matters: not flat
    gaussian = summary[summary["initializer"] == "he_normal"]
    assert gaussian["vs_theory"].iloc[0] == "no theory"
