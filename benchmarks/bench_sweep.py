"""Benchmark (``make bench``): initlab against the tutorial loop, as whole processes, and what it costs.

Every figure is measured in this run, every ratio between two figures of this run; the machine's float32 matmul
peak, measured in a fresh process at the start and again after the timed runs, says which state the machine was
in (its speed changes from day to day, the tutorial loop's most):

(a) the 16-trial MLP grid (784-256-256-10, 4 initializers × 4 activations, full MNIST, 1 epoch, batch 128,
    Adam) and (c) the MNIST-CNN grid (2 × 2, 1 epoch), each three ways, as whole processes (Python start,
    TensorFlow import, data, compile, training, every file written):
    * the tutorial loop, a process per combination (``tutorial.py --init I --act A``, one after another:
      a shell loop over a training script);
    * the tutorial loop, all combinations in one process;
    * ``initlab sweep`` (default config: every record, diagnostics and checkpoints included), with empty caches (it
      compiles its programs and decompresses the IDX files), then again (its compiled programs and the decoded data
      loaded from the caches, as any later sweep of the shape on this data).
    The one-process loop and both sweeps run ``--repeats`` times (default 2), interleaved, each row the fastest of
    its runs (best of N: the run least disturbed by whatever else the machine did; every run's seconds are shown).
    Peak RSS per process (``wait4``), and the mean |Δ test accuracy| against the one-process tutorial loop.
(b) inside initlab's packed step: achieved GFLOP/s of one epoch of the 16-trial packed training step on
    MNIST against this machine's float32 matmul peak (a 2048² tf.matmul, best of 10). FLOPs are counted
    from the layer shapes: training 6 × multiply-adds per example (the usual count), evaluation 2 ×;
    and the start-up: a process that only imports TensorFlow.
(d) peak RSS of a sweep of each shipped config (1 epoch on 2,048 training images, so that it stays short: the
    groups and their memory are the config's, the resident dataset is smaller) next to the ``--dry-run``
    estimate for the whole config.
(e) ``--scale 16,64,256``: packed MLP sweeps of growing size, trials per second (for GPU machines);
(f) where a CNN training step's time goes and what packing CNN trials would buy (``bench_cnn_step.py``);
(g) ``configs/mnist.yaml`` (56 trials, 7 activations): what an epoch costs beyond its packed step (runs of 1 and 3
    epochs, from their own timings; and against the packed step measured alone).

    INITLAB_DATA_DIR=../shared/data python benchmarks/bench_sweep.py [--skip-cnn] [--skip-configs] [--scale ...]
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # as initlab itself sets it

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
MLP_INITS = ["glorot_uniform", "he_normal", "lecun_normal", "orthogonal"]
MLP_ACTS = ["relu", "tanh", "sigmoid", "elu"]
CNN_INITS = ["glorot_uniform", "he_normal"]
CNN_ACTS = ["relu", "tanh"]
MLP_MACS = 784 * 256 + 256 * 256 + 256 * 10
CNN_MACS = 26 * 26 * 9 * 1 * 32 + 11 * 11 * 9 * 32 * 64 + 3 * 3 * 9 * 64 * 64 + 576 * 64 + 64 * 10


@functools.cache
def shared_caches() -> Path:
    """The caches of the sweeps not given their own: empty at first (the first sweep of a shape compiles)."""
    return Path(tempfile.mkdtemp(prefix="initlab-bench-caches-"))


def run_process(cmd: list[str], caches: Path | None = None) -> tuple[float, float, str]:
    """Seconds, peak RSS (MB, from the child's own rusage) and stdout of one whole process; ``caches``: the folder
    of initlab's XLA and decoded-dataset caches (xla/, data/)."""
    caches = caches or shared_caches()
    env = {**os.environ, "INITLAB_XLA_CACHE": str(caches / "xla"), "INITLAB_DATA_CACHE": str(caches / "data")}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        if proc.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err.read()[-3000:]}")
        return seconds, usage.ru_maxrss / 1024, out.read()


def tutorial(data: str | None, inits: list[str], acts: list[str], cnn: bool, epochs: int,
             per_process: bool) -> tuple[float, float, dict[str, float]]:
    base = [sys.executable, str(HERE / "tutorial.py"), "--epochs", str(epochs)] + (["--data", data] if data else [])
    base += ["--cnn"] if cnn else []
    jobs = [(["--init", i], ["--act", a]) for i in inits for a in acts] if per_process else [(["--init", *inits],
                                                                                          ["--act", *acts])]
    seconds, peak, accs = 0.0, 0.0, {}
    for init, act in jobs:
        s, m, out = run_process(base + init + act)
        seconds, peak = seconds + s, max(peak, m)
        accs.update(json.loads(out.strip().splitlines()[-1]))
    return seconds, peak, accs


def sweep_config(inits, acts, epochs: int, model: str, extra: str = "") -> str:
    return (f"name: bench\ndataset: {{name: mnist, validation_split: 0.1}}\nmodel: {model}\n"
            f"grid: {{initializer: {json.dumps(inits)}, activation: {json.dumps(acts)}}}\n"
            f"training: {{epochs: {epochs}, batch_size: 128, optimizer: adam, learning_rate: 0.001{extra}}}\n")


def initlab(config_text: str, out: Path, device: str, *options: str,
            caches: Path | None = None) -> tuple[float, float, dict[str, float]]:
    out.mkdir(parents=True, exist_ok=True)
    cfg = out / "config.yaml"
    cfg.write_text(config_text)
    seconds, peak, _ = run_process([str(BIN / "initlab"), "sweep", str(cfg), "--out", str(out), "--device", device,
                                    "--yes", *options], caches)
    with open(out / "latest" / "summary.csv", newline="") as f:
        accs = {f"{r['initializer']}/{r['activation']}": float(r["test_accuracy"]) for r in csv.DictReader(f)}
    return seconds, peak, accs


def timings(run: Path) -> dict[str, float]:
    """The run's own account of its seconds (manifest.json): phase → seconds, and 'wall'."""
    recorded = json.loads((run / "latest" / "manifest.json").read_text())["timings"]
    return {**recorded["sweep"], "wall": recorded["wall_seconds"]}


def where(seconds: float, phases: dict[str, float]) -> str:
    shown = sorted(((v, k) for k, v in phases.items() if k != "wall"), reverse=True)
    outside = seconds - phases["wall"]
    return ", ".join(f"{k} {v:.2f}" for v, k in shown if v >= 0.05) + f"; outside the sweep's clock {outside:.2f}"


def table(title: str, flops: float, rows: list[tuple[str, list[tuple[float, float, dict]]]], reference: dict) -> None:
    """Each way's fastest run (its seconds, peak RSS and accuracies), then the ratio of medians (this machine's runs
    vary, the tutorial loop's most: a ratio of two fastest runs alone flatters whichever had the luckier run), and
    every run's seconds."""
    print(f"\n{title}: {flops / 1e9:.0f} GFLOP of work per way (whole processes; each row the fastest of its runs)")
    print(f"  {'way':<44} {'seconds':>8} {'× per-process':>13} {'× one-process':>13} {'peak MiB':>8} "
          f"{'|Δ test acc|':>12} {'× one-process, medians':>22}  runs (s)")
    best = [(label, min(runs, key=lambda r: r[0]), runs) for label, runs in rows]
    per_process, one_process = best[0][1][0], best[1][1][0]
    one_median = statistics.median(r[0] for r in rows[1][1])
    for label, fastest, runs in best:
        seconds, mem, accs = fastest[:3]
        diff = sum(abs(accs[k] - reference[k]) for k in reference) / len(reference)
        median = statistics.median(r[0] for r in runs)
        print(f"  {label:<44} {seconds:8.1f} {per_process / seconds:13.2f} {one_process / seconds:13.2f} "
              f"{mem:8.0f} {100 * diff:11.2f}pt {one_median / median:22.2f}  {', '.join(f'{r[0]:.1f}' for r in runs)}")


def three_ways(title, inits, acts, cnn, args, out: Path, flops: float) -> None:
    model = "{kind: mnist_cnn}" if cnn else "{kind: mlp, hidden: [256, 256]}"
    per_process = tutorial(args.data, inits, acts, cnn, args.epochs, per_process=True)
    config = sweep_config(inits, acts, args.epochs, model)
    one, cold, cached = [], [], []
    for r in range(args.repeats):  # interleaved: a slow spell of the machine touches every way alike
        one.append(tutorial(args.data, inits, acts, cnn, args.epochs, per_process=False))
        cache = Path(tempfile.mkdtemp(prefix="initlab-bench-caches-"))  # empty: this sweep compiles and decodes
        cold.append((*initlab(config, out / f"cold{r}", args.device, caches=cache), out / f"cold{r}"))
        cached.append((*initlab(config, out / f"cached{r}", args.device, caches=cache), out / f"cached{r}"))
    rows = [("tutorial loop, a process per combination", [per_process]), ("tutorial loop, one process", one),
            ("initlab sweep (every record; empty caches)", cold), ("initlab sweep again (caches filled)", cached)]
    if not cnn:
        quiet = sweep_config(inits, acts, args.epochs, model, ", diagnostics: false")
        rows.append(("initlab sweep again, diagnostics: false",
                     [initlab(quiet, out / "quiet", args.device, caches=cache)]))
    table(title, flops, rows, min(one, key=lambda r: r[0])[2])
    s_i, *_, run_i = min(cold, key=lambda r: r[0])
    s_w, *_, run_w = min(cached, key=lambda r: r[0])
    phases = timings(run_i)
    print(f"  where initlab's {s_i:.1f} s went (manifest timings, s): {where(s_i, phases)}")
    print(f"  ... and the cached sweep's {s_w:.1f} s: {where(s_w, timings(run_w))}")
    floor = sum(phases.get(k, 0.0) for k in ("imports", "data", "first_window", "steps", "evaluation"))
    s_o = min(r[0] for r in one)
    print(f"  TensorFlow's import, the data, compiling, the training steps and the validation and test passes alone: "
          f"{floor:.1f} s of it, so a sweep that records anything more cannot beat {s_o / floor:.2f}× the one-process "
          f"loop here")


def machine_state() -> str:
    """This machine's float32 matmul peak now, measured in a fresh process (its speed changes from day to day, the
    tutorial loop's most: every ratio below is read with the state it was measured in)."""
    peak = run_process([sys.executable, str(Path(__file__).resolve()), "--matmul-peak"])[2].strip().splitlines()[-1]
    return f"float32 matmul peak {peak} GFLOP/s"


def startup_seconds() -> float:
    return run_process([sys.executable, "-c", "import tensorflow"])[0]


def matmul_peak(tf, n: int = 2048, repeats: int = 10) -> float:
    """Best GFLOP/s of an n×n float32 matmul on the current device."""
    a, b = tf.random.normal([n, n], seed=1), tf.random.normal([n, n], seed=2)
    f = tf.function(lambda a, b: tf.matmul(a, b))
    f(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        f(a, b).numpy()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def headline_runs(out: Path, device: str, epochs: int) -> dict[int, float]:
    """(g) ``configs/mnist.yaml`` (56 trials, 7 activations), whole processes of 1 and ``epochs`` epochs: seconds."""
    config = HERE.parent / "configs" / "mnist.yaml"
    walls = {}
    for n in (1, epochs):
        walls[n] = run_process([str(BIN / "initlab"), "sweep", str(config), "--out", str(out / f"epochs{n}"), "--yes",
                                "--device", device, "--set", f"training.epochs={n}"])[0]
    return walls


def headline_step(walls: dict[int, float], out: Path) -> None:
    """(g): an epoch of the headline job beyond the first, from the two runs' own timings (the longer run's phases
    less the 1-epoch run's, per extra epoch: the first epoch's compile and per-step statistics cancel), as the steps
    it ran and what surrounds them (validation pass, diagnostics, snapshot, checkpoint, files); and the packed step
    alone (``measure_step`` × steps per epoch), measured after. The difference of the two whole processes is shown
    too: it moves by a second or two with the machine."""
    from init_lab.config.grid import expand
    from init_lab.config.loading import load_config
    from init_lab.engine.steps import measure_step
    from init_lab.run.plan import plan_groups

    config = load_config(HERE.parent / "configs" / "mnist.yaml", [])
    groups, _ = plan_groups(expand(config))
    steps = math.ceil(54000 / config.training.batch_size)
    step = sum(measure_step(g, (784,), 10, steps=9, windows=4) for g in groups)
    first, last = min(walls), max(walls)
    long_run, short_run = timings(out / f"epochs{last}"), timings(out / f"epochs{first}")
    extra = {k: (long_run.get(k, 0.0) - short_run.get(k, 0.0)) / (last - first)
             for k in ("steps", "evaluation", "diagnostics", "snapshots", "checkpoints", "files")}
    around = sum(v for k, v in extra.items() if k != "steps")
    print(f"\n(g) configs/mnist.yaml ({len(expand(config))} trials, {len(groups)} group(s)), whole processes: "
          f"{walls[first]:.1f} s for {first} epoch, {walls[last]:.1f} s for {last} "
          f"({(walls[last] - walls[first]) / (last - first):.1f} s an epoch between them)")
    print(f"    an epoch beyond the first, from the runs' timings: {extra['steps'] + around:.1f} s = its {steps} steps "
          f"{extra['steps']:.1f} s ({extra['steps'] / steps * 1e3:.1f} ms a step as it ran) + "
          + ", ".join(f"{k} {v:.2f}" for k, v in extra.items() if k != "steps")
          + f" s: {100 * around / extra['steps']:+.0f}% around the steps")
    print(f"    the packed step alone, measured after: {step * 1e3:.1f} ms × {steps} steps = {step * steps:.1f} s; "
          f"the epoch {100 * ((extra['steps'] + around) / (step * steps) - 1):+.0f}% over it")


def packed_step(device: str) -> None:
    """GFLOP/s of one epoch of initlab's 16-trial packed training step on MNIST, against the matmul peak."""
    from init_lab.catalog.models import NetKind
    from init_lab.config.grid import expand
    from init_lab.config.loading import config_from_text
    from init_lab.engine import backend
    from init_lab.engine.data import load_device_data
    from init_lab.engine.nets import build_net
    from init_lab.engine.optim import GroupOptimizer
    from init_lab.engine.steps import batch_orders, compile_steps

    tf = backend.tf
    print(f"device: {backend.setup_device(device, deterministic=True)}; TensorFlow {tf.__version__}")
    peak = matmul_peak(tf)
    print(f"float32 matmul peak (2048², best of 10): {peak:.1f} GFLOP/s")
    config = config_from_text(sweep_config(MLP_INITS, MLP_ACTS, 1, "{kind: mlp, hidden: [256, 256]}"))
    data = load_device_data(config, "mlp")
    print(f"data: {data.source}: {data.sizes()}")
    specs = expand(config)
    for optimizer in ("adam", "sgd"):  # Adam's update is memory-bound: SGD shows the matmuls' own share
        net = build_net(NetKind.PACKED_MLP, specs, data.input_shape, data.n_classes)
        opt = GroupOptimizer(optimizer, net.per_variable([s.train.learning_rate for s in net.specs]), 0.0, net.variables)
        train_steps, _ = compile_steps(net, opt, data, 128)
        order = tf.constant(batch_orders(net, 1, data.n_train))
        steps = math.ceil(data.n_train / 128)
        train_steps(order, 0, 2)[0].numpy()  # trace and compile
        t0 = time.perf_counter()
        for first in range(0, steps, 9):
            train_steps(order, first, min(9, steps - first))[0].numpy()
        seconds = time.perf_counter() - t0
        gflops = 6 * MLP_MACS * data.n_train * len(specs) / seconds / 1e9
        print(f"\n(b) packed training step, 16 trials, {optimizer}, one epoch of {steps} steps: {seconds:.2f} s, "
              f"{gflops:.0f} GFLOP/s = {100 * gflops / peak:.0f}% of the matmul peak", end="")
    print()
    print(f"    start-up: a process that only imports TensorFlow takes {startup_seconds():.1f} s")


def shipped_configs(out: Path, device: str) -> None:
    """Peak RSS of a short sweep of every shipped config, next to the dry-run estimate of the whole config."""
    from init_lab.config.grid import expand
    from init_lab.config.loading import load_config
    from init_lab.run.capacity import format_bytes
    from init_lab.run.memory import MemoryPlan
    from init_lab.run.plan import plan_groups

    print("\n(d) shipped configs: peak RSS of a 1-epoch sweep on 2,048 training images vs the --dry-run estimate")
    print(f"  {'config':<22} {'trials':>6} {'groups':>6} {'estimate (whole config)':>24} {'peak RSS (short run)':>21}  (GB = 10⁹ B)")
    for path in sorted((HERE.parent / "configs").glob("*.yaml")):
        config = load_config(path, [])
        specs = expand(config)
        plan = MemoryPlan.for_config(config, device, specs[0].arch.family)
        groups, _ = plan_groups(specs, memory=plan)
        estimate = plan.fixed_bytes + max(plan.group_bytes(g) for g in groups)
        _, peak, _ = run_process([str(BIN / "initlab"), "sweep", str(path), "--out", str(out / path.stem), "--yes",
                                  "--device", device, "--set", "training.epochs=1", "--set", "dataset.train_size=2048"])
        print(f"  {path.name:<22} {len(specs):6d} {len(groups):6d} {format_bytes(estimate):>24} {format_bytes(peak * 2**20):>21}")
    print("  (the estimate: data, its NumPy copy, TensorFlow's runtime and the largest group; peak RSS: the process's)")


def scale(sizes: str, out: Path, device: str, epochs: int) -> None:
    print("\n(e) packed MLP sweeps of growing size (random_normal σ values × 4 activations), whole processes")
    first = None
    for n in [int(x) for x in sizes.split(",")]:
        inits = [{"name": "random_normal", "stddev": round(0.01 + 0.002 * i, 4)} for i in range(max(1, n // 4))]
        cfg = sweep_config(inits, MLP_ACTS, epochs, "{kind: mlp, hidden: [256, 256]}")
        seconds, mem, _ = initlab(cfg, out / f"scale{n}", device)
        first = first or seconds
        print(f"  {len(inits) * 4:4d} trials: {seconds:7.1f} s, {len(inits) * 4 / seconds:6.2f} trials/s, "
              f"× the first size's time {seconds / first:5.2f}, peak RSS {mem:.0f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "gpu", "auto"])
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--skip-cnn", action="store_true")
    ap.add_argument("--skip-mlp", action="store_true")
    ap.add_argument("--skip-configs", action="store_true")
    ap.add_argument("--scale", default="", help="comma-separated packed grid sizes to time, e.g. 16,64,256")
    ap.add_argument("--skip-headline", action="store_true", help="skip (g), configs/mnist.yaml's epochs")
    ap.add_argument("--headline-epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2, help="runs of the one-process loop and of each sweep (best of)")
    ap.add_argument("--matmul-peak", action="store_true", help=argparse.SUPPRESS)  # machine_state's child process
    args = ap.parse_args()
    if args.matmul_peak:
        import tensorflow as tf

        print(f"{matmul_peak(tf):.0f}")
        return None
    if args.repeats < 1:
        ap.error(f"--repeats {args.repeats}: at least one run of each way is needed")
    data_dir = os.environ.get("INITLAB_DATA_DIR")
    args.data = str(Path(data_dir) / "mnist") if data_dir and (Path(data_dir) / "mnist").is_dir() else None
    out = Path(tempfile.mkdtemp(prefix="initlab-bench-"))
    print(f"machine: {os.cpu_count()} CPU cores, {machine_state()} at the start; tutorial data: "
          f"{args.data or 'keras.datasets.mnist'}")
    n_train, n_eval = 54000, 6000 + 10000
    if not args.skip_mlp:
        print(f"(a) MLP 784-256-256-10, 4×4 = 16 trials, {args.epochs} epoch(s), batch 128, Adam")
        three_ways("MLP grid", MLP_INITS, MLP_ACTS, False, args, out / "mlp",
                   16 * (6 * MLP_MACS * n_train * args.epochs + 2 * MLP_MACS * n_eval))
    if not args.skip_cnn:
        print(f"\n(c) MNIST CNN, 2×2 = 4 trials, {args.epochs} epoch(s), batch 128, Adam")
        three_ways("CNN grid", CNN_INITS, CNN_ACTS, True, args, out / "cnn",
                   4 * (6 * CNN_MACS * n_train * args.epochs + 2 * CNN_MACS * n_eval))
    if not args.skip_configs:
        shipped_configs(out / "configs", args.device)
    if args.scale:
        scale(args.scale, out / "scale", args.device, args.epochs)
    if not args.skip_cnn:
        print("\n(f) " + run_process([sys.executable, str(HERE / "bench_cnn_step.py"), "--device",
                                      "gpu" if args.device == "gpu" else "cpu"])[2].strip())
    walls = None if args.skip_headline else headline_runs(out / "headline", args.device, args.headline_epochs)
    print(f"\nmachine: {machine_state()} at the end of the timed runs")
    packed_step(args.device)  # last: it imports TensorFlow into this process
    if walls:
        headline_step(walls, out / "headline")
    print(f"\nrun directories of this benchmark: {out}")


if __name__ == "__main__":
    sys.exit(main())
