"""Before/after: one sweep config on an older commit and on this working tree, whole processes, alternating.

    INITLAB_DATA_DIR=../shared/data python benchmarks/bench_ab.py OLD_REV CONFIG [--set K=V ...] [--runs 2]

The older commit is checked out into a temporary ``git worktree``. Every process starts in a temporary directory
with its side's tree first on ``PYTHONPATH``: ``python -m`` puts the current directory first on ``sys.path``, so a
process started in the repository would import this tree whichever side it was meant to be (a mistake this script
exists to avoid; each side's ``init_lab`` location is checked and printed). Prints each run's seconds and peak
RSS, each side's median and the ratio old / new, and the phases (manifest timings) of each side's fastest run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported_from(tree: Path, cwd: Path) -> str:
    """Where a process started as the sweeps are imports init_lab from."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([sys.executable, "-c", "import init_lab; print(init_lab.__file__)"], cwd=cwd, env=env,
                          capture_output=True, text=True, check=True).stdout.strip()


def sweep(tree: Path, cwd: Path, config: Path, sets: list[str], out: Path) -> tuple[float, float]:
    """Seconds and peak RSS (GB) of one whole ``initlab sweep`` process run from ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    argv = [sys.executable, "-m", "init_lab.cli", "sweep", str(config), "--out", str(out)]
    for s in sets:
        argv += ["--set", s]
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:  # a failed sweep's seconds are not a timing
        sys.exit(f"sweep from {tree} exited {code}: {proc.stderr.read()[-2000:]}")
    return seconds, usage.ru_maxrss * 1024 / 1e9


def phases(out: Path) -> str:
    manifest = json.loads(next(out.glob("*/manifest.json")).read_text())
    sweep_phases = manifest.get("timings", {}).get("sweep", {})
    return ", ".join(f"{k} {v:.2f}" for k, v in sorted(sweep_phases.items(), key=lambda kv: -kv[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", help="the older commit (any git revision)")
    ap.add_argument("config", type=Path)
    ap.add_argument("--set", dest="sets", action="append", default=[], help="a --set override for both sides")
    ap.add_argument("--runs", type=int, default=2, help="runs of each side, alternating (at least 1)")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    work = Path(tempfile.mkdtemp(prefix="initlab-ab-"))
    old_tree = work / "old"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(old_tree), args.old], check=True)
    try:
        sides = {"old": old_tree, "new": ROOT}
        for name, tree in sides.items():
            where = imported_from(tree, work)
            if not where.startswith(str(tree)):
                sys.exit(f"the {name} side would import {where}, not its own tree {tree}")
            print(f"{name}: {args.old if name == 'old' else 'working tree'}, init_lab from {where}")
        config = args.config.resolve()
        runs: dict[str, list[tuple[float, float, Path]]] = {name: [] for name in sides}
        for r in range(args.runs):
            for name, tree in sides.items():
                out = work / f"{name}{r}"
                seconds, rss = sweep(tree, work, config, args.sets, out)
                runs[name].append((seconds, rss, out))
                print(f"  {name} run {r + 1}: {seconds:.1f} s, peak RSS {rss:.2f} GB", flush=True)
        medians = {name: statistics.median(s for s, _, _ in rs) for name, rs in runs.items()}
        print(f"medians: old {medians['old']:.1f} s, new {medians['new']:.1f} s: old / new = "
              f"{medians['old'] / medians['new']:.2f}×")
        for name, rs in runs.items():
            print(f"  {name}'s fastest run, phases (s): {phases(min(rs, key=lambda r: r[0])[2])}")
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old_tree)], check=False)


if __name__ == "__main__":
    main()
