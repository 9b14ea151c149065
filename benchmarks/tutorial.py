"""The tutorial loop the benchmark measures initlab against: what a user writes without initlab.

For each (initializer, activation) combination: a fresh Keras model, ``compile``, ``fit`` for the epochs
with the validation set, ``evaluate`` on the test set. It uses nothing of initlab: MNIST comes from
``keras.datasets.mnist.load_data()`` or, offline, from a directory of the standard IDX files
(``--data``), split 90/10 into training and validation like initlab's configs. Prints one JSON line:
each combination's test accuracy.

    python benchmarks/tutorial.py --data ../shared/data/mnist --init he_normal --act relu [--cnn]

Run once with every combination (one process), or once per combination (a process each, like a shell
loop over a training script): ``bench_sweep.py`` times both as whole processes.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402


def idx(path: Path) -> np.ndarray:
    """One IDX file (gzipped or not) as an array."""
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(data: str | None):
    if data is None:
        return keras.datasets.mnist.load_data()
    d = Path(data)
    file = lambda stem: next(p for p in (d / f"{stem}.gz", d / stem) if p.exists())  # noqa: E731
    return ((idx(file("train-images-idx3-ubyte")), idx(file("train-labels-idx1-ubyte"))),
            (idx(file("t10k-images-idx3-ubyte")), idx(file("t10k-labels-idx1-ubyte"))))


def model(init: str, act: str, cnn: bool) -> keras.Model:
    if cnn:
        layers = [keras.Input((28, 28, 1)),
                  keras.layers.Conv2D(32, 3, activation=act, kernel_initializer=init), keras.layers.MaxPooling2D(2),
                  keras.layers.Conv2D(64, 3, activation=act, kernel_initializer=init), keras.layers.MaxPooling2D(2),
                  keras.layers.Conv2D(64, 3, activation=act, kernel_initializer=init), keras.layers.Flatten(),
                  keras.layers.Dense(64, activation=act, kernel_initializer=init)]
    else:
        layers = [keras.Input((784,)), keras.layers.Dense(256, activation=act, kernel_initializer=init),
                  keras.layers.Dense(256, activation=act, kernel_initializer=init)]
    return keras.Sequential(layers + [keras.layers.Dense(10, activation="softmax", kernel_initializer=init)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=None, help="directory of MNIST IDX files (default: Keras' downloader)")
    ap.add_argument("--init", nargs="+", required=True)
    ap.add_argument("--act", nargs="+", required=True)
    ap.add_argument("--cnn", action="store_true")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=128)
    args = ap.parse_args()
    (x_train, y_train), (x_test, y_test) = load(args.data)
    shape = (-1, 28, 28, 1) if args.cnn else (-1, 784)
    x_train, x_test = (x_train / 255.0).astype("float32").reshape(shape), (x_test / 255.0).astype("float32").reshape(shape)
    order = np.random.default_rng(0).permutation(len(x_train))
    n_val = len(x_train) // 10
    val, train = order[:n_val], order[n_val:]
    accuracies = {}
    for init in args.init:
        for act in args.act:
            keras.utils.set_random_seed(0)
            net = model(init, act, args.cnn)
            net.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                        metrics=["accuracy"])
            net.fit(x_train[train], y_train[train], batch_size=args.batch, epochs=args.epochs,
                    validation_data=(x_train[val], y_train[val]), verbose=0)
            accuracies[f"{init}/{act}"] = float(net.evaluate(x_test, y_test, verbose=0)[1])
    print(json.dumps(accuracies))


if __name__ == "__main__":
    main()
