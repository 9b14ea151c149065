"""Datasets: what each one is (:data:`DATASETS`), loading it from wherever it is, once per sweep.

``mnist`` / ``fashion_mnist`` / ``cifar10`` look, in order, at ``dataset.path`` (MNIST: a directory of
the four standard IDX files, .gz or raw; CIFAR-10: the python-version batches, their folder or archive,
read by ``cifar``; either: an ``.npz`` with x_train/y_train/x_test/y_test), at ``$INITLAB_DATA_DIR`` (and
its sub-directory named after the dataset), and finally at Keras' downloader and cache
(``~/.keras/datasets``). ``mnist_sample`` is a stratified sample of real MNIST shipped inside the package;
``digits`` is scikit-learn's bundled 8×8 digits (``digits``); ``synthetic`` is generated, of any image
shape and class count, for tiny tests. Images are (N, H, W) grey or (N, H, W, C) colour, channels last.
Pixels are scaled to [0, 1] later, by :func:`prepare`, which can also standardise them
(``dataset.standardize``): per pixel for grey images, per channel for colour ones.

This module reads files but writes none (run directories belong to ``store``).
"""

from __future__ import annotations

import gzip
import mmap
import os
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from init_lab.catalog import caches, cifar, defaults, digits
from init_lab.catalog.errors import DataError
from init_lab.catalog.sampling import stratified

SAMPLE_FILE = "mnist_sample.npz"

IMAGE_SHAPE = (28, 28)  # MNIST's (and Fashion-MNIST's) images
N_CLASSES = 10  # every named dataset's, and what a manifest without a class count (an older run) had


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset as known before anything is loaded: what ``initlab list datasets`` shows, and what the memory
    estimate and the theory plan with (files given by dataset.path may hold other sizes, never other shapes)."""

    name: str
    description: str
    image_shape: tuple[int, ...]  # one image as loaded: (H, W) grey, (H, W, C) colour
    classes: int
    sizes: tuple[int, int]  # (training, test) examples as shipped (synthetic: its defaults)
    sources: str  # where it is looked for, in order

    @property
    def shape_label(self) -> str:
        return "×".join(map(str, self.image_shape)) + (" grey" if len(self.image_shape) == 2 else "")


_MNIST_SOURCES = ("dataset.path or $INITLAB_DATA_DIR (or its {name}/): the four IDX files (.gz or raw) or an .npz; "
                  "then Keras' downloader and cache")
DATASETS: dict[str, DatasetInfo] = {d.name: d for d in [
    DatasetInfo("mnist", "MNIST handwritten digits", IMAGE_SHAPE, 10, (60_000, 10_000),
                _MNIST_SOURCES.format(name="mnist")),
    DatasetInfo("fashion_mnist", "Fashion-MNIST clothing images", IMAGE_SHAPE, 10, (60_000, 10_000),
                _MNIST_SOURCES.format(name="fashion_mnist")),
    DatasetInfo("mnist_sample", "stratified sample of real MNIST (CC BY-SA 3.0)", IMAGE_SHAPE, 10, (10_000, 2_000),
                "shipped in the package: offline"),
    DatasetInfo("cifar10", "CIFAR-10 colour photos: " + ", ".join(cifar.CLASSES), (32, 32, 3), 10, (50_000, 10_000),
                f"dataset.path or $INITLAB_DATA_DIR (or its cifar10/): the python-version batches, their "
                f"{cifar.FOLDER}/ folder or {cifar.ARCHIVE}, or an .npz; then Keras' downloader and cache"),
    DatasetInfo("digits", "scikit-learn's handwritten digits; fixed stratified 20 % test split",
                (8, 8), 10, (digits.N_IMAGES - digits.N_TEST, digits.N_TEST),
                "bundled with scikit-learn, offline (pip install 'initlab[digits]')"),
    DatasetInfo("synthetic", "generated class prototypes with noise, for tiny tests", defaults.SYNTHETIC_SHAPE,
                defaults.SYNTHETIC_CLASSES, (defaults.SYNTHETIC_TRAIN, defaults.SYNTHETIC_TEST),
                "generated: any shape and class count (dataset.synthetic_shape, synthetic_classes, synthetic_train, "
                "synthetic_test)"),
]}


def channels_last(image_shape: tuple[int, ...]) -> tuple[int, ...]:
    """(H, W) grey → (H, W, 1); (H, W, C) as it is: what a conv net takes."""
    return (*image_shape, 1) if len(image_shape) == 2 else tuple(image_shape)


def model_input_shape(image_shape: tuple[int, ...], family: str) -> tuple[int, ...]:
    """One example as the model family takes it: a conv net (H, W, C), an MLP the image flattened."""
    return channels_last(image_shape) if family == "cnn" else (int(np.prod(image_shape)),)


def colour(image_shape: tuple[int, ...]) -> bool:
    """Images of more than one channel: standardised per channel, where grey ones are per pixel."""
    return len(image_shape) == 3 and image_shape[2] > 1

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


@dataclass
class Dataset:
    """Raw arrays of one dataset (images N×H×W or N×H×W×C, uint8 or floats in [0, 1]; labels int) and where
    they came from."""

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
    image_shape: tuple[int, ...] = ()  # one image as loaded, before the model family's reshape

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
    """Read one IDX file (ubyte data), gzip-compressed or raw, checking it whole: DataError names the
    file and what is wrong ("truncated: N of M bytes", a bad magic number, a damaged gzip stream)."""
    gz = path.suffix == ".gz"
    opener = gzip.open if gz else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except EOFError:
        raise DataError(f"{path}: truncated: its gzip stream ends early (an interrupted download or copy?); "
                        "fetch the file again.") from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"{path}: not a gzip file, or a damaged one ({exc}); fetch it again, or give the "
                        "uncompressed file without .gz.") from None
    except OSError as exc:
        raise DataError(f"cannot read IDX file {path}: {exc.strerror or exc}.") from None
    size = "uncompressed bytes" if gz else "bytes"
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        first = " ".join(f"{b:02x}" for b in data[:4]) or "nothing (empty file)"
        raise DataError(f"{path}: not an IDX file of unsigned bytes (bad magic number: it starts with {first}, "
                        "where 00 00 08 and the number of dimensions were expected).")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated: {len(data)} of its {header}-byte header's {size}.")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + (int(np.prod(shape)) if shape else 0)
    if len(data) < expected:
        raise DataError(f"{path}: truncated: {len(data)} of {expected} {size} (its header says shape {shape}); "
                        "fetch the file again.")
    if len(data) > expected:
        raise DataError(f"{path}: {len(data)} {size} where its header (shape {shape}) says {expected}: corrupt, "
                        "or not an IDX file.")
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
    # a gzipped file decompressed once, then mapped from the decoded-dataset cache (catalog.caches)
    arrays = {key: caches.decoded(path, read_idx) if path.suffix == ".gz" else read_idx(path)  # type: ignore[union-attr]
              for key, path in found.items()}
    return checked(Dataset(name, **arrays, source=f"IDX files in {directory}"),
                   {key: str(path) for key, path in found.items()})


def load_npz(path: Path, name: str) -> Dataset:
    """An .npz of x_train, y_train, x_test, y_test (Keras' mnist.npz; for cifar10 x (N, 32, 32, 3) uint8, as
    keras.datasets.cifar10 returns it), read whole and checked against the dataset's shape. Never as a
    pickle: a file that is not a zip archive is said to be one, not loaded "unsafely" as NumPy would advise."""
    try:
        is_zip = zipfile.is_zipfile(path)
        size = path.stat().st_size
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}.") from None
    if not is_zip:
        what = "an empty file" if not size else f"{size} bytes"
        raise DataError(f"{path}: not a zip archive ({what}), so not an .npz: expected NumPy's savez format with "
                        "arrays x_train, y_train, x_test, y_test (Keras' mnist.npz). Fetch or save it again.")
    arrays = {}
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in IDX_FILES if k not in f.files]
            if missing:
                raise DataError(f"{path}: lacks array(s) {', '.join(missing)} (it has {', '.join(f.files) or 'none'}); "
                                "expected x_train, y_train, x_test, y_test.")
            for key in IDX_FILES:
                arrays[key] = _npz_array(f, key, path)
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise DataError(f"{path}: a damaged zip archive ({type(exc).__name__}: {exc}); fetch or save it again.") from None
    return checked(Dataset(name, **arrays, source=f"{path}"), {key: f"{path}: {key}" for key in IDX_FILES})


def _npz_array(f: Any, key: str, path: Path) -> np.ndarray:
    try:
        return f[key]
    except ValueError as exc:
        if "pickle" in str(exc) or "Object arrays" in str(exc):  # NumPy's message advises allow_pickle: never
            raise DataError(f"{path}: {key} holds Python objects (pickled data), not numbers; initlab loads no "
                            "pickled data. Save plain numeric arrays (np.savez).") from None
        raise DataError(f"{path}: {key} is damaged ({exc}).") from None


def checked(ds: Dataset, names: dict[str, str] | None = None, image_shape: tuple[int, ...] | None = None,
            n_classes: int | None = None) -> Dataset:
    """The dataset, its shapes, types and labels checked: N ≥ 1 images of ``image_shape`` (default: the
    catalog's for ``ds.name``) per split, one integer label in 0..n_classes-1 each (labels of shape (N, 1),
    as keras.datasets.cifar10 gives them, are taken as (N,)), finite pixels. ``names``: how errors name each
    array (its file)."""
    info = DATASETS.get(ds.name)
    image_shape = image_shape or (info.image_shape if info else IMAGE_SHAPE)
    n_classes = n_classes or (info.classes if info else N_CLASSES)
    names = names or {key: f"{ds.source}: {key}" for key in IDX_FILES}
    want = ", ".join(map(str, image_shape))
    for split in ("train", "test"):
        x, y = getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}")
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
            setattr(ds, f"y_{split}", y)
        xn, yn = names[f"x_{split}"], names[f"y_{split}"]
        if x.ndim != 1 + len(image_shape) or tuple(x.shape[1:]) != tuple(image_shape) or len(x) == 0:
            raise DataError(f"{xn}: shape {tuple(x.shape)} where (N, {want}) was expected (N ≥ 1 images).")
        if tuple(y.shape) != (len(x),):
            raise DataError(f"{yn}: shape {tuple(y.shape)} where ({len(x)},) was expected (one label per image "
                            f"of x_{split}).")
        if x.dtype == bool or not np.issubdtype(x.dtype, np.number):
            raise DataError(f"{xn}: {x.dtype} values where pixels (uint8, or floats in [0, 1]) were expected.")
        if np.issubdtype(x.dtype, np.inexact) and not np.isfinite(x).all():
            raise DataError(f"{xn}: holds NaN or infinite pixels.")
        if y.dtype == bool or not np.issubdtype(y.dtype, np.number) or (
                np.issubdtype(y.dtype, np.inexact) and not (np.isfinite(y).all() and (y == np.round(y)).all())):
            raise DataError(f"{yn}: {y.dtype} values where integer class labels were expected.")
        low, high = y.min(), y.max()
        if low < 0 or high >= n_classes:
            raise DataError(f"{yn}: labels from {low:g} to {high:g} where 0..{n_classes - 1} were expected.")
    ds.y_train = ds.y_train.astype(np.int32)
    ds.y_test = ds.y_test.astype(np.int32)
    return ds


# --- sources ------------------------------------------------------------------


def _from_path(path: Path, name: str, looked: list[str]) -> Dataset | None:
    if name == "cifar10":
        return _cifar_from_path(path, looked)
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


def _cifar_from_path(path: Path, looked: list[str]) -> Dataset | None:
    found = cifar.locate(path, looked)
    if found is None:
        return None
    kind, where = found
    return load_npz(where, "cifar10") if kind == "npz" else load_cifar(kind, where)


def load_cifar(kind: str, where: Path) -> Dataset:
    """CIFAR-10 from a located folder of batches or archive (``cifar.locate``), checked."""
    arrays, names, source = cifar.read(kind, where)
    return checked(Dataset("cifar10", **arrays, source=source), names)


Downloader = Callable[[str, list[str]], "Dataset | None"]  # (name, looked) → Dataset, or None noting where it looked


def load_dataset(
    name: str,
    path: str | None = None,
    synthetic_sizes: tuple[int, int] | None = None,
    download: Downloader | None = None,
    synthetic_shape: tuple[int, ...] = defaults.SYNTHETIC_SHAPE,
    synthetic_classes: int = defaults.SYNTHETIC_CLASSES,
) -> Dataset:
    """Load a dataset by registry name; raises DataError saying where it looked and how to fix it.

    ``download`` is the last resort for mnist/fashion_mnist/cifar10 (the engine passes Keras' downloader and
    cache).
    """
    if name == "synthetic":
        n_train, n_test = synthetic_sizes or (defaults.SYNTHETIC_TRAIN, defaults.SYNTHETIC_TEST)
        return make_synthetic(n_train, n_test, shape=tuple(synthetic_shape), classes=synthetic_classes)
    if name == "digits":
        if path:
            raise DataError("digits is bundled with scikit-learn and takes no 'path'.")
        ds = Dataset(name, **digits.load(), source="")
        ds.source = (f"scikit-learn's digits, fixed stratified split ({len(ds.x_train)} train / {len(ds.x_test)} "
                     "test)")
        return checked(ds)
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
    if name == "cifar10":
        return (
            f"dataset '{name}' not found. Looked in:\n{where}\n"
            f"Fix: point dataset.path (or ${defaults.DATA_DIR_ENV}, or its cifar10/ sub-directory) at CIFAR-10's "
            f"python version: the folder {cifar.FOLDER}/ ({', '.join(cifar.BATCHES)}), a directory holding it, or "
            f"{cifar.ARCHIVE} ({cifar.URL}); or at an .npz with x_train (N, 32, 32, 3) uint8, y_train, x_test, "
            "y_test; or go online once so Keras can download and cache it; or use dataset 'synthetic' with "
            "synthetic_shape: [32, 32, 3] to try a CIFAR-shaped sweep offline."
        )
    return (
        f"dataset '{name}' not found. Looked in:\n{where}\n"
        f"Fix: point dataset.path (or ${defaults.DATA_DIR_ENV}) at a directory holding "
        f"{', '.join(s + '.gz' for s in IDX_FILES.values())} (gzipped or raw), or at an .npz with "
        "x_train/y_train/x_test/y_test; or go online once so Keras can download and cache it; "
        "or use dataset 'mnist_sample', which ships with initlab."
    )


def make_synthetic(n_train: int, n_test: int, seed: int = 1234, shape: tuple[int, ...] = defaults.SYNTHETIC_SHAPE,
                   classes: int = defaults.SYNTHETIC_CLASSES) -> Dataset:
    """Noisy class prototypes (one per class, every pixel of every channel on with probability 0.25, then
    15 % flipped): learnable, deterministic, instant; any image shape (H, W) or (H, W, C), any class count."""
    rng = np.random.default_rng(seed)
    prototypes = rng.random((classes, *shape)) < 0.25

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.arange(n, dtype=np.int32) % classes
        rng.shuffle(y)
        noise = rng.random((n, *shape)) < 0.15
        x = (prototypes[y] ^ noise).astype(np.uint8) * 255
        return x, y

    x_train, y_train = draw(n_train)
    x_test, y_test = draw(n_test)
    shown = "" if (tuple(shape), classes) == (defaults.SYNTHETIC_SHAPE, defaults.SYNTHETIC_CLASSES) else \
        f", {'×'.join(map(str, shape))}, {classes} classes"
    return Dataset("synthetic", x_train, y_train, x_test, y_test, source=f"synthetic (seed {seed}{shown})",
                   n_classes=classes)


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
    validation examples for every trial of the sweep. ``train_size`` / ``test_size`` keep a stratified
    subset (``sampling.stratified``: each class in proportion, the first of the seeded permutation) of the
    training / test set. With ``standardize`` every feature of grey images (a pixel), or every channel of
    colour images, is then shifted and scaled by its mean and std over the training split (the zero-mean,
    unit-variance inputs LeCun 1998 and SELU assume), on train, validation and test alike.
    """
    rng = np.random.default_rng(split_seed)
    order = rng.permutation(len(ds.x_train))
    if train_size is not None:
        order = stratified(order, ds.y_train, train_size)
    n_val = int(round(len(order) * validation_split))
    if n_val < 1 or n_val >= len(order):
        raise DataError(
            f"validation_split {validation_split} of {len(order)} training examples leaves "
            f"{n_val} for validation and {len(order) - n_val} for training; both need at least one."
        )
    val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
    test_idx = np.arange(len(ds.x_test))
    if test_size is not None:
        test_idx = np.sort(stratified(np.random.default_rng(split_seed + 1).permutation(len(ds.x_test)), ds.y_test,
                                      test_size))
    image_shape = tuple(ds.x_train.shape[1:])
    as_input = model_input_shape(image_shape, family)

    def shape(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
        # x[rows] as float32 in one aligned array (``aligned_empty``: the engine hands it to TensorFlow without a
        # copy), gathered a block of rows at a time: no full-size temporary (page faults of fresh memory cost more
        # than the copying: 0.3 s for one of full MNIST). Integer images are 0..255 pixels, divided in place;
        # float images are taken as already scaled
        out = aligned_empty((len(rows), *as_input), np.float32)  # flattened (MLP) or channels last: channels stay last
        flat = out.reshape(len(rows), -1)
        for start in range(0, len(rows), GATHER_ROWS):
            block = x[rows[start: start + GATHER_ROWS]].reshape(-1, flat.shape[1])
            flat[start: start + len(block)] = block  # the cast to float32, as astype
        if np.issubdtype(x.dtype, np.integer):
            np.divide(out, np.float32(255.0), out=out)
        return out

    x_train, x_val, x_test = shape(ds.x_train, train_idx), shape(ds.x_train, val_idx), shape(ds.x_test, test_idx)
    per_channel = colour(image_shape)
    if standardize:
        x_train, x_val, x_test = standardized(x_train, x_val, x_test, channels=image_shape[-1] if per_channel else None)
    return Prepared(
        x_train=x_train,
        y_train=ds.y_train[train_idx],
        x_val=x_val,
        y_val=ds.y_train[val_idx],
        x_test=x_test,
        y_test=ds.y_test[test_idx],
        n_classes=ds.n_classes,
        source=ds.source + (f", standardized per {'channel' if per_channel else 'pixel'}" if standardize else ""),
        image_shape=image_shape,
    )


GATHER_ROWS = 4096  # rows gathered at a time by ``prepare``
ALIGNMENT = 64  # bytes: what TensorFlow requires of a CPU buffer it adopts without copying


PLAIN_PAGES_BYTES = 4 * 2**20  # from this size on NumPy asks Linux for transparent huge pages (see aligned_empty)


def aligned_empty(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """An uninitialized C-contiguous array whose data starts at an ``ALIGNMENT``-byte boundary (NumPy's own
    allocations are 16-byte aligned).

    A large one is an anonymous private mapping (page-aligned) in ordinary pages. NumPy advises the kernel to back
    its own allocations of 4 MiB or more with transparent huge pages, and where the kernel's ``defrag`` setting is
    ``madvise`` (Debian's and Ubuntu's default) a fault in such memory waits for the kernel to compact memory into a
    free 2 MiB page when none is free: writing full MNIST's 220 MB of float32 images took 0.43 s in fresh NumPy
    memory on the development machine, 0.08 s in ordinary pages (the data phase of a sweep 0.50 → 0.29 s)."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size >= PLAIN_PAGES_BYTES and hasattr(mmap, "MAP_PRIVATE"):  # POSIX; elsewhere NumPy's memory, aligned below
        return np.frombuffer(mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE), dtype).reshape(shape)  # -1: anonymous
    raw = np.empty(size + ALIGNMENT, np.uint8)
    offset = (-raw.ctypes.data) % ALIGNMENT
    return raw[offset: offset + size].view(dtype).reshape(shape)


def standardized(x_train: np.ndarray, *others: np.ndarray, channels: int | None = None) -> tuple[np.ndarray, ...]:
    """Every array with each feature (axis 1 on: a pixel) standardised by the training split's mean and std;
    with ``channels`` (colour images, channels last, flattened or not) each channel instead, by its mean and
    std over every pixel of every training image.

    A feature constant over the training split (a border pixel that is always 0) carries nothing the
    model could learn from its scale: it becomes 0 everywhere rather than a division by zero.
    """
    if channels is not None:
        # (N, …, C) → (N, pixels, C): one mean and std per channel; back to each array's own shape after
        flat = [x.reshape(len(x), -1, channels) for x in (x_train, *others)]
        axes: tuple[int, ...] = (0, 1)
    else:
        flat, axes = [x_train, *others], (0,)
    train = flat[0]
    mean = train.mean(axis=axes, dtype=np.float64)
    std = train.std(axis=axes, dtype=np.float64)
    varies = train.max(axis=axes) > train.min(axis=axes)  # exact, where a rounded std might not be 0
    scale = np.where(varies, 1.0 / np.where(varies, std, 1.0), 0.0)
    return tuple(((f - mean) * scale).astype(np.float32).reshape(x.shape) for f, x in zip(flat, (x_train, *others)))
