"""Trial statuses: one enum, each state defined (DESIGN §5)."""

from __future__ import annotations

from enum import Enum


class TrialStatus(str, Enum):
    """Where a trial stands. Stored in trial.json and summary.csv as its value."""

    PENDING = "pending"  # planned, not started
    RUNNING = "running"  # started; a run directory left so was interrupted: resume continues it
    COMPLETED = "completed"  # trained every epoch with finite losses and was evaluated on the test set
    DIVERGED = "diverged"  # a training or validation loss became NaN/inf; epochs up to then kept, no test metrics
    FAILED = "failed"  # raised an error (message in ``error``); other trials are unaffected

    @property
    def finished(self) -> bool:
        """Kept as it is by a resume (failed trials only with --retry-failed)."""
        return self in (TrialStatus.COMPLETED, TrialStatus.DIVERGED)

    @property
    def ended(self) -> bool:
        """No more training will happen to it in this run (what a report counts as done)."""
        return self.finished or self is TrialStatus.FAILED

    @classmethod
    def of(cls, value: object) -> TrialStatus:
        """The status named by a stored value; anything unreadable counts as pending."""
        try:
            return cls(value)
        except ValueError:
            return cls.PENDING


ENDED = frozenset(s.value for s in TrialStatus if s.ended)
