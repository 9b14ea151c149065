"""Mean-field length map of a residual MLP without normalization (Yang & Schoenholz 2017, extended to m-layer branches).

The network (``catalog.models.Architecture``, a pre-activation residual MLP): a first Dense layer h₀ = W₀x + b₀, then
blocks h ← P·h + g·branch(h) (P the identity, or a projection where the width changes; g the branch's multiplier: 1,
SkipInit's α = 0 at init), branch(h) = W_m φ(… W₂ φ(W₁ φ(h) + b₁) …) + b_m. In the infinite-width limit, with iid
zero-mean weights of fan_in·Var(W_j) = σ_j² and biases of variance σ_b², every pre-activation is Gaussian and the
second moments follow

    s₁ = σ₁²·E[φ(√q·z)²] + σ_b²,   s_j = σ_j²·E[φ(√s_{j−1}·z)²] + σ_b²  (j = 2…m),   q' = σ_P²·q + g²·s_m,

z ~ N(0, 1): the cross term E[h·branch(h)] vanishes because W_m is zero-mean and independent of h, and a projection
P (fan_in·Var(P) = σ_P²) maps q to σ_P²·q; the identity is σ_P² = 1. For m = 1 this is Yang & Schoenholz's reduced
residual network, q_{l+1} = q_l + σ_w²·E[φ(√q_l z)²] + σ_b²; for ReLU it is q' = q·(1 + σ_w²/2) + σ_b² per one-layer
block (He normal, σ_w² = 2: q doubles), and for a two-layer ReLU branch q' = q·(1 + σ₁²σ₂²/4) (He: doubles too).
The per-layer pre-activations the probe measures are q at a block's input and output (its first layer's input, its
last layer's output with the skip added) and s_j inside the branch.

Fixup's branch-last W = 0 and SkipInit's g = 0 make q' = σ_P²·q (+ σ_b², Fixup): the stream is unchanged at init.
"""

from __future__ import annotations

import numpy as np

from init_lab.analysis import meanfield as mf


def residual_length_map(f: mf.Phi, blocks: list[tuple[int, int]], sigma_w2: list[float], sigma_b2: float,
                        projection: dict[int, float], gate: float, q0: np.ndarray) -> np.ndarray:
    """Second moment of every hidden layer's pre-activation, (layers, examples).

    ``blocks``: (first, last) hidden-layer positions of each block, in order, after the first layer (position 0);
    ``sigma_w2``: fan_in·Var(W) of every hidden layer's kernel; ``projection``: block → σ_P² where it projects;
    ``gate``: the branches' multiplier g; ``q0``: the first layer's pre-activation second moment per example."""
    sq = lambda x: f(x) ** 2  # noqa: E731
    n = 1 + sum(last - first + 1 for first, last in blocks)
    q = np.zeros((n, np.size(q0)))
    q[0] = q0
    stream = np.asarray(q0, dtype=np.float64)
    for b, (first, last) in enumerate(blocks):
        s = stream
        for layer in range(first, last + 1):
            s = sigma_w2[layer] * mf.expect(sq, s) + sigma_b2
            if layer < last:
                q[layer] = s
        stream = projection.get(b, 1.0) * stream + gate**2 * s
        q[last] = stream
    return q
