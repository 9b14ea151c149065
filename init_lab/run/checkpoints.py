"""Epoch checkpoints: each execution group's state, written atomically at every epoch end.

One file per group, ``checkpoints/<group id>.npz``: every member trial's arrays (weights, optimizer
slots) and, in a JSON entry, the rest of its state (epoch, optimizer step, status, the rows it
recorded so far) with a *fingerprint* of everything that determines its computation. The store
computes the fingerprints itself, from the sweep's config and the kind of device the trials compute
on. Files are written as the run directory's other files are (temp file, fsync, rename), so a kill
leaves the previous epoch's file or the new one.

Trials, not files, are what a resume looks up: the newest written state of each trial whose
fingerprint and model class match. So a resumed sweep may regroup its trials freely — a trial's
numbers do not depend on its group — and a finished trial's final state serves to extend the sweep
to more epochs. A file that cannot be read, or a state that does not match, is never an error: the
trials concerned start again from epoch 1, and the caller is told why in one line.
"""

from __future__ import annotations

import hashlib
import json
import time
import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from init_lab.analysis.histograms import HistogramLog
from init_lab.catalog import defaults
from init_lab.catalog.devices import DeviceKind
from init_lab.catalog.models import NetKind
from init_lab.catalog.status import TrialStatus
from init_lab.config.grid import TrialSpec, expand
from init_lab.config.schema import SweepConfig
from init_lab.engine.events import TrialState
from init_lab.run.store import atomic_write_with
from init_lab.runschema.axes import AXES

FORMAT = 1
META = "meta.json"


def fingerprint(computing: dict[str, Any]) -> str:
    """A short hash of what determines a trial's computation (its spec, data and settings, not its epochs)."""
    return hashlib.sha256(json.dumps(computing, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class _Entry:
    path: Path
    fingerprint: str
    net: str
    epoch: int
    written: int  # time.time_ns() of the write: the newest state of a trial wins
    status: str  # the trial's TrialStatus value there (a diverged trial is not trained again)


class CheckpointStore:
    """Reads and writes the checkpoint files of one directory (the run's, or shared storage under Ray), for
    the trials of one config computing on one kind of device."""

    def __init__(self, root: Path, config: SweepConfig, device: DeviceKind):
        self.root = Path(root)
        self.config, self.device = config, device
        self.problems: list[str] = []  # files that could not be read, for the caller to report
        self._index: dict[str, _Entry] | None = None
        self._known: set[Path] = set()  # files this instance has read or written: the only ones it prunes

    # --- fingerprints ----------------------------------------------------------------

    def fingerprint(self, spec: TrialSpec) -> str:
        """What determines the trial's computation, epochs excluded: a saved state is valid for it only if equal.

        The device kind is part of it: CPU and GPU round differently, so a state never moves between them.
        """
        described = {k: v for k, v in spec.describe().items() if k != "epochs"}
        if spec.arch.residual:  # what the spec's columns do not say: the blocks' depth, a configurable CNN's layers
            described["block_depth"] = spec.arch.block_depth
        if spec.arch.stack:
            described["stack"] = [repr(layer) for layer in spec.arch.stack]
        for axis in AXES:  # an axis at the value that means "as before it existed" (σ_b = 0, no residual…) leaves
            if axis.before is not None and described.get(axis.name) == axis.before:  # no trace: states saved
                del described[axis.name]  # before the axis existed stay valid
        training = self.config.training
        dataset = self.config.dataset.model_dump()
        if not dataset["standardize"]:  # the default leaves no trace: states saved before the option stay valid
            del dataset["standardize"]
        for option, default in (("synthetic_shape", list(defaults.SYNTHETIC_SHAPE)),
                                ("synthetic_classes", defaults.SYNTHETIC_CLASSES)):
            if dataset[option] == default:  # as standardize: states saved before these options stay valid
                del dataset[option]
        if dataset["train_size"] is not None or dataset["test_size"] is not None:
            # subsets became stratified (issue 22): a state saved on the earlier random subset is not this trial's
            dataset["subsets"] = "stratified"
        return fingerprint({
            "spec": described, "dataset": dataset,
            "diagnostics": training.diagnostics, "deterministic": training.deterministic,
            "device": self.device.value,
        })

    @cached_property
    def fingerprints(self) -> dict[str, str]:
        """Each trial of the config: its id → its fingerprint."""
        return {spec.id: self.fingerprint(spec) for spec in expand(self.config)}

    # --- writing ---------------------------------------------------------------------

    def write(self, group_id: str, states: dict[str, TrialState]) -> int:
        """Write a group's states (as one file); returns the bytes written."""
        self.root.mkdir(parents=True, exist_ok=True)
        written = time.time_ns()
        meta = {"format": FORMAT, "group": group_id, "written": written, "trials": {}}
        arrays: dict[str, np.ndarray] = {}
        for i, (tid, s) in enumerate(states.items()):
            meta["trials"][tid] = {"fingerprint": self.fingerprints[tid], **s.to_meta(), "slot": i}
            arrays.update({f"t{i}_{j}": a for j, a in enumerate(s.arrays)})
            if s.histograms is not None:
                arrays.update({f"t{i}_h_{k}": a for k, a in s.histograms.arrays().items()})
        path = self.path(group_id)
        atomic_write_with(path, lambda f: np.savez(f, **arrays, **{META: np.frombuffer(json.dumps(meta).encode(),
                                                                                      dtype=np.uint8)}))
        index = self.index()
        self._known.add(path)
        for tid in states:
            index[tid] = _Entry(path, self.fingerprints[tid], states[tid].net.value, states[tid].epoch, written,
                                states[tid].status.value)
        self._prune()
        return path.stat().st_size

    def path(self, group_id: str) -> Path:
        return self.root / f"{group_id}.npz"

    def remove(self, group_id: str) -> None:
        """Drop a finished group's file (when final states are not kept)."""
        path = self.path(group_id)
        path.unlink(missing_ok=True)
        self._index = {k: e for k, e in self.index().items() if e.path != path}

    def _prune(self) -> None:
        """Delete files none of whose trials' newest state lives there any more."""
        live = {e.path for e in self.index().values()}
        for path in self._known - live:
            path.unlink(missing_ok=True)
        self._known &= live

    # --- reading ---------------------------------------------------------------------

    def index(self) -> dict[str, _Entry]:
        """Trial id → where its newest state is, built once from the files' metadata."""
        if self._index is None:
            self._index = {}
            for path in sorted(self.root.glob("*.npz")) if self.root.is_dir() else []:
                meta = self._meta(path)
                self._known.add(path)
                try:
                    entries = {tid: _Entry(path, m["fingerprint"], m["net"], int(m["epoch"]), int(meta["written"]),
                                           m["status"]) for tid, m in (meta or {}).get("trials", {}).items()}
                except (KeyError, TypeError, ValueError, AttributeError):
                    self.problems.append(f"checkpoint {path.name} has malformed metadata; its trials restart")
                    continue
                for tid, entry in entries.items():
                    old = self._index.get(tid)
                    if old is None or entry.written > old.written:
                        self._index[tid] = entry
        return self._index

    def refresh(self) -> None:
        """Forget the index: the next look-up re-reads the directory (others may have written)."""
        self._index = None

    def _meta(self, path: Path) -> dict[str, Any] | None:
        try:
            with np.load(path) as z:
                meta = json.loads(z[META].tobytes())
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise ValueError(f"format {meta.get('format')}")
            return meta
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
            self.problems.append(f"checkpoint {path.name} is unreadable ({type(exc).__name__}); its trials restart")
            return None

    def diverged(self, trial_id: str) -> bool:
        entry = self.index().get(trial_id)
        return entry is not None and entry.status == TrialStatus.DIVERGED.value

    def latest(self, trial_id: str, net: NetKind) -> tuple[int, str | None]:
        """The epoch of the trial's newest usable state (0: none), and why an existing one is unusable."""
        entry = self.index().get(trial_id)
        if entry is None:
            return 0, None
        if entry.fingerprint != self.fingerprints[trial_id]:
            return 0, "its saved state was computed with other settings"
        if entry.net != net.value:
            return 0, f"its saved state belongs to the {entry.net} model class, not {net.value} (--pack/--no-pack)"
        return entry.epoch, None

    def load(self, trial_ids: list[str]) -> dict[str, TrialState] | None:
        """The newest states of these trials (arrays included); None if any cannot be read back."""
        out: dict[str, TrialState] = {}
        by_file: dict[Path, list[str]] = {}
        for tid in trial_ids:
            by_file.setdefault(self.index()[tid].path, []).append(tid)
        try:
            for path, tids in by_file.items():
                with np.load(path) as z:
                    meta = json.loads(z[META].tobytes())
                    for tid in tids:
                        m = meta["trials"][tid]
                        arrays = [z[f"t{m['slot']}_{j}"] for j in range(m["n_arrays"])]
                        prefix = f"t{m['slot']}_h_"
                        hist = HistogramLog.from_arrays({k[len(prefix):]: z[k] for k in z.files
                                                         if k.startswith(prefix)}) if m.get("histograms") else None
                        out[tid] = TrialState.from_meta(tid, m, arrays, hist)
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError) as exc:
            self.problems.append(f"checkpoint {path.name} could not be read back ({type(exc).__name__})")
            return None
        return out
