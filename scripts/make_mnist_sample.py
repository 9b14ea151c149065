"""Build init_lab/data/mnist_sample.npz: a stratified sample of real MNIST.

Run once from the repository root (the result is committed):
    python scripts/make_mnist_sample.py ../shared/data/mnist

Takes the same number of images of each digit (a seeded random choice within each
class) from the training and the test set, keeping the original uint8 pixels.
MNIST: Yann LeCun and Corinna Cortes, CC BY-SA 3.0 — the attribution travels with
the sample (init_lab/data/MNIST_SAMPLE_LICENSE.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from init_lab.catalog.datasets import load_idx_dir

TRAIN_PER_CLASS = 1000
TEST_PER_CLASS = 200
SEED = 20261123


def stratified(y: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    picks = [rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in range(10)]
    idx = np.concatenate(picks)
    return idx[rng.permutation(len(idx))]


def main(src: str) -> None:
    ds = load_idx_dir(Path(src), "mnist")
    if ds is None:
        sys.exit(f"no complete set of MNIST IDX files in {src}")
    rng = np.random.default_rng(SEED)
    tr = stratified(ds.y_train, TRAIN_PER_CLASS, rng)
    te = stratified(ds.y_test, TEST_PER_CLASS, rng)
    out = Path(__file__).resolve().parents[1] / "init_lab" / "data" / "mnist_sample.npz"
    np.savez_compressed(
        out,
        x_train=ds.x_train[tr],
        y_train=ds.y_train[tr].astype(np.uint8),
        x_test=ds.x_test[te],
        y_test=ds.y_test[te].astype(np.uint8),
        source_index_train=tr.astype(np.int32),
        source_index_test=te.astype(np.int32),
    )
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB): {len(tr)} train, {len(te)} test")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/mnist")
