"""The group optimizer against Keras' own optimizers (an independent reference: packed and one-model runs
both use GroupOptimizer, so comparing them says nothing about its formulas), and resume/extension identity
for the optimizers whose state is not Adam's."""

from __future__ import annotations

import numpy as np
import pytest

from init_lab.catalog.optimizers import OPTIMIZERS, slot_names
from init_lab.config.loading import config_from_text
from init_lab.run.sweep import resume_sweep, run_sweep

from .helpers import TINY, run_tables

keras = pytest.importorskip("keras")

STEPS, SHAPE = 6, (7, 5)
CASES = {  # kind, momentum, the Keras optimizer with the same settings
    "adam": ("adam", 0.0, lambda lr: keras.optimizers.Adam(learning_rate=lr)),
    "rmsprop": ("rmsprop", 0.0, lambda lr: keras.optimizers.RMSprop(learning_rate=lr)),
    "sgd": ("sgd", 0.0, lambda lr: keras.optimizers.SGD(learning_rate=lr)),
    "sgd-momentum": ("sgd", 0.9, lambda lr: keras.optimizers.SGD(learning_rate=lr, momentum=0.9)),
}


def gradients(n_trials: int | None = None) -> list[np.ndarray]:
    """A fixed sequence of gradients, large and small (Adam's and RMSprop's ε matter for the small ones)."""
    rng = np.random.default_rng(7)
    shape = SHAPE if n_trials is None else (n_trials, *SHAPE)
    return [(rng.standard_normal(shape) * 10.0 ** rng.uniform(-4, 1)).astype(np.float32) for _ in range(STEPS)]


def keras_steps(case: str, lr: float, w0: np.ndarray, grads: list[np.ndarray]) -> np.ndarray:
    variable = keras.Variable(w0)
    optimizer = CASES[case][2](lr)
    for g in grads:
        optimizer.apply_gradients([(keras.ops.convert_to_tensor(g), variable)])
    return np.asarray(variable.numpy())


@pytest.mark.parametrize("case", list(CASES))
def test_one_layer_steps_equal_keras(case):
    from init_lab.engine.backend import tf
    from init_lab.engine.optim import GroupOptimizer

    kind, momentum, _ = CASES[case]
    w0 = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    grads = gradients()
    mine = tf.Variable(w0)
    optimizer = GroupOptimizer(kind, [0.01], momentum, [mine])
    for g in grads:
        optimizer.apply([tf.constant(g)])
    expected = keras_steps(case, 0.01, w0, grads)
    np.testing.assert_allclose(mine.numpy(), expected, rtol=1e-6, atol=1e-9)
    assert not np.allclose(expected, w0)  # the steps moved the weights


@pytest.mark.parametrize("case", list(CASES))
def test_a_stacked_variable_steps_each_trial_as_keras_with_its_own_rate(case):
    """A variable stacked over three trials with rates (n, 1, 1): each slice equals Keras at that rate."""
    from init_lab.engine.backend import tf
    from init_lab.engine.optim import GroupOptimizer

    kind, momentum, _ = CASES[case]
    rates = [0.001, 0.01, 0.1]
    w0 = np.random.default_rng(1).standard_normal((3, *SHAPE)).astype(np.float32)
    grads = gradients(3)
    mine = tf.Variable(w0)
    optimizer = GroupOptimizer(kind, [tf.constant(np.reshape(rates, (3, 1, 1)), tf.float32)], momentum, [mine])
    for g in grads:
        optimizer.apply([tf.constant(g)])
    for t, lr in enumerate(rates):
        expected = keras_steps(case, lr, w0[t], [g[t] for g in grads])
        np.testing.assert_allclose(mine.numpy()[t], expected, rtol=1e-6, atol=1e-9, err_msg=f"trial {t}")


@pytest.mark.parametrize("kind, momentum", [(name, m) for name in OPTIMIZERS.names() for m in (0.0, 0.9)])
def test_the_registry_names_the_slots_the_optimizer_keeps(kind, momentum):
    """The slots ``catalog.optimizers`` declares (which the memory estimate counts) are the ones GroupOptimizer
    creates, one per model variable, and each is state its update rule moves."""
    from init_lab.engine.backend import tf
    from init_lab.engine.optim import GroupOptimizer

    variables = [tf.Variable(np.ones(SHAPE, np.float32)), tf.Variable(np.ones(SHAPE[1:], np.float32))]
    optimizer = GroupOptimizer(kind, [0.01, 0.01], momentum, variables)
    assert tuple(optimizer.slots) == slot_names(kind, momentum)
    assert all(len(slots) == len(variables) for slots in optimizer.slots.values())
    optimizer.apply([tf.fill(v.shape, 0.5) for v in variables])
    assert all(np.abs(s.numpy()).sum() > 0 for slots in optimizer.slots.values() for s in slots)
    assert len(slot_names("sgd", 0.0)) == 0 and len(slot_names("sgd", 0.9)) == 1  # plain SGD keeps no state


SINGLE = TINY.replace("activation: [relu, tanh]", "activation: [prelu]").replace(
    "initializer: [he_normal, zeros]", "initializer: [he_normal]")  # PReLU trains as one Keras-built model


@pytest.mark.parametrize("optimizer", ["training.optimizer=rmsprop", "training.optimizer=sgd"])
@pytest.mark.parametrize("text,pack", [(TINY, True), (SINGLE, False)], ids=["packed-group", "prelu-single"])
def test_extending_restores_the_optimizer_state_exactly(tmp_path, text, pack, optimizer):
    """RMSprop's velocity and SGD's momentum travel through the checkpoint: 2 epochs then 2 more equal 4."""
    settings = [optimizer] + (["training.momentum=0.9", "training.learning_rate=0.05"] if "sgd" in optimizer else [])
    short = run_sweep(config_from_text(text, overrides=settings), out=tmp_path / "short", pack=pack)
    resume_sweep(short.run_dir, overrides=["training.epochs=4"], pack=pack)
    fresh = run_sweep(config_from_text(text, overrides=settings + ["training.epochs=4"]), out=tmp_path / "fresh",
                      pack=pack)
    assert fresh.count("completed") == len(fresh.records)
    assert run_tables(short.run_dir) == run_tables(fresh.run_dir)
