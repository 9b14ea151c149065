"""What a trial records (DESIGN §5): trial.json and its summary.csv row, as plain data.

Statuses are :class:`init_lab.catalog.status.TrialStatus` (each defined there).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from init_lab.analysis.diagnostics import PEAKS
from init_lab.catalog.status import TrialStatus
from init_lab.config.grid import TrialSpec

DIAGNOSTIC_SUMMARY = (
    "init_act_std_last_over_first", "init_grad_rms_last_over_first", *(f"peak_{column}" for column in PEAKS),
)


def now_iso() -> str:
    return datetime.now(UTC).astimezone().isoformat(timespec="seconds")


def threshold_key(threshold: float) -> str:
    return f"epochs_to_{threshold:g}"


def summary_columns(thresholds: list[float]) -> list[str]:
    return [
        "trial_id",
        "index",
        "status",
        "initializer",
        "activation",
        "seed",
        "model",
        "depth",
        "width",
        "optimizer",
        "learning_rate",
        "batch_size",
        "bias_std",
        "epochs_run",
        "initial_loss",
        "initial_val_accuracy",
        "best_val_accuracy",
        "best_epoch",
        "final_val_accuracy",
        "final_loss",
        "final_val_loss",
        "test_loss",
        "test_accuracy",
        *(threshold_key(t) for t in thresholds),
        "wall_seconds",
        "group_seconds",
        "packed_with",
        "param_count",
        *DIAGNOSTIC_SUMMARY,
        "error",
    ]


def pending_record(spec: TrialSpec) -> dict[str, Any]:
    return {"trial_id": spec.id, "index": spec.index, "status": TrialStatus.PENDING.value, "spec": spec.describe()}


def trial_record(
    spec: TrialSpec,
    status: TrialStatus,
    epochs: list[dict[str, Any]],
    thresholds: list[float],
    *,
    test_loss: float | None = None,
    test_accuracy: float | None = None,
    param_count: int | None = None,
    wall_seconds: float | None = None,
    error: str | None = None,
    device: str | None = None,
    started_at: str | None = None,
    finished_at: str | None = None,
) -> dict[str, Any]:
    """The trial.json content, with the derived figures (best epoch, epochs to thresholds...).

    Epoch 0 (the initial weights) gives ``initial_loss`` / ``initial_val_loss`` / ``initial_val_accuracy``;
    the best, final and epochs-to figures are over trained epochs (≥ 1).
    """
    init = next((r for r in epochs if r.get("epoch") == 0), {})
    epochs = [r for r in epochs if r.get("epoch") != 0]
    finite = [r for r in epochs if _finite(r.get("val_accuracy"))]
    best = max(finite, key=lambda r: r["val_accuracy"], default=None)  # first maximum: earliest best epoch
    last = epochs[-1] if epochs else {}
    reached = {
        threshold_key(t): next((r["epoch"] for r in finite if r["val_accuracy"] >= t), None) for t in thresholds
    }
    return {
        "trial_id": spec.id,
        "index": spec.index,
        "status": TrialStatus(status).value,
        "spec": spec.describe(),
        "epochs_run": len(epochs),
        "initial_loss": init.get("loss"),
        "initial_val_loss": init.get("val_loss"),
        "initial_val_accuracy": init.get("val_accuracy"),
        "best_val_accuracy": best["val_accuracy"] if best else None,
        "best_epoch": best["epoch"] if best else None,
        "final_val_accuracy": last.get("val_accuracy"),
        "final_loss": last.get("loss"),
        "final_val_loss": last.get("val_loss"),
        "test_loss": test_loss,
        "test_accuracy": test_accuracy,
        "epochs_to_threshold": reached,
        "wall_seconds": wall_seconds,
        "param_count": param_count,
        "device": device,
        "error": error,
        "started_at": started_at,
        "finished_at": finished_at,
    }


def summary_row(record: dict[str, Any]) -> dict[str, Any]:
    """Flatten a trial.json record into one summary.csv row."""
    spec = record.get("spec", {})
    row = {k: v for k, v in record.items() if not isinstance(v, dict)}
    for key in ("initializer", "activation", "seed", "model", "depth", "width", "optimizer", "learning_rate", "batch_size"):
        row[key] = spec.get(key)
    row["bias_std"] = spec.get("bias_std", 0.0) if spec else None  # a record from before the field: zero biases
    row.update(record.get("epochs_to_threshold") or {})
    row.update(record.get("diagnostics") or {})
    if row.get("error"):
        row["error"] = " ".join(str(row["error"]).split())[:300]
    return row


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)
