"""The mean-field engine against closed forms, and the theory adapter's choices (no TensorFlow)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special

from init_lab.analysis import meanfield as mf
from init_lab.analysis import theory
from init_lab.catalog.activations import ACTIVATIONS
from init_lab.catalog.initializers import INITIALIZERS


def act(name, **params):
    return mf.phi(ACTIVATIONS.resolve({"name": name, **params} if params else name))


@pytest.mark.parametrize("q", [1e-6, 0.1, 1.0, 37.0])
def test_quadrature_matches_closed_forms(q):
    relu = act("relu")
    assert mf.expect(lambda x: x**2, q) == pytest.approx(q, rel=1e-12)
    assert mf.expect(lambda x: relu(x) ** 2, q) == pytest.approx(q / 2, rel=1e-12)
    assert mf.expect(lambda x: relu(x) ** 4, q) == pytest.approx(1.5 * q**2, rel=1e-12)
    # erf(a·x): E[erf(a√q z)²] = (2/π)·arcsin(2a²q / (1 + 2a²q))  (Williams 1997)
    a = 1.3
    closed = 2 / math.pi * math.asin(2 * a * a * q / (1 + 2 * a * a * q))
    assert mf.expect(lambda x: special.erf(a * x) ** 2, q) == pytest.approx(closed, rel=1e-10)


@pytest.mark.parametrize("c", [-0.7, 0.0, 0.3, 0.95])
def test_two_point_expectation_matches_the_arc_cosine_kernel(c):
    relu = act("relu")
    closed = 2.0 / (2 * math.pi) * (math.sqrt(1 - c * c) + (math.pi - math.acos(c)) * c)  # q = 2 (Cho & Saul 2009)
    assert mf.expect2(relu, relu, 2.0, c) == pytest.approx(closed, rel=1e-9)
    erf = special.erf  # E[erf(u1)erf(u2)] = (2/π)·arcsin(2qc/(1+2q))
    assert mf.expect2(erf, erf, 0.8, c) == pytest.approx(2 / math.pi * math.asin(1.6 * c / 2.6), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(("name", "params", "critical"), [
    ("relu", {}, 2.0), ("linear", {}, 1.0), ("tanh", {}, 1.0), ("leaky_relu", {"alpha": 0.1}, 2 / 1.01),
    ("prelu", {}, 2 / (1 + 0.25**2)),
])
def test_critical_weight_variances(name, params, critical):
    f = act(name, **params)
    found = mf.critical_sigma_w2(f)
    assert found == pytest.approx(critical, rel=1e-6)
    assert mf.fixed_point(f, found).chi_1 == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("name", ["softsign", "elu", "selu", "softplus", "sigmoid"])
def test_chi1_is_one_at_every_found_critical_variance(name):
    f = act(name)
    found = mf.critical_sigma_w2(f)
    assert found is not None, f"{name} has an edge of chaos from q0 = 1: the search must find it"
    assert mf.fixed_point(f, found).chi_1 == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("name", ["gelu", "swish"])
def test_no_critical_variance_where_chi1_jumps_over_one(name):
    f = act(name)
    assert mf.critical_sigma_w2(f) is None  # from q0 = 1: q* = 0 (χ₁ < 1) below 1/E[φ(z)²], no q* (q → ∞) above
    assert mf.fixed_point(f, 2.0).chi_1 < 1 < mf.fixed_point(f, 3.0).chi_1


def test_fixed_points_and_depth_scales():
    relu, tanh, selu = act("relu"), act("tanh"), act("selu")
    ordered = mf.fixed_point(relu, 1.0)  # q_{l+1} = q_l/2: q* = 0, χ_q = 1/2
    assert ordered.q_star == 0.0 and ordered.chi_1 == pytest.approx(0.5)
    assert ordered.xi_q == pytest.approx(1 / math.log(2), rel=1e-6) and ordered.phase == "vanishing (q* = 0)"
    exploding = mf.fixed_point(relu, 2.5)  # grows without bound: no fixed point, and no "chaos" to speak of
    assert exploding.q_star is None and exploding.phase == "exploding (no q*)"
    at_selu = mf.fixed_point(selu, 1.0)  # Klambauer et al. 2017: LeCun weights keep SELU at q* = 1
    assert at_selu.q_star == pytest.approx(1.0, abs=1e-6)
    assert at_selu.phase == "chaotic" and 0 <= at_selu.c_star < 1 and at_selu.xi_c > 0
    chaotic = mf.fixed_point(tanh, 2.0)  # odd φ, σ_b = 0: c* = 0 in the chaotic phase
    assert chaotic.q_star > 0 and chaotic.chi_1 > 1 and chaotic.c_star == pytest.approx(0.0, abs=1e-9)
    critical = mf.fixed_point(tanh, 1.0)
    assert critical.phase == "critical" and critical.xi_q == math.inf
    biased = mf.fixed_point(tanh, 1.5, sigma_b2=0.05)  # q* solves q = σ_w²·E[tanh²] + σ_b²
    assert biased.q_star == pytest.approx(1.5 * mf.expect(lambda x: np.tanh(x) ** 2, biased.q_star) + 0.05, rel=1e-10)
    assert mf.depth_scale(1.0) == math.inf and mf.depth_scale(1.2) is None
    sigmoid = act("sigmoid")
    assert mf.iterate_length(sigmoid, 1.0, 0.0, 0.0) == pytest.approx(mf.iterate_length(sigmoid, 1.0, 0.0, 1.0))
    assert mf.critical_sigma_w2(sigmoid) == pytest.approx(103.0, rel=1e-2)  # q* ≈ 46 there
    gelu = act("gelu")  # at this σ_w², q = 1 is a fixed point but an unstable one: the iterates leave it
    unstable = mf.length_map(gelu, 2.3517157)(1.0)
    assert abs(float(unstable) - 1.0) < 1e-3 and mf.fixed_point(gelu, 2.3517157, q0=1.0).q_star != 1.0


def test_propagation_laws_through_a_network():
    relu, linear = act("relu"), act("linear")
    he = [mf.NetLayer(784, 64, 2 / 784)] + [mf.NetLayer(64, 64, 2 / 64) for _ in range(9)]
    out = mf.NetLayer(64, 10, 2 / 64)
    p = mf.propagate(relu, he, out, np.array([0.05, 0.2]))
    assert p.ratio(p.pre_std) == pytest.approx(1.0, rel=1e-9)  # He et al. 2015: the std is preserved
    assert p.grad_ms[0] == pytest.approx(1.0, rel=1e-9)  # ... and so is the gradient's second moment
    assert p.log_var[-1] == pytest.approx(5 * 9 / 64, rel=1e-9)  # Hanin & Rolnick: 5·Σ 1/n_l
    shrink = [mf.NetLayer(64, 64, 0.5 / 64) for _ in range(5)]  # linear, σ_w² = 0.5 per layer
    q = mf.propagate(linear, shrink, out, np.array([1.0]))
    assert q.ratio(q.pre_std) == pytest.approx(0.5 ** 2, rel=1e-9)  # √(0.5⁴)
    assert q.grad_ms[0] == pytest.approx(0.5**4, rel=1e-9)
    assert q.jacobian_ms == pytest.approx(0.5**5, rel=1e-9)
    assert q.log_var[-1] == pytest.approx(2 * 4 / 64, rel=1e-9)  # κ = 2 for a Gaussian


def test_theory_adapter_reasons_and_variants():
    init = INITIALIZERS.resolve
    x_sq = np.full(8, 0.11)
    tanh = ACTIVATIONS.resolve("tanh")
    assert "not zero-mean" in theory.predict(init("constant"), tanh, (32, 32), 784, 10, x_sq).reason
    assert "no ratio" in theory.predict(init("zeros"), tanh, (32, 32), 784, 10, x_sq).reason
    assert "conv" in theory.predict(init("he_normal"), tanh, (64,), 784, 10, x_sq, family="cnn").reason
    lsuv = theory.predict(init("lsuv"), tanh, (64, 64, 64), 784, 10, x_sq)
    assert lsuv.ratio("pre_std") == pytest.approx(1.0)  # every hidden layer rescaled to variance 1
    narrow = theory.predict(init({"name": "lsuv", "min_width": 100}), tanh, (64, 64, 64), 784, 10, x_sq)
    assert narrow.ratio("pre_std") < 0.99  # layers narrower than min_width keep the orthogonal init
    prelu = theory.predict(init("he_normal"), ACTIVATIONS.resolve("prelu"), (64,) * 10, 784, 10, x_sq)
    assert prelu.ratio("pre_std") == pytest.approx(math.sqrt(1.0625) ** 9, rel=1e-6)  # PReLU at init: a = 0.25
    median = 2.0 * math.exp(-0.25)  # a log-normal ratio whose square has mean 4
    assert theory.band(2.0, 0.5) == pytest.approx((median * math.exp(-1), median * math.exp(1)))


def test_theory_tables_follow_the_bias_variance_and_input_moment():
    from init_lab.config.schema import SweepConfig

    cfg = SweepConfig.model_validate({"name": "b", "model": {"kind": "mlp", "depth": 6, "width": 64},
                                      "grid": {"initializer": ["lecun_normal"], "activation": ["tanh"]}})
    plain, _ = theory.stack_tables(cfg, 0.11)
    biased, layers = theory.stack_tables(cfg, 0.11, sigma_b2=0.05)
    assert plain.loc[0, "q_star"] == 0.0 and biased.loc[0, "q_star"] > 0.05  # σ_b² lifts the fixed point off 0
    assert layers.loc[0, "q"] == pytest.approx(1.0 * 0.11 + 0.05, rel=1e-3)  # q₁ = σ_w²·E[x²] + σ_b² (σ_w² = 1)
    assert theory.input_moment("mnist")[0] == pytest.approx(0.112) and theory.input_moment("mnist", True)[0] == 1.0


def test_a_bias_variance_with_relu_has_its_edge_at_two_and_tanh_near_1_76():
    """σ_b² > 0: ReLU's q* = σ_b²/(1 − σ_w²/2) exists below σ_w² = 2 (χ₁ = σ_w²/2), explodes above; the length
    map's root scan once bracketed a root that a rounding-level sign change had already passed, and crashed
    `initlab theory --sigma-b2 0.05`. tanh at σ_b² = 0.05: ≈ 1.76 (Schoenholz et al. 2017, Fig. 2)."""
    assert mf.critical_sigma_w2(act("relu"), 0.05) == pytest.approx(2.0, rel=1e-6)
    assert mf.critical_sigma_w2(act("tanh"), 0.05) == pytest.approx(1.76, abs=0.01)
    q_star = mf.iterate_length(act("relu"), 1.5, 0.05, 1.0)
    assert q_star == pytest.approx(0.05 / (1 - 1.5 / 2), rel=1e-9)
