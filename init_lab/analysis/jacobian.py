"""The singular values of a deep MLP's input–output Jacobian, in float64, over any dynamic range (no TensorFlow).

For z_1 = x·W_1 and z_{l+1} = φ(z_l)·W_{l+1} (Keras' (in, out) kernels), the Jacobian of the last hidden
pre-activation is J = W_Lᵀ·D_{L−1}·W_{L−1}ᵀ ⋯ D_1·W_1ᵀ with D_l = diag φ′(z_l). Its singular values in a
deep net span tens of decades (Gaussian LeCun + tanh, 30 × 256: about 39), far beyond what a product
formed explicitly and then decomposed can resolve: float64 loses every singular value below ≈ 10⁻¹⁶·s_max,
float32 below ≈ 10⁻⁷ (and an eigendecomposition of JᵀJ squares that).

So the product is accumulated as a QR decomposition through the layers, the way Lyapunov exponents
are computed (Benettin et al. 1980; Pennington et al. 2018 use the same spectra), from the output side:
Jᵀ = W_1·D_1·W_2 ⋯ D_{L−1}·W_L; X ← W_L, and per layer X ← D_l·X, X = Q·R, X ← W_l·Q, keeping the R's. Then
Jᵀ = Q·(R_1 ⋯ R_L) exactly, and each R carries one layer's stretching while Q stays orthonormal, so the
product of the R's is graded — its row i is of the size of the i-th singular value — and its singular
values, which are J's, come out of an ordinary SVD to full relative accuracy (checked against 80-digit
arithmetic to 10⁻¹¹ in log at 10¹⁶⁰). The running product is kept scaled to 1, its scale as a float64 log,
so the computation resolves condition numbers to ≈ 10³⁰⁰ (float64's range).

Exact rank: a unit with φ′ = 0 (ReLU off, a saturated unit past float64) zeroes a row of D_l. Before each
QR the rows are sorted by |φ′|, so a layer's zero rows come last and Householder QR leaves them exactly
zero in R; where a layer has fewer non-zero rows than the current rank, the rank drops to that count and
the columns beyond it are set to exactly 0, so J's rank is known exactly (ReLU Jacobians are rank-deficient:
the product of the active-unit projections) and the singular values beyond it are reported as 0.

Rows sorted by |φ′| also keep the QR accurate where one layer's φ′ spans many decades (saturated tanh).
Layers with no zero and a mild spread of φ′ (within ``GRADED``) are multiplied in groups of ``GROUP``
before each QR, which costs a product of a few well-conditioned layers' condition numbers
(≲ 10⁸·10⁻¹⁶) in relative accuracy and saves most of the QRs.

The arithmetic is written against a small namespace of array operations (:data:`NUMPY`; the engine passes
TensorFlow's, batched over trials and examples); the decisions (ranks, orderings) are NumPy's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np

GROUP = 3  # layers multiplied together between two QRs, where nothing forces one sooner
GRADED = 1e2  # max |φ′| / min |φ′| of a layer above which it gets its own (row-sorted) QR

NUMPY = SimpleNamespace(
    matmul=np.matmul,
    qr=lambda a: np.linalg.qr(a),  # reduced: Q (…, m, k), R (…, k, n), k = min(m, n)
    svdvals=lambda a: np.linalg.svd(a, compute_uv=False),  # descending
    take_rows=lambda a, index: np.take_along_axis(a, index[..., None], axis=-2),  # a[..., index[...], :]
    absmax=lambda a: np.abs(a).max(axis=(-2, -1)),
    to_numpy=np.asarray,
    broadcast_to=np.broadcast_to,
)


@dataclass(frozen=True)
class Spectrum:
    """One trial's Jacobian singular values at each of several examples.

    ``resolution``: log10 of the largest s_max/s_min the computation resolves — about 300 for the QR
    accumulation here (float64's range), about 5 for a float32 Jacobian formed explicitly (a conv net's);
    a spread beyond it is not a measurement."""

    log_s: np.ndarray  # (examples, k) natural logs, descending; −inf beyond the rank
    rank: np.ndarray  # (examples,) exact where zero derivatives are exact (the QR accumulation)
    resolution: float = 300.0

    @property
    def k(self) -> int:
        return self.log_s.shape[-1]

    def log10_condition(self) -> np.ndarray:
        """Per example log10(s_max/s_min): ∞ where J is rank-deficient (or s_min underflows float64), NaN where
        the smallest singular value is below what the computation resolves."""
        top, bottom = self.log_s[:, 0], self.log_s[:, -1]
        with np.errstate(invalid="ignore"):
            out = (top - bottom) / math.log(10.0)
        out = np.where(self.rank < self.k, np.inf, out)
        return np.where(np.isfinite(out) & (out > self.resolution), np.nan, out)

    def log10_spread(self) -> np.ndarray:
        """Per example the standard deviation of log10 s over its non-zero singular values."""
        out = []
        for row in self.log_s:
            finite = row[np.isfinite(row)]
            out.append(float(np.std(finite / math.log(10.0))) if finite.size else math.nan)
        return np.array(out)


def spectrum_of_matrices(jacobians: np.ndarray, resolution: float) -> Spectrum:
    """A Spectrum from explicit Jacobians (examples, rows, cols), decomposed in float64. Singular values below
    10^−resolution·s_max are rounding noise of the explicit matrix: NaN (not measured), and the rank is not
    known (taken as full)."""
    s = np.linalg.svd(np.asarray(jacobians, dtype=np.float64), compute_uv=False)
    with np.errstate(divide="ignore"):
        log_s = np.log(s)
    floor = log_s[:, :1] - resolution * math.log(10.0)
    return Spectrum(np.where(log_s > floor, log_s, np.nan), np.full(len(s), s.shape[-1]), resolution)


def log_singular_values(kernels: Sequence[Any], derivatives: Sequence[np.ndarray], batch: tuple[int, ...],
                        ops: SimpleNamespace = NUMPY, group: int = GROUP) -> tuple[np.ndarray, np.ndarray]:
    """ln s of J = W_Lᵀ·D_{L−1} ⋯ D_1·W_1ᵀ for a batch of (trial, example) pairs, and J's rank.

    ``kernels``: W_1 … W_L as ``ops`` arrays (…, n_{l−1}, n_l), broadcastable to ``batch`` (one kernel per
    trial serves all its examples); ``derivatives``: φ′(z_l) for l = 1 … L−1, NumPy float64 (*batch, n_l).
    Returns ln s (*batch, k) descending, −inf beyond the rank, and the rank (*batch,).
    """
    batch = tuple(batch)
    last = kernels[-1]
    x = ops.broadcast_to(last, (*batch, *last.shape[-2:]))
    live = np.full(batch, min(last.shape[-2:]), dtype=int)  # J's rank so far (the columns of x that count)
    product, log_scale, since = None, np.zeros(batch), 0

    def factor(x, d: np.ndarray | None, live: np.ndarray):
        """QR of x with its rows sorted by |d| (largest first); Q's and R's parts beyond ``live`` set to 0."""
        order = None if d is None else np.argsort(-np.abs(d), axis=-1, kind="stable")
        q, r = ops.qr(x if order is None else ops.take_rows(x, order))
        live = np.minimum(live, r.shape[-2])
        keep = (np.arange(r.shape[-2]) < live[..., None]).astype(np.float64)  # (*batch, k)
        q, r = q * keep[..., None, :], r * keep[..., :, None]
        if order is not None:
            q = ops.take_rows(q, np.argsort(order, axis=-1, kind="stable"))
        return q, r, live

    for layer in range(len(kernels) - 1, 0, -1):  # D_l, then W_l, for l = L−1 … 1
        d = np.asarray(derivatives[layer - 1], dtype=np.float64)
        x = x * d[..., :, None]
        active = (d != 0).sum(axis=-1)
        magnitude = np.abs(d)
        spread = magnitude.max(axis=-1) / np.where(magnitude > 0, magnitude, np.inf).min(axis=-1)
        since += 1
        if (active < live).any() or (spread > GRADED).any() or since >= group:
            x, r, live = factor(x, d, np.minimum(live, active))
            product, log_scale = _accumulate(ops, r, product, log_scale)
            since = 0
        x = ops.matmul(kernels[layer - 1], x)
    _, r, live = factor(x, None, live)
    product, log_scale = _accumulate(ops, r, product, log_scale)
    s = ops.to_numpy(ops.svdvals(product))
    with np.errstate(divide="ignore"):
        log_s = np.log(s) + log_scale[..., None]
    beyond = np.arange(log_s.shape[-1]) >= live[..., None]
    return np.where(beyond, -np.inf, log_s), np.minimum(live, log_s.shape[-1])


def _accumulate(ops: SimpleNamespace, r: Any, product: Any, log_scale: np.ndarray) -> tuple[Any, np.ndarray]:
    """product ← R·product, rescaled to max |entry| = 1 per item (its scale added to ``log_scale``)."""
    product = r if product is None else ops.matmul(r, product)
    top = ops.to_numpy(ops.absmax(product))
    top = np.where(top > 0, top, 1.0)
    return product / top[..., None, None], log_scale + np.log(top)
