"""The files of a trial and the columns of every table a run writes (DESIGN §5), declared once.

The recorder writes these columns, the report and the API read them, and an empty frame (a run
without diagnostics, a pending trial) has them too. The optional grid axes' columns come from
``runschema.axes``.
"""

from __future__ import annotations

from init_lab.runschema.axes import AXES, NAMES

TRIAL_FILE = "trial.json"
EPOCHS_FILE = "epochs.csv"
LAYERS_FILE = "layers.csv"
STEPS_FILE = "steps.csv"
STEP_LAYERS_FILE = "step_layers.csv"
HISTOGRAMS_FILE = "histograms.npz"

# epoch 0: the initial weights — training loss/accuracy on the first INIT_TRAIN_EXAMPLES training examples,
# validation on the validation set, before any step (seconds 0)
EPOCH_COLUMNS = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds", "learning_rate"]
STEP_COLUMNS = ["step", "epoch", "progress", "loss", "accuracy"]
LAYER_COLUMNS = [
    "epoch", "layer", "name", "units", "pre_mean", "pre_std", "act_mean", "act_std", "saturated_frac",
    "dead_frac", "negative_frac", "grad_out_rms", "grad_kernel_rms", "kernel_std",
    # signal-propagation plots (Brock et al. 2021) of the layer's output h: channels' squared mean and variance,
    # and the residual branch's variance at a block's last layer
    "channel_sq_mean", "channel_var", "branch_var",
]
PERCENTILES = (2, 16, 50, 84, 98)  # of the activation values: ±2σ, ±1σ and the median for a Gaussian
STEP_LAYER_COLUMNS = [
    "step", "epoch", "progress", "layer", "name", "act_mean", "act_std", "saturated_frac", "dead_frac",
    "negative_frac", *(f"p{p}" for p in PERCENTILES),
]
# columns recorded since issue 21: a table whose rows all predate them (a resumed older run) is written without them
LATER_COLUMNS = frozenset({"channel_sq_mean", "channel_var", "branch_var"})
# a trial's CSV tables and their columns
TABLES = {
    EPOCHS_FILE: EPOCH_COLUMNS,
    LAYERS_FILE: LAYER_COLUMNS,
    STEPS_FILE: STEP_COLUMNS,
    STEP_LAYERS_FILE: STEP_LAYER_COLUMNS,
}

PEAKS = ("dead_frac", "negative_frac", "saturated_frac")  # summarized as peak_<column> in trial.json
DIAGNOSTIC_SUMMARY = (
    "init_act_std_last_over_first", "init_grad_rms_last_over_first", *(f"peak_{column}" for column in PEAKS),
)
# summary.csv's text columns (every other column is a number, or empty)
TEXT_COLUMNS = frozenset({"trial_id", "status", "initializer", "activation", "model", "error",
                          *(a.name for a in AXES if a.text)})


def threshold_key(threshold: float) -> str:
    """The column of the epochs a trial took to reach ``threshold`` validation accuracy."""
    return f"epochs_to_{threshold:g}"


def summary_columns(thresholds: list[float]) -> list[str]:
    """summary.csv's columns: the trial, its axes, its results, its timings, its diagnostics, its error."""
    return [
        "trial_id", "index", "status", "initializer", "activation", "seed", "model", *NAMES,
        "epochs_run", "initial_loss", "initial_val_accuracy", "best_val_accuracy", "best_epoch",
        "final_val_accuracy", "final_loss", "final_val_loss", "test_loss", "test_accuracy",
        *(threshold_key(t) for t in thresholds),
        "wall_seconds", "group_seconds", "packed_with", "param_count", *DIAGNOSTIC_SUMMARY, "error",
    ]
