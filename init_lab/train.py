"""Training one trial: a fresh Keras model, the configured optimizer, a seeded batch order.

The loop is written out (GradientTape + Keras optimizer) rather than ``fit`` so
that its semantics are explicit and shared with packed training: the batch order
of epoch ``e`` is ``default_rng((seed, 1, e)).permutation(n)`` — it depends on
the seed only, so every combination with the same seed sees the same batches
(paired comparisons); training loss/accuracy are means over the epoch's
examples, as Keras reports them; validation and test are evaluated on fixed sets.
A non-finite loss marks the trial diverged and training stops after that epoch.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


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


with _quiet_native_stderr():
    import tensorflow as tf
    import keras

    tf.config.list_physical_devices("GPU")  # the CUDA probe prints its own lines: run it while quiet

tf.get_logger().setLevel("ERROR")  # e.g. retracing notices: initlab traces one step function per trial

from . import defaults  # noqa: E402
from .datasets import Prepared  # noqa: E402
from .errors import DeviceError  # noqa: E402
from .grid import TrainSettings, TrialSpec  # noqa: E402
from .models import build_model  # noqa: E402

EPOCH_COLUMNS = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds", "learning_rate"]


@dataclass
class EpochRow:
    epoch: int
    loss: float
    accuracy: float
    val_loss: float
    val_accuracy: float
    seconds: float
    learning_rate: float


@dataclass
class TrialOutcome:
    """What training one trial produced; status is 'completed', 'diverged' or 'failed'."""

    status: str
    epochs: list[EpochRow] = field(default_factory=list)
    test_loss: float | None = None
    test_accuracy: float | None = None
    param_count: int | None = None
    error: str | None = None
    wall_seconds: float = 0.0
    layers: list[dict[str, Any]] = field(default_factory=list)  # diagnostics rows (layers.csv)
    lsuv: list[dict[str, Any]] | None = None  # per-layer LSUV log, for lsuv trials


ProgressFn = Callable[[int, int, int, float, float], None]  # epoch, step, steps, running loss, running acc
EpochFn = Callable[[EpochRow], None]
LayersFn = Callable[[list[dict[str, Any]]], None]  # all diagnostics rows so far


# --- device -------------------------------------------------------------------------

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


# --- data on the device ---------------------------------------------------------------


@dataclass
class DeviceData:
    """The sweep's prepared arrays as tensors, created once and shared by every trial."""

    x_train: Any
    y_train: Any
    x_val: Any
    y_val: Any
    x_test: Any
    y_test: Any
    input_shape: tuple[int, ...]
    n_classes: int
    x_probe: Any = None  # fixed probe batch for diagnostics and LSUV: the first validation examples
    y_probe: Any = None
    diagnostics: bool = True

    @classmethod
    def from_prepared(cls, p: Prepared, diagnostics: bool = True, probe_size: int = defaults.PROBE_SIZE) -> DeviceData:
        t = tf.convert_to_tensor
        return cls(
            t(p.x_train), t(p.y_train), t(p.x_val), t(p.y_val), t(p.x_test), t(p.y_test), p.input_shape, p.n_classes,
            t(p.x_val[:probe_size]), t(p.y_val[:probe_size]), diagnostics,
        )

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])


def batch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The example order of one epoch: a function of seed and epoch only (paired across trials)."""
    return np.random.default_rng((seed, 1, epoch)).permutation(n).astype(np.int32)


def make_optimizer(settings: TrainSettings) -> Any:
    lr = settings.learning_rate
    if settings.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=lr, momentum=settings.momentum)
    if settings.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=lr)
    return keras.optimizers.Adam(learning_rate=lr)


def _compile_steps(model: Any, optimizer: Any, data: DeviceData, batch_size: int):
    """tf.functions running a run of training steps, and an evaluation pass, for one model."""
    x, y = data.x_train, data.y_train
    n = data.n_train
    variables = model.trainable_variables

    scalar = tf.TensorSpec([], tf.int32)

    @tf.function  # XLA would compile per trial: measured slower here (40 s vs 27 s for 16 trials)
    def step(xb, yb):
        with tf.GradientTape() as tape:
            probs = model(xb, training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(yb, probs))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss, _correct(probs, yb)

    @tf.function(input_signature=[tf.TensorSpec([n], tf.int32), scalar, scalar])
    def train_steps(order, first, count):
        loss_sum = tf.constant(0.0)
        correct = tf.constant(0)
        for i in tf.range(first, first + count):
            start = i * batch_size
            idx = order[start : tf.minimum(start + batch_size, n)]
            loss, hits = step(tf.gather(x, idx), tf.gather(y, idx))
            loss_sum += loss * tf.cast(tf.shape(idx)[0], tf.float32)
            correct += hits
        return loss_sum, correct

    @tf.function(input_signature=[tf.TensorSpec([None, *data.input_shape]), tf.TensorSpec([None], tf.int32)])
    def evaluate(xs, ys):
        total = tf.shape(xs)[0]
        loss_sum = tf.constant(0.0)
        correct = tf.constant(0)
        for start in tf.range(0, total, defaults.EVAL_BATCH_SIZE):
            end = tf.minimum(start + defaults.EVAL_BATCH_SIZE, total)
            probs = model(xs[start:end], training=False)
            loss_sum += tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(ys[start:end], probs))
            correct += _correct(probs, ys[start:end])
        return loss_sum / tf.cast(total, tf.float32), tf.cast(correct, tf.float32) / tf.cast(total, tf.float32)

    return train_steps, evaluate


def _correct(probs: Any, labels: Any) -> Any:
    predicted = tf.argmax(probs, axis=-1, output_type=tf.int32)
    return tf.reduce_sum(tf.cast(tf.equal(predicted, labels), tf.int32))


def train_trial(
    spec: TrialSpec,
    data: DeviceData,
    on_epoch: EpochFn | None = None,
    on_progress: ProgressFn | None = None,
    progress_chunks: int = 8,
    on_layers: LayersFn | None = None,
) -> TrialOutcome:
    """Train one trial and evaluate it on the test set. Exceptions propagate (the sweep records them)."""
    from .signals import ModelProbe, lsuv

    started = time.perf_counter()
    keras.backend.clear_session(free_memory=False)
    model = build_model(spec.arch, data.input_shape, data.n_classes, spec.initializer, spec.activation, spec.seed)
    outcome = TrialOutcome(status="completed", param_count=int(model.count_params()))
    if spec.initializer.name == "lsuv":
        kw = spec.initializer.kwargs
        outcome.lsuv = lsuv(model, data.x_probe, kw["tol"], int(kw["max_iter"]))
    optimizer = make_optimizer(spec.train)
    optimizer.build(model.trainable_variables)
    train_steps, evaluate = _compile_steps(model, optimizer, data, spec.train.batch_size)
    probe = ModelProbe(model, spec.activation.name) if data.diagnostics else None

    def diagnose(epoch: int) -> None:
        if probe is not None:
            outcome.layers += probe.rows(epoch, data.x_probe, data.y_probe)
            if on_layers is not None:
                on_layers(outcome.layers)

    diagnose(0)

    n = data.n_train
    steps = math.ceil(n / spec.train.batch_size)
    chunk = max(1, math.ceil(steps / max(1, progress_chunks)))
    for epoch in range(1, spec.train.epochs + 1):
        t0 = time.perf_counter()
        order = tf.constant(batch_order(spec.seed, epoch, n))
        loss_sum, correct, done = 0.0, 0, 0
        for first in range(0, steps, chunk):
            count = min(chunk, steps - first)
            ls, c = train_steps(order, tf.constant(first), tf.constant(count))
            loss_sum += float(ls)
            correct += int(c)
            done += count
            seen = min(done * spec.train.batch_size, n)
            if on_progress is not None:
                on_progress(epoch, done, steps, loss_sum / seen, correct / seen)
        val_loss, val_acc = (float(v) for v in evaluate(data.x_val, data.y_val))
        row = EpochRow(
            epoch=epoch,
            loss=loss_sum / n,
            accuracy=correct / n,
            val_loss=val_loss,
            val_accuracy=val_acc,
            seconds=time.perf_counter() - t0,
            learning_rate=spec.train.learning_rate,
        )
        outcome.epochs.append(row)
        diagnose(epoch)
        if on_epoch is not None:
            on_epoch(row)
        if not (math.isfinite(row.loss) and math.isfinite(row.val_loss)):
            outcome.status = "diverged"
            break
    if outcome.status == "completed":
        test_loss, test_acc = (float(v) for v in evaluate(data.x_test, data.y_test))
        outcome.test_loss, outcome.test_accuracy = test_loss, test_acc
    outcome.wall_seconds = time.perf_counter() - started
    return outcome
