"""Stratified subsets: the first k examples of a seeded order, each class in proportion to its share.

One rule for every subset initlab takes (``dataset.train_size`` / ``test_size``, the digits test set): class c
of n_c among n examples gets ⌊k·n_c/n⌋ places, the k − Σ⌊·⌋ left over go to the largest remainders (ties: the
larger class, then the lower label), and each class's places are filled by its first examples in ``order``.
So the subset follows the seeded order it is drawn from, and k ≥ n keeps everything, in that order.
"""

from __future__ import annotations

import numpy as np


def quotas(labels: np.ndarray, k: int) -> dict[int, int]:
    """How many examples of each class a stratified subset of ``k`` of ``labels`` takes (largest remainder)."""
    classes, counts = np.unique(labels, return_counts=True)
    n = int(counts.sum())
    k = min(k, n)
    base, remainder = (counts * k) // n, (counts * k) % n  # integers: no rounding decides a place
    extra = np.lexsort((classes, -counts, -remainder))[: k - int(base.sum())]
    base[extra] += 1
    return {int(c): int(q) for c, q in zip(classes, base)}


def stratified(order: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """The stratified subset of ``k`` examples: indices from ``order`` (a permutation of some of ``labels``'
    indices), kept in that order."""
    y = labels[order]
    keep = np.zeros(len(order), dtype=bool)
    for c, q in quotas(y, k).items():
        keep[np.flatnonzero(y == c)[:q]] = True
    return order[keep]
