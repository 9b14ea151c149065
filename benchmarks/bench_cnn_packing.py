#!/usr/bin/env python3
"""Micro-benchmark (is packing worth it for the CNN?): 4 MNIST-CNN trials, one training step each, separately vs packed
(first conv shared-input wide, later convs grouped, dense layers batched)."""
import os
import time

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import keras
import tensorflow as tf

T, B = 4, 128
x = tf.random.uniform([B, 28, 28, 1]); y = tf.random.uniform([B], 0, 10, tf.int32)
def cnn(groups=1, width=1):
    inp = keras.Input((28, 28, 1))
    h = keras.layers.Conv2D(32 * width, 3, activation="relu")(inp)
    h = keras.layers.MaxPooling2D(2)(h)
    h = keras.layers.Conv2D(64 * width, 3, activation="relu", groups=groups)(h)
    h = keras.layers.MaxPooling2D(2)(h)
    h = keras.layers.Conv2D(64 * width, 3, activation="relu", groups=groups)(h)
    h = keras.layers.Flatten()(h)   # (B, 3*3*64*T) — channel-interleaved; dense per trial needs a reshape
    h = keras.layers.Reshape((9, T if width > 1 else 1, 64))(h)
    h = keras.layers.Permute((2, 1, 3))(h)
    h = keras.layers.Reshape((T if width > 1 else 1, 576))(h)
    h = keras.layers.EinsumDense("btd,tdo->bto", (T if width > 1 else 1, 64), bias_axes="to", activation="relu")(h)
    out = keras.layers.EinsumDense("btd,tdo->bto", (T if width > 1 else 1, 10), bias_axes="to")(h)
    return keras.Model(inp, out)
def stepper(m):
    opt = keras.optimizers.Adam(); opt.build(m.trainable_variables)
    @tf.function
    def step():
        with tf.GradientTape() as tape:
            lg = m(x, training=True)
            loss = tf.reduce_sum(tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(tf.broadcast_to(y[:, None], tf.shape(lg)[:2]), lg), 0))
        opt.apply_gradients(zip(tape.gradient(loss, m.trainable_variables), m.trainable_variables))
    return step
def bench(fns, n=30):
    for f in fns: f()
    t = time.perf_counter()
    for _ in range(n):
        for f in fns: f()
    return (time.perf_counter() - t) / n
single = [stepper(cnn()) for _ in range(T)]
print("4 separate models: %.1f ms/step" % (1000 * bench(single)))
try:
    packed = stepper(cnn(groups=T, width=T))
    print("packed (grouped convs): %.1f ms/step" % (1000 * bench([packed])))
except Exception as e:
    print("grouped conv failed:", type(e).__name__, str(e)[:200])
