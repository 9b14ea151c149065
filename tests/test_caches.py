"""initlab's caches on disk (catalog/caches.py): pruning, and the decoded-dataset cache — a gzipped IDX file is
decompressed once and later loads map the kept array, while a changed, replaced or damaged file is read (and
checked) again, and a cache that cannot be written changes nothing but the time."""

from __future__ import annotations

import gzip
import os

import numpy as np
import pytest

from init_lab.catalog import caches, defaults
from init_lab.catalog.datasets import load_dataset
from init_lab.catalog.errors import DataError

from .test_datasets import fake_mnist_dir, write_idx


def test_prune_removes_the_oldest_files_down_to_half_the_limit(tmp_path):
    for age, name in enumerate(["newest", "newer", "older", "oldest"]):
        path = tmp_path / name
        path.write_bytes(b"x" * 100)
        os.utime(path, (1_000_000 - age, 1_000_000 - age))
    caches.prune(tmp_path, 400)  # at the limit: nothing goes
    assert len(list(tmp_path.iterdir())) == 4
    caches.prune(tmp_path, 399)  # over it: down to ≤ 199 bytes, oldest first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["newest"]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv(defaults.DATA_CACHE_ENV, str(folder))
    return folder


@pytest.fixture
def decompressions(monkeypatch):
    """The gzip streams opened (files decompressed, or written by ``fake_mnist_dir``) from here on."""
    opened = []
    real = gzip.open

    def counted(path, *args, **kwargs):
        opened.append(os.path.basename(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(gzip, "open", counted)
    return opened


def test_a_gzipped_idx_file_is_decompressed_once_then_mapped(tmp_path, cache, decompressions):
    arrays = fake_mnist_dir(tmp_path / "m")
    decompressions.clear()  # the files' writing
    first = load_dataset("mnist", path=str(tmp_path / "m"))
    assert len(decompressions) == 4 and len(list(cache.glob("*.npy"))) == 4
    decompressions.clear()
    again = load_dataset("mnist", path=str(tmp_path / "m"))
    assert decompressions == []  # every file from the cache
    for ds in (first, again):
        np.testing.assert_array_equal(ds.x_train, arrays["train-images-idx3-ubyte"])
        np.testing.assert_array_equal(ds.y_test, arrays["t10k-labels-idx1-ubyte"])
    assert again.x_train.dtype == np.uint8 and not again.x_train.flags.writeable


def test_a_changed_file_is_read_again_and_a_damaged_one_still_refused(tmp_path, cache, decompressions):
    fake_mnist_dir(tmp_path / "m")
    load_dataset("mnist", path=str(tmp_path / "m"))
    labels = tmp_path / "m" / "t10k-labels-idx1-ubyte.gz"
    write_idx(labels.with_suffix(""), (np.arange(10) + 3) % 10, compress=True)  # new labels, same size
    decompressions.clear()
    assert load_dataset("mnist", path=str(tmp_path / "m")).y_test.tolist() == [(i + 3) % 10 for i in range(10)]
    assert decompressions == ["t10k-labels-idx1-ubyte.gz"]  # only the file that changed
    labels.write_bytes(labels.read_bytes()[:-8])  # truncated now
    with pytest.raises(DataError, match="truncated"):
        load_dataset("mnist", path=str(tmp_path / "m"))


def test_an_entry_that_cannot_be_read_is_decoded_again(tmp_path, cache, decompressions):
    arrays = fake_mnist_dir(tmp_path / "m")
    load_dataset("mnist", path=str(tmp_path / "m"))
    for k, entry in enumerate(sorted(cache.glob("*.npy"))):
        data = entry.read_bytes()  # a .npy header is 128 bytes here
        entry.write_bytes(data[: 50 if k % 2 else 128 + (len(data) - 128) // 2])  # torn in its header, or its data
    decompressions.clear()
    ds = load_dataset("mnist", path=str(tmp_path / "m"))
    assert len(decompressions) == 4
    np.testing.assert_array_equal(ds.x_train, arrays["train-images-idx3-ubyte"])
    decompressions.clear()
    load_dataset("mnist", path=str(tmp_path / "m"))
    assert decompressions == []  # and replaced by whole entries


def test_an_unwritable_cache_or_off_only_costs_the_decompression(tmp_path, monkeypatch, decompressions, capsys):
    arrays = fake_mnist_dir(tmp_path / "m")
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    decompressions.clear()  # the files' writing
    for setting in (str(blocked / "cache"), "off"):
        monkeypatch.setenv(defaults.DATA_CACHE_ENV, setting)
        for _ in range(2):
            ds = load_dataset("mnist", path=str(tmp_path / "m"))
            np.testing.assert_array_equal(ds.x_train, arrays["train-images-idx3-ubyte"])
    assert len(decompressions) == 16  # 4 files × 2 loads × 2 settings: every load decompresses
    said = capsys.readouterr().err.splitlines()  # the named folder that cannot be used: said once, not per file
    assert said == [f"initlab: INITLAB_DATA_CACHE={blocked / 'cache'} cannot be used (Not a directory); reading the "
                    "data without the decoded-dataset cache"]


def test_the_default_folder_is_under_the_cache_home(tmp_path, monkeypatch, decompressions):
    monkeypatch.delenv(defaults.DATA_CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home"))
    fake_mnist_dir(tmp_path / "m")
    load_dataset("mnist", path=str(tmp_path / "m"))
    assert len(list((tmp_path / "home" / "initlab" / "data").glob("*.npy"))) == 4
