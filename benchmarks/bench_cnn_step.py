"""Where a MNIST-CNN training step spends its time, and what packing the CNN trials could buy (CPU or GPU).

One training step (batch 128, Adam) of 4 MNIST-CNN trials, every way timed in this run (ms per step of
all 4 trials, best of 3 runs of 20 steps after warm-up; random inputs: CPU kernels' speed does not depend
on the values):

1. initlab's way: 4 Keras models, one tf.function step each (no XLA);
2. the same with XLA (``jit_compile=True``);
3. packed by im2col: the first convolution as one wide convolution over the shared input (32·T filters),
   the later ones as patches (``extract_patches``) times a batched matmul per trial, pooling over the
   trials folded into the batch, dense layers as batched matmuls;
4. packed with grouped convolutions (``groups=T``), the first convolution wide.

Then the breakdown of one model's step (way 1): forward of each convolution alone, the forward pass,
the backward pass, and the rest (pooling, loss, optimizer).

    python benchmarks/bench_cnn_step.py [--device cpu|gpu]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

T, B = 4, 128


def timed(fn, steps: int = 20, repeats: int = 3) -> float:
    """Best ms per call over ``repeats`` runs of ``steps`` calls, after two warm-up calls."""
    fn(), fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            out = fn()
        getattr(out, "numpy", lambda: None)()
        best = min(best, (time.perf_counter() - t0) / steps)
    return 1000 * best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    args = ap.parse_args()
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    import keras
    import tensorflow as tf

    print(f"TensorFlow {tf.__version__}; devices: {[d.name for d in tf.config.list_logical_devices()]}")
    x = tf.random.uniform([B, 28, 28, 1])
    y = tf.random.uniform([B], 0, 10, tf.int32)

    def model():
        return keras.Sequential([
            keras.Input((28, 28, 1)), keras.layers.Conv2D(32, 3, activation="relu"), keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(64, 3, activation="relu"), keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(64, 3, activation="relu"), keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10)])

    def step_fn(variables, loss_fn, jit=False):
        opt = keras.optimizers.Adam()
        opt.build(variables)

        @tf.function(jit_compile=jit)
        def step():
            with tf.GradientTape() as tape:
                loss = loss_fn()
            opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return loss
        return step

    def ce(logits):
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))

    models = [model() for _ in range(T)]
    separate = [step_fn(m.trainable_variables, lambda m=m: ce(m(x, training=True))) for m in models]
    xla = [step_fn(m.trainable_variables, lambda m=m: ce(m(x, training=True)), jit=True) for m in models]
    ways = {"1. 4 models, tf.function each (initlab)": lambda: [s() for s in separate][-1],
            "2. 4 models, XLA each (jit_compile=True)": lambda: [s() for s in xla][-1]}

    # 3. im2col: kernels per trial as (T, k·k·c_in, c_out)
    init = keras.initializers.GlorotUniform(0)
    w1 = tf.Variable(init([3, 3, 1, 32 * T]))
    w2, w3 = tf.Variable(init([T, 288, 64])), tf.Variable(init([T, 576, 64]))
    d1, d2 = tf.Variable(init([T, 576, 64])), tf.Variable(init([T, 64, 10]))
    packed_vars = [w1, w2, w3, d1, d2]

    def patches_matmul(h, w, size):  # h: (T·B, H, W, C) → (T·B, H−2, W−2, c_out)
        p = tf.image.extract_patches(h, [1, 3, 3, 1], [1, 1, 1, 1], [1, 1, 1, 1], "VALID")
        p = tf.reshape(p, [T, B * size * size, -1])
        return tf.nn.relu(tf.reshape(tf.matmul(p, w), [T * B, size, size, -1]))

    def im2col_loss():
        h = tf.nn.relu(tf.nn.conv2d(x, w1, 1, "VALID"))  # (B, 26, 26, 32T): one wide conv, shared input
        h = tf.reshape(tf.transpose(tf.reshape(h, [B, 26, 26, T, 32]), [3, 0, 1, 2, 4]), [T * B, 26, 26, 32])
        h = tf.nn.max_pool2d(h, 2, 2, "VALID")
        h = tf.nn.max_pool2d(patches_matmul(h, w2, 11), 2, 2, "VALID")
        h = tf.reshape(patches_matmul(h, w3, 3), [T, B, 576])
        logits = tf.matmul(tf.nn.relu(tf.matmul(h, d1)), d2)
        return tf.reduce_sum(tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.broadcast_to(y[None], [T, B]), logits=logits), axis=1))

    ways["3. packed: wide first conv, im2col + batched matmul"] = step_fn(packed_vars, im2col_loss)

    g1, g2, g3 = tf.Variable(init([3, 3, 1, 32 * T])), tf.Variable(init([3, 3, 32, 64 * T])), tf.Variable(init([3, 3, 64, 64 * T]))

    def grouped_loss():  # channels of trial t are the t-th block: grouped convs keep trials apart
        h = tf.nn.max_pool2d(tf.nn.relu(tf.nn.conv2d(x, g1, 1, "VALID")), 2, 2, "VALID")
        h = tf.nn.max_pool2d(tf.nn.relu(tf.nn.conv2d(h, g2, 1, "VALID")), 2, 2, "VALID")
        h = tf.nn.relu(tf.nn.conv2d(h, g3, 1, "VALID"))  # (B, 3, 3, 64T)
        h = tf.reshape(tf.transpose(tf.reshape(h, [B, 9, T, 64]), [2, 0, 1, 3]), [T, B, 576])
        logits = tf.matmul(tf.nn.relu(tf.matmul(h, d1)), d2)
        return tf.reduce_sum(tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.broadcast_to(y[None], [T, B]), logits=logits), axis=1))

    ways["4. packed: grouped convolutions"] = step_fn([g1, g2, g3, d1, d2], grouped_loss)

    print(f"\none training step of {T} MNIST-CNN trials, batch {B}, Adam (ms per step, all {T} trials):")
    base = None
    for name, fn in ways.items():
        try:
            ms = timed(fn, steps=5 if "grouped" in name else 20)
        except Exception as exc:  # noqa: BLE001 - a way this device cannot run is reported, not fatal
            print(f"  {name:<52} failed: {type(exc).__name__}: {str(exc)[:120]}")
            continue
        base = base or ms
        print(f"  {name:<52} {ms:8.1f} ms   × way 1: {base / ms:5.2f}")

    m = models[0]
    convs = [layer for layer in m.layers if isinstance(layer, keras.layers.Conv2D)]
    inputs = [x, m.layers[1](m.layers[0](x)), m.layers[3](m.layers[2](m.layers[1](m.layers[0](x))))]
    forward = tf.function(lambda: m(x, training=True))
    full = separate[0]

    @tf.function
    def forward_backward():
        with tf.GradientTape() as tape:
            loss = ce(m(x, training=True))
        return tape.gradient(loss, m.trainable_variables)

    print(f"\nbreakdown of one model's step (way 1), ms, batch {B}:")
    parts = {f"forward of conv_{i} alone": tf.function(lambda c=c, h=h: c(h)) for i, (c, h) in enumerate(zip(convs, inputs))}
    parts |= {"forward pass (whole model)": forward, "forward + backward (gradients)": forward_backward,
              "full step (+ Adam update)": full}
    for name, fn in parts.items():
        print(f"  {name:<40} {timed(fn):7.2f} ms")


if __name__ == "__main__":
    main()
