"""The figures and figures-of-merit that docs/reproductions.md quotes, from the runs of `make reproduce`.

    python scripts/reproductions.py [runs/reproduce]

For each reproduction found (the newest run directory of each config name), prints the numbers the docs
cite — mean ± std over seeds — and writes its figures into docs/figures/. Reads run directories only
(no TensorFlow).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from init_lab.report import plots
from init_lab.report.tables import RunData, load_run

FIGURES = Path(__file__).resolve().parents[1] / "docs" / "figures"
PAPER_TABLE1 = {  # Glorot & Bengio 2010, Table 1, MNIST test error (%); "N" = normalized initialization
    ("glorot2010_standard", "sigmoid"): 2.21, ("glorot2010_standard", "tanh"): 1.76,
    ("glorot_uniform", "tanh"): 1.64, ("glorot2010_standard", "softsign"): 1.64,
    ("glorot_uniform", "softsign"): 1.72,
}


def newest(root: Path, name: str) -> RunData | None:
    runs = sorted(p for p in root.glob(f"*_{name}") if p.is_dir())
    return load_run(runs[-1]) if runs else None


def mean_sd(values: pd.Series, scale: float = 1.0, digits: int = 3) -> str:
    v = values.dropna().astype(float) * scale
    if v.empty:
        return "—"
    sd = f" ± {v.std(ddof=1):.{digits}f}" if len(v) > 1 else ""
    return f"{v.mean():.{digits}f}{sd} (n={len(v)})"


def by_combination(run: RunData, columns: dict[str, tuple[str, float, int]]) -> pd.DataFrame:
    """One row per initializer + activation: each column as mean ± std over seeds."""
    rows = []
    for (init, act), part in run.trials.groupby(["initializer", "activation"], sort=False):
        row = {"initializer": init, "activation": act, "statuses": ", ".join(sorted(set(part["status"])))}
        for label, (column, scale, digits) in columns.items():
            row[label] = mean_sd(part[column], scale, digits) if column in part else "—"
        rows.append(row)
    return pd.DataFrame(rows)


def first_step_below(run: RunData, loss: float) -> pd.DataFrame:
    """Per trial: the first logged step whose windowed training loss is below ``loss`` (None: never)."""
    out = []
    for tid, part in run.steps.groupby("trial_id"):
        below = part[(part["loss"] < loss) & (part["step"] > 0)]
        out.append({"trial_id": tid, f"first_step_loss_below_{loss:g}": below["step"].min() if len(below) else np.nan})
    return run.trials.merge(pd.DataFrame(out), on="trial_id", how="left")


def layer_moments(run: RunData, epoch: int | None) -> pd.DataFrame:
    """Per combination, over layers and seeds at an epoch (None: the last): activation mean and variance ranges."""
    data = run.layers.merge(run.trials[["trial_id", "initializer", "activation"]], on="trial_id")
    at = data[data["epoch"] == (data["epoch"].max() if epoch is None else epoch)]
    rows = []
    for (init, act), part in at.groupby(["initializer", "activation"], sort=False):
        var = part["act_std"] ** 2
        rows.append({"initializer": init, "activation": act, "epoch": int(part["epoch"].iloc[0]),
                     "act_mean min..max": f"{part['act_mean'].min():.3g} .. {part['act_mean'].max():.3g}",
                     "act_var min..max": f"{var.min():.3g} .. {var.max():.3g}",
                     "last layer var": f"{var[part['layer'] == part['layer'].max()].mean():.3g}"})
    return pd.DataFrame(rows)


def save(name: str, data: bytes | None) -> None:
    if data:
        (FIGURES / name).write_bytes(data)
        print(f"  wrote docs/figures/{name}")


def figures(run: RunData, prefix: str) -> None:
    save(f"{prefix}_curves.png", plots.learning_curves(run))
    save(f"{prefix}_histograms.png", plots.histograms_plot(run))
    save(f"{prefix}_training_signals.png", plots.training_signals_plot(run))


def main(root: Path) -> None:
    FIGURES.mkdir(parents=True, exist_ok=True)
    common = {"test accuracy": ("test_accuracy", 1, 4), "best val acc": ("best_val_accuracy", 1, 4),
              "initial loss": ("initial_loss", 1, 3)}
    pd.set_option("display.width", 200, "display.max_columns", 20)
    for name in ("he2015", "he2015-sgd"):
        run = newest(root, name)
        if run is None:
            continue
        print(f"\n## {name}: {run.root}")
        run.trials = first_step_below(run, 2.0)
        print(by_combination(run, {**common, "first step loss < 2": ("first_step_loss_below_2", 1, 0),
                                   "act std last/first at init": ("init_act_std_last_over_first", 1, 6),
                                   "peak dead frac": ("peak_dead_frac", 1, 3)}).to_string(index=False))
        figures(run, name.replace("-", "_"))
    run = newest(root, "selu")
    if run is not None:
        print(f"\n## selu: {run.root}")
        print(by_combination(run, common).to_string(index=False))
        print(layer_moments(run, 0).to_string(index=False))
        print(layer_moments(run, None).to_string(index=False))
        figures(run, "selu")
    run = newest(root, "glorot2010")
    if run is not None:
        print(f"\n## glorot2010: {run.root}")
        run.trials["test_error"] = 100 * (1 - run.trials["test_accuracy"])
        table = by_combination(run, {"test error %": ("test_error", 1, 2), **common,
                                     "peak saturated": ("peak_saturated_frac", 1, 3)})
        table["paper (Table 1) %"] = [PAPER_TABLE1.get((i, a), "—") for i, a in zip(table["initializer"], table["activation"])]
        print(table.to_string(index=False))
        figures(run, "glorot2010")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/reproduce"))
