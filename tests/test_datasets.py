"""Data loading: IDX (gz and raw), .npz, the bundled sample, clear errors, the split."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from init_lab.catalog.datasets import load_dataset, make_synthetic, prepare, read_idx
from init_lab.catalog.errors import DataError


def write_idx(path, array: np.ndarray, compress: bool) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(path.with_name(path.name + ".gz"), "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def fake_mnist_dir(root, compress=True, n_train=30, n_test=10):
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": np.arange(n_test) % 10,
    }
    root.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        write_idx(root / name, arr, compress)
    return arrays


@pytest.mark.parametrize("compress", [True, False])
def test_idx_directory_via_path(tmp_path, compress):
    arrays = fake_mnist_dir(tmp_path / "m", compress)
    ds = load_dataset("mnist", path=str(tmp_path / "m"))
    assert ds.x_train.shape == (30, 28, 28) and ds.x_test.shape == (10, 28, 28)
    np.testing.assert_array_equal(ds.x_train, arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(ds.y_test, arrays["t10k-labels-idx1-ubyte"])
    assert "IDX files" in ds.source


def test_data_dir_env_and_its_mnist_subdir(tmp_path, monkeypatch):
    fake_mnist_dir(tmp_path / "data" / "mnist")
    monkeypatch.setenv("INITLAB_DATA_DIR", str(tmp_path / "data"))
    assert load_dataset("mnist").x_train.shape == (30, 28, 28)


def test_npz(tmp_path):
    rng = np.random.default_rng(1)
    np.savez(
        tmp_path / "mnist.npz",
        x_train=rng.integers(0, 255, (12, 28, 28), dtype=np.uint8), y_train=np.arange(12) % 10,
        x_test=rng.integers(0, 255, (4, 28, 28), dtype=np.uint8), y_test=np.arange(4),
    )
    assert load_dataset("mnist", path=str(tmp_path / "mnist.npz")).x_test.shape == (4, 28, 28)
    assert load_dataset("mnist", path=str(tmp_path)).x_train.shape == (12, 28, 28)  # dir holding mnist.npz


def test_missing_data_says_where_it_looked_and_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("INITLAB_DATA_DIR", str(tmp_path / "empty"))
    with pytest.raises(DataError) as info:
        load_dataset("mnist", download=lambda name, looked: looked.append("Keras cache (offline)"))
    msg = str(info.value)
    assert str(tmp_path / "empty") in msg and "Keras cache" in msg
    assert "INITLAB_DATA_DIR" in msg and "mnist_sample" in msg and "train-images-idx3-ubyte.gz" in msg
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("mnist", path=str(tmp_path / "nope"))


def test_offline_keras_download_failure_is_a_clear_error(tmp_path, monkeypatch):
    keras = pytest.importorskip("keras")

    def offline():
        raise Exception("URL fetch failure: Name or service not known")

    from init_lab.engine.backend import keras_download

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    with pytest.raises(DataError, match="Keras' downloader and cache"):
        load_dataset("mnist", download=keras_download)


def test_corrupt_idx(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x00\x00\x08\x03" + b"\x00\x00\x00\x05" * 3 + b"xx")
    with pytest.raises(DataError, match="truncated"):
        read_idx(tmp_path / "bad")
    (tmp_path / "bad2").write_bytes(b"GIF89a")
    with pytest.raises(DataError, match="magic"):
        read_idx(tmp_path / "bad2")


def test_bundled_sample_is_real_stratified_mnist():
    ds = load_dataset("mnist_sample")
    assert ds.x_train.shape == (10000, 28, 28) and ds.x_train.dtype == np.uint8
    assert np.bincount(ds.y_train, minlength=10).tolist() == [1000] * 10
    assert np.bincount(ds.y_test, minlength=10).tolist() == [200] * 10
    # real digits: mostly black background, bright strokes, ~19% inked pixels on average
    assert 0.1 < (ds.x_train > 0).mean() < 0.3 and ds.x_train.max() == 255


def test_prepare_split_is_fixed_and_scaled():
    ds = make_synthetic(200, 50)
    a = prepare(ds, "mlp", 0.25)
    b = prepare(ds, "mlp", 0.25)
    assert a.x_train.shape == (150, 784) and a.x_val.shape == (50, 784)
    np.testing.assert_array_equal(a.y_val, b.y_val)
    assert a.x_train.dtype == np.float32 and 0.0 <= a.x_train.min() and a.x_train.max() <= 1.0
    c = prepare(ds, "cnn", 0.25, train_size=100, test_size=20)
    assert c.x_train.shape == (75, 28, 28, 1) and c.x_test.shape == (20, 28, 28, 1)
