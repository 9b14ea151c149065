"""Benchmark: the tutorial loop (a fresh Keras model + fit per combination) against initlab's sweep.

Everything runs in this one process, on the same prepared data, and every figure printed
was measured in this run:

* seconds for each way and their ratio; achieved GFLOP/s (FLOPs counted from the layer
  shapes: training = 6 × multiply-adds per example, evaluation = 2 ×) and the fraction of
  this machine's float32 matmul peak (measured here with a large tf.matmul);
* peak resident memory while each phase ran (sampled from /proc every 20 ms);
* the mean absolute difference of per-trial test accuracy between the two ways.

Grids: (a) 16 MLP trials 784-256-256-10 (4 initializers × 4 activations), full MNIST, 1 epoch,
batch 128, Adam; (b) 4 MNIST-CNN trials (2 × 2). Full MNIST comes from $INITLAB_DATA_DIR
(e.g. ../shared/data) or Keras' cache.

    INITLAB_DATA_DIR=../shared/data python benchmarks/bench_sweep.py [--skip-cnn] [--scale 16,64,256]

``--scale`` times packed MLP sweeps of growing size (trials per second), for GPU machines.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from init_lab.catalog.datasets import load_dataset, prepare  # noqa: E402
from init_lab.config.schema import config_from_text  # noqa: E402
from init_lab.engine import backend as train  # noqa: E402  (configures TensorFlow quietly)
from init_lab.run.sweep import run_sweep  # noqa: E402

tf, keras = train.tf, train.keras

MLP_INITS = ["glorot_uniform", "he_normal", "lecun_normal", "orthogonal"]
MLP_ACTS = ["relu", "tanh", "sigmoid", "elu"]
CNN_INITS = ["glorot_uniform", "he_normal"]
CNN_ACTS = ["relu", "tanh"]
HIDDEN = [256, 256]


class PeakRSS:
    """Peak resident set size of this process while the block runs (MB)."""

    def __enter__(self):
        self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._rss())

    @staticmethod
    def _rss() -> float:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())


def matmul_peak(n: int = 2048, repeats: int = 10) -> float:
    """Best GFLOP/s of an n×n float32 matmul on the current device."""
    a = tf.random.normal([n, n])
    b = tf.random.normal([n, n])
    f = tf.function(lambda a, b: tf.matmul(a, b))
    f(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        f(a, b).numpy()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def mlp_flops(n_train: int, n_eval: int, epochs: int, trials: int) -> float:
    widths = [784, *HIDDEN, 10]
    macs = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    return trials * (6 * macs * n_train * epochs + 2 * macs * n_eval)


def cnn_flops(n_train: int, n_eval: int, epochs: int, trials: int) -> float:
    # conv MACs = out_h·out_w·k·k·c_in·c_out; valid padding, pools of 2
    macs = 26 * 26 * 9 * 1 * 32 + 11 * 11 * 9 * 32 * 64 + 3 * 3 * 9 * 64 * 64 + 576 * 64 + 64 * 10
    return trials * (6 * macs * n_train * epochs + 2 * macs * n_eval)


def naive(prepared, inits, acts, epochs, batch, cnn=False):
    """The tutorial way: one Keras model per combination, compile, fit, evaluate."""
    accs = {}
    for init in inits:
        for act in acts:
            keras.backend.clear_session()
            keras.utils.set_random_seed(0)
            if cnn:
                layers = [
                    keras.Input((28, 28, 1)),
                    keras.layers.Conv2D(32, 3, activation=act, kernel_initializer=init),
                    keras.layers.MaxPooling2D(2),
                    keras.layers.Conv2D(64, 3, activation=act, kernel_initializer=init),
                    keras.layers.MaxPooling2D(2),
                    keras.layers.Conv2D(64, 3, activation=act, kernel_initializer=init),
                    keras.layers.Flatten(),
                    keras.layers.Dense(64, activation=act, kernel_initializer=init),
                ]
            else:
                layers = [keras.Input((784,))] + [
                    keras.layers.Dense(w, activation=act, kernel_initializer=init) for w in HIDDEN
                ]
            model = keras.Sequential(layers + [keras.layers.Dense(10, activation="softmax", kernel_initializer=init)])
            model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
            model.fit(prepared.x_train, prepared.y_train, batch_size=batch, epochs=epochs,
                      validation_data=(prepared.x_val, prepared.y_val), verbose=0)
            accs[(init, act)] = float(model.evaluate(prepared.x_test, prepared.y_test, verbose=0)[1])
    return accs


def sweep_config(inits, acts, epochs, batch, model: str, train_size: int | None, diagnostics: bool = True,
                 recording: str = "") -> str:
    size = f", train_size: {train_size}" if train_size else ""
    return (
        f"name: bench\ndataset: {{name: mnist, validation_split: 0.1{size}}}\nmodel: {model}\n"
        f"grid: {{initializer: {json.dumps(inits)}, activation: {json.dumps(acts)}}}\n"
        f"training: {{epochs: {epochs}, batch_size: {batch}, optimizer: adam, learning_rate: 0.001, deterministic: false, "
        f"diagnostics: {str(diagnostics).lower()}{recording}}}\n"
    )


def initlab(cfg_text: str, device: str, pack: bool, out: Path):
    result = run_sweep(config_from_text(cfg_text), out=out, device=device, pack=pack)
    return {(r["spec"]["initializer"], r["spec"]["activation"]): r["test_accuracy"] for r in result.records}


def phase(label, fn):
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - t0
    print(f"  {label:<34} {seconds:8.1f} s   peak RSS {mem.peak:7.0f} MB", flush=True)
    return out, seconds, mem.peak


def compare(name, flops, peak, rows, accs_ref, accs):
    base = rows[0][1]
    print(f"\n{name}: {flops / 1e9:.0f} GFLOP of work per way")
    print(f"  {'way':<34} {'seconds':>8} {'× naive':>8} {'GFLOP/s':>8} {'% peak':>7} {'peak MB':>8} {'|Δ test acc|':>12}")
    for (label, seconds, mem), acc in zip(rows, accs):
        diff = sum(abs(acc[k] - accs_ref[k]) for k in accs_ref) / len(accs_ref) if acc is not accs_ref else 0.0
        gflops = flops / seconds / 1e9
        print(f"  {label:<34} {seconds:8.1f} {base / seconds:8.2f} {gflops:8.1f} {100 * gflops / peak:6.0f}% "
              f"{mem:8.0f} {100 * diff:11.2f}pt")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "gpu", "auto"])
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--skip-cnn", action="store_true")
    ap.add_argument("--skip-naive", action="store_true", help="only initlab (e.g. for --scale)")
    ap.add_argument("--cnn-train-size", type=int, default=None, help="subsample the CNN's training set")
    ap.add_argument("--scale", default="", help="comma-separated packed grid sizes to time, e.g. 16,64,256")
    args = ap.parse_args()

    device = train.setup_device(args.device, deterministic=False)  # as a tutorial user would run it
    print(f"device: {device}; TensorFlow {tf.__version__}, Keras {keras.__version__}")
    raw = load_dataset("mnist", download=train.keras_download)
    mlp_data = prepare(raw, "mlp", 0.1)
    print(f"data: {raw.source}: {len(mlp_data.y_train)} train / {len(mlp_data.y_val)} val / {len(mlp_data.y_test)} test")
    peak = matmul_peak()
    print(f"float32 matmul peak (2048², best of 10): {peak:.1f} GFLOP/s\n")
    out = Path(tempfile.mkdtemp(prefix="initlab-bench-"))
    n_train, n_eval = len(mlp_data.y_train), len(mlp_data.y_val) + len(mlp_data.y_test)
    batch = 128

    if not args.skip_naive:
        print(f"(a) MLP 784-256-256-10, {len(MLP_INITS)}×{len(MLP_ACTS)} = 16 trials, {args.epochs} epoch(s), batch {batch}, Adam")
        cfg = sweep_config(MLP_INITS, MLP_ACTS, args.epochs, batch, "{kind: mlp, hidden: [256, 256]}", None)
        acc_n, s_n, m_n = phase("naive loop (Keras fit per trial)", lambda: naive(mlp_data, MLP_INITS, MLP_ACTS, args.epochs, batch))
        acc_s, s_s, m_s = phase("initlab, one model per trial", lambda: initlab(cfg, args.device, False, out / "single"))
        acc_p, s_p, m_p = phase("initlab, packed (default)", lambda: initlab(cfg, args.device, True, out / "packed"))
        # what the per-step records cost: without the first epoch's per-layer statistics, then without steps.csv
        steps_only = sweep_config(MLP_INITS, MLP_ACTS, args.epochs, batch, "{kind: mlp, hidden: [256, 256]}", None,
                                  recording=", step_diagnostics_epochs: 0")
        acc_t, s_t, m_t = phase("initlab, packed, steps.csv only", lambda: initlab(steps_only, args.device, True, out / "steps"))
        epoch_only = sweep_config(MLP_INITS, MLP_ACTS, args.epochs, batch, "{kind: mlp, hidden: [256, 256]}", None,
                                  recording=", log_every_steps: 100000, step_diagnostics_epochs: 0")
        acc_e, s_e, m_e = phase("initlab, packed, no per-step records", lambda: initlab(epoch_only, args.device, True, out / "epoch"))
        quiet = sweep_config(MLP_INITS, MLP_ACTS, args.epochs, batch, "{kind: mlp, hidden: [256, 256]}", None, False,
                             recording=", log_every_steps: 100000")
        acc_q, s_q, m_q = phase("initlab, packed, no diagnostics", lambda: initlab(quiet, args.device, True, out / "quiet"))
        compare("MLP grid", mlp_flops(n_train, n_eval, args.epochs, 16), peak,
                [("naive loop", s_n, m_n), ("initlab --no-pack", s_s, m_s), ("initlab (packed)", s_p, m_p),
                 ("initlab (packed, steps.csv only)", s_t, m_t), ("initlab (packed, no per-step records)", s_e, m_e),
                 ("initlab (packed, no diagnostics)", s_q, m_q)],
                acc_n, [acc_n, acc_s, acc_p, acc_t, acc_e, acc_q])
        print(f"  steps.csv (a row every ~1/50 epoch) costs {100 * (s_t - s_e) / s_e:+.1f}%; the first epoch's "
              f"per-step layer statistics and histograms {100 * (s_p - s_t) / s_t:+.1f}% of the packed sweep's time")
        print(f"  all diagnostics (layers.csv, step_layers.csv, histograms.npz) cost {100 * (s_p - s_q) / s_q:+.1f}%")

    if not args.skip_cnn and not args.skip_naive:
        cnn_data = prepare(raw, "cnn", 0.1, train_size=args.cnn_train_size)
        n_tr = len(cnn_data.y_train)
        print(f"\n(b) MNIST CNN, {len(CNN_INITS)}×{len(CNN_ACTS)} = 4 trials, {n_tr} training images, {args.epochs} epoch(s)")
        cfg = sweep_config(CNN_INITS, CNN_ACTS, args.epochs, batch, "{kind: mnist_cnn}", args.cnn_train_size)
        acc_n, s_n, m_n = phase("naive loop (Keras fit per trial)", lambda: naive(cnn_data, CNN_INITS, CNN_ACTS, args.epochs, batch, cnn=True))
        acc_i, s_i, m_i = phase("initlab", lambda: initlab(cfg, args.device, True, out / "cnn"))
        compare("CNN grid", cnn_flops(n_tr, len(cnn_data.y_val) + len(cnn_data.y_test), args.epochs, 4), peak,
                [("naive loop", s_n, m_n), ("initlab", s_i, m_i)], acc_n, [acc_n, acc_i])

    if args.scale:
        print("\n(c) packed MLP sweeps of growing size (random_normal σ values × 4 activations)")
        for n in [int(x) for x in args.scale.split(",")]:
            sigmas = [round(0.01 + 0.002 * i, 4) for i in range(max(1, n // 4))]
            inits = [{"name": "random_normal", "stddev": s} for s in sigmas]
            cfg = sweep_config(inits, MLP_ACTS, args.epochs, batch, "{kind: mlp, hidden: [256, 256]}", None)
            _, seconds, mem = phase(f"{len(inits) * 4} trials packed", lambda cfg=cfg, n=n: initlab(cfg, args.device, True, out / f"scale{n}"))
            print(f"    → {len(inits) * 4 / seconds:.2f} trials/s, "
                  f"{mlp_flops(n_train, n_eval, args.epochs, len(inits) * 4) / seconds / 1e9:.0f} GFLOP/s")
    print(f"\nrun directories of this benchmark: {out}")


if __name__ == "__main__":
    sys.exit(main())
