"""Mean-field signal propagation at initialization, for any activation (NumPy/SciPy; no TensorFlow).

In a wide network with zero-mean weights of variance σ_w²/fan_in and biases of variance σ_b², the
pre-activations of a layer are, for one input, Gaussian over units with second moment q_l, and

* the **length map** (Poole et al. 2016, eq. 3): q_{l+1} = σ_w²·E[φ(√q_l·z)²] + σ_b², z ~ N(0, 1);
  its fixed point q* (the limit reached from the data's first-layer q);
* **χ₁** = σ_w²·E[φ′(√q*·z)²]: the mean squared singular value of one layer's Jacobian at q*.
  χ₁ < 1 is the ordered phase (correlations → 1, gradients vanish), χ₁ > 1 the chaotic one;
  χ₁ = 1 is criticality (Poole et al. 2016; Schoenholz et al. 2017);
* the **correlation map** C(c) = (σ_w²·E[φ(u₁)φ(u₂)] + σ_b²)/q*, u₁ = √q*·z₁,
  u₂ = √q*·(c·z₁ + √(1−c²)·z₂) (Poole et al. 2016, eq. 5), its fixed point c*, its slope
  χ_c = σ_w²·E[φ′(u₁)φ′(u₂)] at c*, and the depth scales ξ_q = −1/ln χ_q (χ_q the slope of the
  length map at q*) and ξ_c = −1/ln χ_c (Schoenholz et al. 2017, eq. 7 and 9). c* is the root of
  C(c) − c, found by bracketing: near criticality the map's slope is ≈ 1 and iterating it converges
  only after thousands of steps (:func:`_correlation_fixed_point` says why the root is unique);
* the **edge of chaos** on the σ_w² axis, and what kind of place it is (:func:`edge_of_chaos`);
* the **backward recursion** for gradient second moments (He et al. 2015, eq. 13–14):
  E[(∂L/∂a_l)²] = n_{l+1}·Var(W_{l+1})·E[φ′(z_{l+1})²]·E[(∂L/∂a_{l+1})²];
* the mean squared singular value of the input–output Jacobian ∂z_L/∂x, which is the product of
  the per-layer χ's along the actual q_l (Pennington et al. 2017);
* a **finite-width band**: over random weights, log(q̂_L/q̂_1) fluctuates with a variance of order
  Σ_l 1/n_l, for iid Gaussian and for orthogonal weights alike (:func:`_log_variance`); for ReLU and
  Gaussian weights it is Hanin & Rolnick's (2018) 5·Σ 1/n_l, for orthogonal weights 3·Σ 1/n_l;
* the **activation-matched gain** σ_w² = 1/E[φ(z)²] (:func:`matched_sigma_w2`).

Expectations are composite Gauss–Legendre rules on [−10, 10] (N(0,1) mass beyond 10: 1.5e-23) whose
panels are graded geometrically away from a split point, from a first width of 0.05·min(1, 1/√q): the
kink that every piecewise activation in the registry has at 0 falls on a panel edge (for E over two
Gaussians, the inner rule splits at u₂'s kink), and a saturating unit's transition, of width 1/√q in z,
is resolved at any q (one fixed rule on [0, 10] was off by 19 % for E[tanh²] at q = 10⁵).
φ′ is a central difference with a relative step, which never straddles 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from init_lab.catalog.activations import ACTIVATIONS
from init_lab.catalog.registry import Choice

Phi = Callable[[np.ndarray], np.ndarray]

CRITICAL_TOL = 1e-3  # |χ₁ − 1| below this reads "critical"
Q_MAX = 1e12  # a length map beyond this has no finite fixed point (it grows without bound)
_NODES = 16  # Gauss–Legendre nodes per panel
_PANELS = 16  # panels on each side of a split point
_CUT = 10.0  # N(0,1) mass beyond 10 is 1.5e-23
_FIRST = 0.05  # width of the panels next to the split point, in units of min(1, the activation's scale)


def _scipy_special():
    """SciPy's special functions, imported on first use: with ``_brentq``'s optimize, 0.2 s of every process that
    imports the theory (a sweep, through the run tables) and never evaluates it; the logistic sigmoid is NumPy's
    (a sweep's histogram edges evaluate it, and importing SciPy for it cost 0.18 s there)."""
    from scipy import special

    return special


def _logistic(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^−x), as SciPy's expit computes it (within an ulp: NumPy's exp rounds differently at 2 % of points);
    e^−x overflows to inf below x ≈ −709, where the result is 0, as it should be."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


# The elementwise functions the registry's activations are written against, in NumPy (float64)
NUMPY_OPS = SimpleNamespace(
    sigmoid=_logistic,
    tanh=np.tanh,
    relu=lambda x: np.maximum(x, 0.0),
    where=np.where,
    elu=lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
    selu=lambda x: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * np.expm1(np.minimum(x, 0.0))),
    erf=lambda x: _scipy_special().erf(x),
    softplus=lambda x: np.logaddexp(0.0, x),
    abs=np.abs,
)

_X, _WX = np.polynomial.legendre.leggauss(_NODES)
_GRADING = np.arange(_PANELS) / (_PANELS - 1)


def _rule(center: np.ndarray | float, scale: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights (…, K) for ∫ g(z)·N(z; 0, 1) dz over [−10, 10], elementwise over ``center`` and
    ``scale``: on each side of ``center`` a panel of width 0.05·min(1, scale), then panels growing
    geometrically to the end of the interval. ``scale`` is how fast the integrand changes near ``center``
    (1/√q for φ(√q·z) around its kink at 0), so the rule is as accurate at q = 10¹² as at q = 1."""
    center, scale = np.broadcast_arrays(np.asarray(center, dtype=np.float64), np.asarray(scale, dtype=np.float64))
    nodes, weights = [], []
    for sign, length in ((1.0, _CUT - center), (-1.0, _CUT + center)):
        length = np.maximum(length, 0.0)[..., None]
        first = np.minimum(_FIRST * np.minimum(scale, 1.0)[..., None], length)
        ratio = np.divide(length, first, out=np.ones_like(length), where=first > 0)
        edges = np.concatenate([np.zeros_like(first), first * ratio**_GRADING], axis=-1)  # 0, first, …, length
        lo, hi = edges[..., :-1, None], edges[..., 1:, None]
        z = center[..., None, None] + sign * ((lo + hi) / 2 + (hi - lo) / 2 * _X)
        w = (hi - lo) / 2 * _WX * np.exp(-z * z / 2.0) / math.sqrt(2.0 * math.pi)
        nodes.append(z.reshape(*center.shape, -1))
        weights.append(w.reshape(*center.shape, -1))
    return np.concatenate(nodes, axis=-1), np.concatenate(weights, axis=-1)


def _scale(q: np.ndarray | float) -> np.ndarray:
    """The width in z of φ(√q·z)'s features around 0 (its kink, a saturating unit's transition)."""
    return 1.0 / np.sqrt(np.maximum(np.asarray(q, dtype=np.float64), 1e-300))


def phi(choice: Choice) -> Phi:
    """The registry's activation as a NumPy function; learned parameters at their initial values."""
    entry = ACTIVATIONS.entries[choice.name]
    params = dict(choice.kwargs)
    for name in entry.learned:  # PReLU at init is leaky ReLU with slope alpha_init
        params[name] = params[f"{name}_init"]
    return lambda x: np.asarray(entry.fn(np.asarray(x, dtype=np.float64), NUMPY_OPS, params), dtype=np.float64)


def derivative(f: Phi) -> Phi:
    """φ′ by central differences with a relative step (both points on the same side of 0)."""

    def df(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        h = 1e-6 * np.maximum(np.abs(x), 1e-12)
        return (f(x + h) - f(x - h)) / (2.0 * h)

    return df


def expect(f: Phi, q: np.ndarray | float) -> np.ndarray:
    """E[f(√q·z)], z ~ N(0, 1), elementwise over an array of q ≥ 0."""
    q = np.asarray(q, dtype=np.float64)
    z, w = _rule(np.zeros_like(q), _scale(q))
    return (f(np.sqrt(q)[..., None] * z) * w).sum(axis=-1)


def expect2(f: Phi, g: Phi, q: float, c: float) -> float:
    """E[f(u₁)·g(u₂)] for (u₁, u₂) Gaussian with variances q and correlation c.

    u₁ = √q·z₁ and u₂ = √q·(c·z₁ + s·z₂), s = √(1−c²): the outer rule over z₁ is split at u₁'s kink (0),
    the inner one over z₂ at u₂'s (z₂ = −c·z₁/s) for each z₁, each graded to its own scale (1/√q, 1/(√q·s)).
    """
    c = min(max(c, -1.0), 1.0)
    s = math.sqrt(1.0 - c * c)
    if s < 1e-12:
        return float(expect(lambda x: f(x) * g(math.copysign(1.0, c) * x), q))
    z1, w1 = _rule(0.0, _scale(q))
    kink = np.clip(-c * z1 / s, -_CUT, _CUT)  # where u₂ crosses 0, per z₁ node
    z2, w2 = _rule(kink, _scale(q) / s)  # (K₁, K₂)
    u1 = math.sqrt(q) * z1[:, None]
    u2 = math.sqrt(q) * (c * z1[:, None] + s * z2)
    return float((f(u1) * g(u2) * w1[:, None] * w2).sum())


def length_map(f: Phi, sigma_w2: float, sigma_b2: float = 0.0) -> Callable[[np.ndarray], np.ndarray]:
    """q ↦ σ_w²·E[φ(√q·z)²] + σ_b²."""
    return lambda q: sigma_w2 * expect(lambda x: f(x) ** 2, q) + sigma_b2


def chi1(f: Phi, sigma_w2: float, q: float) -> float:
    """σ_w²·E[φ′(√q·z)²] (at q = 0: its limit q → 0⁺)."""
    df = derivative(f)
    return float(sigma_w2 * expect(lambda x: df(x) ** 2, max(q, 1e-20)))


def kappa(f: Phi, q: np.ndarray | float) -> np.ndarray:
    """Relative variance of one unit's squared activation: E[φ⁴]/E[φ²]² − 1 at pre-activation moment q."""
    m2 = expect(lambda x: f(x) ** 2, q)
    m4 = expect(lambda x: f(x) ** 4, q)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(m2 > 0, m4 / np.where(m2 > 0, m2, 1.0) ** 2 - 1.0, 0.0)


@dataclass(frozen=True)
class FixedPoint:
    """Where an infinitely deep stack of identical layers (σ_w², σ_b², φ) takes a signal."""

    sigma_w2: float
    sigma_b2: float
    q_star: float | None  # None: the length map grows without bound from the starting q
    chi_1: float  # at q* (as q grows without bound when there is no q*)
    chi_q: float | None  # slope of the length map at q*
    xi_q: float | None  # depth scale of q → q*: inf at χ_q = 1, None without q*
    c_star: float | None  # None where q* is None or 0 (no signal, so no correlation)
    chi_c: float | None
    xi_c: float | None  # depth scale of c → c*: inf at criticality, None where c* is unstable

    @property
    def phase(self) -> str:
        """ordered / critical / chaotic where a fixed point carries a signal; where q* does not exist or is 0
        away from criticality the signal simply explodes or vanishes (for positively homogeneous φ at σ_b = 0
        the correlation map does not even depend on σ_w²), and the label says so. Without a q*, χ₁ is its
        limit as q grows: 1 there (ReLU with σ_b² > 0 at σ_w² = 2: q grows by σ_b² per layer) is not
        criticality, since no finite fixed point exists."""
        if self.q_star is None:
            return "unbounded (no q*; χ₁ → 1)" if abs(self.chi_1 - 1.0) < CRITICAL_TOL else "exploding (no q*)"
        if abs(self.chi_1 - 1.0) < CRITICAL_TOL:
            return "critical"
        if self.q_star == 0.0:
            return "vanishing (q* = 0)"
        return "ordered" if self.chi_1 < 1.0 else "chaotic"


def iterate_length(f: Phi, sigma_w2: float, sigma_b2: float, q0: float) -> float | None:
    """The limit of the length map iterated from q0: q*, or None if it grows without bound.

    The map is increasing in q, so the iterates move monotonically towards the nearest root of
    L(q) − q in the direction of L(q0) − q0: that root is bracketed on a geometric scan and solved,
    which stays exact near criticality, where iterating converges only algebraically.
    """
    step = length_map(f, sigma_w2, sigma_b2)
    gap = lambda q: float(step(q)) - q  # noqa: E731
    q0 = float(q0)
    g0 = gap(q0)
    if abs(g0) <= 1e-12 * max(q0, 1e-300):
        eps = 1e-4 * max(q0, 1e-300)
        slope = (float(step(q0 + eps)) - float(step(max(q0 - eps, 0.0)))) / (q0 + eps - max(q0 - eps, 0.0))
        if slope <= 1.0 + 1e-9:
            return q0  # stable or marginal (ReLU at σ_w² = 2, σ_b = 0: every q is a fixed point)
        g0 = gap(q0 * (1 + 1e-3) if q0 > 0 else 1e-300)  # unstable: the iterates leave it; follow them
    factor = 2.0 if g0 > 0 else 0.5
    lo = q0 if q0 > 0 else 1e-300  # from q0 = 0 with L(0) > 0 the scan starts just above 0
    anchor, g_anchor = lo, g0  # the last point whose gap's sign is beyond rounding: one end of the bracket
    while True:
        hi = lo * factor
        if hi > Q_MAX:
            return None
        if factor < 1 and hi < 1e-30 * max(q0, 1.0):
            return 0.0 if gap(0.0) <= 0.0 else _root(gap, 0.0, lo)
        g = gap(hi)
        if abs(g) > 1e-12 * hi:  # a sign beyond rounding (a near-linear unit's gap is noise near q = 0)
            if (g > 0) != (g_anchor > 0):
                return _root(gap, *sorted((anchor, hi)))
            anchor, g_anchor = hi, g
        lo = hi


def _brentq(*args, **kwargs) -> float:
    """SciPy's Brent root finder, imported on first use (as ``_scipy_special``)."""
    from scipy import optimize

    return optimize.brentq(*args, **kwargs)


def _root(gap: Callable[[float], float], lo: float, hi: float) -> float:
    return float(_brentq(gap, lo, hi, xtol=1e-300, rtol=1e-13))


def depth_scale(chi: float | None) -> float | None:
    """−1/ln χ for a contraction (0 < χ < 1); inf at χ = 1 (to 10⁻⁹: a depth scale beyond 10⁹ layers);
    None where χ > 1 (no convergence)."""
    if chi is None:
        return None
    if abs(chi - 1.0) < 1e-9:
        return math.inf
    if chi > 1.0:
        return None
    return 0.0 if chi <= 0.0 else -1.0 / math.log(chi)


def fixed_point(f: Phi, sigma_w2: float, sigma_b2: float = 0.0, q0: float = 1.0) -> FixedPoint:
    """q*, χ₁, c*, χ_c and the depth scales of the (φ, σ_w², σ_b²) stack, reached from q0."""
    q_star = iterate_length(f, sigma_w2, sigma_b2, q0)
    c1 = chi1(f, sigma_w2, Q_MAX if q_star is None else q_star)
    if q_star is None:
        return FixedPoint(sigma_w2, sigma_b2, None, c1, None, None, None, None, None)
    step = length_map(f, sigma_w2, sigma_b2)
    if q_star > 0:
        eps = 1e-5 * q_star
        chi_q = float((step(q_star + eps) - step(q_star - eps)) / (2 * eps))
    else:  # q* = 0 needs σ_b = 0 and φ(0) = 0, where the length map's slope at 0 is σ_w²·φ′(0)² = χ₁
        chi_q = c1
    if q_star == 0.0:
        return FixedPoint(sigma_w2, sigma_b2, q_star, c1, chi_q, depth_scale(chi_q), None, None, None)
    c_star, chi_c = _correlation_fixed_point(f, sigma_w2, sigma_b2, q_star, c1)
    return FixedPoint(sigma_w2, sigma_b2, q_star, c1, chi_q, depth_scale(chi_q), c_star, chi_c, depth_scale(chi_c))


def correlation_map(f: Phi, sigma_w2: float, sigma_b2: float, q_star: float) -> Callable[[float], float]:
    return lambda c: (sigma_w2 * expect2(f, f, q_star, c) + sigma_b2) / q_star


_GAP_TOL = 1e-13  # |C(c) − c| below this is rounding (C(c) ≈ 1 is a sum of O(1) terms)
_DELTA_MIN = 1e-9  # closest approach of the bracket scan to c = 1


def _correlation_fixed_point(f: Phi, sigma_w2: float, sigma_b2: float, q_star: float, c1: float) -> tuple[float, float]:
    """c* and χ_c = C′(c*) = σ_w²·E[φ′(u₁)φ′(u₂)] (Poole et al. 2016, eq. 7; Schoenholz et al. 2017, eq. 9).

    χ₁ ≤ 1: c* = 1, and χ_c = χ₁. χ₁ > 1 (even by less than CRITICAL_TOL, where ξ_c is finite and large):
    c = 1 is unstable and c* is the root of C(c) − c below 1. C(c) = Σ_k a_k·c^k with a_k ≥ 0 (the Hermite
    expansion of φ at q*, plus σ_b²/q* at k = 0), so C(c) − c is convex on [0, 1], 0 at c = 1 with slope
    χ₁ − 1 > 0 there and ≥ 0 at c = 0: it has exactly one root in [0, 1), bracketed by scanning
    c = 1 − 2⁻ᵏ and solved by Brent's method. Iterating C instead converges like χ_c^l, i.e. after many
    ξ_c steps, which near criticality are hundreds to thousands (500 iterations gave ξ_c = 231 for a true 522).
    Within 10⁻⁹ of c = 1 the gap is below rounding; there c* = 1 − 2(χ₁ − 1)/C″(1) + … and
    χ_c = 2 − χ₁ + O((χ₁ − 1)²), from C's expansion to second order at c = 1."""
    df = derivative(f)
    if c1 <= 1.0:
        return 1.0, float(c1)
    cmap = correlation_map(f, sigma_w2, sigma_b2, q_star)
    gap = lambda c: cmap(c) - c  # noqa: E731
    if gap(0.0) <= _GAP_TOL:
        c_star = 0.0  # C(0) = 0 (odd φ, σ_b = 0): by convexity the only root below 1
    else:
        lo, delta, c_star = 0.0, 0.5, None
        while delta >= _DELTA_MIN:
            g = gap(1.0 - delta)
            if g < -_GAP_TOL:
                c_star = float(_brentq(gap, lo, 1.0 - delta, xtol=1e-15, rtol=4 * np.finfo(float).eps))
                break
            if g > _GAP_TOL:
                lo = 1.0 - delta
            delta /= 2.0
        if c_star is None:  # c* is within 10⁻⁹ of 1
            return 1.0, 2.0 - float(c1)
    return c_star, float(sigma_w2 * expect2(df, df, q_star, c_star))


@dataclass(frozen=True)
class Edge:
    """Where χ₁ = 1 on the σ_w² axis (at one σ_b², from one starting q0), and what kind of place it is.

    ``kind``: "critical" — χ₁ = 1 at a fixed point the stack reaches (tanh at σ_b² = 0.05: σ_w² ≈ 1.76;
    ReLU at σ_b = 0: σ_w² = 2, where every q is a fixed point); "boundary" — χ₁ → 1 only as q* → ∞:
    below ``sigma_w2`` the fixed point grows without bound as σ_w² approaches it, above it there is none
    (ReLU with σ_b² > 0 at σ_w² = 2; softplus at σ_b = 0, also 2: it is ReLU-like for large q); "none" — no
    σ_w² in [0.01, 10⁴] has χ₁ = 1 at the fixed point reached from q0 (``note`` says why)."""

    sigma_w2: float | None
    kind: str
    note: str = ""


def edge_of_chaos(f: Phi, sigma_b2: float = 0.0, q0: float = 1.0) -> Edge:
    """The σ_w² with χ₁ = 1 at its own fixed point reached from q0, classified (see :class:`Edge`).

    χ₁ at the reached fixed point is scanned over σ_w² ∈ [0.01, 10⁴] and its crossing of 1 solved. Where it
    jumps over 1 instead (GELU, swish at σ_b = 0: q ↦ L(q)/q rises from σ_w²·φ′(0)² at q = 0 to σ_w²·lim φ′²
    at q = ∞, so a non-zero fixed point is unstable), the signal vanishes below the jump and grows without
    bound above it, and no σ_w² gives a finite, non-zero, stable q*."""
    grid = np.geomspace(0.01, 1e4, 121)
    g = [fixed_point_chi(f, s, sigma_b2, q0) - 1.0 for s in grid]
    found = None
    for lo, hi, glo, ghi in zip(grid[:-1], grid[1:], g[:-1], g[1:]):
        if glo == 0.0:
            found = float(lo)
            break
        if glo < 0 < ghi or glo > 0 > ghi:
            found = float(_brentq(lambda s: fixed_point_chi(f, s, sigma_b2, q0) - 1.0, lo, hi, xtol=1e-10))
            break
    if found is None:
        side = "below" if g[-1] < 0 else "above"
        return Edge(None, "none", f"χ₁ stays {side} 1 for every σ_w² in [0.01, 10⁴]")
    if abs(fixed_point_chi(f, found, sigma_b2, q0) - 1.0) >= CRITICAL_TOL:
        below = iterate_length(f, found * (1 - 1e-6), sigma_b2, q0)
        above = iterate_length(f, found * (1 + 1e-6), sigma_b2, q0)

        def fate(q: float | None) -> str:
            return "grows without bound" if q is None else ("vanishes" if q == 0 else f"goes to q* = {q:.3g}")

        return Edge(None, "none", f"no σ_w² has χ₁ = 1 at a finite, non-zero, stable fixed point: below σ_w² ≈ "
                                  f"{found:.4g} the signal {fate(below)}, above it it {fate(above)}")
    near = iterate_length(f, found * (1 - 1e-4), sigma_b2, q0)
    nearer = iterate_length(f, found * (1 - 1e-6), sigma_b2, q0)
    if nearer is None or (near is not None and near > 0 and nearer > 10.0 * near):  # q* ~ 1/(σ_c² − σ_w²)
        return Edge(found, "boundary", "χ₁ → 1 only as q* → ∞: below it q* grows without bound as σ_w² approaches "
                                       "it, above it there is no fixed point")
    return Edge(found, "critical")


def critical_sigma_w2(f: Phi, sigma_b2: float = 0.0, q0: float = 1.0) -> float | None:
    """The edge of chaos's σ_w² (:func:`edge_of_chaos`): 2 for ReLU, 1 for tanh at σ_b = 0, sigmoid's ≈ 103;
    a "boundary" one too; None where there is none."""
    return edge_of_chaos(f, sigma_b2, q0).sigma_w2


def fixed_point_chi(f: Phi, sigma_w2: float, sigma_b2: float, q0: float) -> float:
    q_star = iterate_length(f, sigma_w2, sigma_b2, q0)
    return chi1(f, sigma_w2, Q_MAX if q_star is None else q_star)


def matched_sigma_w2(f: Phi) -> float:
    """σ_w² = 1/E[φ(z)²], z ~ N(0, 1): the activation-matched gain (the ``matched`` initializer), so that the
    length map at σ_b = 0 takes q = 1 to 1 — ReLU 2 (He et al. 2015), SELU and linear 1 (LeCun), GELU ≈ 2.35,
    SiLU ≈ 2.81, tanh ≈ 2.54. Brock, De & Smith 2021 scale activations by γ = 1/√Var φ(z) instead: their
    standardized weights have zero mean over the fan-in and remove the incoming mean, which iid zero-mean
    weights pass on (E[(Σ wᵢaᵢ)²] = Var(w)·Σ aᵢ²), so here the second moment is the one to match."""
    return 1.0 / float(expect(lambda x: f(x) ** 2, 1.0))


@dataclass(frozen=True)
class NetLayer:
    """One weight layer in mean-field terms: ``fan_in``·Var(W) = σ_w², and the layer's width."""

    fan_in: int
    width: int  # units (fan_out of the kernel)
    weight_var: float  # Var(W)
    bias_var: float = 0.0
    renormalize: bool = False  # LSUV: the layer's pre-activation variance is rescaled to 1 on data
    tolerance: float = 0.0  # ... to within this |Var − 1|
    orthogonal: bool = False  # a scaled orthogonal kernel (rows or columns orthonormal), not iid entries

    @property
    def sigma_w2(self) -> float:
        return self.fan_in * self.weight_var

    def projection_noise(self) -> float:
        """Relative variance of ‖a·W‖²/width over the weights, for a fixed input a: 2/width for iid Gaussian
        entries (a χ² with `width` degrees of freedom); for an orthogonal kernel 0 when fan_in ≤ width (its rows
        are orthonormal, so ‖a·W‖ = gain·‖a‖ exactly) and else that of ‖P·a‖² for P a uniformly random projection
        onto `width` of `fan_in` dimensions, a Beta(width/2, (fan_in − width)/2) variable: 2(n − m)/(m(n + 2))."""
        n, m = self.fan_in, self.width
        if not self.orthogonal:
            return 2.0 / m
        return 0.0 if n <= m else 2.0 * (n - m) / (m * (n + 2))


@dataclass(frozen=True)
class Propagation:
    """Mean-field prediction for one network, per hidden layer (pooled over the input examples)."""

    q: np.ndarray  # (layers, examples): pre-activation second moment per layer and input
    pre_std: np.ndarray  # (layers,)
    act_mean: np.ndarray
    act_std: np.ndarray
    grad_ms: np.ndarray  # (layers,) E[(∂L/∂a_l)²] relative to the last hidden layer's
    jacobian_ms: float  # mean squared singular value of ∂z_L/∂x
    log_var: np.ndarray  # (layers,) finite-width variance of log(q̂_l/q̂_1) over random weights
    sigma_w2: np.ndarray  # (layers,) fan_in·Var(W) of each hidden layer, after any LSUV rescaling

    def ratio(self, values: np.ndarray) -> float | None:
        first, last = float(values[0]), float(values[-1])
        if not (math.isfinite(first) and math.isfinite(last)) or first == 0.0:
            return None
        return last / first

    @property
    def band_sd(self) -> float:
        """Standard deviation of log(std ratio last/first) over random weights: ½·√(Var log(q̂_L/q̂_1))."""
        return 0.5 * math.sqrt(float(self.log_var[-1]))


def _bias_mixed(noise: float, weights_part: float, bias_var: float, width: int) -> float:
    """Relative variance of q̂ = ‖a·W + b‖²/width given a, with A = E‖a·W‖²/width and b ~ N(0, σ_b²) per unit:
    (A²·noise + (4·A·σ_b² + 2·σ_b⁴)/width)/(A + σ_b²)² (2/width again for Gaussian weights)."""
    total = weights_part + bias_var
    if total <= 0:
        return 0.0
    return (weights_part**2 * noise + (4 * weights_part * bias_var + 2 * bias_var**2) / width) / total**2


def _log_variance(f: Phi, hidden: list[NetLayer], var: list[float], q: np.ndarray, input_sq: float) -> np.ndarray:
    """Finite-width variance of log(q̂_l/q̂_1) over random weights, linearised in 1/n (per layer l, for one input).

    q̂_l = ‖z_l‖²/n_l is the layer's measured second moment. Given q̂_l, the direction of z_l is uniform on its
    sphere whatever the weights' law (z_l = W·a is rotation-invariant for iid Gaussian and for Haar-orthogonal
    W), and independent of q̂_l; so is everything it carries into the next layer. Writing δ_l = log q̂_l − log q_l,
    the next layer's q̂_{l+1} = σ_w²·r_l·(1 + γ_{l+1}) + σ_b² with r_l = ‖φ(z_l)‖²/n_l, and
      * r_l = M(q̂_l)·(1 + ε_l), M(q) = E[φ(√q·z)²]: ε_l, the mean of n_l values φ(z)² whose squared arguments
        are constrained to average q̂_l, has variance (κ_l − 2·s_l²)/n_l — the variance of the unconstrained
        mean (κ_l/n_l, κ = Var φ²/(Eφ²)²) less what its covariance 2·s_l/n_l with the mean of z² (Stein's lemma)
        explains, s_l = d ln M/d ln q = (E[φ²z²]/E[φ²] − 1)/2;
      * γ_{l+1}: how the weights spread a fixed input's norm (:meth:`NetLayer.projection_noise`, mixed with the
        bias's χ² by :func:`_bias_mixed`): 2/n_{l+1} for Gaussian weights, 0 for square orthogonal ones;
    hence δ_{l+1} = S_l·δ_l + w_l·ε_l + γ_{l+1}, S_l = w_l·s_l the log-slope of the length map and w_l the
    weights' share of q_{l+1}. The first layer's δ_1 = γ_1 enters log(q̂_L/q̂_1) as (Π S − 1)·δ_1.
    ReLU: s = 1, κ = 5, so ε has variance 3/n and γ 2/n: Gaussian 5·Σ 1/n_l (Hanin & Rolnick 2018), orthogonal
    3·Σ 1/n_l; a linear unit has κ = 2, s = 1: Gaussian 2·Σ 1/n_l, orthogonal 0. A layer LSUV rescales on its
    batch is pinned to within its tolerance of 1: its δ starts afresh, with variance tolerance²."""
    sq = lambda x: f(x) ** 2  # noqa: E731
    first = hidden[0]
    gamma_1 = 0.0 if first.renormalize else _bias_mixed(
        first.projection_noise(), first.fan_in * var[0] * input_sq, first.bias_var, first.width)
    out, coef, v = [0.0], 1.0, 0.0  # δ_l = coef·δ_1 + (independent part of variance v)
    for i in range(len(hidden) - 1):
        layer, nxt = hidden[i], hidden[i + 1]
        m2 = float(expect(sq, q[i]))
        if m2 > 0:
            s = 0.5 * (float(expect(lambda x: sq(x) * x * x, q[i])) / (q[i] * m2) - 1.0)
            eps = max(float(kappa(f, q[i])) - 2.0 * s * s, 0.0) / layer.width
        else:  # no signal: the linearisation around φ(0) = 0 of a unit with φ′(0) ≠ 0
            s, eps = 1.0, 0.0
        weights_part = nxt.fan_in * var[i + 1] * m2
        w = weights_part / (weights_part + nxt.bias_var) if weights_part + nxt.bias_var > 0 else 1.0
        gamma = _bias_mixed(nxt.projection_noise(), weights_part, nxt.bias_var, nxt.width)
        if nxt.renormalize:  # LSUV: within its tolerance of 1 on its batch, whatever came before
            coef, v = 0.0, nxt.tolerance**2
        else:
            coef, v = w * s * coef, (w * s) ** 2 * v + w * w * eps + gamma
        out.append(v + (coef - 1.0) ** 2 * gamma_1)
    return np.array(out)


def propagate(f: Phi, hidden: list[NetLayer], output: NetLayer, input_sq: np.ndarray) -> Propagation:
    """Forward length map through ``hidden`` from each example's input second moment (mean of x²), the
    backward gradient recursion, the Jacobian's mean squared singular value and the finite-width band."""
    df = derivative(f)
    sq = lambda x: f(x) ** 2  # noqa: E731
    dsq = lambda x: df(x) ** 2  # noqa: E731
    first = hidden[0]
    q = first.sigma_w2 * np.asarray(input_sq, dtype=np.float64) + first.bias_var  # per example
    qs, var = [], []  # var: each layer's Var(W) after any LSUV rescaling (the backward pass sees those weights)
    for i, layer in enumerate(hidden):
        if i > 0:
            q = layer.sigma_w2 * expect(sq, q) + layer.bias_var
        scale = 1.0
        if layer.renormalize and q.mean() > 0:
            scale = 1.0 / q.mean()  # LSUV: W ← W/√Var(z) (biases are 0), so Var(W) scales with it
            q = q * scale
        qs.append(q)
        var.append(layer.weight_var * scale)
    Q = np.stack(qs)  # (L, E)
    act_m = expect(f, Q).mean(axis=1)
    act_s2 = expect(sq, Q).mean(axis=1)
    # backward: g_l / g_{l+1} = n_{l+1}·Var(W_{l+1})·E[φ′(z_{l+1})²] (He et al. 2015, eq. 13), per example
    g = np.ones_like(Q)
    for i in range(len(hidden) - 2, -1, -1):
        g[i] = g[i + 1] * hidden[i + 1].width * var[i + 1] * expect(dsq, Q[i + 1])
    # Jacobian ∂z_L/∂x: m_1 = σ_w,1², m_{l+1} = σ_w,l+1²·E[φ′(z_l)²]·m_l
    m = np.full(Q.shape[1], first.fan_in * var[0])
    for i in range(1, len(hidden)):
        m = m * hidden[i].fan_in * var[i] * expect(dsq, Q[i - 1])
    log_var = _log_variance(f, hidden, var, Q.mean(axis=1), float(np.mean(input_sq)))
    return Propagation(
        q=Q, pre_std=np.sqrt(Q.mean(axis=1)), act_mean=act_m, act_std=np.sqrt(np.maximum(act_s2 - act_m**2, 0.0)),
        grad_ms=g.mean(axis=1), jacobian_ms=float(m.mean()), log_var=log_var,
        sigma_w2=np.array([layer.fan_in * v for layer, v in zip(hidden, var)]),
    )
