"""A sweep's data on the device: loaded and prepared once, shared by every group; the batch order."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from init_lab.catalog import defaults
from init_lab.catalog.datasets import ALIGNMENT, Prepared, load_dataset, prepare
from init_lab.engine.backend import keras_download, tf


@dataclass(frozen=True)
class Recording:
    """What the loop records besides the epoch rows: the same for every group of a sweep."""

    diagnostics: bool = defaults.DIAGNOSTICS  # layers.csv, step_layers.csv, histograms.npz
    log_every_steps: int | None = None  # steps.csv rows every k steps (None: ~STEP_POINTS_PER_EPOCH per epoch)
    step_diagnostics_epochs: int = defaults.STEP_DIAGNOSTICS_EPOCHS

    @classmethod
    def from_config(cls, training: Any) -> Recording:
        return cls(training.diagnostics, training.log_every_steps,
                   training.step_diagnostics_epochs if training.diagnostics else 0)

    def every(self, steps_per_epoch: int) -> int:
        """Steps between two rows of steps.csv."""
        return self.log_every_steps or max(1, math.ceil(steps_per_epoch / defaults.STEP_POINTS_PER_EPOCH))


@dataclass
class DeviceData:
    """The prepared arrays as tensors, created once and shared by every trial."""

    x_train: Any
    y_train: Any
    x_val: Any
    y_val: Any
    x_test: Any
    y_test: Any
    input_shape: tuple[int, ...]
    n_classes: int
    source: str = ""
    x_probe: Any = None  # fixed probe batch for diagnostics: the first validation examples
    y_probe: Any = None
    recording: Recording = Recording()
    x_lsuv: Any = None  # LSUV's data batch: the first training examples (it sets weights: never validation data)
    # compiled groups by structure, reused by later groups of the sweep (engine.programs): they capture these tensors
    programs: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_prepared(cls, p: Prepared, recording: Recording = Recording(),
                      probe_size: int = defaults.PROBE_SIZE) -> DeviceData:
        t = _tensor
        x_probe, y_probe = p.probe_batch(probe_size)
        return cls(
            t(p.x_train), t(p.y_train), t(p.x_val), t(p.y_val), t(p.x_test), t(p.y_test), p.input_shape, p.n_classes,
            p.source, t(x_probe), t(y_probe), recording, t(p.lsuv_batch(probe_size)),
        )

    @property
    def diagnostics(self) -> bool:
        return self.recording.diagnostics

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    def sizes(self) -> dict[str, int]:
        return {"train": self.n_train, "validation": int(self.y_val.shape[0]), "test": int(self.y_test.shape[0])}


def _tensor(a: np.ndarray) -> Any:
    """``a`` as a tensor: on a CPU-only process an aligned contiguous array is adopted as it is, through DLPack
    (TensorFlow keeps it alive; nothing writes to it again), instead of copied — full MNIST's 170 MB copy took
    0.1–0.5 s here, most of it the page faults of fresh memory. Anything else is copied
    (``tf.convert_to_tensor``): TensorFlow aborts the process on a buffer that is not 64-byte aligned."""
    adoptable = (isinstance(a, np.ndarray) and a.flags.c_contiguous and a.ctypes.data % ALIGNMENT == 0
                 and a.dtype == np.float32 and a.size > 0 and not tf.config.get_visible_devices("GPU"))
    return tf.experimental.dlpack.from_dlpack(a.__dlpack__()) if adoptable else tf.convert_to_tensor(a)


def load_prepared(dataset: Any, family: str) -> Prepared:
    """The config's dataset, loaded (Keras' downloader as the last resort) and prepared for ``family``."""
    raw = load_dataset(dataset.name, dataset.path, (dataset.synthetic_train, dataset.synthetic_test), keras_download,
                       tuple(dataset.synthetic_shape), dataset.synthetic_classes)
    return prepare(raw, family, dataset.validation_split, dataset.split_seed, dataset.train_size, dataset.test_size,
                   standardize=dataset.standardize)


def load_device_data(config: Any, family: str) -> DeviceData:
    """What a sweep (or a worker) trains on, from a validated config."""
    return DeviceData.from_prepared(load_prepared(config.dataset, family), Recording.from_config(config.training))


def batch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The example order of one epoch: a function of seed and epoch only (paired across trials)."""
    return np.random.default_rng((seed, 1, epoch)).permutation(n).astype(np.int32)
