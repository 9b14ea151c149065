"""Hostile inputs, checked before anything is written (issue 25): broken data files (each named, with what is
wrong, never NumPy's advice to load them "unsafely"), absurd sizes (refused unless --yes), a missing device —
and in every case no run directory is made and runs/latest stays where it was."""

from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest

from init_lab.catalog.errors import SweepTooLargeError
from init_lab.config.loading import config_from_text
from init_lab.run import preflight
from init_lab.run.sweep import run_sweep

from .helpers import TINY, assert_clean_exit, invoke
from .test_datasets import fake_mnist_dir

N_TRAIN, N_TEST = 120, 40
FILES_CONFIG = """
name: files
dataset: {{name: mnist, path: {path}, validation_split: 0.25}}
model: {{kind: mlp, hidden: [8]}}
grid: {{initializer: [he_normal], activation: [relu]}}
training: {{epochs: 1, batch_size: 40}}
device: cpu
"""


@pytest.fixture
def runs(tmp_path):
    """An output directory that already has a run, which runs/latest names: what must not change."""
    out = tmp_path / "runs"
    (out / "2026-01-01_00-00-00_earlier").mkdir(parents=True)
    (out / "latest").symlink_to("2026-01-01_00-00-00_earlier", target_is_directory=True)
    return out


def unchanged(out) -> None:
    assert sorted(p.name for p in out.iterdir()) == ["2026-01-01_00-00-00_earlier", "latest"]
    assert os.readlink(out / "latest") == "2026-01-01_00-00-00_earlier"


def refused(result, *fragments: str) -> str:
    assert_clean_exit(result, 1)
    message = " ".join(result.stderr.split())
    for fragment in fragments:
        assert fragment in message, message
    assert "allow_pickle" not in message and "unsafe" not in message  # never NumPy's advice
    return message


def npz(path, **arrays) -> str:
    np.savez(path, **arrays)
    return str(path)


def mnist_arrays(n_train=N_TRAIN, n_test=N_TEST, shape=(28, 28)):
    rng = np.random.default_rng(0)
    return {"x_train": rng.integers(0, 256, (n_train, *shape), dtype=np.uint8), "y_train": np.arange(n_train) % 10,
            "x_test": rng.integers(0, 256, (n_test, *shape), dtype=np.uint8), "y_test": np.arange(n_test) % 10}


# --- broken data files: named, said what is wrong, nothing written ---------------------------------------


def test_intact_idx_files_sweep(tmp_path, write_config):
    fake_mnist_dir(tmp_path / "idx", compress=True, n_train=N_TRAIN, n_test=N_TEST)
    result = invoke("sweep", write_config(FILES_CONFIG.format(path=tmp_path / "idx")), "--out", tmp_path / "runs")
    assert_clean_exit(result, 0)


@pytest.mark.parametrize("compress", [False, True])
def test_a_truncated_idx_file_is_named_and_leaves_no_run(tmp_path, write_config, runs, compress):
    fake_mnist_dir(tmp_path / "idx", compress=compress, n_train=N_TRAIN, n_test=N_TEST)
    name = "train-images-idx3-ubyte" + (".gz" if compress else "")
    path = tmp_path / "idx" / name
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    result = invoke("sweep", write_config(FILES_CONFIG.format(path=tmp_path / "idx")), "--out", runs)
    if compress:
        refused(result, f"{path}: truncated: its gzip stream ends early")
    else:
        refused(result, f"{path}: truncated: {len(data) // 2} of {len(data)} bytes", f"({N_TRAIN}, 28, 28)")
    unchanged(runs)


def test_idx_labels_that_do_not_match_the_images_are_named(tmp_path, write_config, runs):
    from .test_datasets import write_idx

    fake_mnist_dir(tmp_path / "idx", compress=False, n_train=N_TRAIN, n_test=N_TEST)
    write_idx(tmp_path / "idx" / "train-labels-idx1-ubyte", np.arange(N_TRAIN - 20) % 10, compress=False)
    result = invoke("sweep", write_config(FILES_CONFIG.format(path=tmp_path / "idx")), "--out", runs)
    refused(result, f"{tmp_path / 'idx' / 'train-labels-idx1-ubyte'}: shape ({N_TRAIN - 20},) where ({N_TRAIN},) "
                    "was expected")
    unchanged(runs)


def test_a_file_that_is_not_idx_is_named(tmp_path, write_config, runs):
    fake_mnist_dir(tmp_path / "idx", compress=False, n_train=N_TRAIN, n_test=N_TEST)
    (tmp_path / "idx" / "t10k-images-idx3-ubyte").write_bytes(b"<html>404 Not Found</html>")
    result = invoke("sweep", write_config(FILES_CONFIG.format(path=tmp_path / "idx")), "--out", runs)
    refused(result, "t10k-images-idx3-ubyte: not an IDX file", "bad magic number", "3c 68 74 6d")
    unchanged(runs)


def test_an_npz_that_is_not_a_zip_archive_is_named(tmp_path, write_config, runs):
    path = tmp_path / "mnist.npz"
    path.write_bytes(b"\x80\x04garbage that numpy would try to unpickle" * 10)
    result = invoke("sweep", write_config(FILES_CONFIG.format(path=path)), "--out", runs)
    refused(result, f"{path}: not a zip archive", "so not an .npz", "x_train, y_train, x_test, y_test")
    unchanged(runs)


def test_an_empty_npz_is_named(tmp_path, write_config, runs):
    path = tmp_path / "mnist.npz"
    path.write_bytes(b"")
    refused(invoke("sweep", write_config(FILES_CONFIG.format(path=path)), "--out", runs),
            f"{path}: not a zip archive (an empty file)")
    unchanged(runs)


def test_an_npz_with_wrong_shapes_is_named(tmp_path, write_config, runs):
    path = npz(tmp_path / "mnist.npz", **mnist_arrays(shape=(32, 32)))
    refused(invoke("sweep", write_config(FILES_CONFIG.format(path=path)), "--out", runs),
            f"{path}: x_train: shape ({N_TRAIN}, 32, 32) where (N, 28, 28) was expected")
    unchanged(runs)


def test_an_npz_lacking_an_array_is_named(tmp_path, write_config, runs):
    arrays = mnist_arrays()
    del arrays["y_test"]
    path = npz(tmp_path / "mnist.npz", **arrays)
    refused(invoke("sweep", write_config(FILES_CONFIG.format(path=path)), "--out", runs),
            f"{path}: lacks array(s) y_test")
    unchanged(runs)


def test_an_npz_of_pickled_objects_is_refused_without_loading_it(tmp_path, write_config, runs):
    arrays = mnist_arrays()
    arrays["y_train"] = np.array([{"label": i % 10} for i in range(N_TRAIN)], dtype=object)
    path = npz(tmp_path / "mnist.npz", **arrays)
    refused(invoke("sweep", write_config(FILES_CONFIG.format(path=path)), "--out", runs),
            f"{path}: y_train holds Python objects (pickled data), not numbers", "initlab loads no pickled data")
    unchanged(runs)


def test_a_damaged_npz_is_named(tmp_path, write_config, runs):
    path = tmp_path / "mnist.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:  # stored, so flipping bytes keeps the archive
        for key, array in mnist_arrays().items():
            with z.open(f"{key}.npy", "w") as f:
                np.lib.format.write_array(f, array)
    data = bytearray(path.read_bytes())
    data[400:460] = b"x" * 60  # inside x_train's data: its CRC no longer matches
    path.write_bytes(bytes(data))
    refused(invoke("sweep", write_config(FILES_CONFIG.format(path=path)), "--out", runs),
            f"{path}: a damaged zip archive (BadZipFile")
    unchanged(runs)


def test_labels_outside_the_classes_are_named(tmp_path, write_config, runs):
    arrays = mnist_arrays()
    arrays["y_test"] = np.arange(N_TEST) % 13
    path = npz(tmp_path / "mnist.npz", **arrays)
    refused(invoke("sweep", write_config(FILES_CONFIG.format(path=path)), "--out", runs),
            f"{path}: y_test: labels from 0 to 12 where 0..9 were expected")
    unchanged(runs)


def test_a_damaged_gzip_stream_is_named(tmp_path, write_config, runs):
    fake_mnist_dir(tmp_path / "idx", compress=True, n_train=N_TRAIN, n_test=N_TEST)
    path = tmp_path / "idx" / "train-images-idx3-ubyte.gz"
    data = bytearray(path.read_bytes())
    data[30:60] = bytes(30)
    path.write_bytes(bytes(data))
    refused(invoke("sweep", write_config(FILES_CONFIG.format(path=tmp_path / "idx")), "--out", runs), f"{path}:")
    unchanged(runs)


def test_the_sweep_reads_its_data_once(tmp_path, monkeypatch):
    """Checked before the run directory exists, then trained on: the same arrays, not a second read."""
    from init_lab.engine import data

    calls = []
    real = data.load_dataset

    def counted(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(data, "load_dataset", counted)
    assert run_sweep(config_from_text(TINY, overrides=["training.epochs=1"]), out=tmp_path).ok
    assert calls == ["synthetic"]


# --- absurd sizes: refused from the estimate, unless --yes ----------------------------------------------


def test_absurd_epochs_are_refused_unless_confirmed(write_config, runs):
    result = invoke("sweep", write_config(), "--out", runs, "--set", "training.epochs=100000000")
    message = refused(result, "time: 4 trial(s) × 100000000 epoch(s) train for at least", "--yes")
    assert "memory:" not in message
    unchanged(runs)


def test_an_absurd_width_is_refused_from_the_memory_estimate(write_config, runs):
    result = invoke("sweep", write_config(), "--out", runs, "--set", "model.hidden=[100000000]")
    message = refused(result, "memory: trial 000_he_normal-relu-s0", "more than the 17.2 GB of available host RAM",
                      "it would run out of memory", "--yes")
    assert "TB" in message
    unchanged(runs)
    dry = invoke("sweep", write_config(), "--dry-run", "--set", "model.hidden=[100000000]")
    assert_clean_exit(dry, 0)
    assert "training time: at least" in dry.output and "memory: trial 000_he_normal-relu-s0" in dry.output
    assert "estimate: not measured (group " in dry.output and "does not fit the memory budget" in dry.output


def test_yes_or_a_confirmation_lets_a_large_sweep_past_the_checks(tmp_path):
    from init_lab.config.grid import expand

    cfg = config_from_text(TINY, overrides=["training.epochs=100000000"])
    work = [(s, s.train.epochs) for s in expand(cfg)]
    asked = []
    with pytest.raises(SweepTooLargeError):
        run_sweep(cfg, out=tmp_path / "runs", confirm=lambda message: asked.append(message) or False)
    assert len(asked) == 1 and "time:" in asked[0] and not (tmp_path / "runs").exists()
    ready = preflight.check(cfg, work, yes=True)  # --yes: past the size check, on to the data
    assert ready.data is not None and ready.memory.budget > 0
    assert preflight.check(cfg, work, confirm=lambda message: True).data is not None


def test_a_missing_gpu_leaves_no_run(write_config, runs):
    tf = pytest.importorskip("tensorflow")
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    refused(invoke("sweep", write_config(), "--device", "gpu", "--out", runs), "no GPU")
    unchanged(runs)
