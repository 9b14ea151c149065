"""What one sweep invocation did to its run directory: each trial's record, the sweep's status, the device,
the time; and the error that lists failed trials (the CLI's exit code 1, ``raise_on_failure`` in the API).

The run directory itself, read back, is ``init_lab.report.run.Run``; the API attaches this to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from init_lab.catalog.errors import TrialsFailedError
from init_lab.catalog.status import TrialStatus
from init_lab.runschema.records import SweepStatus, TrialRecord


@dataclass
class Invocation:
    """What one invocation did to its run directory (the directory itself, read back: ``report.run.Run``)."""

    run_dir: Path
    records: list[TrialRecord]  # every trial's record, in grid order
    status: SweepStatus
    device: str
    seconds: float
    skipped: list[str] = field(default_factory=list)  # trial ids kept from an earlier, resumed run

    def count(self, status: TrialStatus) -> int:
        return sum(1 for r in self.records if r.status == status)

    @property
    def failures(self) -> dict[str, str]:
        """Each failed trial's id and error (a divergence is a result, not a failure)."""
        return {r.trial_id: str(r.error or "no error recorded") for r in self.records
                if r.status == TrialStatus.FAILED}

    @property
    def ok(self) -> bool:
        """Every trial completed or diverged: what exit code 0 means."""
        return all(r.status.finished for r in self.records)

    def failure_error(self) -> TrialsFailedError | None:
        """The error listing the failed trials (None if none failed), for the CLI's exit code and the API."""
        return failure_error(self.run_dir, len(self.records), self.failures)


def failure_error(run_dir: Path, n_trials: int, failures: dict[str, str]) -> TrialsFailedError | None:
    """'2 of 4 trials failed:' and each failed trial with the first line of its error; None without failures."""
    if not failures:
        return None
    shown = list(failures.items())[:20]
    lines = [f"  {tid}: {' '.join(error.split())[:300]}" for tid, error in shown]
    if len(failures) > len(shown):
        lines.append(f"  … and {len(failures) - len(shown)} more (summary.csv has every error)")
    return TrialsFailedError(
        f"{len(failures)} of {n_trials} trials failed:\n" + "\n".join(lines) + "\nTheir errors are in their "
        f"trial.json; after fixing the cause, rerun them with `initlab sweep --resume {run_dir} --retry-failed`.",
        run_dir, failures)
