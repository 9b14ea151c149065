"""The one place TensorFlow and Keras are imported and set up (the engine's gateway).

Everything that trains, probes or builds a network imports ``tf`` and ``keras`` from here, so
start-up chatter is silenced once, the device is chosen once, and no other package of initlab
imports TensorFlow (import-linter holds that as a contract). Also here: the elementwise tensor
functions the activation registry is written against (:data:`OPS`), Keras initializers built from
the registry's data, and Keras' dataset downloader.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from init_lab.analysis import meanfield
from init_lab.catalog import cifar
from init_lab.catalog.datasets import Dataset, checked, load_cifar
from init_lab.catalog.errors import DeviceError
from init_lab.catalog.initializers import ARRAY_INITIALIZERS, INITIALIZERS, bias_seed, keras_spec
from init_lab.catalog.registry import Choice
from init_lab.engine import lean_import, xla_cache

# TensorFlow's C++ log below FATAL off: its real failures reach initlab as Python exceptions, while XLA's persistent
# cache logs ERROR lines on every hit that are not errors (a text-format parse tried before the binary one, tuning
# flags it mistakes for missing CPU features). INITLAB_TF_LOGS=1 shows every line.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if os.environ.get("INITLAB_TF_LOGS") else "3")
xla_cache.configure()  # before TensorFlow reads its flags


@contextlib.contextmanager
def _quiet_native_stderr():
    """Hide TensorFlow's native start-up chatter (oneDNN, "no CUDA drivers"), which ignores
    TF_CPP_MIN_LOG_LEVEL; Python exceptions still surface. INITLAB_TF_LOGS=1 shows it."""
    if os.environ.get("INITLAB_TF_LOGS"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


with _quiet_native_stderr(), lean_import.importing_keras():
    import keras
    import tensorflow as tf

    tf.config.list_physical_devices("GPU")  # the CUDA probe prints its own lines: run it while quiet

tf.get_logger().setLevel("ERROR")  # e.g. retracing notices: one step function is traced per group

# The elementwise functions the activation registry's formulas are written against.
OPS = SimpleNamespace(
    sigmoid=tf.sigmoid, tanh=tf.tanh, relu=tf.nn.relu, elu=tf.nn.elu, selu=tf.nn.selu, erf=tf.math.erf,
    softplus=tf.math.softplus, abs=tf.abs, exp=tf.exp, where=tf.where,
)

# The array operations analysis.jacobian's QR accumulation is written against, batched over trials × examples
LINALG = SimpleNamespace(
    matmul=tf.linalg.matmul,
    qr=tf.linalg.qr,  # reduced (full_matrices=False)
    # LAPACK's (NumPy's) SVD for the graded product: TensorFlow's returns exact zeros for its small singular values
    svdvals=lambda a: np.linalg.svd(a.numpy(), compute_uv=False),  # descending
    take_rows=lambda a, index: tf.gather(a, index, axis=index.ndim - 1, batch_dims=index.ndim - 1),
    absmax=lambda a: tf.reduce_max(tf.abs(a), axis=[-2, -1]).numpy(),
    to_numpy=lambda a: a.numpy() if hasattr(a, "numpy") else a,
    broadcast_to=tf.broadcast_to,
)

_device_choice: str | None = None


def setup_device(requested: str = "auto", deterministic: bool = True) -> str:
    """Pin TensorFlow to the requested device before any work; returns a description of it.

    ``gpu`` without a visible GPU is a DeviceError. Op determinism makes runs on the
    CPU bit-for-bit repeatable (same config + seed ⇒ identical tables).
    """
    global _device_choice
    gpus = tf.config.list_physical_devices("GPU")
    if requested == "gpu" and not gpus:
        raise DeviceError(
            "--device gpu: TensorFlow sees no GPU here. Install the GPU build with "
            "`pip install 'initlab[gpu]'` (Linux with an NVIDIA driver), check `nvidia-smi`, "
            "or use --device cpu / auto."
        )
    use_gpu = bool(gpus) and requested in ("gpu", "auto")
    try:
        if not use_gpu and gpus:
            tf.config.set_visible_devices([], "GPU")
        for gpu in gpus if use_gpu else []:
            tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError:
        # the runtime is already initialised (a second sweep in one process): keep the first choice
        if _device_choice is not None and _device_choice.startswith("gpu") != use_gpu:
            raise DeviceError(
                f"this process already runs on {_device_choice}; start a new process for --device {requested}."
            ) from None
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    if use_gpu:
        details = tf.config.experimental.get_device_details(gpus[0])
        _device_choice = f"gpu ({details.get('device_name', gpus[0].name)}; {len(gpus)} visible)"
    else:
        _device_choice = f"cpu ({os.cpu_count()} cores)"
    return _device_choice


def build_initializer(choice: Choice, trial_seed: int, layer_index: int, activation: Choice | None = None) -> Any:
    """A Keras initializer for one layer of one trial, from the registry's data; ``activation`` (the trial's) is
    what an activation-matched initializer is matched to, by the mean-field quadrature."""
    sigma_w2 = None
    if INITIALIZERS.entries[choice.name].needs_activation:
        if activation is None:
            raise ValueError(f"initializer '{choice.name}' needs the trial's activation")
        sigma_w2 = meanfield.matched_sigma_w2(meanfield.phi(activation))
    name, kwargs = keras_spec(choice, trial_seed, layer_index, sigma_w2)
    if name in ARRAY_INITIALIZERS:
        return ArrayInitializer(name, kwargs)
    return getattr(keras.initializers, name)(**kwargs)


def scaled_initializer(initializer: Any, factor: float) -> Any:
    """``initializer``'s draw × ``factor`` (Fixup's per-layer rescaling); exactly zero at factor 0."""
    if factor == 1.0:
        return initializer
    if factor == 0.0:
        return keras.initializers.Zeros()

    class Scaled(keras.initializers.Initializer):
        def __call__(self, shape, dtype=None):
            return initializer(shape, dtype=dtype) * factor

    return Scaled()


class ArrayInitializer(keras.initializers.Initializer):
    """A kernel computed by ``catalog.initializers.ARRAY_INITIALIZERS`` (ZerO, delta-orthogonal) from its shape, seed
    and parameters, in NumPy: the same array whichever model class asks."""

    def __init__(self, name: str, kwargs: dict[str, Any]):
        self.name, self.kwargs = name, dict(kwargs)

    def __call__(self, shape, dtype=None):
        return tf.constant(ARRAY_INITIALIZERS[self.name](tuple(int(d) for d in shape), **self.kwargs),
                           dtype=dtype or "float32")

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "kwargs": self.kwargs}


def build_bias_initializer(bias_std: float, trial_seed: int, layer_index: int) -> Any:
    """A Keras initializer for one layer's biases: N(0, σ_b²) seeded by ``initializers.bias_seed``, or, at σ_b = 0,
    Keras' Zeros (exactly the zero biases of runs before ``model.bias_std`` existed)."""
    if not bias_std:
        return keras.initializers.Zeros()
    return keras.initializers.RandomNormal(mean=0.0, stddev=float(bias_std), seed=bias_seed(trial_seed, layer_index))


def keras_download(name: str, looked: list[str]) -> Dataset | None:
    """mnist / fashion_mnist / cifar10 through Keras' downloader and cache; None (noting where) if unavailable."""
    cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"
    if name == "cifar10":
        return _keras_cifar10(cache, looked)
    loader = {"mnist": keras.datasets.mnist, "fashion_mnist": keras.datasets.fashion_mnist}[name]
    try:
        (x_train, y_train), (x_test, y_test) = loader.load_data()
    except Exception as exc:  # network errors come in many types; all mean "not available"
        looked.append(f"Keras' downloader and cache {cache} ({type(exc).__name__}: {str(exc)[:120]})")
        return None
    return checked(Dataset(name, x_train, y_train, x_test, y_test, source=f"keras.datasets.{name} (cache {cache})"))


def _keras_cifar10(cache: Path, looked: list[str]) -> Dataset | None:
    """CIFAR-10 from Keras' cache, or downloaded into it; always read by ``catalog.cifar``'s safe reader.

    Not keras.datasets.cifar10.load_data(): Keras releases initlab accepts unpickle the batches with a bare
    pickle.load (``catalog.cifar``'s docstring). The folder load_data extracts is read where it exists; else
    Keras' downloader fetches the archive into the same cache, checking its SHA-256 (a damaged or altered
    cached archive is fetched again), and the archive is read in memory.
    """
    folder = cifar.in_keras_cache(cache)
    if folder is not None:
        return load_cifar("batches", folder)
    try:
        archive = keras.utils.get_file(cifar.ARCHIVE, origin=cifar.URL, file_hash=cifar.SHA256)
    except Exception as exc:  # network errors come in many types; all mean "not available"
        looked.append(f"Keras' downloader and cache {cache} ({type(exc).__name__}: {str(exc)[:120]})")
        return None
    return load_cifar("archive", Path(archive))


def environment() -> dict[str, str]:
    """Framework versions, for the run manifest."""
    return {"tensorflow": tf.__version__, "keras": keras.__version__}
