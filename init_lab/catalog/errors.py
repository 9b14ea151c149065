"""Domain errors of initlab.

The library raises these; only the CLI turns them into messages and exit codes
(DESIGN §2: 1 for user errors, 130 for interruptions). Every message is written
for the person at the terminal: what is wrong, and what to do about it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class InitLabError(Exception):
    """Base class: an error the user can act on (exit code 1)."""

    exit_code = 1


class ConfigError(InitLabError):
    """A sweep config (or a --set override) is invalid."""


class DataError(InitLabError):
    """A dataset could not be found or read."""


class DeviceError(InitLabError):
    """The requested device is not available."""


class RunDirError(InitLabError):
    """A run directory is missing, unreadable or inconsistent."""


class RunLockedError(RunDirError):
    """Another process is writing this run directory (it holds the run's lock); ``holder`` says who."""

    def __init__(self, message: str, holder: dict | None = None):
        super().__init__(message)
        self.holder = holder or {}


class TrialsFailedError(InitLabError):
    """A sweep ran to its end but some trials failed (an error, not a result: exit code 1).

    Raised at the CLI's edge and by ``init_lab.sweep(..., raise_on_failure=True)``; the run directory
    is complete, so ``run_dir`` can be loaded, and ``failures`` maps each failed trial to its error."""

    def __init__(self, message: str, run_dir: object = None, failures: dict[str, str] | None = None):
        super().__init__(message)
        self.run_dir = run_dir
        self.failures = failures or {}


class SweepTooLargeError(InitLabError):
    """A sweep whose estimate says it cannot fit in this machine's memory, or would train for very long:
    refused before anything is written, unless asked to run anyway (``--yes``)."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ' Did you mean 'x'?' for the nearest choice, or '' if none is close."""
    matches = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" Did you mean '{matches[0]}'?" if matches else ""


def unknown_name_message(kind: str, name: object, allowed: Iterable[str]) -> str:
    """The standard 'unknown X' sentence: the name, the allowed values, the nearest match."""
    allowed = sorted(allowed)
    return f"unknown {kind} '{name}'.{did_you_mean(str(name), allowed)} Allowed: {', '.join(allowed)}."
