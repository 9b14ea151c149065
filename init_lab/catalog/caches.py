"""initlab's caches on disk: where they live, how they are pruned, and the decoded-dataset cache.

Two caches, each a folder under ``$XDG_CACHE_HOME/initlab/`` (``~/.cache/initlab/``) unless its environment variable
names another, or "off": XLA's compiled programs (``engine.xla_cache``, ``INITLAB_XLA_CACHE``) and the datasets'
decoded gzipped IDX files (here, ``INITLAB_DATA_CACHE``). Each is pruned, oldest files first, once it holds more than
its limit. A cache that cannot be used is never an error: the work is done again, as without it (a folder the user
named that cannot be used is said once, on stderr).

The decoded-dataset cache: a gzipped IDX file (MNIST, Fashion-MNIST as distributed) is decompressed and checked once
and its array kept as a ``.npy`` file, which later processes map instead of decompressing again (full MNIST's four
files: 0.21 s → 0.02 s a process here). An entry is keyed by the file's resolved path, size, modification time and
inode, so a file that changes or is replaced is decoded and checked again; entries are written whole or not at all
(a temporary file renamed into place), and one that cannot be read is decoded again and replaced.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from init_lab.catalog import defaults

DATA_FORMAT = 1  # in every decoded entry's key: a change of what an entry holds makes the old ones misses
_reported: set[str] = set()  # named folders already said to be unusable (once a process, not once a file)


def root(environ: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_CACHE_HOME/initlab`` (``~/.cache/initlab``)."""
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "initlab"


def prune(folder: Path, limit: int) -> None:
    """Remove the oldest files until the folder holds at most half of ``limit``, once it holds more than it."""
    files = [(p.stat().st_mtime, p.stat().st_size, p) for p in folder.iterdir() if p.is_file()]
    total = sum(size for _, size, _ in files)
    if total <= limit:
        return
    for _, size, path in sorted(files):
        if total <= limit // 2:
            break
        path.unlink(missing_ok=True)
        total -= size


def decoded(path: Path, decode: Callable[[Path], np.ndarray],
            environ: Mapping[str, str] = os.environ) -> np.ndarray:
    """``decode(path)``'s array (read-only), from the decoded-dataset cache where it holds this version of the file;
    else decoded (``decode`` raises what is wrong with the file) and kept for the next process."""
    folder = _data_folder(environ)
    try:
        stat = path.stat()
    except OSError:
        return decode(path)  # it says why the file cannot be read
    if folder is None:
        return decode(path)
    identity = f"{DATA_FORMAT}\0{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\0{stat.st_ino}"
    entry = folder / f"{hashlib.sha256(identity.encode()).hexdigest()[:32]}.npy"
    try:
        return np.asarray(np.load(entry, mmap_mode="r", allow_pickle=False))
    except (OSError, ValueError):  # not kept yet, or an entry that cannot be read: decoded again
        pass
    array = decode(path)
    _keep(folder, entry, array, named=bool(environ.get(defaults.DATA_CACHE_ENV)))
    return array


def _data_folder(environ: Mapping[str, str]) -> Path | None:
    choice = environ.get(defaults.DATA_CACHE_ENV, "")
    if choice.lower() == "off":
        return None
    return Path(choice) if choice else root(environ) / "data"


def _keep(folder: Path, entry: Path, array: np.ndarray, named: bool) -> None:
    """Write ``entry`` whole (or not at all); a cache that cannot be written is left alone, and said to be unusable
    where the user ``named`` it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{entry.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, array, allow_pickle=False)
            os.replace(tmp, entry)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        prune(folder, defaults.DATA_CACHE_BYTES)
    except OSError as exc:
        if named and str(folder) not in _reported:
            _reported.add(str(folder))
            sys.stderr.write(f"initlab: {defaults.DATA_CACHE_ENV}={folder} cannot be used ({exc.strerror or exc}); "
                             "reading the data without the decoded-dataset cache\n")
