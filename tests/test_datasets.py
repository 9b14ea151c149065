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


def test_standardize_is_off_by_default_and_leaves_pixels_in_0_1():
    from init_lab.config.loading import config_from_text

    config = config_from_text("name: s\ngrid: {initializer: [he_normal], activation: [relu]}")
    assert config.dataset.standardize is False
    ds = make_synthetic(200, 50)
    plain, off = prepare(ds, "mlp", 0.25), prepare(ds, "mlp", 0.25, standardize=False)
    for split in ("x_train", "x_val", "x_test"):
        np.testing.assert_array_equal(getattr(plain, split), getattr(off, split))
    assert plain.x_train.min() == 0.0 and plain.x_train.max() == 1.0


@pytest.mark.parametrize("family", ["mlp", "cnn"])
def test_standardize_per_pixel_with_training_statistics(family):
    ds = make_synthetic(200, 50)
    ds.x_train[:, 0, 0] = 7  # a pixel constant over the training split ...
    ds.x_test[:5, 0, 0] = 200  # ... but not on the test set: it still becomes 0, no division by zero
    raw = prepare(ds, family, 0.25)
    std = prepare(ds, family, 0.25, standardize=True)
    x = std.x_train.reshape(len(std.x_train), -1)
    assert std.x_train.shape == raw.x_train.shape and std.x_train.dtype == np.float32
    assert np.all(np.isfinite(x)) and np.all(np.isfinite(std.x_test))
    varies = np.ptp(raw.x_train.reshape(len(raw.x_train), -1), axis=0) > 0
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(x.std(axis=0)[varies], 1.0, rtol=1e-4)
    for split in ("x_train", "x_val", "x_test"):
        assert np.all(getattr(std, split).reshape(len(getattr(std, split)), -1)[:, 0] == 0)
    # validation and test are scaled with the training split's statistics, not their own
    flat = raw.x_train.reshape(len(raw.x_train), -1).astype(np.float64)
    mean, sd = flat.mean(axis=0), flat.std(axis=0)
    val = raw.x_val.reshape(len(raw.x_val), -1)
    expected = np.where(varies, (val - mean) / np.where(varies, sd, 1), 0)
    np.testing.assert_allclose(std.x_val.reshape(len(std.x_val), -1), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(std.y_val, raw.y_val)  # the split is the same


def test_standardize_reaches_the_data_and_the_checkpoint_fingerprint():
    pytest.importorskip("keras")
    from pathlib import Path

    from init_lab.catalog.devices import DeviceKind
    from init_lab.config.grid import expand
    from init_lab.config.loading import config_from_text
    from init_lab.engine.data import load_prepared
    from init_lab.run.checkpoints import CheckpointStore

    text = "name: s\ndataset: {name: synthetic, synthetic_train: 200, synthetic_test: 50}\n" \
           "grid: {initializer: [he_normal], activation: [relu]}"
    off = config_from_text(text)
    on = config_from_text(text, overrides=["dataset.standardize=true"])
    assert load_prepared(off.dataset, "mlp").x_train.min() == 0.0
    assert load_prepared(on.dataset, "mlp").x_train.min() < 0.0
    (spec_off,), (spec_on,) = expand(off), expand(on)

    def fingerprint(config, spec):
        return CheckpointStore(Path("checkpoints"), config, DeviceKind.CPU).fingerprint(spec)

    assert fingerprint(off, spec_off) != fingerprint(on, spec_on)


@pytest.mark.parametrize("family", ["mlp", "cnn"])
def test_prepared_images_are_the_scaled_pixels_in_aligned_arrays(family):
    """prepare gathers a block of rows at a time into 64-byte-aligned float32 arrays: x[rows] / 255, exactly."""
    from init_lab.catalog.datasets import ALIGNMENT, GATHER_ROWS, model_input_shape

    ds = make_synthetic(GATHER_ROWS + 900, 50)  # more rows than one gathered block
    ds.x_train = (np.arange(ds.x_train.size) % 256).astype(np.uint8).reshape(ds.x_train.shape)
    p = prepare(ds, family, 0.1)
    shape = model_input_shape(tuple(ds.x_train.shape[1:]), family)
    for x in (p.x_train, p.x_val, p.x_test):
        assert x.dtype == np.float32 and x.flags.c_contiguous and x.ctypes.data % ALIGNMENT == 0
        assert x.shape[1:] == shape
    order = np.random.default_rng(0).permutation(len(ds.x_train))  # the default split seed's permutation
    train_rows = np.sort(order[int(round(len(order) * 0.1)):])
    expected = ds.x_train[train_rows].astype(np.float32) / np.float32(255.0)
    assert np.array_equal(p.x_train.reshape(len(train_rows), -1), expected.reshape(len(train_rows), -1))


def test_the_engine_adopts_aligned_arrays_without_a_copy_and_copies_the_rest():
    from init_lab.catalog.datasets import aligned_empty
    from init_lab.engine.data import _tensor

    for rows in (1000, 200_000):  # NumPy's memory, and (6.4 MB) a mapping of ordinary pages
        adopted = aligned_empty((rows, 8), np.float32)
        assert adopted.flags.writeable and adopted.shape == (rows, 8)
        adopted[...] = 1.0
        tensor = _tensor(adopted)
        adopted[3, 2] = 7.0  # written after: the tensor is the same memory
        assert float(tensor[3, 2]) == 7.0 and float(tensor[rows - 1, 7]) == 1.0
    unaligned = np.ones(8001, np.float32)[1:].reshape(1000, 8)  # 4 bytes past an allocation's start
    copied = _tensor(unaligned)
    unaligned[3, 2] = 7.0
    assert float(copied[3, 2]) == 1.0 and float(copied.numpy().sum()) == 8000.0
