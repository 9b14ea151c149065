"""CIFAR-10's "python version" read without running any code from the files: batches, folder or archive.

The official files (``cifar-10-python.tar.gz``, holding the folder ``cifar-10-batches-py/``) are Python 2
pickles (protocol 2) of one dict per batch: ``b"data"``, a NumPy uint8 array (N, 3072) whose rows are
channel-major (1024 red values, then 1024 green, then 1024 blue, each plane row by row), ``b"labels"``,
a list of N ints in 0..9, and ``b"batch_label"`` and ``b"filenames"``. ``data_batch_1`` … ``data_batch_5``
are the 50,000 training images, ``test_batch`` the 10,000 test images. Those six names are the only
files ever unpickled: ``batches.meta``, ``readme.html`` or anything else beside them is never opened.

How no code runs while a batch is read (:func:`read_batch`):

1. A pickle runs code only by *calling* something, and the only callables a stream can reach are the
   globals it imports. Every import (the GLOBAL, STACK_GLOBAL and INST opcodes) goes through
   ``Unpickler.find_class``; the two other ways to name an object, persistent ids and the extension
   registry (EXT1/2/4, which CPython may answer from ``copyreg``'s cache without asking ``find_class``),
   are refused before loading, by a scan of the opcodes (``pickletools.genops`` parses, runs nothing).
   Everything else a stream can build is an inert value: None, bools, numbers, str, bytes, tuples,
   lists, dicts, sets.
2. ``_BatchUnpickler.find_class`` answers exactly what a genuine batch's ``data`` array names —
   ``numpy.core.multiarray._reconstruct`` (and NumPy 2's spelling ``numpy._core.multiarray``),
   ``numpy.ndarray`` and ``numpy.dtype`` — and refuses every other name without importing it
   (``os.system``, ``builtins.eval``, ``numpy.load`` …): an UnpicklingError, reported as a DataError.
3. Even those names do not reach NumPy: each answer is a stand-in defined here that accepts only the
   exact arguments and state a genuine batch gives (an empty array of the ndarray class; dtype ``u1``;
   state: version 1, a 2-D shape, that dtype, C order, raw bytes of exactly the shape's size) and then
   makes the array itself with ``np.frombuffer(raw, np.uint8)``. NumPy's own callables would accept
   far more: ``numpy.ndarray((1,), object, buffer=raw)`` makes an object array whose pointers are bytes
   the file chose (NumPy 2.4 allows it). The stand-ins have no instance dict and refuse a BUILD (the
   opcode that sets state), so a stream cannot change them either.
4. The result must then be the documented dict: keys ``data`` and ``labels`` (``batch_label`` and
   ``filenames`` allowed, nothing else), ``data`` uint8 (N, 3072) with N ≥ 1, ``labels`` a list of N ints.

Keras' own ``keras.datasets.cifar10.load_data`` unpickled these files with a bare ``pickle.load`` before
keras-team/keras#23252 (2026), in releases initlab still accepts (keras>=3.3); so the engine uses Keras only
to download and cache the archive (``keras.utils.get_file``, SHA-256 checked) and reads everything here.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import tarfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from init_lab.catalog.errors import DataError

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
BATCHES = (*TRAIN_BATCHES, TEST_BATCH)
FOLDER = "cifar-10-batches-py"  # what the archive holds, and what Keras extracts
ARCHIVE = "cifar-10-python.tar.gz"
NPZ = "cifar10.npz"
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"  # the origin keras.datasets.cifar10 downloads
SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"  # ... and the hash it checks
# where keras.datasets.cifar10.load_data leaves the extracted folder under Keras' cache (~/.keras/datasets): the
# current layout (Keras 3.15: "cifar-10-batches-py-target/"), and older releases'
KERAS_FOLDERS = (Path("cifar-10-batches-py-target") / FOLDER, Path(FOLDER))
ROW = 3 * 32 * 32  # one image: three 32×32 planes, channel-major
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

_KEYS, _EXTRA_KEYS = {"data", "labels"}, {"batch_label", "filenames"}
_REFUSED_OPCODES = {"EXT1", "EXT2", "EXT4", "PERSID", "BINPERSID"}  # names that bypass find_class


# --- the safe unpickler --------------------------------------------------------


def _refuse(why: str) -> pickle.UnpicklingError:
    return pickle.UnpicklingError(why)


def _exactly(value: Any, expected: tuple) -> bool:
    """``value`` is a tuple equal to ``expected`` item by item *and type by type* (3.0 is not 3, True not 1).
    Only inert values reach here (see the module docstring), so comparing them runs no code."""
    return (type(value) is tuple and len(value) == len(expected)
            and all(type(a) is type(b) and a == b for a, b in zip(value, expected)))


class _Inert:
    """Base of every object ``find_class`` hands out: no instance dict, and a BUILD on it is refused."""

    __slots__ = ()

    def __setstate__(self, state: Any) -> None:
        raise _refuse(f"setting the state of {type(self).__name__}")


class _ArrayClass(_Inert):
    """Stands for ``numpy.ndarray``: a genuine batch only passes it to ``_reconstruct``, never calls it."""

    __slots__ = ()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise _refuse("calling numpy.ndarray")


ARRAY_CLASS = _ArrayClass()


class _UInt8:
    """``numpy.dtype('u1')`` being rebuilt: valid once its state is exactly a plain uint8's."""

    __slots__ = ("ready",)
    STATES = ((3, b"|", None, None, None, -1, -1, 0), (3, "|", None, None, None, -1, -1, 0))

    def __init__(self) -> None:
        self.ready = False

    def __setstate__(self, state: Any) -> None:
        if self.ready or not any(_exactly(state, s) for s in self.STATES):
            raise _refuse("a dtype other than a plain uint8")
        self.ready = True


class _DType(_Inert):
    """Stands for ``numpy.dtype``: only ``dtype('u1', align=0/False, copy=1/True)``, as NumPy pickles uint8."""

    __slots__ = ()

    def __call__(self, *args: Any) -> _UInt8:
        if len(args) != 3 or not any(_exactly(args, (spec, align, copy)) for spec in (b"u1", "u1")
                                     for align, copy in ((0, 1), (False, True))):
            raise _refuse("a dtype other than uint8")
        return _UInt8()


class _Array:
    """An array being rebuilt: BUILD gives it (1, (rows, cols), uint8, C order, raw bytes) exactly once."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if self.value is not None or type(state) is not tuple or len(state) != 5:
            raise _refuse("an array state other than NumPy's (version, shape, dtype, order, bytes)")
        version, shape, dtype, fortran, raw = state
        if type(version) is not int or version != 1:
            raise _refuse(f"array state version {version!r}")
        if type(shape) is not tuple or len(shape) != 2 or any(type(n) is not int or n < 0 for n in shape):
            raise _refuse("an array that is not 2-D")
        if type(dtype) is not _UInt8 or not dtype.ready:
            raise _refuse("an array that is not uint8")
        if type(fortran) not in (bool, int) or fortran:
            raise _refuse("an array in Fortran order")
        if type(raw) is not bytes or len(raw) != shape[0] * shape[1]:
            raise _refuse(f"array data of {len(raw) if type(raw) is bytes else type(raw).__name__} bytes "
                          f"where shape {shape} needs {shape[0] * shape[1]}")
        self.value = np.frombuffer(raw, dtype=np.uint8).reshape(shape)


class _Reconstruct(_Inert):
    """Stands for ``numpy.core.multiarray._reconstruct``: only ``_reconstruct(ndarray, (0,), b'b')``."""

    __slots__ = ()

    def __call__(self, *args: Any) -> _Array:
        if len(args) != 3 or args[0] is not ARRAY_CLASS or not (
                _exactly(args[1], (0,)) and type(args[2]) in (bytes, str) and args[2] in (b"b", "b")):
            raise _refuse("an array reconstruction other than NumPy's for a plain ndarray")
        return _Array()


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _Reconstruct(),
    ("numpy._core.multiarray", "_reconstruct"): _Reconstruct(),
    ("numpy", "ndarray"): ARRAY_CLASS,
    ("numpy", "dtype"): _DType(),
}


class _BatchUnpickler(pickle.Unpickler):
    """Answers the four names of a genuine batch with the stand-ins above; refuses every other one."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except (KeyError, TypeError):
            raise _refuse(f"it imports {module}.{name}") from None


def read_batch(data: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """One batch file's bytes → images (N, 32, 32, 3) uint8 and labels (N,) int64, or DataError naming
    ``where``: a pickle that is not a genuine batch is refused before anything in it could run."""
    try:
        for opcode, _, _ in pickletools.genops(data):
            if opcode.name in _REFUSED_OPCODES:
                raise _refuse(f"it uses pickle opcode {opcode.name}")
        batch = _BatchUnpickler(io.BytesIO(data), encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        raise DataError(f"{where}: not a genuine CIFAR-10 batch ({exc}): refused, nothing in it was run. Use the "
                        f"official python-version files ({ARCHIVE}), or an .npz of arrays.") from None
    except Exception as exc:  # noqa: BLE001 - a damaged stream fails in many ways (EOFError, ValueError, …)
        raise DataError(f"{where}: not a readable pickle ({type(exc).__name__}: {exc}); a truncated or damaged "
                        "file? Fetch it again.") from None
    return _checked_batch(batch, where)


def _checked_batch(batch: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    def bad(why: str) -> DataError:
        return DataError(f"{where}: not a CIFAR-10 batch: {why} (expected a dict of b'data', a uint8 (N, {ROW}) "
                         "array, and b'labels', a list of N ints).")

    if type(batch) is not dict:
        raise bad(f"it holds a {type(batch).__name__}")
    try:
        fields = {k.decode("ascii") if type(k) is bytes else k: v for k, v in batch.items()}
    except UnicodeDecodeError:
        raise bad("a key that is not ASCII text") from None
    names = {k if type(k) is str else repr(k) for k in fields}
    if not _KEYS <= names or names - _KEYS - _EXTRA_KEYS:
        raise bad(f"keys {', '.join(sorted(names)) or 'none'}")
    data, labels = fields["data"], fields["labels"]
    if type(data) is not _Array or data.value is None:
        raise bad("'data' is not a uint8 array")
    x = data.value
    if x.shape[1] != ROW or x.shape[0] == 0:
        raise bad(f"'data' has shape {x.shape}")
    if type(labels) is not list or any(type(v) is not int for v in labels):
        raise bad("'labels' is not a list of ints")
    if len(labels) != len(x):
        raise bad(f"{len(labels)} labels for {len(x)} images")
    # channel-major rows → (N, 3, 32, 32) planes → channels last (N, 32, 32, 3), the layout the models take
    return np.ascontiguousarray(x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)), np.array(labels, dtype=np.int64)


# --- where the files are --------------------------------------------------------------


def _complete(directory: Path) -> bool:
    """Whether ``directory`` holds all six batches; DataError if it holds some but not all."""
    present = [name for name in BATCHES if (directory / name).is_file()]
    if present and len(present) < len(BATCHES):
        missing = [name for name in BATCHES if name not in present]
        raise DataError(f"{directory}: an incomplete CIFAR-10 folder: it lacks {', '.join(missing)} (the python "
                        f"version has {', '.join(BATCHES)}). Extract {ARCHIVE} again.")
    return bool(present)


def locate(path: Path, looked: list[str]) -> tuple[str, Path] | None:
    """What CIFAR-10 ``path`` holds: ("batches", folder of the six batches: ``path`` or its
    ``cifar-10-batches-py/``), ("archive", the .tar.gz), ("npz", an .npz); None, noting in ``looked`` why not."""
    if path.is_file():
        if path.suffix == ".npz":
            return "npz", path
        if path.name.endswith((".tar.gz", ".tgz", ".tar")):
            return "archive", path
        looked.append(f"{path} (a file, but neither an .npz nor a .tar.gz)")
        return None
    if path.is_dir():
        for folder in (path, path / FOLDER):
            if _complete(folder):
                return "batches", folder
        for kind, candidate in (("archive", path / ARCHIVE), ("npz", path / NPZ)):
            if candidate.is_file():
                return kind, candidate
        looked.append(f"{path} (no data_batch_1…5 and test_batch, no {FOLDER}/, no {ARCHIVE}, no {NPZ})")
        return None
    looked.append(f"{path} (does not exist)")
    return None


def in_keras_cache(cache: Path) -> Path | None:
    """The folder of batches keras.datasets.cifar10 extracted into Keras' cache ``cache``, if complete."""
    return next((cache / sub for sub in KERAS_FOLDERS if _complete(cache / sub)), None)


# --- reading -----------------------------------------------------------------------------


def read(kind: str, where: Path) -> tuple[dict[str, np.ndarray], dict[str, str], str]:
    """The four arrays (x_train, y_train, x_test, y_test) of a located folder or archive, how errors should
    name each, and a source line."""
    raw = _folder_bytes(where) if kind == "batches" else _archive_bytes(where)
    prefix = f"{where}/" if kind == "batches" else f"{where}: "
    parts = {name: read_batch(data, f"{prefix}{name}") for name, data in raw.items()}
    arrays = {
        "x_train": np.concatenate([parts[n][0] for n in TRAIN_BATCHES]),
        "y_train": np.concatenate([parts[n][1] for n in TRAIN_BATCHES]),
        "x_test": parts[TEST_BATCH][0], "y_test": parts[TEST_BATCH][1],
    }
    names = {"x_train": f"{prefix}data_batch_1…5 (data)", "y_train": f"{prefix}data_batch_1…5 (labels)",
             "x_test": f"{prefix}{TEST_BATCH} (data)", "y_test": f"{prefix}{TEST_BATCH} (labels)"}
    what = "python-version batches in" if kind == "batches" else "python-version archive"
    return arrays, names, f"CIFAR-10 {what} {where}"


def _folder_bytes(folder: Path) -> dict[str, bytes]:
    out = {}
    for name in BATCHES:
        try:
            out[name] = (folder / name).read_bytes()
        except OSError as exc:
            raise DataError(f"cannot read {folder / name}: {exc.strerror or exc}.") from None
    return out


def _archive_bytes(path: Path) -> dict[str, bytes]:
    """The six batch files of a (gzipped) tar archive, read in memory: nothing is extracted to disk, and
    only regular files named data_batch_1…5 / test_batch (at the top or in cifar-10-batches-py/) are read."""
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                parts = PurePosixPath(member.name).parts
                if not member.isfile() or parts[-1:] == () or parts[:-1] not in ((), (FOLDER,)):
                    continue
                name = parts[-1]
                if name in BATCHES:
                    if name in found:
                        raise DataError(f"{path}: holds {name} twice; fetch the official {ARCHIVE} again.")
                    found[name] = tar.extractfile(member).read()  # type: ignore[union-attr]
    except DataError:
        raise
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise DataError(f"{path}: not a readable .tar.gz, or a damaged one ({type(exc).__name__}: {exc}); fetch "
                        f"{ARCHIVE} again.") from None
    missing = [name for name in BATCHES if name not in found]
    if missing:
        raise DataError(f"{path}: lacks {', '.join(missing)} (the official {ARCHIVE} holds {FOLDER}/ with "
                        f"{', '.join(BATCHES)}).")
    return found
