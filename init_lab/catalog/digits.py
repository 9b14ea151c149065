"""scikit-learn's bundled digits: 1,797 grey 8×8 images of handwritten digits, offline, with a fixed split.

The images ship inside scikit-learn (``sklearn.datasets.load_digits`` reads a file of the package: nothing
is downloaded). Their pixels are integers 0..16; they are scaled to [0, 1] here (÷ 16, exact in float32).
The data set has no train/test split of its own, so initlab fixes one: 20 % of the images
(``defaults.DIGITS_TEST_FRACTION``: 359 images, 35 to 37 of each digit) are the test set, a stratified subset
(``sampling.stratified``) of a permutation seeded with ``defaults.DIGITS_SPLIT_SEED``; the other 1,438 are
the training set. NumPy's seeded generator draws it, not scikit-learn's splitter, so the split is the same
whatever scikit-learn's version. scikit-learn is an optional extra: ``pip install 'initlab[digits]'``.
"""

from __future__ import annotations

import numpy as np

from init_lab.catalog import defaults
from init_lab.catalog.errors import DataError
from init_lab.catalog.sampling import stratified

PIXEL_MAX = 16.0  # load_digits' pixels are counts of 0..16 set bits in 4×4 blocks of the 32×32 originals
N_IMAGES = 1797
N_TEST = round(N_IMAGES * defaults.DIGITS_TEST_FRACTION)  # 359


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 images (float32 in [0, 1], (N, 8, 8)) and labels; DataError naming the extra if scikit-learn
    is missing."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError("dataset 'digits' is scikit-learn's bundled 8×8 digits, and scikit-learn is not installed: "
                        "pip install 'initlab[digits]' (or pip install scikit-learn).") from None
    bunch = load_digits()
    return (bunch.images / PIXEL_MAX).astype(np.float32), bunch.target.astype(np.int32)


def split(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fixed split of all ``labels``: (train indices, test indices), each sorted."""
    order = np.random.default_rng(defaults.DIGITS_SPLIT_SEED).permutation(len(labels))
    test = np.sort(stratified(order, labels, round(len(labels) * defaults.DIGITS_TEST_FRACTION)))
    return np.setdiff1d(np.arange(len(labels)), test), test


def load() -> dict[str, np.ndarray]:
    """x_train, y_train, x_test, y_test of the fixed split."""
    x, y = load_digits_arrays()
    train, test = split(y)
    return {"x_train": x[train], "y_train": y[train], "x_test": x[test], "y_test": y[test]}
