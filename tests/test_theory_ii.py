"""Theory II (issue 24): the mean-field engine near the edge of chaos, for orthogonal weights and for
ill-conditioned Jacobians, and the activation-matched gain — each against a computation of its own here
(SciPy quad and root finding, Gauss–Hermite, closed forms, simulations of random nets, float64 products).
No TensorFlow except where an engine path is the thing checked."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import integrate, optimize, special

from init_lab.analysis import jacobian as jac
from init_lab.analysis import meanfield as mf
from init_lab.analysis import theory
from init_lab.catalog.activations import ACTIVATIONS
from init_lab.catalog.initializers import INITIALIZERS, weight_variance

SQRT_2PI = math.sqrt(2 * math.pi)


def act(name, **params):
    return mf.phi(ACTIVATIONS.resolve({"name": name, **params} if params else name))


def gauss_quad(g, q, scale_points=(1, 3, 10, 30, 100)):
    """E[g(√q·z)] by scipy quad, split at 0 and at multiples of g's scale 1/√q in z (independent of meanfield)."""
    s = 1 / math.sqrt(q)
    points = sorted({0.0, *(p * s for p in scale_points if p * s < 12)})
    ends = [*points[1:], np.inf]
    h = lambda z: g(math.sqrt(q) * z) * math.exp(-z * z / 2) / SQRT_2PI  # noqa: E731
    with warnings.catch_warnings():  # φ′ by finite differences is rounding noise where φ is flat to 1e-16: quad
        warnings.simplefilter("ignore", integrate.IntegrationWarning)  # says it cannot reach 1e-9 there, harmlessly
        return sum(integrate.quad(h, a, b, epsabs=0, epsrel=1e-9, limit=500)[0]
                   + integrate.quad(h, -b, -a, epsabs=0, epsrel=1e-9, limit=500)[0] for a, b in zip(points, ends))


# ---- ξ_c near criticality: the root of C(c) − c, against an independent root-find --------------------------

def tanh_xi_c(sigma_w2: float, sigma_b2: float, nodes: int = 160) -> float:
    """ξ_c of tanh by quad (q*) and a tensor Gauss–Hermite rule (C and χ_c, smooth integrands), with brentq."""
    m2 = lambda q: integrate.quad(lambda z: np.tanh(math.sqrt(q) * z) ** 2 * math.exp(-z * z / 2) / SQRT_2PI,  # noqa: E731
                                  -np.inf, np.inf, epsabs=0, epsrel=1e-13, limit=200)[0]
    q = optimize.brentq(lambda q: sigma_w2 * m2(q) + sigma_b2 - q, 1e-3, 10, xtol=1e-15, rtol=1e-15)
    x, w = np.polynomial.hermite_e.hermegauss(nodes)
    z1, z2 = np.meshgrid(x, x, indexing="ij")
    w2 = np.outer(w, w) / (2 * math.pi)

    def pair(c):
        return math.sqrt(q) * z1, math.sqrt(q) * (c * z1 + math.sqrt(1 - c * c) * z2)

    def corr(c):
        u1, u2 = pair(c)
        return (sigma_w2 * (np.tanh(u1) * np.tanh(u2) * w2).sum() + sigma_b2) / q

    c_star = optimize.brentq(lambda c: corr(c) - c, 0.0, 1 - 1e-6, xtol=1e-15, rtol=1e-15)
    u1, u2 = pair(c_star)
    chi_c = sigma_w2 * ((1 - np.tanh(u1) ** 2) * (1 - np.tanh(u2) ** 2) * w2).sum()
    return -1 / math.log(chi_c)


@pytest.mark.parametrize(("sigma_w2", "reviewed"), [(1.770, 522), (1.772, 427)])
def test_xi_c_near_the_edge_of_chaos_is_the_root_not_500_iterations(sigma_w2, reviewed):
    """tanh, σ_b² = 0.05 (Schoenholz et al. 2017, Fig. 2): 500 iterations of the correlation map, whose slope is
    ≈ 0.99 here, gave ξ_c = 231 and 224."""
    fp = mf.fixed_point(act("tanh"), sigma_w2, 0.05)
    assert fp.phase == "chaotic" and fp.chi_1 > 1
    assert fp.xi_c == pytest.approx(tanh_xi_c(sigma_w2, 0.05), rel=0.01)
    assert fp.xi_c == pytest.approx(reviewed, rel=0.01)  # the review's independent root-find


def test_xi_c_is_finite_and_large_just_above_chi1_one():
    """1 < χ₁ ≤ 1 + CRITICAL_TOL reads "critical", but c = 1 is already unstable: ξ_c is finite (≈ 4,500)."""
    fp = mf.fixed_point(act("tanh"), 1.762, 0.05)
    assert 1 < fp.chi_1 <= 1 + mf.CRITICAL_TOL and fp.phase == "critical"
    assert fp.c_star < 1 and math.isfinite(fp.xi_c)
    assert fp.xi_c == pytest.approx(tanh_xi_c(1.762, 0.05, nodes=200), rel=0.01)
    assert fp.xi_c == pytest.approx(4500, rel=0.02)


def _selu_conditional(m: np.ndarray, v: float, derivative: bool) -> np.ndarray:
    """E[φ(Y)] or E[φ′(Y)] for Y ~ N(m, v), φ = SELU, in closed form (Gaussian integrals of x and eˣ)."""
    lam, alpha = 1.0507009873554805, 1.6732632423543772
    s = math.sqrt(v)
    tail = np.exp(m + v / 2) * special.ndtr((-m - v) / s)  # E[e^Y; Y ≤ 0]
    if derivative:
        return lam * special.ndtr(m / s) + lam * alpha * tail
    return lam * (m * special.ndtr(m / s) + s * np.exp(-m * m / (2 * v)) / SQRT_2PI) + lam * alpha * (tail - special.ndtr(-m / s))


def test_selu_xi_c_against_a_semi_analytic_root_find():
    """SELU, σ_b = 0, σ_w² = 0.55 (just chaotic): ξ_c = 744 by the root; iterating gave 194. Here: the inner
    Gaussian integral in closed form, the outer one by quad, c* by brentq."""
    sigma_w2 = 0.55
    f = act("selu")
    q = optimize.brentq(lambda q: sigma_w2 * gauss_quad(lambda x: f(x) ** 2, q) - q, 1e-4, 10, xtol=1e-16, rtol=1e-15)

    def two_point(c, derivative):
        g = f if not derivative else mf.derivative(f)

        def outer(z1):
            u1 = math.sqrt(q) * z1
            return g(u1) * _selu_conditional(c * u1, q * (1 - c * c), derivative) * math.exp(-z1 * z1 / 2) / SQRT_2PI

        return sum(integrate.quad(outer, a, b, epsabs=0, epsrel=1e-12, limit=400)[0] for a, b in ((-12, 0), (0, 12)))

    c_star = optimize.brentq(lambda c: sigma_w2 * two_point(c, False) / q - c, 0.5, 0.99999, xtol=1e-14)
    xi_c = -1 / math.log(sigma_w2 * two_point(c_star, True))
    fp = mf.fixed_point(f, sigma_w2, 0.0)
    assert fp.q_star == pytest.approx(q, rel=1e-9) and fp.c_star == pytest.approx(c_star, abs=1e-7)
    assert fp.xi_c == pytest.approx(xi_c, rel=0.01) and fp.xi_c == pytest.approx(744, rel=0.01)


# ---- quadrature at large q -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["tanh", "sigmoid", "softsign", "gelu", "elu", "swish"])
@pytest.mark.parametrize("q", [1e4, 1e5, 1e8])
def test_expect_at_large_q_against_quad(name, q):
    """A fixed rule on [0, 10] could not resolve a saturating unit's transition (width 1/√q in z): tanh was
    −0.55 % at q = 10⁴ and +19 % at 10⁵."""
    f = act(name)
    for g in (lambda x: f(x) ** 2, lambda x: mf.derivative(f)(x) ** 2):
        assert mf.expect(g, q) == pytest.approx(gauss_quad(g, q), rel=1e-6)


# ---- what the labels say --------------------------------------------------------------------------------------

def test_relu_with_bias_at_two_is_no_critical_point():
    """q_{l+1} = q_l + σ_b² grows without bound: no q*, so not "critical"; the edge there is a q* → ∞ boundary."""
    fp = mf.fixed_point(act("relu"), 2.0, 0.05)
    assert fp.q_star is None and fp.phase == "unbounded (no q*; χ₁ → 1)"
    edge = mf.edge_of_chaos(act("relu"), 0.05)
    assert edge.kind == "boundary" and edge.sigma_w2 == pytest.approx(2.0, rel=1e-6)
    assert mf.edge_of_chaos(act("relu")).kind == "critical"  # σ_b = 0: every q is a fixed point at σ_w² = 2


def test_softplus_edge_is_a_boundary_where_q_star_grows_without_bound():
    f = act("softplus")
    edge = mf.edge_of_chaos(f)
    assert edge.kind == "boundary" and edge.sigma_w2 == pytest.approx(2.0, rel=1e-4)
    below = [mf.iterate_length(f, 2.0 * (1 - d), 0.0, 1.0) for d in (1e-2, 1e-3)]
    assert below[1] > 3 * below[0]  # q* ~ (2 − σ_w²)^(−2/3): E[softplus(√q·z)²] ≈ q/2 + O(1/√q)
    assert mf.iterate_length(f, 2.0 * 1.01, 0.0, 1.0) is None


@pytest.mark.parametrize("name", ["gelu", "swish"])
def test_gelu_and_swish_have_no_stable_nonzero_fixed_point(name):
    """From q0 = 1 the signal vanishes below σ_w² = 1/E[φ(z)²] (where q = 1 is an unstable fixed point) and grows
    without bound above it: not a jump to some fixed point with χ₁ > 1."""
    f = act(name)
    edge = mf.edge_of_chaos(f)
    assert edge.kind == "none" and edge.sigma_w2 is None
    assert "vanishes" in edge.note and "grows without bound" in edge.note
    threshold = 1 / gauss_quad(lambda x: f(x) ** 2, 1.0)
    assert f"{threshold:.4g}" in edge.note
    assert mf.iterate_length(f, threshold * 0.99, 0.0, 1.0) == 0.0
    assert mf.iterate_length(f, threshold * 1.01, 0.0, 1.0) is None


# ---- the finite-width band for orthogonal weights, against simulated nets ---------------------------------------

def _simulated_log_variance(phi, sigma_w2, orthogonal, d=96, n=64, depth=10, nets=400, x2=0.5, seed=0):
    """Var over random nets of log(q̂_L/q̂_1) for one fixed input, in float64 NumPy: Gaussian kernels, or Keras'
    orthogonal (sign-corrected QR of a Gaussian matrix, rows or columns orthonormal) scaled to the same σ_w²."""
    rng = np.random.default_rng(seed)
    x = rng.random(d)
    x *= math.sqrt(x2 / np.mean(x**2))
    logs = []
    for _ in range(nets):
        h, q = x, []
        for _ in range(depth):
            fan = h.shape[0]
            if orthogonal:
                a = rng.standard_normal((max(fan, n), min(fan, n)))
                basis, r = np.linalg.qr(a)
                basis = basis * np.sign(np.diag(r))
                w = (basis if fan >= n else basis.T) * math.sqrt(sigma_w2 * max(fan, n) / fan)
            else:
                w = rng.standard_normal((fan, n)) * math.sqrt(sigma_w2 / fan)
            z = h @ w
            q.append(np.mean(z * z))
            h = phi(z)
        logs.append(math.log(q[-1] / q[0]))
    return float(np.var(logs, ddof=1))


@pytest.mark.parametrize(("name", "sigma_w2"), [("relu", 2.0), ("tanh", 1.0), ("tanh", 1.5)])
def test_orthogonal_band_against_800_simulated_nets(name, sigma_w2):
    """With orthogonal weights ‖a·W‖ = gain·‖a‖ exactly: only the spread of φ's second moment over the units'
    directions is left, (κ − 2s²)/n per layer (ReLU: 3/n, not 5/n; a near-linear tanh: ≈ 0)."""
    f, numpy_phi = act(name), {"relu": lambda z: np.maximum(z, 0.0), "tanh": np.tanh}[name]
    d, n, depth = 96, 64, 10
    predicted = {}
    for orthogonal in (False, True):
        hidden = [mf.NetLayer(d, n, sigma_w2 / d, orthogonal=orthogonal)]
        hidden += [mf.NetLayer(n, n, sigma_w2 / n, orthogonal=orthogonal) for _ in range(depth - 1)]
        predicted[orthogonal] = mf.propagate(f, hidden, mf.NetLayer(n, 10, sigma_w2 / n), np.array([0.5])).log_var[-1]
    simulated = _simulated_log_variance(numpy_phi, sigma_w2, orthogonal=True, nets=800)
    # 800 nets: ≈ 5 % sampling error; the linearisation in 1/n is ≈ 10 % low for ReLU at n = 64 (Gaussian weights too)
    assert simulated == pytest.approx(predicted[True], rel=0.2)
    assert predicted[False] > 1.4 * simulated  # the Gaussian band does not describe orthogonal nets
    if name == "relu":
        assert predicted[True] == pytest.approx(3 * (depth - 1) / n, rel=1e-9)
        assert predicted[False] == pytest.approx(5 * (depth - 1) / n, rel=1e-9)


def test_the_theory_gives_orthogonal_initializers_the_orthogonal_band():
    x_sq = np.full(4, 0.11)
    relu = ACTIVATIONS.resolve("relu")
    gauss = theory.predict(INITIALIZERS.resolve("he_normal"), relu, (128,) * 30, 784, 10, x_sq)
    orth = theory.predict(INITIALIZERS.resolve({"name": "orthogonal", "gain": "relu"}), relu, (128,) * 30, 784, 10, x_sq)
    assert gauss.propagation.log_var[-1] == pytest.approx(5 * 29 / 128, rel=1e-9)  # Hanin & Rolnick
    assert orth.propagation.log_var[-1] == pytest.approx(3 * 29 / 128, rel=1e-9)


# ---- Jacobian spectra: QR accumulation against float64 products ---------------------------------------------------

def _tanh_net(rng, widths, sigma_w2=1.0):
    """Kernels (in, out) and φ′ at the hidden layers for one input, of a tanh MLP (float64)."""
    kernels = [rng.standard_normal((a, b)) * math.sqrt(sigma_w2 / a) for a, b in zip(widths[:-1], widths[1:])]
    h, derivatives = rng.random(widths[0]), []
    for w in kernels:
        z = h @ w
        derivatives.append(1 - np.tanh(z) ** 2)
        h = np.tanh(z)
    return kernels, derivatives[:-1]


def _explicit(kernels, derivatives):
    j = kernels[0].T
    for w, d in zip(kernels[1:], derivatives):
        j = w.T @ (d[:, None] * j)
    return j


def test_small_deep_tanh_jacobian_against_the_explicit_float64_svd():
    rng = np.random.default_rng(3)
    kernels, derivatives = _tanh_net(rng, [40, 16, 16, 16, 16, 16, 16, 16, 16])
    s = np.linalg.svd(_explicit(kernels, derivatives), compute_uv=False)
    assert s[0] / s[-1] < 1e10  # well inside what the explicit product resolves
    log_s, rank = jac.log_singular_values(kernels, [d[None] for d in derivatives], (1,))
    assert rank[0] == 16
    np.testing.assert_allclose(np.exp(log_s[0]), s, rtol=1e-8)


def test_a_30_layer_condition_number_beyond_1e20_against_layerwise_float64_iterations():
    """Square 32-wide tanh net, 30 layers: J = A·W_1ᵀ with every factor invertible, so s_max comes from power
    iteration on JᵀJ and s_min from power iteration on (JJᵀ)⁻¹ by layer-wise solves (each factor is well
    conditioned), and Σ ln s = ln |det J| from the factors' determinants — none of it forms J."""
    rng = np.random.default_rng(4)
    kernels, derivatives = _tanh_net(rng, [32] * 31)
    log_s, rank = jac.log_singular_values(kernels, [d[None] for d in derivatives], (1,))
    log_s = log_s[0]

    def forward(v):
        for w, d in zip(kernels, [np.ones(32), *derivatives]):
            v = w.T @ (d * v)
        return v

    def backward(u):
        for w, d in zip(kernels[::-1], [*derivatives[::-1], np.ones(32)]):
            u = d * (w @ u)
        return u

    def inverse(u):  # J⁻¹u
        for w, d in zip(kernels[::-1], [*derivatives[::-1], np.ones(32)]):
            u = np.linalg.solve(w.T, u) / d
        return u

    def inverse_t(v):  # J⁻ᵀv
        for w, d in zip(kernels, [np.ones(32), *derivatives]):
            v = np.linalg.solve(w, v / d)
        return v

    v, u = rng.standard_normal(32), rng.standard_normal(32)
    for _ in range(400):
        v = backward(forward(v))
        v /= np.linalg.norm(v)
        u = inverse(inverse_t(u))
        u /= np.linalg.norm(u)
    log_max = math.log(np.linalg.norm(forward(v)))
    log_min = -math.log(np.linalg.norm(inverse_t(u)))
    log_det = sum(np.linalg.slogdet(w)[1] for w in kernels) + sum(np.log(d).sum() for d in derivatives)
    assert rank[0] == 32 and (log_s[0] - log_s[-1]) / math.log(10) > 20
    assert log_s[0] == pytest.approx(log_max, rel=1e-9) and log_s[-1] == pytest.approx(log_min, rel=1e-7)
    assert log_s.sum() == pytest.approx(log_det, rel=1e-10)
    spectrum = jac.Spectrum(log_s[None], rank)
    assert spectrum.log10_condition()[0] == pytest.approx((log_max - log_min) / math.log(10), rel=1e-7)


def test_relu_jacobian_rank_is_exact():
    """Units that are off zero rows of D: the rank is that of the product of the active-unit projections, and the
    singular values beyond it are exactly 0 (log −inf), so the condition number is ∞."""
    rng = np.random.default_rng(5)
    widths = [30, 20, 20, 20, 20, 20, 20]
    kernels = [rng.standard_normal((a, b)) * math.sqrt(2 / a) for a, b in zip(widths[:-1], widths[1:])]
    h, derivatives = rng.random(30), []
    for w in kernels:
        z = h @ w
        derivatives.append((z > 0).astype(float))
        h = np.maximum(z, 0)
    derivatives = derivatives[:-1]
    explicit = _explicit(kernels, derivatives)
    log_s, rank = jac.log_singular_values(kernels, [d[None] for d in derivatives], (1,))
    expected = np.linalg.matrix_rank(explicit)
    assert rank[0] == expected < 20 and np.isneginf(log_s[0, expected:]).all()
    s = np.linalg.svd(explicit, compute_uv=False)[:expected]
    np.testing.assert_allclose(np.exp(log_s[0, :expected]), s, rtol=1e-8)
    assert jac.Spectrum(log_s, rank).log10_condition()[0] == math.inf


# ---- the activation-matched gain ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "params", "expected"), [
    ("relu", {}, 2.0), ("selu", {}, 1.0), ("linear", {}, 1.0), ("gelu", {}, 2.3517), ("swish", {}, 2.8108),
    ("tanh", {}, 2.5362), ("leaky_relu", {"alpha": 0.2}, 2 / 1.04),
])
def test_matched_gain_is_one_over_the_second_moment(name, params, expected):
    f = act(name, **params)
    assert mf.matched_sigma_w2(f) == pytest.approx(1 / gauss_quad(lambda x: f(x) ** 2, 1.0), rel=1e-9)
    assert mf.matched_sigma_w2(f) == pytest.approx(expected, rel=1e-4)


def test_matched_initializer_in_the_registry_and_the_theory():
    matched = INITIALIZERS.resolve({"name": "matched", "base": "normal"})
    assert matched == INITIALIZERS.resolve("matched") and matched.label(INITIALIZERS) == "matched"
    assert INITIALIZERS.resolve({"name": "matched", "base": "uniform"}).label(INITIALIZERS) == "matched(base=uniform)"
    with pytest.raises(ValueError, match="one of normal, uniform"):
        INITIALIZERS.resolve({"name": "matched", "base": 2})
    assert weight_variance(matched, (500, 100)) is None  # it needs the activation's σ_w²
    assert weight_variance(matched, (500, 100), 2.0) == pytest.approx(2.0 / 500)
    x_sq = np.full(4, 1.0)
    for name in ("relu", "gelu"):
        a = ACTIVATIONS.resolve(name)
        pred = theory.predict(matched, a, (64,) * 5, 784, 10, x_sq)
        assert pred.propagation.sigma_w2 == pytest.approx([mf.matched_sigma_w2(mf.phi(a))] * 5)
    relu = theory.predict(matched, ACTIVATIONS.resolve("relu"), (64,) * 5, 784, 10, x_sq)
    he = theory.predict(INITIALIZERS.resolve("he_normal"), ACTIVATIONS.resolve("relu"), (64,) * 5, 784, 10, x_sq)
    assert relu.ratio("pre_std") == pytest.approx(he.ratio("pre_std"), rel=1e-12)  # ReLU: He's 2/fan_in


def test_matched_initializer_in_a_sweep(reference_run):
    """A sweep trains it; its first kernel has Var = σ_w²/fan_in with the trial's activation's σ_w²."""
    from .helpers import TINY, read_csv

    run = reference_run(TINY, ("grid.initializer=[{name: matched, base: uniform}]",))
    stds = {}
    for trial in sorted((run / "trials").iterdir()):
        rows = read_csv(trial / "layers.csv")
        assert any(r["epoch"] == "2" for r in rows), trial.name  # trained its 2 epochs
        stds[trial.name.split("-")[1]] = float(next(r for r in rows if r["epoch"] == "0" and r["layer"] == "0")["kernel_std"])
    fan_in = 784  # synthetic 28×28 images
    assert stds["relu"] ** 2 * fan_in == pytest.approx(2.0, rel=0.03)
    assert stds["tanh"] ** 2 * fan_in == pytest.approx(mf.matched_sigma_w2(act("tanh")), rel=0.03)


# ---- LSUV's min_width counts a conv layer's output values (Mishkin & Matas' code: H·W·C) -----------------------

def test_lsuv_min_width_counts_a_conv_layers_height_width_channels():
    keras = pytest.importorskip("keras")
    from init_lab.catalog.models import NetKind
    from init_lab.config.grid import expand
    from init_lab.config.loading import config_from_text
    from init_lab.engine.nets import build_net

    # conv_0: 26·26·32 = 21,632 values, conv_1: 11·11·64 = 7,744, conv_2: 3·3·64 = 576, dense_0: 64 units
    (spec,) = expand(config_from_text("name: c\nmodel: {kind: mnist_cnn}\n"
                                      "grid: {initializer: [{name: lsuv, min_width: 1000}], activation: [relu]}"))
    net = build_net(NetKind.KERAS, [spec], (28, 28, 1), 10)
    x = keras.ops.convert_to_tensor(np.random.default_rng(0).random((32, 28, 28, 1)).astype("float32"))
    log = {e["layer"]: e for e in net.lsuv(x)[spec.id]}
    assert "skipped" not in log["conv_0"] and "skipped" not in log["conv_1"]  # 32 and 64 channels < 1000: were skipped
    assert log["conv_0"]["iterations"] >= 1 and abs(log["conv_0"]["final_variance"] - 1) < 0.1
    assert "576 < 1000" in log["conv_2"]["skipped"] and "64 < 1000" in log["dense_0"]["skipped"]
