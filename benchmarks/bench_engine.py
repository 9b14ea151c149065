"""Benchmark: the one-loop engine against the engine before it, and what epoch checkpoints cost.

Every figure is measured in this run, as whole processes on the same machine:

1. The 16-trial packed MLP grid (784-256-256-10, 4 initializers × 4 activations, full MNIST, 1 epoch,
   batch 128, Adam) swept by a baseline revision of initlab (default: 24d4adb, the last commit before
   the engine rewrite, checked out in a temporary git worktree) and by this working tree: seconds
   for each, their ratio, and per-trial test accuracy of both.
2. Checkpoint cost for the shipped configs: bytes per epoch-end checkpoint, seconds spent writing
   them, and that time as a fraction of training time (from each run's manifest). mnist.yaml runs
   with 1 epoch (the state, so the bytes per epoch, does not depend on the epoch count); the CNN on
   6000 training images (a shorter epoch, so its fraction is an upper bound).

    INITLAB_DATA_DIR=../shared/data python benchmarks/bench_engine.py [--baseline REV]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GRID = """
name: bench16
dataset: {name: mnist, validation_split: 0.1}
model: {kind: mlp, hidden: [256, 256]}
grid:
  initializer: [glorot_uniform, he_normal, lecun_normal, orthogonal]
  activation: [relu, tanh, elu, selu]
training: {epochs: 1, batch_size: 128, optimizer: adam, learning_rate: 0.001}
device: cpu
"""

CHILD = r"""
import sys, time, json
t0 = time.perf_counter()
try:
    from init_lab.config.loading import config_from_text
    from init_lab.run.sweep import run_sweep
except ImportError:  # the layout before the engine rewrite
    from init_lab.config import config_from_text
    from init_lab.sweep import run_sweep
cfg = config_from_text(open(sys.argv[1]).read(), overrides=sys.argv[3:])
result = run_sweep(cfg, out=sys.argv[2])
print(json.dumps({"seconds": time.perf_counter() - t0, "run_dir": str(result.run_dir),
                  "test_accuracy": [r.get("test_accuracy") for r in result.records]}))
"""


def sweep(tree: Path, config: Path, out: Path, *overrides: str) -> dict:
    """One whole process (imports, data, compile, training, files) of `tree`'s initlab."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, str(config), str(out), *overrides], cwd=tree, env=env,
                          capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_seconds"] = time.perf_counter() - t0
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", default="24d4adb")
    ap.add_argument("--skip-checkpoints", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="initlab-bench-"))
    grid = tmp / "grid.yaml"
    grid.write_text(GRID)
    base = tmp / "baseline"
    subprocess.run(["git", "worktree", "add", "--detach", str(base), args.baseline], cwd=REPO, check=True,
                   capture_output=True)
    try:
        print(f"1. packed 16-trial MLP grid, full MNIST, 1 epoch, whole processes ({os.cpu_count()} CPU cores)")
        old = sweep(base, grid, tmp / "runs-old")
        new = sweep(REPO, grid, tmp / "runs-new")
        print(f"   baseline {args.baseline}: {old['process_seconds']:.1f} s   this tree: {new['process_seconds']:.1f} s"
              f"   → new/old = {new['process_seconds'] / old['process_seconds']:.2f}")
        pairs = [(a, b) for a, b in zip(old["test_accuracy"], new["test_accuracy"]) if a is not None and b is not None]
        diff = sum(abs(a - b) for a, b in pairs) / len(pairs)
        print(f"   mean |Δ test accuracy| between the two: {diff * 100:.3f} points over {len(pairs)} trials")
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=REPO, capture_output=True)
    if args.skip_checkpoints:
        return
    print("2. epoch checkpoints of the shipped configs (this tree)")
    cases = [("quickstart.yaml", []), ("mnist.yaml", ["training.epochs=1"]),
             ("mnist_cnn.yaml", ["training.epochs=1", "dataset.train_size=6000"])]
    for name, overrides in cases:
        run = sweep(REPO, REPO / "configs" / name, tmp / f"runs-{name}", *overrides)
        manifest = json.loads((Path(run["run_dir"]) / "manifest.json").read_text())
        writes = manifest["execution"]["checkpoint_writes"]
        records = [json.loads(p.read_text()) for p in (Path(run["run_dir"]) / "trials").glob("*/trial.json")]
        training = sum(r["wall_seconds"] for r in records)  # each trial's share of its group's wall time
        print(f"   {name:<16} {' '.join(overrides) or '(as shipped)':<44} {writes['count']} writes, "
              f"{writes['mean_bytes'] / 1e6:.1f} MB each, {writes['seconds']:.2f} s writing = "
              f"{writes['seconds'] / training * 100:.1f} % of {training:.1f} s training")


if __name__ == "__main__":
    main()
