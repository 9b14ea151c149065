"""Data beyond MNIST (issue 22): CIFAR-10 in its python format, folder, archive and .npz, read without running
code; scikit-learn's digits offline; images of any shape and class count through the split, per-channel
standardization, the memory estimate, the theory, a sweep, the probe and the report."""

from __future__ import annotations

import json
import math
import pickle
import socket
import struct
import tarfile

import numpy as np
import pytest

from init_lab.catalog import cifar, defaults
from init_lab.catalog.datasets import DATASETS, load_dataset, make_synthetic, prepare
from init_lab.catalog.errors import ConfigError, DataError
from init_lab.config.loading import config_from_text

from .helpers import assert_clean_exit, block_imports, invoke, read_csv

_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]  # numpy's array reconstructor, whatever its module today


class Py2Pickler(pickle._Pickler):
    """Writes what Python 2's cPickle wrote for the official batches (protocol 2): every str and bytes as a
    byte string (SHORT_BINSTRING / BINSTRING), NumPy's reconstructor under its NumPy 1 name
    ``numpy.core.multiarray``. (Python 3's own protocol 2 would name ``_codecs.encode`` for bytes.)"""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_string(self, obj):
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = save_py2_string
    dispatch[bytes] = save_py2_string

    def save_global(self, obj, name=None):
        if obj is _RECONSTRUCT:
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


def py2_pickle(obj) -> bytes:
    import io

    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


class RunsCode:
    """A pickle that runs a shell command when loaded: what a tampered batch would hold."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        import os

        return os.system, (self.command,)


def fake_cifar(folder, n_train=(3, 4, 2, 3, 4), n_test=5, seed=0):
    """A CIFAR-10 python-version folder of random batches (and a batches.meta that would run code if opened);
    returns the expected (x_train, y_train, x_test, y_test), images channels last."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    xs, ys = [], []
    for name, n in zip(cifar.BATCHES, (*n_train, n_test)):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n)]
        batch = {b"batch_label": f"{name} of fake".encode(), b"labels": labels, b"data": data,
                 b"filenames": [f"img_{i}.png".encode() for i in range(n)]}
        (folder / name).write_bytes(py2_pickle(batch))
        # the channel-major row, by hand: pixel (r, c) of channel ch is data[ch·1024 + r·32 + c]
        image = np.empty((n, 32, 32, 3), dtype=np.uint8)
        for ch in range(3):
            image[..., ch] = data[:, ch * 1024:(ch + 1) * 1024].reshape(n, 32, 32)
        xs.append(image)
        ys.append(np.array(labels))
    marker = folder.parent / "META_WAS_UNPICKLED"
    (folder / "batches.meta").write_bytes(pickle.dumps(RunsCode(f"touch {marker}"), protocol=2))
    return np.concatenate(xs[:5]), np.concatenate(ys[:5]), xs[5], ys[5]


def tarred(folder, path):
    with tarfile.open(path, "w:gz") as tar:
        tar.add(folder, arcname=cifar.FOLDER)
    return path


def assert_loaded(ds, expected):
    for key, want in zip(("x_train", "y_train", "x_test", "y_test"), expected):
        got = getattr(ds, key)
        np.testing.assert_array_equal(got, want)
    assert ds.x_train.shape[1:] == (32, 32, 3) and ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int32


# --- CIFAR-10: formats and places -------------------------------------------------------------


def test_a_generated_batch_has_the_official_pickle_layout(tmp_path):
    import pickletools

    fake_cifar(tmp_path / cifar.FOLDER)
    ops = [(op.name, arg) for op, arg, _ in pickletools.genops((tmp_path / cifar.FOLDER / "test_batch").read_bytes())]
    assert ops[0] == ("PROTO", 2)
    assert {arg for name, arg in ops if name == "GLOBAL"} == {
        "numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype"}
    assert ("SHORT_BINSTRING", "data") in ops  # a Python 2 str (genops shows it decoded): bytes keys on loading


def test_python_batches_load_channels_last_from_the_folder_its_parent_and_the_archive(tmp_path):
    expected = fake_cifar(tmp_path / "c" / cifar.FOLDER)
    for path in (tmp_path / "c" / cifar.FOLDER, tmp_path / "c"):
        ds = load_dataset("cifar10", path=str(path))
        assert_loaded(ds, expected)
        assert ds.x_train.shape == (16, 32, 32, 3) and ds.x_test.shape == (5, 32, 32, 3)
        assert "python-version batches" in ds.source
    (tmp_path / "a").mkdir()
    archive = tarred(tmp_path / "c" / cifar.FOLDER, tmp_path / "a" / cifar.ARCHIVE)
    assert_loaded(load_dataset("cifar10", path=str(archive)), expected)
    assert_loaded(load_dataset("cifar10", path=str(tmp_path / "a")), expected)  # a directory holding the archive
    assert not (tmp_path / "c" / "META_WAS_UNPICKLED").exists()  # batches.meta was never opened


def test_the_first_pixel_is_red_green_blue_planes(tmp_path):
    """Channel order on one known image: row k of 3072 is R plane, G plane, B plane."""
    folder = tmp_path / cifar.FOLDER
    fake_cifar(folder)
    data = np.zeros((1, 3072), dtype=np.uint8)
    data[0, 0], data[0, 1024], data[0, 2048] = 10, 20, 30  # pixel (0, 0): red 10, green 20, blue 30
    data[0, 1023] = 99  # red of the last pixel (31, 31)
    (folder / "test_batch").write_bytes(py2_pickle({b"data": data, b"labels": [7]}))
    ds = load_dataset("cifar10", path=str(folder))
    assert ds.x_test[0, 0, 0].tolist() == [10, 20, 30] and ds.x_test[0, 31, 31, 0] == 99
    assert ds.y_test.tolist() == [7]


def test_data_dir_env_and_its_cifar10_subdir(tmp_path, monkeypatch):
    expected = fake_cifar(tmp_path / "data" / "cifar10" / cifar.FOLDER)
    monkeypatch.setenv("INITLAB_DATA_DIR", str(tmp_path / "data"))
    assert_loaded(load_dataset("cifar10"), expected)


def test_npz_in_keras_layout(tmp_path):
    rng = np.random.default_rng(3)
    x_train, x_test = rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8), rng.integers(0, 256, (4, 32, 32, 3),
                                                                                          dtype=np.uint8)
    y_train, y_test = (np.arange(12) % 10).reshape(-1, 1), (np.arange(4) % 10).reshape(-1, 1)  # (N, 1), as Keras
    np.savez(tmp_path / "cifar10.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    for path in (tmp_path / "cifar10.npz", tmp_path):
        ds = load_dataset("cifar10", path=str(path))
        np.testing.assert_array_equal(ds.x_train, x_train)
        assert ds.y_train.tolist() == y_train[:, 0].tolist() and ds.y_test.shape == (4,)
    np.savez(tmp_path / "grey.npz", x_train=x_train[..., 0], y_train=y_train, x_test=x_test[..., 0], y_test=y_test)
    with pytest.raises(DataError, match=r"grey.npz: x_train: shape \(12, 32, 32\) where \(N, 32, 32, 3\) was expected"):
        load_dataset("cifar10", path=str(tmp_path / "grey.npz"))


def test_an_incomplete_folder_and_a_damaged_archive_are_named(tmp_path):
    fake_cifar(tmp_path / cifar.FOLDER)
    (tmp_path / cifar.FOLDER / "data_batch_4").unlink()
    with pytest.raises(DataError, match="incomplete CIFAR-10 folder: it lacks data_batch_4"):
        load_dataset("cifar10", path=str(tmp_path))
    (tmp_path / "x.tar.gz").write_bytes(b"\x1f\x8b not really")
    with pytest.raises(DataError, match="x.tar.gz: not a readable .tar.gz"):
        load_dataset("cifar10", path=str(tmp_path / "x.tar.gz"))
    (tmp_path / cifar.FOLDER / "data_batch_5").write_bytes(b"\x80\x02}q")  # a pickle cut short
    (tmp_path / cifar.FOLDER / "data_batch_4").write_bytes((tmp_path / cifar.FOLDER / "data_batch_1").read_bytes())
    with pytest.raises(DataError, match="data_batch_5: not a readable pickle"):
        load_dataset("cifar10", path=str(tmp_path))


# --- CIFAR-10: nothing in a file runs ------------------------------------------------------------

def _text(value: str) -> bytes:
    """A pickled str (BINUNICODE)."""
    return b"X" + struct.pack("<I", len(value.encode())) + value.encode()


ATTACKS = {
    "os.system": lambda marker: pickle.dumps(RunsCode(f"touch {marker}"), protocol=2),
    "eval": lambda marker: b"\x80\x02cbuiltins\neval\n" + _text(f"open('{marker}', 'w').close()") + b"\x85R.",
    # numpy.ndarray called as itself: an object array over bytes the file chose (forged pointers)
    "ndarray over bytes": lambda marker: b"\x80\x02cnumpy\nndarray\nK\x01\x85U\x01O" + b"C\x08AAAAAAAA\x87R.",
    # the extension registry can answer without find_class: refused before loading
    "EXT1": lambda marker: b"\x80\x02\x82\x01.",
    "a dict of the wrong things": lambda marker: py2_pickle({b"data": [1, 2, 3], b"labels": [0]}),
    "wrong dtype": lambda marker: py2_pickle({b"data": np.zeros((1, 3072), np.float32), b"labels": [0]}),
    "extra key": lambda marker: py2_pickle({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"x": 1}),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
@pytest.mark.parametrize("form", ["folder", "archive"])
def test_a_tampered_batch_is_refused_without_running_it(tmp_path, attack, form):
    folder = tmp_path / cifar.FOLDER
    fake_cifar(folder)
    marker = tmp_path / "PWNED"
    (folder / "data_batch_3").write_bytes(ATTACKS[attack](marker))
    path = tarred(folder, tmp_path / "evil.tar.gz") if form == "archive" else folder
    with pytest.raises(DataError, match="data_batch_3: not a") as info:
        load_dataset("cifar10", path=str(path))
    assert not marker.exists()
    if attack == "os.system":
        assert "refused, nothing in it was run" in str(info.value) and "system" in str(info.value)
    # the same payload loaded as plain pickle *would* run (the test's payload is real)
    if attack == "os.system":
        pickle.loads(ATTACKS[attack](marker))
        assert marker.exists()


def test_the_stand_ins_accept_only_a_genuine_array():
    """What find_class answers cannot be turned into anything else: calling the ndarray stand-in, setting
    state on any of them, a second BUILD on an array."""
    ndarray, reconstruct = cifar._ALLOWED[("numpy", "ndarray")], cifar._ALLOWED[("numpy.core.multiarray", "_reconstruct")]
    with pytest.raises(pickle.UnpicklingError):
        ndarray((1,), "O", b"A" * 8)
    for stand_in in cifar._ALLOWED.values():
        with pytest.raises(pickle.UnpicklingError):
            stand_in.__setstate__({"__call__": print})
        assert not hasattr(stand_in, "__dict__")
    with pytest.raises(pickle.UnpicklingError):
        reconstruct(ndarray, (5,), b"b")
    array = reconstruct(ndarray, (0,), b"b")
    dtype = cifar._ALLOWED[("numpy", "dtype")]("u1", False, True)
    dtype.__setstate__((3, "|", None, None, None, -1, -1, 0))
    array.__setstate__((1, (1, 2), dtype, False, b"\x01\x02"))
    assert array.value.tolist() == [[1, 2]]
    with pytest.raises(pickle.UnpicklingError):
        array.__setstate__((1, (1, 2), dtype, False, b"\x01\x02"))


# --- CIFAR-10: missing, and Keras' downloader and cache ---------------------------------------


def test_missing_cifar_says_where_it_looked_and_how_to_provide_it(tmp_path, monkeypatch):
    monkeypatch.setenv("INITLAB_DATA_DIR", str(tmp_path / "empty"))
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", download=lambda name, looked: looked.append("Keras cache (offline)"))
    msg = str(info.value)
    assert "dataset 'cifar10' not found" in msg and "Keras cache (offline)" in msg
    assert str(tmp_path / "empty") in msg and str(tmp_path / "empty" / "cifar10") in msg
    for part in ("INITLAB_DATA_DIR", "cifar10/ sub-directory", cifar.FOLDER, cifar.ARCHIVE, "data_batch_1",
                 "test_batch", ".npz", "synthetic_shape"):
        assert part in msg, part
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("cifar10", path=str(tmp_path / "nope"))


def test_keras_cache_is_read_safely_and_offline_download_is_a_clear_error(tmp_path, monkeypatch):
    keras = pytest.importorskip("keras")
    from init_lab.engine.backend import keras_download

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: Name or service not known")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(DataError, match="Keras' downloader and cache"):
        load_dataset("cifar10", download=keras_download)
    # the folder keras.datasets.cifar10.load_data extracts: read by initlab's reader, nothing downloaded
    cache = tmp_path / "keras_home" / "datasets"  # KERAS_HOME of the hermetic fixture
    expected = fake_cifar(cache / cifar.KERAS_FOLDERS[0])
    ds = load_dataset("cifar10", download=keras_download)
    assert_loaded(ds, expected)
    assert str(cache) in ds.source
    # ... and a downloaded archive: get_file's answer is read as an archive
    (cache / cifar.KERAS_FOLDERS[0]).rename(tmp_path / "moved")
    archive = tarred(tmp_path / "moved", tmp_path / cifar.ARCHIVE)
    calls = []
    monkeypatch.setattr(keras.utils, "get_file", lambda *a, **k: calls.append((a, k)) or str(archive))
    assert_loaded(load_dataset("cifar10", download=keras_download), expected)
    assert calls == [((cifar.ARCHIVE,), {"origin": cifar.URL, "file_hash": cifar.SHA256})]


# --- digits ------------------------------------------------------------------------------------------


def test_digits_load_offline_with_a_fixed_stratified_split(monkeypatch):
    pytest.importorskip("sklearn")

    def no_network(*args, **kwargs):
        raise OSError("no network in this test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    ds = load_dataset("digits")
    assert ds.x_train.shape == (1438, 8, 8) and ds.x_test.shape == (359, 8, 8)
    assert ds.x_train.dtype == np.float32 and ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0
    test_counts = np.bincount(ds.y_test, minlength=10)
    assert test_counts.sum() == 359 and test_counts.min() >= 35 and test_counts.max() <= 37  # 20 % of each digit
    again = load_dataset("digits")
    np.testing.assert_array_equal(ds.y_test, again.y_test)
    np.testing.assert_array_equal(ds.x_test, again.x_test)
    assert DATASETS["digits"].sizes == (1438, 359) and "fixed stratified split" in ds.source
    p = prepare(ds, "mlp", 0.1, standardize=True)
    assert p.x_train.shape[1:] == (64,) and p.image_shape == (8, 8)


def test_digits_without_scikit_learn_names_the_extra(monkeypatch):
    block_imports(monkeypatch, "sklearn")
    with pytest.raises(DataError, match=r"pip install 'initlab\[digits\]'"):
        load_dataset("digits")


def test_a_cnn_on_images_too_small_for_it_is_a_config_error():
    base = "name: s\ngrid: {initializer: [he_normal], activation: [relu]}\nmodel: {kind: mnist_cnn}\n"
    with pytest.raises(ConfigError, match="at least 18×18; these are 8×8"):
        config_from_text(base, overrides=["dataset.name=digits"])
    config_from_text(base, overrides=["dataset.name=cifar10"])  # 32×32×3: fits


# --- any shape: synthetic options, split, standardization ------------------------------------------


def test_synthetic_shape_and_classes_are_validated_config_fields():
    base = "name: s\ngrid: {initializer: [he_normal], activation: [relu]}\ndataset: {name: synthetic}\n"
    c = config_from_text(base, overrides=["dataset.synthetic_shape=[32, 32, 3]", "dataset.synthetic_classes=4"])
    assert c.dataset.image_shape == (32, 32, 3) and c.dataset.classes == 4
    assert c.resolved()["dataset"]["synthetic_shape"] == [32, 32, 3]
    for bad, match in ((["dataset.synthetic_shape=[5]"], r"\[height, width\]"),
                       (["dataset.synthetic_shape=[0, 4]"], "greater than 0"),
                       (["dataset.synthetic_classes=1"], "greater than or equal to 2"),
                       (["dataset.synthetic_classes=3000"], "exceeds synthetic_train"),
                       (["dataset.name=mnist", "dataset.synthetic_shape=[32, 32, 3]"], "options of dataset 'synthetic'")):
        with pytest.raises(ConfigError, match=match):
            config_from_text(base, overrides=bad)


def test_the_default_synthetic_data_and_fingerprint_are_unchanged():
    """The new options at their defaults leave no trace: the same images, the same checkpoint fingerprint."""
    from pathlib import Path

    from init_lab.catalog.devices import DeviceKind
    from init_lab.config.grid import expand
    from init_lab.run.checkpoints import CheckpointStore, fingerprint

    a, b = make_synthetic(50, 10), make_synthetic(50, 10, shape=(28, 28), classes=10)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert a.x_train.shape == (50, 28, 28) and a.source == "synthetic (seed 1234)"
    config = config_from_text("name: s\ngrid: {initializer: [he_normal], activation: [relu]}\n")
    (spec,) = expand(config)
    dataset = config.dataset.model_dump()
    for new in ("standardize", "synthetic_shape", "synthetic_classes"):
        del dataset[new]
    described = {k: v for k, v in spec.describe().items()
                 if k not in ("epochs", "bias_std", "residual", "normalization")}  # as on a15a15c
    before = {"spec": described, "dataset": dataset,
              "diagnostics": True, "deterministic": True, "device": "cpu"}
    assert CheckpointStore(Path("checkpoints"), config, DeviceKind.CPU).fingerprint(spec) == fingerprint(before)


def test_train_and_test_subsets_are_stratified():
    ds = make_synthetic(1000, 400, shape=(4, 4, 3), classes=4)
    ds.y_train[:100] = 0  # unbalanced classes: each keeps its share
    shares = np.bincount(ds.y_train, minlength=4) / len(ds.y_train)
    p = prepare(ds, "mlp", 0.2, train_size=200, test_size=40)
    kept = np.concatenate([p.y_train, p.y_val])
    assert len(kept) == 200 and np.abs(np.bincount(kept, minlength=4) - shares * 200).max() <= 1
    assert np.bincount(p.y_test, minlength=4).tolist() == [10, 10, 10, 10]
    full = prepare(ds, "mlp", 0.2, train_size=5000)  # larger than the set: all of it, as without train_size
    np.testing.assert_array_equal(full.y_val, prepare(ds, "mlp", 0.2).y_val)


@pytest.mark.parametrize("family", ["mlp", "cnn"])
def test_standardize_per_channel_for_colour_equals_numpy(family):
    ds = make_synthetic(300, 60, shape=(6, 5, 3))
    ds.x_train[..., 2] = 40  # a channel constant over the training split ...
    ds.x_test[:3, 0, 0, 2] = 200  # ... becomes 0 everywhere, the test set too
    raw = prepare(ds, family, 0.2)
    std = prepare(ds, family, 0.2, standardize=True)
    assert raw.x_train.shape[1:] == ((6, 5, 3) if family == "cnn" else (90,))
    assert std.x_train.shape == raw.x_train.shape and "standardized per channel" in std.source
    pixels = raw.x_train.reshape(len(raw.x_train), -1, 3).astype(np.float64)  # channels last, also flattened
    mean, sd = pixels.mean(axis=(0, 1)), pixels.std(axis=(0, 1))
    for split in ("x_train", "x_val", "x_test"):
        r = getattr(raw, split).reshape(len(getattr(raw, split)), -1, 3)
        s = getattr(std, split).reshape(r.shape)
        np.testing.assert_allclose(s[..., :2], (r[..., :2] - mean[:2]) / sd[:2], rtol=1e-5, atol=1e-5)
        assert (s[..., 2] == 0).all()
    z = std.x_train.reshape(len(std.x_train), -1, 3).astype(np.float64)
    np.testing.assert_allclose(z[..., :2].mean(axis=(0, 1)), 0.0, atol=1e-6)
    np.testing.assert_allclose(z[..., :2].std(axis=(0, 1)), 1.0, rtol=1e-5)
    grey = prepare(make_synthetic(300, 60, shape=(6, 5, 1)), family, 0.2, standardize=True)
    assert "standardized per pixel" in grey.source  # one channel: per pixel, as grey MNIST


# --- the estimate, the theory and the listing see the real shape -----------------------------------


def test_memory_estimate_and_theory_use_the_datasets_shape(monkeypatch):
    from init_lab.analysis import theory
    from init_lab.run.memory import DataShape, layer_sizes

    base = "name: s\ngrid: {initializer: [glorot_uniform], activation: [tanh]}\nmodel: {kind: mlp, hidden: [32]}\n"
    cifar10 = config_from_text(base, overrides=["dataset.name=cifar10", "dataset.train_size=1000"])
    shape = DataShape.from_config(cifar10, "mlp")
    assert shape.input_shape == (3072,) and shape.n_classes == 10 and shape.n_train + shape.n_val == 1000
    assert shape.n_test == 10_000
    assert DataShape.from_config(cifar10, "cnn").input_shape == (32, 32, 3)
    cnn = layer_sizes(config_from_text(base.replace("{kind: mlp, hidden: [32]}", "{kind: mnist_cnn}"),
                                       overrides=["dataset.name=cifar10"]).model.architecture(), (32, 32, 3), 10)
    assert cnn.params == 3 * 9 * 32 + 32 + 18_496 + 36_928 + 4 * 4 * 64 * 64 + 64 + 650
    synthetic = config_from_text(base, overrides=["dataset.name=synthetic", "dataset.synthetic_shape=[4, 4, 3]",
                                                  "dataset.synthetic_classes=3"])
    assert DataShape.from_config(synthetic, "mlp").input_shape == (48,) and DataShape.from_config(synthetic, "mlp").n_classes == 3

    seen = []
    real = theory.layers
    monkeypatch.setattr(theory, "layers", lambda init, hidden, d, k, *rest: seen.append((d, k)) or real(init, hidden, d, k, *rest))
    theory.stack_tables(cifar10, *theory.input_moment("cifar10")[:1])
    theory.stack_tables(synthetic, 1.0)
    assert seen == [(3072, 10), (48, 3)]
    assert theory.input_moment("cifar10")[0] == pytest.approx(0.2874)
    assert theory.input_moment("digits")[0] == pytest.approx(0.2342)


def test_digits_second_moment_is_the_measured_one():
    pytest.importorskip("sklearn")
    ds = load_dataset("digits")
    from init_lab.analysis.theory import PIXEL_SECOND_MOMENT

    assert float((ds.x_train.astype(np.float64) ** 2).mean()) == pytest.approx(PIXEL_SECOND_MOMENT["digits"], abs=1e-4)


def test_list_datasets_shows_shape_classes_sizes_and_sources():
    result = invoke("list", "datasets")
    assert_clean_exit(result, 0)
    out = " ".join(result.output.split())
    for text in ("cifar10", "32×32×3", "50,000 / 10,000", "digits", "8×8 grey", "1,438 / 359", "initlab[digits]",
                 "28×28 grey", "60,000 / 10,000", cifar.ARCHIVE, "synthetic_shape"):
        assert text in out, text


# --- CIFAR-shaped sweeps, probe and report, offline ---------------------------------------------------

CIFAR_SHAPED = """
name: cifar-shaped
dataset: {name: synthetic, synthetic_shape: [32, 32, 3], synthetic_classes: 4, synthetic_train: 200,
          synthetic_test: 40, validation_split: 0.2, standardize: true}
model: {kind: mlp, hidden: [16, 16]}
grid:
  initializer: [he_normal, glorot_uniform]
  activation: [relu]
training: {epochs: 1, batch_size: 40, optimizer: adam, learning_rate: 0.01}
device: cpu
"""
CIFAR_SHAPED_CNN = CIFAR_SHAPED.replace("{kind: mlp, hidden: [16, 16]}", "{kind: mnist_cnn}").replace(
    "synthetic_train: 200", "synthetic_train: 80").replace("[he_normal, glorot_uniform]", "[he_normal]")


def _check_run(run, n_trials, params):
    summary = read_csv(run / "summary.csv")
    assert [r["status"] for r in summary] == ["completed"] * n_trials
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["dataset"]["shape"] == [32, 32, 3] and manifest["dataset"]["classes"] == 4
    record = json.loads((run / "trials" / summary[0]["trial_id"] / "trial.json").read_text())
    assert record["param_count"] == params
    result = invoke("report", run, "--format", "markdown")
    assert_clean_exit(result, 0)
    md = (run / "report" / "report.md").read_text()
    assert "32×32×3 images, 4 classes" in md
    assert "1/4" in md or "0.25" in md  # chance level is 1/classes


def test_a_cifar_shaped_mlp_sweep_and_report(reference_run):
    run = reference_run(CIFAR_SHAPED)
    _check_run(run, 2, 3072 * 16 + 16 + 16 * 16 + 16 + 16 * 4 + 4)


def test_a_cifar_shaped_cnn_sweep_and_report(reference_run):
    run = reference_run(CIFAR_SHAPED_CNN)
    # 3 input channels: the first conv's kernel is 3×3×3×32; 32×32 leaves a 4×4×64 map for the dense layer
    _check_run(run, 1, 3 * 9 * 32 + 32 + 18_496 + 36_928 + 4 * 4 * 64 * 64 + 64 + 64 * 4 + 4)


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_the_probe_on_cifar_shaped_data(write_config, tmp_path, model):
    text = CIFAR_SHAPED if model == "mlp" else CIFAR_SHAPED_CNN
    result = invoke("probe", write_config(text), "--seeds", "2", "--batch", "16", "--jacobian-examples", "2",
                    "--out", tmp_path / "out")
    assert_clean_exit(result, 0)
    layers = read_csv(next((tmp_path / "out").glob("*/probe_layers.csv")))
    hidden = 2 if model == "mlp" else 4  # conv 32, conv 64, conv 64, dense 64
    assert len(layers) == 2 * (1 if model == "cnn" else 2) * hidden
    assert all(math.isfinite(float(r["pre_std"])) and float(r["pre_std"]) > 0 for r in layers)
    if model == "mlp":  # the theory's first layer is 3072 wide: He + ReLU preserves the signal
        he = [r for r in layers if r["initializer"] == "he_normal" and r["seed"] == "0"]
        assert float(he[-1]["theory_pre_std_ratio"]) == pytest.approx(1.0)


def test_defaults_for_the_new_options_are_in_one_place():
    assert defaults.SYNTHETIC_SHAPE == (28, 28) and defaults.SYNTHETIC_CLASSES == 10
    assert DATASETS["synthetic"].image_shape == defaults.SYNTHETIC_SHAPE
