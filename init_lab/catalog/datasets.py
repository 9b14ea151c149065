"""Datasets: loading MNIST-like data from wherever it is, once per sweep.

``mnist`` / ``fashion_mnist`` look, in order, at ``dataset.path`` (a directory of
the four standard IDX files, .gz or raw, or an ``.npz`` with x_train/y_train/
x_test/y_test), at ``$INITLAB_DATA_DIR`` (and its ``mnist/`` or ``fashion_mnist/``
sub-directory), and finally at Keras' downloader and cache (``~/.keras/datasets``).
``mnist_sample`` is a stratified sample of real MNIST shipped inside the package;
``synthetic`` is generated, for tiny tests. Pixels are scaled to [0, 1] later,
by :func:`prepare`, which can also standardise them per pixel (``dataset.standardize``).

This module reads files but writes none (run directories belong to ``store``).
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from init_lab.catalog import defaults
from init_lab.catalog.errors import DataError

SAMPLE_FILE = "mnist_sample.npz"

DATASETS: dict[str, str] = {
    "mnist": "MNIST, 60k train / 10k test, 28×28 grey digits (Keras download/cache, or a local IDX dir / .npz)",
    "fashion_mnist": "Fashion-MNIST, 60k / 10k, 28×28 grey clothing images (same sources and formats as mnist)",
    "mnist_sample": "stratified sample of real MNIST shipped in the package (works offline; CC BY-SA 3.0)",
    "synthetic": "generated 28×28 class-prototype images with noise, 10 classes (tiny tests)",
}

# (training, test) examples of each dataset as shipped (synthetic: its defaults), and their image shape: what the
# memory estimate plans with before anything is loaded (files given by dataset.path may hold other sizes)
NOMINAL_SIZES: dict[str, tuple[int, int]] = {
    "mnist": (60_000, 10_000),
    "fashion_mnist": (60_000, 10_000),
    "mnist_sample": (10_000, 2_000),
    "synthetic": (defaults.SYNTHETIC_TRAIN, defaults.SYNTHETIC_TEST),
}
IMAGE_SHAPE = (28, 28)
N_CLASSES = 10

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


@dataclass
class Dataset:
    """Raw arrays of one dataset (images uint8 N×28×28 or float, labels int) and where they came from."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    n_classes: int = N_CLASSES


@dataclass
class Prepared:
    """Model-ready float32 arrays: train/validation split taken once per sweep, shared by all trials."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    source: str

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def probe_batch(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """The fixed diagnostics batch: the first ``size`` validation examples and their labels."""
        return self.x_val[:size], self.y_val[:size]

    def lsuv_batch(self, size: int) -> np.ndarray:
        """LSUV's data batch: the first ``size`` training examples (LSUV sets weights, so never validation data)."""
        return self.x_train[:size]


# --- file formats -------------------------------------------------------------


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (ubyte data), gzip-compressed or raw."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read IDX file {path}: {exc}") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file (bad magic number).")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape)) if shape else 0
    if len(data) - header != expected:
        raise DataError(f"{path} is truncated or corrupt: header says {shape}, file holds {len(data) - header} bytes.")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _find_idx(directory: Path, stem: str) -> Path | None:
    # standard names, plus the "train-images.idx3-ubyte" spelling some mirrors use
    for candidate in (stem, stem.replace("-idx", ".idx")):
        for suffix in (".gz", ""):
            p = directory / f"{candidate}{suffix}"
            if p.is_file():
                return p
    return None


def load_idx_dir(directory: Path, name: str) -> Dataset | None:
    """The dataset from a directory holding the four IDX files, or None if any is missing."""
    found = {key: _find_idx(directory, stem) for key, stem in IDX_FILES.items()}
    if not all(found.values()):
        return None
    arrays = {key: read_idx(path) for key, path in found.items()}  # type: ignore[arg-type]
    return checked(Dataset(name, **arrays, source=f"IDX files in {directory}"))


def load_npz(path: Path, name: str) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in IDX_FILES if k not in f.files]
            if missing:
                raise DataError(f"{path} lacks arrays {missing}; expected x_train, y_train, x_test, y_test.")
            arrays = {k: f[k] for k in IDX_FILES}
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    return checked(Dataset(name, **arrays, source=f"{path}"))


def checked(ds: Dataset) -> Dataset:
    for split in ("train", "test"):
        x, y = getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}")
        if x.ndim != 3 or len(x) != len(y) or len(x) == 0:
            raise DataError(
                f"{ds.source}: {split} images must be N×H×W with one label each; got {x.shape} and {y.shape}."
            )
    ds.y_train = ds.y_train.astype(np.int32)
    ds.y_test = ds.y_test.astype(np.int32)
    return ds


# --- sources ------------------------------------------------------------------


def _from_path(path: Path, name: str, looked: list[str]) -> Dataset | None:
    if path.is_file():
        if path.suffix == ".npz":
            return load_npz(path, name)
        looked.append(f"{path} (a file, but not an .npz)")
        return None
    if path.is_dir():
        ds = load_idx_dir(path, name)
        if ds is not None:
            return ds
        npz = path / f"{name}.npz"
        if npz.is_file():
            return load_npz(npz, name)
        looked.append(f"{path} (no complete set of IDX files, no {name}.npz)")
        return None
    looked.append(f"{path} (does not exist)")
    return None


Downloader = Callable[[str, list[str]], "Dataset | None"]  # (name, looked) → Dataset, or None noting where it looked


def load_dataset(
    name: str,
    path: str | None = None,
    synthetic_sizes: tuple[int, int] | None = None,
    download: Downloader | None = None,
) -> Dataset:
    """Load a dataset by registry name; raises DataError saying where it looked and how to fix it.

    ``download`` is the last resort for mnist/fashion_mnist (the engine passes Keras' downloader and cache).
    """
    if name == "synthetic":
        n_train, n_test = synthetic_sizes or (defaults.SYNTHETIC_TRAIN, defaults.SYNTHETIC_TEST)
        return make_synthetic(n_train, n_test)
    if name == "mnist_sample":
        if path:
            raise DataError("mnist_sample is built into the package and takes no 'path'; use name: mnist for files.")
        with resources.as_file(resources.files("init_lab.data") / SAMPLE_FILE) as p:
            if not p.is_file():
                raise DataError(
                    f"the bundled sample {p} is missing from this installation; reinstall initlab "
                    "(pip install -e .) or run scripts/make_mnist_sample.py."
                )
            ds = load_npz(p, name)
        ds.source = f"bundled stratified sample of MNIST ({len(ds.x_train)} train / {len(ds.x_test)} test)"
        return ds
    looked: list[str] = []
    if path:
        ds = _from_path(Path(path).expanduser(), name, looked)
        if ds is None:
            raise DataError(_missing_message(name, looked, from_path=True))
        return ds
    env_dir = os.environ.get(defaults.DATA_DIR_ENV)
    if env_dir:
        root = Path(env_dir).expanduser()
        for candidate in (root, root / name):
            ds = _from_path(candidate, name, looked)
            if ds is not None:
                return ds
    else:
        looked.append(f"${defaults.DATA_DIR_ENV} (not set)")
    ds = download(name, looked) if download is not None else None
    if ds is None:
        raise DataError(_missing_message(name, looked, from_path=False))
    return ds


def _missing_message(name: str, looked: list[str], from_path: bool) -> str:
    where = "\n".join(f"  - {item}" for item in looked)
    return (
        f"dataset '{name}' not found. Looked in:\n{where}\n"
        f"Fix: point dataset.path (or ${defaults.DATA_DIR_ENV}) at a directory holding "
        f"{', '.join(s + '.gz' for s in IDX_FILES.values())} (gzipped or raw), or at an .npz with "
        "x_train/y_train/x_test/y_test; or go online once so Keras can download and cache it; "
        "or use dataset 'mnist_sample', which ships with initlab."
    )


def make_synthetic(n_train: int, n_test: int, seed: int = 1234) -> Dataset:
    """Ten noisy class prototypes on a 28×28 canvas: learnable, deterministic, instant."""
    rng = np.random.default_rng(seed)
    prototypes = rng.random((N_CLASSES, *IMAGE_SHAPE)) < 0.25

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.arange(n, dtype=np.int32) % N_CLASSES
        rng.shuffle(y)
        noise = rng.random((n, *IMAGE_SHAPE)) < 0.15
        x = (prototypes[y] ^ noise).astype(np.uint8) * 255
        return x, y

    x_train, y_train = draw(n_train)
    x_test, y_test = draw(n_test)
    return Dataset("synthetic", x_train, y_train, x_test, y_test, source=f"synthetic (seed {seed})")


# --- preprocessing ------------------------------------------------------------


def prepare(
    ds: Dataset,
    family: str,
    validation_split: float,
    split_seed: int = defaults.SPLIT_SEED,
    train_size: int | None = None,
    test_size: int | None = None,
    standardize: bool = False,
) -> Prepared:
    """Scale to [0,1] float32, shape for the model family, and take the validation split once.

    The split is a fixed permutation (``split_seed``) of the training set: the same
    validation examples for every trial of the sweep. With ``standardize`` every feature
    (pixel) is then shifted and scaled by its mean and std over the training split (the
    zero-mean, unit-variance inputs LeCun 1998 and SELU assume), on train, validation and test alike.
    """
    rng = np.random.default_rng(split_seed)
    order = rng.permutation(len(ds.x_train))
    if train_size is not None:
        order = order[:train_size]
    n_val = int(round(len(order) * validation_split))
    if n_val < 1 or n_val >= len(order):
        raise DataError(
            f"validation_split {validation_split} of {len(order)} training examples leaves "
            f"{n_val} for validation and {len(order) - n_val} for training; both need at least one."
        )
    val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
    test_idx = np.arange(len(ds.x_test))
    if test_size is not None:
        test_idx = np.sort(np.random.default_rng(split_seed + 1).permutation(len(ds.x_test))[:test_size])

    def shape(x: np.ndarray) -> np.ndarray:
        # integer images are 0..255 pixels; float images are taken as already scaled
        x = x.astype(np.float32) / 255.0 if np.issubdtype(x.dtype, np.integer) else x.astype(np.float32)
        if family == "cnn":
            return x.reshape(len(x), x.shape[1], x.shape[2], 1)
        return x.reshape(len(x), -1)

    x_train, x_val, x_test = shape(ds.x_train[train_idx]), shape(ds.x_train[val_idx]), shape(ds.x_test[test_idx])
    if standardize:
        x_train, x_val, x_test = standardized(x_train, x_val, x_test)
    return Prepared(
        x_train=x_train,
        y_train=ds.y_train[train_idx],
        x_val=x_val,
        y_val=ds.y_train[val_idx],
        x_test=x_test,
        y_test=ds.y_test[test_idx],
        n_classes=ds.n_classes,
        source=ds.source + (", standardized per pixel" if standardize else ""),
    )


def standardized(x_train: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    """Every array with each feature (axis 1 on: a pixel) standardised by the training split's mean and std.

    A feature constant over the training split (a border pixel that is always 0) carries nothing the
    model could learn from its scale: it becomes 0 everywhere rather than a division by zero.
    """
    mean = x_train.mean(axis=0, dtype=np.float64)
    std = x_train.std(axis=0, dtype=np.float64)
    varies = x_train.max(axis=0) > x_train.min(axis=0)  # exact, where a rounded std might not be 0
    scale = np.where(varies, 1.0 / np.where(varies, std, 1.0), 0.0)
    return tuple(((x - mean) * scale).astype(np.float32) for x in (x_train, *others))
